#include "parallax/gui/breakdown.h"

#include "parallax/analysis/timeline_analysis.h"
#include "parallax/gui/time_axis.h"
#include "parallax/gui/timeline_data.h"
#include "parallax/model/memory_model.h"

#include <QFontMetrics>

#include <algorithm>
#include <cmath>
#include <map>

namespace parallax::gui {

namespace {

QString gib(double bytes) {
  return QString::number(bytes / (1024.0 * 1024 * 1024), 'f',
                         bytes < 1024.0 * 1024 * 1024 * 10 ? 2 : 1) +
         " GiB";
}

}  // namespace

QColor breakdown_colour(int part) {
  switch (part) {
    case 0:
      return QColor(0x4e, 0x79, 0xa7);  // compute: the timeline's GEMM blue
    case 1:
      return QColor(0xe1, 0x57, 0x59);  // exposed communication: red, it costs time
    case 2:
      return QColor(0xf2, 0x8e,
                    0x2b);  // overlapped communication: the timeline's collective orange
    case 3:
      return QColor(0xed, 0xc9, 0x48);  // bubble: yellow
    case 4:
      return QColor(0xba, 0xb0, 0xac);  // idle: grey
  }
  return Qt::black;
}

QString breakdown_part_name(int part) {
  switch (part) {
    case 0:
      return QStringLiteral("compute");
    case 1:
      return QStringLiteral("exposed communication");
    case 2:
      return QStringLiteral("overlapped communication");
    case 3:
      return QStringLiteral("pipeline bubble");
    case 4:
      return QStringLiteral("idle");
  }
  return {};
}

Breakdown breakdown_from_report(const Report& report) {
  Breakdown b;
  b.title = QStringLiteral("%1: simulated step %2")
                .arg(QString::fromStdString(report.scenario_name()),
                     format_duration(report.step_time_s()));
  b.step_s = report.step_time_s();
  b.capacity_bytes = report.memory_capacity_bytes();
  for (const auto& r : report.breakdown()) {
    BreakdownRow row;
    row.rank = r.rank();
    row.label = QStringLiteral("rank %1 (stage %2%3)")
                    .arg(r.rank())
                    .arg(r.pp_stage())
                    .arg(r.multiplicity() > 1 ? QStringLiteral(", \u00d7%1").arg(r.multiplicity())
                                              : QString());
    row.compute_s = r.compute_s();
    row.exposed_comm_s = r.exposed_comm_s();
    row.overlapped_comm_s = r.overlapped_comm_s();
    row.bubble_s = r.bubble_s();
    row.idle_s = r.idle_s();
    row.memory_bytes = r.has_peak_memory_bytes() ? r.peak_memory_bytes() : -1;
    // The simulator leaves memory out only for imported traces (no model to size it from).
    if (!r.has_peak_memory_bytes())
      b.memory_unknown = QStringLiteral("unknown (an imported trace has no model)");
    b.rows.push_back(row);
  }
  return b;
}

Breakdown breakdown_from_timeline(const Timeline& timeline, const model::JobGraph* graph) {
  Breakdown b;
  std::map<std::uint32_t, std::vector<int>> events_of_rank;
  double start = INFINITY, end = -INFINITY;
  for (int i = 0; i < timeline.events_size(); ++i) {
    const auto& e = timeline.events(i);
    events_of_rank[e.rank()].push_back(i);
    start = std::min(start, e.start_s());
    end = std::max(end, e.end_s());
  }
  if (events_of_rank.empty()) start = end = 0;
  b.step_s = end - start;
  b.title = QStringLiteral("%1: %2 step %3")
                .arg(QString::fromStdString(timeline.scenario_name()),
                     timeline.source() == Timeline::MEASURED ? QStringLiteral("measured")
                                                             : QStringLiteral("predicted"),
                     format_duration(b.step_s));
  if (!graph) {
    b.note = QStringLiteral(
        "No breakdown: the timeline embeds no scenario or graph, and telling pipeline bubble from "
        "idle time needs the job graph.");
    return b;
  }
  b.note = QStringLiteral(
      "From the timeline, as the simulator's report: a gap before a compute task that waited on a "
      "pipeline send or recv is bubble, any other gap idle.");
  std::optional<model::MemoryEstimate> memory;
  // An imported execution trace's scenario has no model: no memory estimate for it.
  if (graph->imported()) b.memory_unknown = QStringLiteral("unknown (an imported trace has no model)");
  if (!graph->imported()) {
    memory = model::estimate_memory(graph->scenario());
    b.capacity_bytes = memory->capacity;
  }
  std::map<std::uint32_t, std::uint32_t> multiplicity;
  for (const auto& r : timeline.ranks()) multiplicity[r.rank()] = r.multiplicity();
  // Each rank from its own events: a measured timeline under symmetry has every real rank, each
  // running its stage representative's tasks, so the representative's times are swapped for the
  // rank's own while it is analysed.
  const analysis::TaskTimes times = analysis::task_times(*graph, timeline);
  std::vector<double> rank_start = times.start, rank_end = times.end;
  for (const auto& [rank, events] : events_of_rank) {
    const std::int64_t index = analysis::rank_index_of(*graph, rank);
    if (index < 0) continue;  // a rank outside the job: no task list to analyse it by
    for (int i : events) {
      const auto& e = timeline.events(i);
      rank_start[e.task_id()] = e.start_s() - times.origin_s;
      rank_end[e.task_id()] = e.end_s() - times.origin_s;
    }
    const analysis::RankTime parts =
        analysis::rank_breakdown(*graph, static_cast<std::size_t>(index), rank_start, rank_end, times.step_s);
    for (int i : events) {
      const std::uint32_t t = timeline.events(i).task_id();
      rank_start[t] = times.start[t];
      rank_end[t] = times.end[t];
    }
    BreakdownRow row;
    row.rank = rank;
    const int stage = graph->ranks()[static_cast<std::size_t>(index)].pp_stage;
    const std::uint32_t m = multiplicity.count(rank) ? multiplicity[rank] : 1;
    row.label = QStringLiteral("rank %1 (stage %2%3)")
                    .arg(rank)
                    .arg(stage)
                    .arg(m > 1 ? QStringLiteral(", \u00d7%1").arg(m) : QString());
    row.compute_s = parts.compute_s;
    row.exposed_comm_s = parts.exposed_comm_s;
    row.overlapped_comm_s = parts.overlapped_comm_s;
    row.bubble_s = parts.bubble_s;
    row.idle_s = parts.idle_s;
    if (memory && static_cast<std::size_t>(stage) < memory->stages.size())
      row.memory_bytes = memory->stages[static_cast<std::size_t>(stage)].total();
    b.rows.push_back(row);
  }
  return b;
}

Breakdown breakdown_from_timeline(const TimelineData& data) {
  return breakdown_from_timeline(data.proto(), data.graph());
}

namespace {

struct Charts {
  QRectF step, memory;  // plot areas (bars only, labels to their left)
  double row_pitch = 0;
  std::size_t shown = 0;  // rows drawn in each chart
};

Charts charts(const Breakdown& b, QSize size) {
  using L = BreakdownLayout;
  Charts c;
  const double w = size.width(), h = size.height();
  const double available = (h - 2 * L::kTitleHeight - L::kLegendHeight - 3 * L::kMargin) / 2;
  const std::size_t fit =
      static_cast<std::size_t>(std::max(1.0, std::floor(available / (L::kBarHeight + L::kGap))));
  c.shown = std::min(b.rows.size(), fit);
  c.row_pitch =
      std::min<double>(L::kBarHeight + L::kGap, available / std::max<std::size_t>(1, c.shown));
  const double x = L::kMargin + L::kLabelWidth, width = std::max(10.0, w - x - L::kMargin - 90);
  const double chart_h = c.row_pitch * static_cast<double>(c.shown);
  const double top1 = L::kMargin + L::kTitleHeight + L::kLegendHeight;
  c.step = QRectF(x, top1, width, chart_h);
  c.memory = QRectF(x, top1 + chart_h + L::kMargin + L::kTitleHeight, width, chart_h);
  return c;
}

double memory_scale(const Breakdown& b) {
  double m = b.capacity_bytes;
  for (const auto& r : b.rows) m = std::max(m, r.memory_bytes);
  return m > 0 ? m * 1.05 : 1;
}

double step_scale(const Breakdown& b) {
  double m = b.step_s;
  for (const auto& r : b.rows) m = std::max(m, b.total_s(r));
  return m > 0 ? m : 1;
}

}  // namespace

QRectF breakdown_step_bar(const Breakdown& b, QSize size, std::size_t row) {
  const Charts c = charts(b, size);
  if (row >= c.shown) return {};
  const double bar_h = std::min<double>(BreakdownLayout::kBarHeight, c.row_pitch - 2);
  return QRectF(c.step.left(), c.step.top() + c.row_pitch * static_cast<double>(row),
                c.step.width() * b.total_s(b.rows[row]) / step_scale(b), bar_h);
}

QRectF breakdown_memory_bar(const Breakdown& b, QSize size, std::size_t row) {
  const Charts c = charts(b, size);
  if (row >= c.shown || b.rows[row].memory_bytes < 0) return {};
  const double bar_h = std::min<double>(BreakdownLayout::kBarHeight, c.row_pitch - 2);
  return QRectF(c.memory.left(), c.memory.top() + c.row_pitch * static_cast<double>(row),
                c.memory.width() * b.rows[row].memory_bytes / memory_scale(b), bar_h);
}

void paint_breakdown(QPainter& p, QSize size, const Breakdown& b) {
  using L = BreakdownLayout;
  p.fillRect(QRect(QPoint(0, 0), size), Qt::white);
  QFont font = p.font();
  font.setPixelSize(11);
  QFont bold = font;
  bold.setBold(true);
  bold.setPixelSize(13);
  p.setFont(font);
  if (b.rows.empty()) {
    p.setPen(Qt::darkGray);
    p.drawText(QRect(QPoint(0, 0), size), Qt::AlignCenter,
               QStringLiteral("No breakdown: simulate a scenario or open a timeline."));
    return;
  }
  const Charts c = charts(b, size);
  const double bar_h = std::min<double>(L::kBarHeight, c.row_pitch - 2);
  const QFontMetrics fm(font);
  // Step chart: title, legend, bars.
  p.setFont(bold);
  p.setPen(QColor(0x20, 0x20, 0x20));
  p.drawText(QRectF(L::kMargin, L::kMargin, size.width() - 2 * L::kMargin, L::kTitleHeight),
             Qt::AlignLeft | Qt::AlignVCenter,
             QStringLiteral("Step per rank  \u2014  %1").arg(b.title));
  p.setFont(font);
  double lx = L::kMargin;
  const double ly = L::kMargin + L::kTitleHeight;
  for (int part = 0; part < kBreakdownParts; ++part) {
    p.fillRect(QRectF(lx, ly + 6, 12, 12), breakdown_colour(part));
    p.setPen(QColor(0x30, 0x30, 0x30));
    const QString name = breakdown_part_name(part) +
                         (part == 2 ? QStringLiteral(" (thin bar, under compute)") : QString());
    p.drawText(QPointF(lx + 16, ly + 16), name);
    lx += 16 + fm.horizontalAdvance(name) + 18;
  }
  const double scale = step_scale(b);
  for (std::size_t i = 0; i < c.shown; ++i) {
    const BreakdownRow& r = b.rows[i];
    const double y = c.step.top() + c.row_pitch * static_cast<double>(i);
    p.setPen(QColor(0x20, 0x20, 0x20));
    p.drawText(QRectF(L::kMargin, y, L::kLabelWidth - 8, bar_h), Qt::AlignRight | Qt::AlignVCenter,
               fm.elidedText(r.label, Qt::ElideRight, L::kLabelWidth - 8));
    double x = c.step.left();
    const double parts[] = {r.compute_s, r.exposed_comm_s, r.bubble_s, r.idle_s};
    const int part_ids[] = {0, 1, 3, 4};
    for (int k = 0; k < 4; ++k) {
      const double wpx = c.step.width() * parts[k] / scale;
      p.fillRect(QRectF(x, y, wpx, bar_h * 0.72), breakdown_colour(part_ids[k]));
      x += wpx;
    }
    // Overlapped communication: a thin bar under the compute part it hides behind.
    p.fillRect(QRectF(c.step.left(), y + bar_h * 0.76, c.step.width() * r.overlapped_comm_s / scale,
                      bar_h * 0.24),
               breakdown_colour(2));
    p.setPen(QColor(0x30, 0x30, 0x30));
    p.drawText(QPointF(x + 6, y + bar_h * 0.6), format_duration(b.total_s(r)));
  }
  if (c.shown < b.rows.size()) {
    p.setPen(Qt::darkGray);
    p.drawText(QPointF(c.step.left(), c.step.bottom() + 10),
               QStringLiteral("\u2026 and %1 more ranks").arg(b.rows.size() - c.shown));
  }
  // Memory chart.
  p.setFont(bold);
  p.setPen(QColor(0x20, 0x20, 0x20));
  p.drawText(
      QRectF(L::kMargin, c.memory.top() - L::kTitleHeight, size.width() - 2 * L::kMargin,
             L::kTitleHeight),
      Qt::AlignLeft | Qt::AlignVCenter,
      b.capacity_bytes > 0
          ? QStringLiteral("Peak memory per rank against the GPU's %1").arg(gib(b.capacity_bytes))
          : QStringLiteral("Peak memory per rank"));
  p.setFont(font);
  const double mscale = memory_scale(b);
  for (std::size_t i = 0; i < c.shown; ++i) {
    const BreakdownRow& r = b.rows[i];
    const double y = c.memory.top() + c.row_pitch * static_cast<double>(i);
    p.setPen(QColor(0x20, 0x20, 0x20));
    p.drawText(QRectF(L::kMargin, y, L::kLabelWidth - 8, bar_h), Qt::AlignRight | Qt::AlignVCenter,
               fm.elidedText(r.label, Qt::ElideRight, L::kLabelWidth - 8));
    if (r.memory_bytes < 0) {
      p.setPen(Qt::darkGray);
      p.drawText(QPointF(c.memory.left() + 4, y + bar_h * 0.7), b.memory_unknown);
      continue;
    }
    const bool over = b.capacity_bytes > 0 && r.memory_bytes > b.capacity_bytes;
    const QRectF bar(c.memory.left(), y, c.memory.width() * r.memory_bytes / mscale, bar_h * 0.72);
    p.fillRect(bar, over ? QColor(0xc6, 0x1a, 0x1a) : QColor(0x76, 0xb7, 0xb2));
    p.setPen(QColor(0x30, 0x30, 0x30));
    p.drawText(
        QPointF(bar.right() + 6, y + bar_h * 0.6),
        gib(r.memory_bytes) + (b.capacity_bytes > 0
                                   ? QStringLiteral("  (%1%%2)")
                                         .arg(100 * r.memory_bytes / b.capacity_bytes, 0, 'f', 0)
                                         .arg(over ? QStringLiteral(", does not fit") : QString())
                                   : QString()));
  }
  if (b.capacity_bytes > 0) {
    const double x = c.memory.left() + c.memory.width() * b.capacity_bytes / mscale;
    p.setPen(QPen(QColor(0xc6, 0x1a, 0x1a), 2, Qt::DashLine));
    p.drawLine(QPointF(x, c.memory.top() - 4), QPointF(x, c.memory.bottom()));
    p.setPen(QColor(0xc6, 0x1a, 0x1a));
    p.drawText(
        QPointF(x - fm.horizontalAdvance(QStringLiteral("capacity")) / 2.0, c.memory.bottom() + 14),
        QStringLiteral("capacity"));
  }
  if (!b.note.isEmpty()) {
    p.setPen(Qt::darkGray);
    p.drawText(
        QRectF(L::kMargin, size.height() - L::kMargin - 6, size.width() - 2 * L::kMargin, 16),
        Qt::AlignLeft | Qt::AlignVCenter, b.note);
  }
}

QString breakdown_tooltip(const Breakdown& b, QSize size, QPointF point) {
  const Charts c = charts(b, size);
  for (std::size_t i = 0; i < c.shown; ++i) {
    const BreakdownRow& r = b.rows[i];
    QRectF row_step(c.step.left(), c.step.top() + c.row_pitch * static_cast<double>(i),
                    c.step.width(), c.row_pitch);
    if (row_step.contains(point)) {
      const double total = std::max(1e-30, b.total_s(r));
      const auto line = [&](int part, double s) {
        return QStringLiteral("<br>%1: %2 (%3%)")
            .arg(breakdown_part_name(part), format_duration(s))
            .arg(100 * s / total, 0, 'f', 1);
      };
      return QStringLiteral("<b>%1</b>").arg(r.label) + line(0, r.compute_s) +
             line(1, r.exposed_comm_s) + line(2, r.overlapped_comm_s) + line(3, r.bubble_s) +
             line(4, r.idle_s) + QStringLiteral("<br>step %1").arg(format_duration(total));
    }
    QRectF row_memory(c.memory.left(), c.memory.top() + c.row_pitch * static_cast<double>(i),
                      c.memory.width(), c.row_pitch);
    if (row_memory.contains(point) && r.memory_bytes >= 0)
      return QStringLiteral("<b>%1</b><br>peak memory %2").arg(r.label, gib(r.memory_bytes)) +
             (b.capacity_bytes > 0
                  ? QStringLiteral(" of %1 (headroom %2)")
                        .arg(gib(b.capacity_bytes), gib(b.capacity_bytes - r.memory_bytes))
                  : QString());
  }
  return {};
}

}  // namespace parallax::gui
