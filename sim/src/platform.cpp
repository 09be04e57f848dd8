#include "parallax/sim/platform.h"

#include "parallax/model/scenario.h"

#include <simgrid/kernel/routing/NetPoint.hpp>
#include <simgrid/kernel/routing/NetZoneImpl.hpp>
#include <simgrid/s4u.hpp>

#include <algorithm>

namespace parallax::sim {
namespace {

namespace routing = simgrid::kernel::routing;

// Routes by arithmetic on host ids (hosts are created in rank order, so a host's netpoint id is its
// rank); see Platform::route.
class ClusterZone final : public routing::NetZoneImpl {
 public:
  ClusterZone(const std::string& name, const Platform* platform) : NetZoneImpl(name), platform_(platform) {}

  void get_local_route(const routing::NetPoint* src, const routing::NetPoint* dst, routing::Route* into,
                       double* latency) override {
    std::vector<std::uint32_t> ids;
    double lat = 0;
    platform_->route(static_cast<std::uint32_t>(src->id()), static_cast<std::uint32_t>(dst->id()), ids, lat);
    for (auto id : ids) into->link_list_.push_back(platform_->simgrid_link(id)->get_impl());
    if (latency) *latency += lat;
  }

 private:
  const Platform* platform_;
};

}  // namespace

Platform::Platform(const ClusterSpec& c) : spec_(c) {
  gpus_per_node_ = c.gpus_per_node();
  nodes_ = c.num_nodes();
  gpus_ = gpus_per_node_ * nodes_;
  nics_ = std::max(1, c.nics_per_node());
  nodes_per_leaf_ = std::max(1, c.inter_node().nodes_per_leaf());
  leaves_ = (nodes_ + nodes_per_leaf_ - 1) / nodes_per_leaf_;
  rail_ = c.inter_node().kind() == InterNodeTopology::RAIL_OPTIMIZED;

  auto* zone = new ClusterZone("cluster", this);  // the first zone becomes the root; SimGrid owns it
  // SimGrid hosts compute at the GPU's peak for the model's precision (compute tasks are timed by the
  // cost model; the speed is informative).
  const double speed = std::max(1.0, model::peak_flops(c.gpu(), BF16));
  for (int r = 0; r < gpus_; ++r) hosts_.push_back(zone->create_host("gpu" + std::to_string(r), {speed})->seal());

  const double intra_bw = c.intra_node().gb_per_s() * 1e9 * c.intra_node().bandwidth_efficiency();
  const double intra_lat = c.intra_node().latency_us() * 1e-6;
  const double nic_bw = std::max(1.0, c.nic_gbit_per_s()) / 8.0 * 1e9 * c.nic_bandwidth_efficiency();
  const double nic_lat = c.nic_latency_us() * 1e-6;
  const double switch_lat = c.inter_node().switch_latency_us() * 1e-6;
  const double oversub = std::max(1.0, c.inter_node().oversubscription());
  // Beyond the first switch a packet climbs to the spine (and, with more levels, further) and back.
  const double upper_lat = 2.0 * std::max(1, c.inter_node().levels() - 1) * switch_lat;

  // Split-duplex links: up (GPU to fabric) carries the latency, down carries none, so a route's
  // latency is counted once.
  nvlink_base_ = 0;
  for (int g = 0; g < gpus_; ++g) {
    add_link("nvlink" + std::to_string(g) + "_up", intra_bw, intra_lat);
    add_link("nvlink" + std::to_string(g) + "_down", intra_bw, 0);
  }
  nic_base_ = static_cast<std::uint32_t>(links_.size());
  for (int n = 0; n < nodes_; ++n)
    for (int k = 0; k < nics_; ++k) {
      const std::string name = "node" + std::to_string(n) + "_nic" + std::to_string(k);
      add_link(name + "_up", nic_bw, nic_lat);
      add_link(name + "_down", nic_bw, 0);
    }
  upper_base_ = static_cast<std::uint32_t>(links_.size());
  const int nodes_in_leaf = std::min(nodes_, nodes_per_leaf_);
  if (rail_) {
    // One rail switch per NIC index and group of nodes; its uplinks to the spines.
    for (int l = 0; l < leaves_; ++l)
      for (int k = 0; k < nics_; ++k) {
        const std::string name = "group" + std::to_string(l) + "_rail" + std::to_string(k);
        add_link(name + "_up", nodes_in_leaf * nic_bw / oversub, upper_lat);
        add_link(name + "_down", nodes_in_leaf * nic_bw / oversub, 0);
      }
  } else {
    for (int l = 0; l < leaves_; ++l) {
      const std::string name = "leaf" + std::to_string(l);
      add_link(name + "_up", nodes_in_leaf * nics_ * nic_bw / oversub, upper_lat);
      add_link(name + "_down", nodes_in_leaf * nics_ * nic_bw / oversub, 0);
    }
  }
  zone->seal();
}

Platform::~Platform() = default;

std::uint32_t Platform::add_link(const std::string& name, double bandwidth, double latency) {
  // SimGrid's zone is the first (root) zone: create links through the engine's root.
  auto* zone = simgrid::s4u::Engine::get_instance()->get_netzone_root();
  simgrid::s4u::Link* link = zone->create_link(name, bandwidth)->set_latency(latency)->seal();
  links_.push_back(link);
  info_.push_back({name, bandwidth, latency});
  return static_cast<std::uint32_t>(links_.size() - 1);
}

void Platform::route(std::uint32_t src, std::uint32_t dst, std::vector<std::uint32_t>& ids, double& latency) const {
  ids.clear();
  const int ns = node_of(src), nd = node_of(dst);
  if (ns == nd) {
    ids.push_back(nvlink_base_ + 2 * src);
    ids.push_back(nvlink_base_ + 2 * dst + 1);
  } else {
    // GPUDirect RDMA: the GPU's own NIC (NIC k serves GPUs k*g/n .. (k+1)*g/n - 1).
    const int ks = static_cast<int>(src % gpus_per_node_) * nics_ / gpus_per_node_;
    const int kd = static_cast<int>(dst % gpus_per_node_) * nics_ / gpus_per_node_;
    const int ls = ns / nodes_per_leaf_, ld = nd / nodes_per_leaf_;
    ids.push_back(nic_base_ + 2 * static_cast<std::uint32_t>(ns * nics_ + ks));
    if (rail_) {
      if (ls != ld || ks != kd) {
        ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ls * nics_ + ks));
        ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ld * nics_ + kd) + 1);
      }
    } else if (ls != ld) {
      ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ls));
      ids.push_back(upper_base_ + 2 * static_cast<std::uint32_t>(ld) + 1);
    }
    ids.push_back(nic_base_ + 2 * static_cast<std::uint32_t>(nd * nics_ + kd) + 1);
  }
  latency = 0;
  for (auto id : ids) latency += info_[id].latency;
}

double Platform::latency(std::uint32_t src, std::uint32_t dst) const {
  std::vector<std::uint32_t> ids;
  double lat = 0;
  route(src, dst, ids, lat);
  return lat;
}

double Platform::bottleneck_bandwidth(std::uint32_t src, std::uint32_t dst) const {
  std::vector<std::uint32_t> ids;
  double lat = 0;
  route(src, dst, ids, lat);
  double bw = 1e300;
  for (auto id : ids) bw = std::min(bw, info_[id].bandwidth);
  return bw;
}

}  // namespace parallax::sim
