#include "parallax/gui/timeline_data.h"

#include "parallax/analysis/compare.h"
#include "parallax/analysis/timeline_analysis.h"
#include "parallax/gui/time_axis.h"
#include "parallax/model/rank_grid.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"

#include <algorithm>
#include <map>
#include <string>
#include <string_view>

namespace parallax::gui {

QString sub_lane_name(LaneId sub_lane) {
  const std::string_view name = traces::lane_name(sub_lane);
  return QString::fromUtf8(name.data(), static_cast<qsizetype>(name.size()));
}

std::size_t Lane::first_ending_after(double t) const {
  return static_cast<std::size_t>(std::lower_bound(max_end.begin(), max_end.end(), t) -
                                  max_end.begin());
}

std::size_t Lane::first_starting_at(double t) const {
  return static_cast<std::size_t>(std::lower_bound(starts.begin(), starts.end(), t) -
                                  starts.begin());
}

namespace {

QString kind_name(TaskKind kind) {
  switch (kind) {
    case GEMM:
      return QStringLiteral("GEMM");
    case MEMORY_BOUND:
      return QStringLiteral("memory-bound");
    case COLLECTIVE:
      return QStringLiteral("collective");
    case SEND:
      return QStringLiteral("send");
    case RECV:
      return QStringLiteral("recv");
  }
  return QStringLiteral("kind %1").arg(static_cast<int>(kind));
}

QString bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return QString::number(bytes, 'f', u == 0 ? 0 : 1) + QChar(' ') + QString::fromLatin1(units[u]);
}

}  // namespace

TimelineData::TimelineData(Timeline timeline, QString file)
    : timeline_(std::move(timeline)), file_(std::move(file)) {
  const std::string where = file_.isEmpty() ? std::string("the timeline") : file_.toStdString();
  // The job graph: carried by an imported trace's timeline, else rebuilt from its scenario.
  if (timeline_.has_graph() || timeline_.has_scenario())
    graph_ = std::make_unique<model::JobGraph>(analysis::graph_of(timeline_, where));
  // The check compare and calibrate make: finite, ordered, bounded times, one event per task and rank,
  // a valid embedded scenario. The lanes below rely on it (a NaN end breaks their sorted search).
  analysis::validate_timeline(timeline_, where);

  // Ranks: the timeline's list, and any rank an event names.
  std::map<std::uint32_t, RankInfo> ranks;
  const bool has_grid = timeline_.has_scenario();
  const model::RankGrid grid =
      has_grid ? model::rank_grid(timeline_.scenario()) : model::RankGrid{};
  const auto info_for = [&](std::uint32_t r) -> RankInfo& {
    auto [it, fresh] = ranks.try_emplace(r);
    if (fresh) {
      it->second.rank = r;
      it->second.label = QStringLiteral("rank %1").arg(r);
      if (has_grid) {
        it->second.stage = static_cast<int>(grid.stage(r));
        it->second.replica = static_cast<int>(grid.dp(r));
        it->second.tensor = static_cast<int>(grid.tp(r));
      }
    }
    return it->second;
  };
  for (const auto& r : timeline_.ranks()) {
    RankInfo& info = info_for(r.rank());
    if (!r.label().empty()) info.label = QString::fromStdString(r.label());
    info.multiplicity = std::max<std::uint32_t>(1, r.multiplicity());
  }

  std::map<std::pair<std::uint32_t, parallax::LaneId>, std::size_t> lane_index;
  std::vector<Lane> lanes;
  event_location_.resize(static_cast<std::size_t>(timeline_.events_size()));
  start_ = timeline_.events_size() ? timeline_.events(0).start_s() : 0;
  end_ = start_;
  for (int i = 0; i < timeline_.events_size(); ++i) {
    const TimelineEvent& e = timeline_.events(i);
    if (graph_ && e.task_id() >= graph_->num_tasks())
      throw InputError(where + ": event " + std::to_string(i) + " names task " +
                       std::to_string(e.task_id()) + " but the job graph of its scenario has " +
                       std::to_string(graph_->num_tasks()) +
                       " tasks (the timeline and its embedded scenario do not belong together)");
    info_for(e.rank());
    const TaskKind kind = e.has_kind() ? e.kind()
                          : graph_     ? graph_->tasks()[e.task_id()].kind
                                       : GEMM;
    const bool on_host =
        graph_ && e.task_id() < graph_->num_tasks() && graph_->tasks()[e.task_id()].on_host;
    const parallax::LaneId sub = traces::lane_of(e, on_host);
    auto [it, fresh] = lane_index.try_emplace({e.rank(), sub}, lanes.size());
    if (fresh) {
      lanes.emplace_back();
      lanes.back().rank = e.rank();
      lanes.back().sub_lane = sub;
    }
    Span s;
    s.start = e.start_s();
    s.end = std::max(e.end_s(), e.start_s());
    s.event = static_cast<std::uint32_t>(i);
    s.task_id = e.task_id();
    s.kind = kind;
    lanes[it->second].spans.push_back(s);
    start_ = std::min(start_, s.start);
    end_ = std::max(end_, s.end);
  }
  // Lanes in (rank, sub-lane) order: lane_index is a sorted map.
  lanes_.reserve(lanes.size());
  for (const auto& [key, index] : lane_index) lanes_.push_back(std::move(lanes[index]));
  std::uint32_t max_task = 0;
  for (std::size_t l = 0; l < lanes_.size(); ++l) {
    Lane& lane = lanes_[l];
    std::stable_sort(lane.spans.begin(), lane.spans.end(),
                     [](const Span& a, const Span& b) { return a.start < b.start; });
    lane.max_end.resize(lane.spans.size());
    lane.starts.resize(lane.spans.size());
    double m = -INFINITY;
    for (std::size_t i = 0; i < lane.spans.size(); ++i) {
      m = std::max(m, lane.spans[i].end);
      lane.max_end[i] = m;
      lane.starts[i] = lane.spans[i].start;
      event_location_[lane.spans[i].event] = {static_cast<std::uint32_t>(l),
                                              static_cast<std::uint32_t>(i)};
      max_task = std::max(max_task, lane.spans[i].task_id);
    }
  }
  task_event_.assign(timeline_.events_size() ? max_task + 1 : 0, -1);
  for (int i = 0; i < timeline_.events_size(); ++i) {
    auto& slot = task_event_[timeline_.events(i).task_id()];
    if (slot < 0 || timeline_.events(static_cast<int>(slot)).end_s() < timeline_.events(i).end_s())
      slot = i;
  }
  for (auto& [r, info] : ranks) ranks_.push_back(info);
  rebuild_prefixes();
}

