// The simulated cluster in SimGrid: one host per GPU and one SimGrid link per link of the network
// topology (parallax/netmodel/topology.h), routed by the topology's arithmetic through a custom zone
// (no route tables), so thousands of GPUs cost nothing to set up.
#pragma once

#include "parallax/netmodel/topology.h"
#include "parallax/parallax.pb.h"

#include <cstdint>
#include <vector>

namespace simgrid::s4u {
class Host;
class Link;
}  // namespace simgrid::s4u

namespace parallax::sim {

class Platform {
 public:
  // Creates the hosts and links in the current SimGrid engine (which must exist, configured).
  explicit Platform(const ClusterSpec& cluster);
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  const netmodel::Topology& topology() const { return topology_; }
  simgrid::s4u::Host* host(std::uint32_t rank) const { return hosts_.at(rank); }
  simgrid::s4u::Link* simgrid_link(std::uint32_t id) const { return links_[id]; }

 private:
  netmodel::Topology topology_;
  std::vector<simgrid::s4u::Host*> hosts_;
  std::vector<simgrid::s4u::Link*> links_;  // indexed as topology_.links()
};

}  // namespace parallax::sim
