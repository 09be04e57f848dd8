// The parallax command's subcommands. Each takes its arguments (after the subcommand name) and
// returns the process exit code: 0 success, 2 bad input, 3 the layout does not fit in memory.
#pragma once

#include "parallax/parallax.pb.h"

#include <string>
#include <vector>

namespace parallax::cli {

enum ExitCode : int { kOk = 0, kGateFailed = 1, kBadInput = 2, kDoesNotFit = 3, kInternalError = 70 };

int inspect(const std::vector<std::string>& args);
int simulate(const std::vector<std::string>& args);
int validate(const std::vector<std::string>& args);
// Replaces this process with parallax-exec (see cli/exec.cpp for why).
int exec(const std::vector<std::string>& args);
int compare(const std::vector<std::string>& args);
int calibrate(const std::vector<std::string>& args);
int plan(const std::vector<std::string>& args);
int export_chakra(const std::vector<std::string>& args);  // cli/chakra.cpp

const char* schedule_name(Layout::Schedule schedule);
const char* recompute_name(Layout::Recompute recompute);

}  // namespace parallax::cli