const RankInfo* TimelineData::rank_info(std::uint32_t rank) const {
  auto it = std::lower_bound(ranks_.begin(), ranks_.end(), rank,
                             [](const RankInfo& r, std::uint32_t v) { return r.rank < v; });
  return it != ranks_.end() && it->rank == rank ? &*it : nullptr;
}

void TimelineData::rebuild_prefixes() {
  for (Lane& lane : lanes_) {
    lane.critical_prefix.assign(lane.spans.size() + 1, 0);
    lane.match_prefix.assign(lane.spans.size() + 1, 0);
    for (std::size_t i = 0; i < lane.spans.size(); ++i) {
      lane.critical_prefix[i + 1] = lane.critical_prefix[i] + (lane.spans[i].critical ? 1 : 0);
      lane.match_prefix[i + 1] = lane.match_prefix[i] + (lane.spans[i].match ? 1 : 0);
    }
  }
}

QString TimelineData::name(const Span& span) const {
  const TimelineEvent& e = timeline_.events(static_cast<int>(span.event));
  if (!e.name().empty()) return QString::fromStdString(e.name());
  if (graph_) return QString::fromStdString(graph_->task_name(span.task_id));
  return QStringLiteral("task %1").arg(span.task_id);
}

QString TimelineData::tooltip(const Span& span) const {
  const TimelineEvent& e = timeline_.events(static_cast<int>(span.event));
  QString text =
      QStringLiteral("<b>%1</b><br>%2").arg(name(span).toHtmlEscaped(), kind_name(span.kind));
  if (graph_) {
    const model::Task& t = graph_->tasks()[span.task_id];
    if (t.kind == GEMM)
      text += QStringLiteral(", m %1 × n %2 × k %3").arg(t.gemm_m).arg(t.gemm_n).arg(t.gemm_k) +
              (t.gemm_batch > 1 ? QStringLiteral(" × batch %1").arg(t.gemm_batch) : QString()) +
              QStringLiteral(", %1 GFLOP").arg(t.flops / 1e9, 0, 'g', 3);
    else
      text += QStringLiteral(", %1").arg(bytes_text(static_cast<double>(t.bytes)));
    if (t.peer >= 0) text += QStringLiteral(", peer rank %1").arg(t.peer);
    if (t.communicator >= 0 &&
        static_cast<std::size_t>(t.communicator) < graph_->communicators().size())
      text += QStringLiteral(", communicator %1 (%2 ranks)")
                  .arg(t.communicator)
                  .arg(graph_->communicators()[static_cast<std::size_t>(t.communicator)].size());
    if (t.measured_s >= 0) text += QStringLiteral("<br>duration measured in the trace");
  }
  const RankInfo* r = rank_info(e.rank());
  text += QStringLiteral("<br>%1, %2")
              .arg(r ? r->label.toHtmlEscaped() : QStringLiteral("rank %1").arg(e.rank()),
                   sub_lane_name(traces::lane_of(e, graph_ && graph_->tasks()[span.task_id].on_host)));
  text += QStringLiteral("<br>start %1, duration %2")
              .arg(format_duration(span.start), format_duration(span.end - span.start));
  if (!std::isnan(span.error))
    text +=
        QStringLiteral("<br>predicted %1, measured %2 (%3%4%)")
            .arg(format_duration((span.end - span.start) / (1 + static_cast<double>(span.error))),
                 format_duration(span.end - span.start),
                 span.error >= 0 ? QStringLiteral("+") : QString())
            .arg(static_cast<double>(span.error) * 100, 0, 'f', 1);
  text += QStringLiteral("<br>task %1").arg(span.task_id);
  return text;
}

