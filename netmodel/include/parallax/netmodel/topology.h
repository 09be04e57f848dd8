// The cluster's network as arithmetic: one GPU per rank, per-GPU NVLink/NVSwitch links inside a node,
// NICs (one per GPU when the node has as many, else shared), and a fat tree or rail-optimised Clos
// between nodes. Routes are computed from rank numbers (no route tables), so thousands of GPUs cost
// nothing to set up. The simulator builds its SimGrid platform from this; the estimator and
// calibration read the same link parameters.
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace parallax::netmodel {

// The per-link-class numbers a ClusterSpec gives, after the fabrics' efficiencies: what every
// transfer on that class of link sees.
struct LinkParameters {
  explicit LinkParameters(const ClusterSpec& cluster);

  int gpus_per_node = 0, nodes = 0, nics = 1, nodes_per_leaf = 1;
  bool rail_optimized = false;
  double intra_bandwidth = 0, intra_latency = 0;  // bytes/s, s: a GPU's NVLink/NVSwitch (or PCIe) link
  double nic_bandwidth = 0, nic_latency = 0;      // one NIC
  // Beyond the first switch a packet climbs to the spine (and, with more levels, further) and back.
  double upper_latency = 0;
  double oversubscription = 1;

  // One GPU's share of its node's NICs when every GPU of the node communicates at once (data and
  // pipeline parallelism): a NIC shared by several GPUs is split among them.
  double shared_nic_bandwidth() const;
  // NIC k serves GPUs k*g/n .. (k+1)*g/n - 1 of a node (GPUDirect RDMA through the GPU's own NIC).
  int nic_of(std::uint32_t rank) const;
};

struct Link {
  std::string name;
  double bandwidth;  // bytes/s, after the fabric's efficiency
  double latency;    // s
};

class Topology {
 public:
  explicit Topology(const ClusterSpec& cluster);

  const LinkParameters& parameters() const { return p_; }
  int gpus() const { return gpus_; }
  int gpus_per_node() const { return p_.gpus_per_node; }
  int node_of(std::uint32_t rank) const { return static_cast<int>(rank) / p_.gpus_per_node; }

  // Links (ids into links()) a transfer from `src` to `dst` crosses, and the route's latency.
  void route(std::uint32_t src, std::uint32_t dst, std::vector<std::uint32_t>& links, double& latency) const;
  double latency(std::uint32_t src, std::uint32_t dst) const;
  // Bandwidth of the slowest link on the route when alone.
  double bottleneck_bandwidth(std::uint32_t src, std::uint32_t dst) const;
  // Every link, split duplex: an up link (towards the fabric) carries the latency, its down link none,
  // so a route's latency is counted once.
  const std::vector<Link>& links() const { return links_; }

 private:
  void add_link(const std::string& name, double bandwidth, double latency);

  LinkParameters p_;
  int gpus_, leaves_;
  std::vector<Link> links_;
  std::uint32_t nvlink_base_ = 0, nic_base_ = 0, upper_base_ = 0;
};

}  // namespace parallax::netmodel
