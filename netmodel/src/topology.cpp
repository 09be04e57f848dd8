#include "parallax/netmodel/topology.h"

#include <algorithm>

namespace parallax::netmodel {

LinkParameters::LinkParameters(const ClusterSpec& c) {
  gpus_per_node = c.gpus_per_node();
  nodes = c.num_nodes();
  nics = std::max(1, c.nics_per_node());
  nodes_per_leaf = std::max(1, c.inter_node().nodes_per_leaf());
  rail_optimized = c.inter_node().kind() == InterNodeTopology::RAIL_OPTIMIZED;
  intra_bandwidth = c.intra_node().gb_per_s() * 1e9 * c.intra_node().bandwidth_efficiency();
  intra_latency = c.intra_node().latency_us() * 1e-6;
  nic_bandwidth = std::max(1.0, c.nic_gbit_per_s()) / 8.0 * 1e9 * c.nic_bandwidth_efficiency();
  nic_latency = c.nic_latency_us() * 1e-6;
  upper_latency = 2.0 * std::max(1, c.inter_node().levels() - 1) * c.inter_node().switch_latency_us() * 1e-6;
  oversubscription = std::max(1.0, c.inter_node().oversubscription());
}

double LinkParameters::shared_nic_bandwidth() const {
  return nic_bandwidth * std::min(1.0, static_cast<double>(nics) / gpus_per_node);
}

int LinkParameters::nic_of(std::uint32_t rank) const {
  return static_cast<int>(rank % static_cast<std::uint32_t>(gpus_per_node)) * nics / gpus_per_node;
}

Topology::Topology(const ClusterSpec& c) : p_(c) {
  gpus_ = p_.gpus_per_node * p_.nodes;
  leaves_ = (p_.nodes + p_.nodes_per_leaf - 1) / p_.nodes_per_leaf;

  nvlink_base_ = 0;
  for (int g = 0; g < gpus_; ++g) {
    add_link("nvlink" + std::to_string(g) + "_up", p_.intra_bandwidth, p_.intra_latency);
    add_link("nvlink" + std::to_string(g) + "_down", p_.intra_bandwidth, 0);
  }
  nic_base_ = static_cast<std::uint32_t>(links_.size());
  for (int n = 0; n < p_.nodes; ++n)
    for (int k = 0; k < p_.nics; ++k) {
      const std::string name = "node" + std::to_string(n) + "_nic" + std::to_string(k);
      add_link(name + "_up", p_.nic_bandwidth, p_.nic_latency);
      add_link(name + "_down", p_.nic_bandwidth, 0);
    }
  upper_base_ = static_cast<std::uint32_t>(links_.size());
  const int nodes_in_leaf = std::min(p_.nodes, p_.nodes_per_leaf);
  const double nic_bw = p_.nic_bandwidth, oversub = p_.oversubscription;
  if (p_.rail_optimized) {
    // One rail switch per NIC index and group of nodes; its uplinks to the spines.
    for (int l = 0; l < leaves_; ++l)
      for (int k = 0; k < p_.nics; ++k) {
        const std::string name = "group" + std::to_string(l) + "_rail" + std::to_string(k);
        add_link(name + "_up", nodes_in_leaf * nic_bw / oversub, p_.upper_latency);
        add_link(name + "_down", nodes_in_leaf * nic_bw / oversub, 0);
      }
  } else {
    for (int l = 0; l < leaves_; ++l) {
      const std::string name = "leaf" + std::to_string(l);
      add_link(name + "_up", nodes_in_leaf * p_.nics * nic_bw / oversub, p_.upper_latency);
      add_link(name + "_down", nodes_in_leaf * p_.nics * nic_bw / oversub, 0);
    }
  }
}

void Topology::add_link(const std::string& name, double bandwidth, double latency) {
  links_.push_back({name, bandwidth, latency});
}

void Topology::route(std::uint32_t src, std::uint32_t dst, std::vector<std::uint32_t>& ids, double& latency) const {
  ids.clear();
  const int ns = node_of(src), nd = node_of(dst);
  if (ns == nd) {
    ids.push_back(nvlink_base_ + 2 * src);
    ids.push_back(nvlink_base_ + 2 * dst + 1);
  } else {
    const int ks = p_.nic_of(src), kd = p_.nic_of(dst);
    const int ls = ns / p_.nodes_per_leaf, ld = nd / p_.nodes_per_leaf;
    const int nics = p_.nics;
    ids.push_back(nic_base_ + 2 * static_cast<std::uint32_t>(ns * nics + ks));
    if (p_.rail_optimized) {
      if (ls != ld || ks != kd) {
        ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ls * nics + ks));
        ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ld * nics + kd) + 1);
      }
    } else if (ls != ld) {
      ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ls));
      ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ld) + 1);
    }
    ids.push_back(nic_base_ + 2 * static_cast<std::uint32_t>(nd * nics + kd) + 1);
  }
  latency = 0;
  for (auto id : ids) latency += links_[id].latency;
}

double Topology::latency(std::uint32_t src, std::uint32_t dst) const {
  std::vector<std::uint32_t> ids;
  double lat = 0;
  route(src, dst, ids, lat);
  return lat;
}

double Topology::bottleneck_bandwidth(std::uint32_t src, std::uint32_t dst) const {
  std::vector<std::uint32_t> ids;
  double lat = 0;
  route(src, dst, ids, lat);
  double bw = 1e300;
  for (auto id : ids) bw = std::min(bw, links_[id].bandwidth);
  return bw;
}

}  // namespace parallax::netmodel
