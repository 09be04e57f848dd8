// The parallax command's subcommands. Each takes its arguments (after the subcommand name) and
// returns the process exit code: 0 success, 2 bad input, 3 the layout does not fit in memory.
#pragma once

#include <string>
#include <vector>

namespace parallax::cli {

enum ExitCode : int { kOk = 0, kGateFailed = 1, kBadInput = 2, kDoesNotFit = 3, kInternalError = 70 };

int inspect(const std::vector<std::string>& args);

}  // namespace parallax::cli
