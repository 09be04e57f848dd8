// A loaded timeline (predicted or measured) in the form the views draw from: one lane per rank and
// stream, spans sorted by start with a running maximum of their ends, so the visible part of a lane
// is found by binary search whatever the zoom. Also the task details behind tooltips, the critical
// path, the per-task error against a prediction (diff mode) and name search.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <QString>

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace parallax::gui {

// A rank's sub-lanes are the lanes of traces::lane_of (parallax/traces/lanes.h), as the backends run
// them and the Chrome export writes them; this is traces::lane_name as a QString.
QString sub_lane_name(LaneId sub_lane);

struct Span {
  double start = 0, end = 0;
  std::uint32_t event = 0;  // index into Timeline.events
  std::uint32_t task_id = 0;
  TaskKind kind = GEMM;
  bool critical = false;  // on the critical path
  bool match = false;     // matches the search
  float error = NAN;      // diff: (measured - predicted) / predicted duration, NaN when unknown
};

struct Lane {
  std::uint32_t rank = 0;
  parallax::LaneId sub_lane = LANE_COMPUTE;
  std::vector<Span> spans;      // by start
  std::vector<double> max_end;  // max_end[i] = max(spans[0..i].end)
  std::vector<double> starts;   // spans[i].start, dense for searching
  // Prefix counts of critical / matching spans: any in [i, j) is prefix[j] > prefix[i].
  std::vector<std::uint32_t> critical_prefix, match_prefix;
  // The first span that may end at or after `t`.
  std::size_t first_ending_after(double t) const;
  // The first span starting at or after `t`.
  std::size_t first_starting_at(double t) const;
};

struct RankInfo {
  std::uint32_t rank = 0;
  QString label;  // "rank 3 (dp1 tp0 pp2)"
  std::uint32_t multiplicity = 1;
  int stage = 0, replica = 0,
      tensor = 0;  // pipeline stage, dp index, tp index (0 without a scenario)
};

class TimelineData {
 public:
  // Indexes `timeline`. With a scenario embedded, also rebuilds its job graph (task shapes and the
  // dependencies of the critical path); a timeline of an imported execution trace carries its graph
  // instead. Throws InputError when the scenario or graph is invalid or an event names a task the
  // graph does not have.
  explicit TimelineData(Timeline timeline, QString file = {});

  const Timeline& proto() const { return timeline_; }
  bool measured() const { return timeline_.source() == Timeline::MEASURED; }
  const QString& file() const { return file_; }
  const std::vector<Lane>& lanes() const { return lanes_; }
  const std::vector<RankInfo>& ranks() const { return ranks_; }
  const RankInfo* rank_info(std::uint32_t rank) const;
  const model::JobGraph* graph() const { return graph_.get(); }
  double start() const { return start_; }
  double end() const { return end_; }
  std::size_t num_events() const { return static_cast<std::size_t>(timeline_.events_size()); }

  QString name(const Span& span) const;  // the event's name, else the graph's, else "task N"
  // Multi-line: name, kind, GEMM shape or bytes, rank and stream, start, duration (and the error).
  QString tooltip(const Span& span) const;

  // Marks the critical path, the one the simulator's report and compare give for this timeline
  // (analysis::critical_path over analysis::task_times: a task with several events, as in a measured
  // timeline under symmetry, counts by the event of its stage's slowest rank). Returns the number of
  // marked spans; 0 without a job graph.
  std::size_t mark_critical_path();
  // The task ids of the path last marked, first to last (empty before).
  const std::vector<std::uint32_t>& critical_path_tasks() const { return critical_path_tasks_; }
  // Sets each span's error against `predicted`'s event of the same task (task ids are shared).
  // Returns how many spans got one.
  std::size_t set_errors_against(const TimelineData& predicted);
  void clear_errors();
  // Marks spans whose name contains `text` (case-insensitive); empty clears. Returns the count.
  std::size_t mark_matches(const QString& text);
  // Spans whose name contains `text`, up to `limit`, in lane order: (lane, span) indices.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> find(const QString& text,
                                                            std::size_t limit) const;
  // Predicted duration of a task (the first event with that task id), or a negative number.
  double task_duration(std::uint32_t task_id) const;

 private:
  void rebuild_prefixes();

  Timeline timeline_;
  QString file_;
  std::unique_ptr<model::JobGraph> graph_;
  std::vector<Lane> lanes_;
  std::vector<RankInfo> ranks_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> event_location_;  // event -> (lane, span)
  std::vector<std::int64_t> task_event_;  // task id -> an event of it (the latest ending), -1 none
  std::vector<std::uint32_t> critical_path_tasks_;
  double start_ = 0, end_ = 0;
};

}  // namespace parallax::gui
