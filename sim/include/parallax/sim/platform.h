// The simulated cluster: one SimGrid host per GPU, per-GPU NVLink/NVSwitch links inside a node, NICs
// (one per GPU when the node has as many, else shared), and a fat tree or rail-optimised Clos
// between nodes. Routes are computed arithmetically by a custom SimGrid zone (no route tables), so
// thousands of GPUs cost nothing to set up.
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace simgrid::s4u {
class Host;
class Link;
}  // namespace simgrid::s4u

namespace parallax::sim {

struct LinkInfo {
  std::string name;
  double bandwidth;  // bytes/s, after the fabric's efficiency
  double latency;    // s
};

class Platform {
 public:
  // Creates the hosts and links in the current SimGrid engine (which must exist, configured).
  explicit Platform(const ClusterSpec& cluster);
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  int gpus() const { return gpus_; }
  int gpus_per_node() const { return gpus_per_node_; }
  int node_of(std::uint32_t rank) const { return static_cast<int>(rank) / gpus_per_node_; }
  simgrid::s4u::Host* host(std::uint32_t rank) const { return hosts_.at(rank); }

  // Links (ids into links()) a transfer from `src` to `dst` crosses, and the route's latency.
  void route(std::uint32_t src, std::uint32_t dst, std::vector<std::uint32_t>& links, double& latency) const;
  double latency(std::uint32_t src, std::uint32_t dst) const;
  // Bandwidth of the slowest link on the route when alone.
  double bottleneck_bandwidth(std::uint32_t src, std::uint32_t dst) const;
  const std::vector<LinkInfo>& links() const { return info_; }
  simgrid::s4u::Link* simgrid_link(std::uint32_t id) const { return links_[id]; }

 private:
  std::uint32_t add_link(const std::string& name, double bandwidth, double latency);

  ClusterSpec spec_;
  int gpus_, gpus_per_node_, nodes_, nics_, nodes_per_leaf_, leaves_;
  bool rail_;
  std::vector<simgrid::s4u::Host*> hosts_;
  std::vector<simgrid::s4u::Link*> links_;
  std::vector<LinkInfo> info_;
  std::uint32_t nvlink_base_ = 0, nic_base_ = 0, upper_base_ = 0;
};

}  // namespace parallax::sim
