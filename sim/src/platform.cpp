#include "platform.h"

#include "parallax/model/scenario.h"

#include <simgrid/kernel/routing/NetPoint.hpp>
#include <simgrid/kernel/routing/NetZoneImpl.hpp>
#include <simgrid/s4u.hpp>

#include <algorithm>

namespace parallax::sim {
namespace {

namespace routing = simgrid::kernel::routing;

// Routes by arithmetic on host ids (hosts are created in rank order, so a host's netpoint id is its
// rank); see netmodel::Topology::route.
class ClusterZone final : public routing::NetZoneImpl {
 public:
  ClusterZone(const std::string& name, const Platform* platform) : NetZoneImpl(name), platform_(platform) {}

  void get_local_route(const routing::NetPoint* src, const routing::NetPoint* dst, routing::Route* into,
                       double* latency) override {
    std::vector<std::uint32_t> ids;
    double lat = 0;
    platform_->topology().route(static_cast<std::uint32_t>(src->id()), static_cast<std::uint32_t>(dst->id()), ids, lat);
    for (auto id : ids) into->link_list_.push_back(platform_->simgrid_link(id)->get_impl());
    if (latency) *latency += lat;
  }

 private:
  const Platform* platform_;
};

}  // namespace

Platform::Platform(const ClusterSpec& c) : topology_(c) {
  auto* zone = new ClusterZone("cluster", this);  // the first zone becomes the root; SimGrid owns it
  // SimGrid hosts compute at the GPU's peak for the model's precision (compute tasks are timed by the
  // cost model; the speed is informative).
  const double speed = std::max(1.0, model::peak_flops(c.gpu(), BF16));
  for (int r = 0; r < topology_.gpus(); ++r)
    hosts_.push_back(zone->create_host("gpu" + std::to_string(r), {speed})->seal());
  // SimGrid's zone is the first (root) zone: create links through the engine's root.
  auto* root = simgrid::s4u::Engine::get_instance()->get_netzone_root();
  for (const netmodel::Link& link : topology_.links())
    links_.push_back(root->create_link(link.name, link.bandwidth)->set_latency(link.latency)->seal());
  zone->seal();
}

Platform::~Platform() = default;

}  // namespace parallax::sim
