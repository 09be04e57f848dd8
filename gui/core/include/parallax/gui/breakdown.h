// Where each rank's step goes, and its memory against the GPU's capacity: the data behind the
// breakdown view, from a simulation's Report or computed from a timeline, and its painter.
#pragma once

#include "parallax/model/job_graph.h"
#include "parallax/parallax.pb.h"

#include <QColor>
#include <QPainter>
#include <QSize>
#include <QString>

#include <optional>
#include <vector>

namespace parallax::gui {

class TimelineData;

struct BreakdownRow {
  std::uint32_t rank = 0;
  QString label;  // "rank 0 (stage 0, x20)"
  // Seconds of the step, summing to it: compute, exposed communication, bubble, idle; overlapped
  // communication runs under compute and is shown as a separate bar.
  double compute_s = 0, exposed_comm_s = 0, overlapped_comm_s = 0, bubble_s = 0, idle_s = 0;
  double memory_bytes = -1;  // peak; negative when unknown
};

struct Breakdown {
  QString title;  // where it comes from
  QString note;   // how it was computed, when not obvious
  double step_s = 0;
  double capacity_bytes = 0;  // one GPU's memory; 0 when unknown
  QString memory_unknown = QStringLiteral("unknown (no scenario)");  // shown for memory_bytes < 0
  std::vector<BreakdownRow> rows;
  double total_s(const BreakdownRow& r) const {
    return r.compute_s + r.exposed_comm_s + r.bubble_s + r.idle_s;
  }
};

// From a simulation's report: its per-rank breakdown and memory (one row per representative rank).
Breakdown breakdown_from_report(const Report& report);
// From a timeline and the job graph its task ids index: per rank that has events, the parts of
// analysis::rank_breakdown (the definition the simulator's report uses, so a predicted timeline gives
// the report's numbers) over that rank's own events. Memory from the memory model of the scenario
// (per stage), unless the graph is imported. Without a graph: no rows, and a note saying why.
Breakdown breakdown_from_timeline(const Timeline& timeline, const model::JobGraph* graph);
// The same for an opened timeline, with the graph it was indexed with.
Breakdown breakdown_from_timeline(const TimelineData& data);

// The five parts, in drawing order, with their colours and names.
inline constexpr int kBreakdownParts = 5;
QColor breakdown_colour(
    int part);  // 0 compute, 1 exposed comm, 2 overlapped comm, 3 bubble, 4 idle
QString breakdown_part_name(int part);

struct BreakdownLayout {
  static constexpr int kMargin = 16, kLabelWidth = 190, kBarHeight = 18, kGap = 6,
                       kTitleHeight = 30, kLegendHeight = 26;
};

// Two charts: stacked bars of the step per rank (overlapped communication as a thin bar under
// each), and memory per rank against the capacity line. Rows that do not fit the height are
// summarised.
void paint_breakdown(QPainter& painter, QSize size, const Breakdown& breakdown);
// The numbers under a point (a bar or a memory bar), for tooltips; empty elsewhere.
QString breakdown_tooltip(const Breakdown& breakdown, QSize size, QPointF point);
// Geometry shared by the painter, hit testing and tests: the bar of `row` in the step chart and in
// the memory chart.
QRectF breakdown_step_bar(const Breakdown& breakdown, QSize size, std::size_t row);
QRectF breakdown_memory_bar(const Breakdown& breakdown, QSize size, std::size_t row);

}  // namespace parallax::gui
