// Chakra execution traces on the command line: `simulate --chakra PREFIX --cluster PRESET` and
// `export-chakra SCENARIO -o PREFIX`.
#pragma once

#include "parallax/sim/simulate.h"

#include <string>
#include <vector>

namespace parallax::cli {

struct ChakraSimulateRequest {
  std::string prefix;   // PREFIX of PREFIX.<rank>.et
  std::string cluster;  // preset name
  std::string cluster_file;  // or a ClusterSpec file (--cluster-file)
  std::string
      comm_groups;      // JSON {"pg_name": [ranks]}; empty: PREFIX.comm_groups.json or all ranks
  bool strict = false;  // dependencies on absent nodes are an error
  bool json = false;
  std::string timeline_path, chrome_path;
  double max_step = 0;
  sim::SimulationOptions options;
};

int simulate_chakra(const ChakraSimulateRequest& request);
int export_chakra(const std::vector<std::string>& args);

}  // namespace parallax::cli