double TimelineData::task_duration(std::uint32_t task_id) const {
  if (task_id >= task_event_.size() || task_event_[task_id] < 0) return -1;
  const TimelineEvent& e = timeline_.events(static_cast<int>(task_event_[task_id]));
  return e.end_s() - e.start_s();
}

std::size_t TimelineData::mark_critical_path() {
  for (Lane& lane : lanes_)
    for (Span& s : lane.spans) s.critical = false;
  critical_path_tasks_.clear();
  std::size_t marked = 0;
  if (graph_ && timeline_.events_size() > 0) {
    const analysis::TaskTimes times = analysis::task_times(*graph_, timeline_);
    critical_path_tasks_ = analysis::critical_path(*graph_, times).tasks;
    for (std::uint32_t t : critical_path_tasks_) {
      const auto [l, i] = event_location_[static_cast<std::size_t>(times.event[t])];
      lanes_[l].spans[i].critical = true;
      ++marked;
    }
  }
  rebuild_prefixes();
  return marked;
}

std::size_t TimelineData::set_errors_against(const TimelineData& predicted) {
  std::size_t n = 0;
  for (Lane& lane : lanes_)
    for (Span& s : lane.spans) {
      const double p = predicted.task_duration(s.task_id);
      if (p > 0) {
        s.error = static_cast<float>((s.end - s.start - p) / p);
        ++n;
      } else {
        s.error = NAN;
      }
    }
  return n;
}

void TimelineData::clear_errors() {
  for (Lane& lane : lanes_)
    for (Span& s : lane.spans) s.error = NAN;
}

std::size_t TimelineData::mark_matches(const QString& text) {
  std::size_t n = 0;
  for (Lane& lane : lanes_)
    for (Span& s : lane.spans) {
      s.match = !text.isEmpty() && name(s).contains(text, Qt::CaseInsensitive);
      n += s.match ? 1 : 0;
    }
  rebuild_prefixes();
  return n;
}

std::vector<std::pair<std::uint32_t, std::uint32_t>> TimelineData::find(const QString& text,
                                                                        std::size_t limit) const {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> hits;
  if (text.isEmpty()) return hits;
  for (std::size_t l = 0; l < lanes_.size() && hits.size() < limit; ++l)
    for (std::size_t i = 0; i < lanes_[l].spans.size() && hits.size() < limit; ++i)
      if (name(lanes_[l].spans[i]).contains(text, Qt::CaseInsensitive))
        hits.emplace_back(static_cast<std::uint32_t>(l), static_cast<std::uint32_t>(i));
  return hits;
}

}  // namespace parallax::gui
