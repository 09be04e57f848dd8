#include "parallax/traces/lanes.h"

#include <stdexcept>
#include <string>

namespace parallax::traces {

LaneId lane_of(Stream stream, TaskKind kind, bool on_host) {
  switch (kind) {
    case GEMM:
    case MEMORY_BOUND:
      return on_host ? LANE_HOST : LANE_COMPUTE;
    case SEND:
      return LANE_PP_SEND;
    case RECV:
      return LANE_PP_RECV;
    case COLLECTIVE:
      switch (stream) {
        case COMPUTE: return LANE_COMPUTE;
        case TP_COMM: return LANE_TP_COMM;
        case DP_COMM: return LANE_DP_COMM;
        case PP_COMM: return LANE_PP_SEND;
        case CP_COMM: return LANE_CP_COMM;
        case EP_COMM: return LANE_EP_COMM;
      }
      break;
  }
  // Stream and TaskKind values come from parsed protos (closed enums) or the graph builder.
  throw std::logic_error("lane_of: stream " + std::to_string(static_cast<int>(stream)) + " or kind " +
                         std::to_string(static_cast<int>(kind)) + " is not a value of its enum");
}

LaneId lane_of(const TimelineEvent& event, bool on_host) {
  if (event.has_lane()) return event.lane();
  // An event without a kind (a hand-written timeline) goes on its stream's lane.
  if (!event.has_kind()) return lane_of(event.stream(), COLLECTIVE);
  return lane_of(event.stream(), event.kind(), on_host);
}

std::string_view lane_name(LaneId lane) {
  switch (lane) {
    case LANE_COMPUTE: return "compute";
    case LANE_TP_COMM: return "tp comm";
    case LANE_DP_COMM: return "dp comm";
    case LANE_PP_SEND: return "pp send";
    case LANE_PP_RECV: return "pp recv";
    case LANE_HOST: return "host (CPU)";
    case LANE_CP_COMM: return "cp comm";
    case LANE_EP_COMM: return "ep comm";
  }
  throw std::logic_error("lane_name: " + std::to_string(static_cast<int>(lane)) + " is not a LaneId");
}

}  // namespace parallax::traces
