// Chrome Trace Event JSON export of timelines, for ui.perfetto.dev and chrome://tracing (docs/architecture.md).
//
// Layout of the file, one JSON object per line so that golden files diff line by line:
//
//   {"traceEvents":[
//   <metadata events: per process, its name and sort index, then its used threads' names>
//   <complete events ("X"), sorted by pid, tid, start, longest first, task id>
//   <flow events: for each TimelineFlow in order, its "s" then its "f">
//   ],
//   "displayTimeUnit":"ms",
//   "otherData":{"scenario":"..."}}
//
// Processes: one per rank. The k-th timeline (k = 0, 1, ...) puts rank r on
//   pid = (k + 1) * 1'000'000 + r
// so that timelines written side by side never share a process, and the rank stays readable as the
// pid's last digits. Not pid = r: Perfetto's trace processor treats pid 0 as the kernel's idle
// process, and its JSON tokenizer turns tid 0 into tid = pid when pid != 0, which for pid = r would
// merge rank r's compute thread with stream r's thread. process_name is TimelineRank.label ("rank N"
// when the timeline has none), plus " (stands for K ranks)" when multiplicity > 1, plus " [predicted]"
// or " [measured]" (Timeline.source) when more than one timeline is written. process_sort_index is
// the rank, so chrome://tracing shows the same rank of each timeline next to each other (Perfetto
// ignores sort indices).
//
// Threads: tid = the event's lane (traces::lane_of, parallax/traces/lanes.h: the lane it recorded, or
// the one its stream and kind give), named by traces::lane_name: 0 "compute", 1 "tp comm", 2 "dp comm",
// 3 "pp send", 4 "pp recv" (a receive is posted ahead of its matching send, so it overlaps the sends,
// and the slices of one thread must nest), 5 "host (CPU)" (CPU-side ops of a timeline that carries
// its imported graph). Slices on one tid must not overlap (other than nesting): timelines should have
// at most one task at a time per (rank, lane).
//
// Complete events: ts = start_s * 1e6 and dur = (end_s - start_s) * 1e6 (microseconds; a negative
// duration is written as 0), name = TimelineEvent.name or "task <id>", cat = the TaskKind in lower case
// ("gemm", "memory_bound", "collective", "send", "recv"; left out when the event has no kind),
// args = {"task_id": id}. Numbers use JsonWriter's %.12g.
//
// Flows (Chrome's legacy flow events, which Perfetto imports): for TimelineFlow i (numbered across all
// timelines from 0), {"ph":"s"} on the from-task's thread and {"ph":"f","bp":"e"} on the to-task's
// thread, both with "id": i, "cat": "pp", "name": "send->recv". Each binds to the slice enclosing its
// timestamp on its thread; Perfetto then draws the arrow from the end of the from-slice to the start
// of the to-slice, whatever the flow events' own timestamps. Those are chosen so that binding is
// unambiguous:
//   "s": the middle of the from-slice (Perfetto binds a flow event to the slice on top of the thread's
//        stack when it reaches it, and at equal timestamps it takes complete events first, so an "s"
//        placed at the from-slice's end would bind to a slice starting right then);
//   "f": the middle of the part of the to-slice not before the "s" (Perfetto drops an "f" that it
//        reaches before its "s"; a receive often starts before its send), or the to-slice's start if
//        the to-slice ends before the "s".
// Flows whose tasks are not in the timeline are skipped.
#pragma once

#include "parallax/parallax.pb.h"

#include <filesystem>
#include <string>
#include <vector>

namespace parallax::traces {

// The trace of one timeline (as written by write_chrome_trace with only this timeline).
std::string to_chrome_trace(const parallax::Timeline& timeline);

// The trace of several timelines side by side (null entries are skipped but keep their index k).
// Throws InputError when the file cannot be written.
void write_chrome_trace(const std::filesystem::path& path, const std::vector<const parallax::Timeline*>& timelines);

// Same, as a string.
std::string to_chrome_trace(const std::vector<const parallax::Timeline*>& timelines);

}  // namespace parallax::traces
