// The one stream -> lane table (the LaneId enum in parallax.proto says what each lane holds). The host
// and CUDA backends run a task on its lane, the simulator and the executors record the lane in their
// timelines, and the Chrome export and the GUI draw by it.
#pragma once

#include "parallax/parallax.pb.h"

#include <string_view>

namespace parallax::traces {

// The lane of a task: GEMMs and memory-bound kernels on LANE_COMPUTE, or LANE_HOST when on_host (a
// CPU-side op of an imported trace); sends on LANE_PP_SEND and receives on LANE_PP_RECV; collectives
// on their stream's lane.
LaneId lane_of(Stream stream, TaskKind kind, bool on_host = false);

// The lane an event ran on: the one it recorded, else (timelines written before lanes were recorded)
// lane_of its stream and kind, or its stream's lane when it has no kind. `on_host` is the task's, from
// its graph when the reader has one.
LaneId lane_of(const TimelineEvent& event, bool on_host = false);

// "compute", "tp comm", "dp comm", "pp send", "pp recv", "host (CPU)", "cp comm".
std::string_view lane_name(LaneId lane);

}  // namespace parallax::traces
