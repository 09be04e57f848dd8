#include "parallax/gui/timeline_scene.h"

#include "parallax/analysis/compare.h"
#include "parallax/traces/io.h"

#include <QFontMetrics>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace parallax::gui {

QColor kind_colour(TaskKind kind) {
  // Tableau 10: distinguishable, also for the common colour-vision deficiencies.
  switch (kind) {
    case GEMM:
      return QColor(0x4e, 0x79, 0xa7);  // blue
    case MEMORY_BOUND:
      return QColor(0x59, 0xa1, 0x4f);  // green
    case COLLECTIVE:
      return QColor(0xf2, 0x8e, 0x2b);  // orange
    case SEND:
      return QColor(0xb0, 0x7a, 0xa1);  // purple
    case RECV:
      return QColor(0x9c, 0x75, 0x5f);  // brown
  }
  return Qt::gray;
}

QColor section_colour(bool measured) {
  return measured ? QColor(0xa8, 0x4a, 0x00) : QColor(0x1f, 0x4e, 0x8c);
}

QColor error_colour(float error) {
  if (std::isnan(error)) return Qt::black;
  const double e = std::clamp(static_cast<double>(error) / 0.5, -1.0, 1.0);
  const QColor mid(0xb8, 0xb8, 0xb8), slow(0xc6, 0x1a, 0x1a), fast(0x1f, 0x66, 0xc4);
  const QColor& to = e >= 0 ? slow : fast;
  const double a = std::abs(e);
  return QColor::fromRgbF(static_cast<float>(mid.redF() + (to.redF() - mid.redF()) * a),
                          static_cast<float>(mid.greenF() + (to.greenF() - mid.greenF()) * a),
                          static_cast<float>(mid.blueF() + (to.blueF() - mid.blueF()) * a));
}

namespace {

QColor faded(const QColor& c) {  // 75% towards white: context behind highlighted tasks
  return QColor((c.red() + 3 * 255) / 4, (c.green() + 3 * 255) / 4, (c.blue() + 3 * 255) / 4);
}

QString group_name(GroupBy by, int key) {
  switch (by) {
    case GroupBy::Stage:
      return QStringLiteral("pipeline stage %1").arg(key);
    case GroupBy::Replica:
      return QStringLiteral("data-parallel replica %1").arg(key);
    case GroupBy::TensorRank:
      return QStringLiteral("tensor rank %1").arg(key);
  }
  return {};
}

}  // namespace

void TimelineScene::set_timelines(std::shared_ptr<TimelineData> predicted,
                                  std::shared_ptr<TimelineData> measured) {
  timelines_ = {std::move(predicted), std::move(measured)};
  collapsed_.clear();
  pair_note_.clear();
  diff_available_ = false;
  if (timelines_[0] && timelines_[1]) {
    try {
      const analysis::CompareResult c =
          analysis::compare_timelines(timelines_[0]->proto(), timelines_[1]->proto());
      diff_available_ = true;
      pair_note_ = QStringLiteral("step %1 measured vs %2 predicted (prediction %3%4%)")
                       .arg(format_duration(c.step_time_measured_s),
                            format_duration(c.step_time_predicted_s),
                            c.step_time_error_pct >= 0 ? QStringLiteral("+") : QString())
                       .arg(c.step_time_error_pct, 0, 'f', 1);
    } catch (const InputError& e) {
      pair_note_ = QStringLiteral("not comparable: %1").arg(QString::fromStdString(e.what()));
    }
  }
  if (!diff_available_) diff_ = false;
  set_diff(diff_);
  set_critical(critical_);
  set_search(search_);
  relayout();
}

void TimelineScene::set_group_by(GroupBy group_by) {
  group_by_ = group_by;
  collapsed_.clear();
  relayout();
}

bool TimelineScene::toggle_group(int row) {
  if (row < 0 || row >= static_cast<int>(rows_.size()) ||
      rows_[static_cast<std::size_t>(row)].kind != SceneRow::Kind::Group)
    return false;
  const auto key = std::make_pair(rows_[static_cast<std::size_t>(row)].timeline,
                                  rows_[static_cast<std::size_t>(row)].group);
  if (!collapsed_.erase(key)) collapsed_.insert(key);
  relayout();
  return true;
}

void TimelineScene::set_diff(bool on) {
  diff_ = on && diff_available_;
  if (timelines_[1]) {
    if (diff_)
      timelines_[1]->set_errors_against(*timelines_[0]);
    else
      timelines_[1]->clear_errors();
  }
}

void TimelineScene::set_critical(bool on) {
  critical_ = on;
  critical_tasks_ = 0;
  if (!on) return;
  for (auto& t : timelines_)
    if (t) critical_tasks_ += t->mark_critical_path();
}

std::size_t TimelineScene::set_search(const QString& text) {
  search_ = text;
  std::size_t n = 0;
  for (auto& t : timelines_)
    if (t) n += t->mark_matches(text);
  return n;
}

double TimelineScene::start() const {
  double s = INFINITY;
  for (const auto& t : timelines_)
    if (t && t->num_events()) s = std::min(s, t->start());
  return std::isfinite(s) ? s : 0;
}

double TimelineScene::end() const {
  double e = -INFINITY;
  for (const auto& t : timelines_)
    if (t && t->num_events()) e = std::max(e, t->end());
  return std::isfinite(e) ? e : 1;
}

TimeAxis TimelineScene::full_axis(int width) const {
  // 1% of margin on the right so that the last task's end is visible.
  const double s = start(), e = end();
  return TimeAxis(s, e + (e - s) * 0.01, kLabelWidth, std::max(1, width - kLabelWidth));
}

int TimelineScene::group_of(const RankInfo& r) const {
  switch (group_by_) {
    case GroupBy::Stage:
      return r.stage;
    case GroupBy::Replica:
      return r.replica;
    case GroupBy::TensorRank:
      return r.tensor;
  }
  return 0;
}

void TimelineScene::relayout() {
  rows_.clear();
  int y = 0;
  const auto add = [&](SceneRow row, int height) {
    row.y = y;
    row.height = height;
    y += height;
    rows_.push_back(std::move(row));
  };
  for (int t = 0; t < 2; ++t) {
    const TimelineData* data = timelines_[static_cast<std::size_t>(t)].get();
    if (!data) continue;
    SceneRow section;
    section.kind = SceneRow::Kind::Section;
    section.timeline = t;
    const Timeline& proto = data->proto();
    QString title = data->measured() ? QStringLiteral("MEASURED") : QStringLiteral("PREDICTED");
    title += QStringLiteral("  \u00b7  %1").arg(QString::fromStdString(proto.scenario_name()));
    // The step (and, measured, its error against the prediction) first: the host string can be
    // long.
    if (data->measured() && !pair_note_.isEmpty())
      title += QStringLiteral("  \u00b7  ") + pair_note_;
    else
      title +=
          QStringLiteral("  \u00b7  step %1").arg(format_duration(data->end() - data->start()));
    if (data->measured()) {
      QString host = QString::fromStdString(proto.host()).section(QChar(','), 0, 0);
      if (host.size() > 40) host = host.left(39) + QChar(0x2026);
      title += QStringLiteral("  \u00b7  %1 backend%2")
                   .arg(QString::fromStdString(proto.backend().empty() ? "?" : proto.backend()),
                        host.isEmpty() ? QString() : QStringLiteral(" on ") + host);
    } else {
      title += QStringLiteral("  \u00b7  SimGrid");
    }
    if (data->measured() && diff_)
      title += QStringLiteral("  \u00b7  diff: blue faster, grey as predicted, red slower");
    section.label = title;
    add(section, kSectionHeight);
    // Lanes by group, then rank and sub-lane (lanes() is in that order within a rank).
    std::map<int, std::vector<int>> groups;
    std::map<int, std::set<std::uint32_t>> group_ranks;
    std::map<int, std::uint64_t> group_multiplicity;
    for (std::size_t l = 0; l < data->lanes().size(); ++l) {
      const Lane& lane = data->lanes()[l];
      const RankInfo* r = data->rank_info(lane.rank);
      const int g = r ? group_of(*r) : 0;
      groups[g].push_back(static_cast<int>(l));
      if (group_ranks[g].insert(lane.rank).second) group_multiplicity[g] += r ? r->multiplicity : 1;
    }
    for (const auto& [g, lanes] : groups) {
      SceneRow header;
      header.kind = SceneRow::Kind::Group;
      header.timeline = t;
      header.group = g;
      header.collapsed = collapsed_.count({t, g}) > 0;
      const std::size_t shown = group_ranks[g].size();
      const std::uint64_t real = group_multiplicity[g];
      // An imported trace has no layout: one group of all ranks (by replica: one per rank).
      const bool imported = data->graph() && data->graph()->imported();
      header.label =
          QStringLiteral("%1 %2   (%3 rank%4%5)")
              .arg(header.collapsed ? QStringLiteral("\u25b8") : QStringLiteral("\u25be"),
                   !imported                       ? group_name(group_by_, g)
                   : group_by_ == GroupBy::Replica ? QStringLiteral("rank %1").arg(g)
                                                   : QStringLiteral("imported trace"))
              .arg(shown)
              .arg(shown == 1 ? QString() : QStringLiteral("s"))
              .arg(real > shown ? QStringLiteral(", standing for %1").arg(real) : QString());
      add(header, kGroupHeight);
      if (header.collapsed) {
        SceneRow summary;
        summary.kind = SceneRow::Kind::Summary;
        summary.timeline = t;
        summary.group = g;
        summary.label = QStringLiteral("%1 rank%2\tall streams")
                            .arg(shown)
                            .arg(shown == 1 ? QString() : QStringLiteral("s"));
        // Communication first, compute last: where any rank computes, compute shows.
        summary.members = lanes;
        std::stable_sort(summary.members.begin(), summary.members.end(), [&](int a, int b) {
          return (data->lanes()[static_cast<std::size_t>(a)].sub_lane == 0) <
                 (data->lanes()[static_cast<std::size_t>(b)].sub_lane == 0);
        });
        add(summary, kLaneHeight);
        continue;
      }
      std::uint32_t previous_rank = UINT32_MAX;
      for (int l : lanes) {
        const Lane& lane = data->lanes()[static_cast<std::size_t>(l)];
        SceneRow row;
        row.kind = SceneRow::Kind::Lane;
        row.timeline = t;
        row.group = g;
        row.lane = l;
        const RankInfo* r = data->rank_info(lane.rank);
        const QString rank_label =
            QStringLiteral("rank %1").arg(lane.rank) +
            (r && r->multiplicity > 1 ? QStringLiteral(" \u00d7%1").arg(r->multiplicity)
                                      : QString());
        row.label = (lane.rank != previous_rank ? rank_label : QString()) + QChar('\t') +
                    sub_lane_name(lane.sub_lane);
        previous_rank = lane.rank;
        add(row, kLaneHeight);
      }
    }
  }
  content_height_ = y;
}

int TimelineScene::row_at(double y, int scroll_y) const {
  const double cy = y - kAxisHeight + scroll_y;
  if (y < kAxisHeight || cy < 0) return -1;
  auto it = std::upper_bound(rows_.begin(), rows_.end(), cy,
                             [](double v, const SceneRow& r) { return v < r.y; });
  if (it == rows_.begin()) return -1;
  --it;
  return cy < it->y + it->height ? static_cast<int>(it - rows_.begin()) : -1;
}

std::optional<SceneHit> TimelineScene::hit(double x, double y, const TimeAxis& axis,
                                           int scroll_y) const {
  if (x < kLabelWidth) return std::nullopt;
  const int r = row_at(y, scroll_y);
  if (r < 0 || rows_[static_cast<std::size_t>(r)].kind != SceneRow::Kind::Lane) return std::nullopt;
  const SceneRow& row = rows_[static_cast<std::size_t>(r)];
  const Lane& lane = timelines_[static_cast<std::size_t>(row.timeline)]
                         ->lanes()[static_cast<std::size_t>(row.lane)];
  const double t = axis.to_time(x), slack = axis.seconds_per_pixel();
  std::optional<SceneHit> best;
  double best_distance = INFINITY;
  for (std::size_t i = lane.first_ending_after(t - slack);
       i < lane.spans.size() && lane.spans[i].start <= t + slack; ++i) {
    const Span& s = lane.spans[i];
    const double d = t < s.start ? s.start - t : t > s.end ? t - s.end : 0;
    if (d <= slack && d < best_distance) {
      best_distance = d;
      best = SceneHit{row.timeline, row.lane, i};
      if (d == 0) break;
    }
  }
  return best;
}

const Span& TimelineScene::span(const SceneHit& h) const {
  return timelines_[static_cast<std::size_t>(h.timeline)]
      ->lanes()[static_cast<std::size_t>(h.lane)]
      .spans[h.span];
}

void TimelineScene::paint_lane(QPainter& p, const TimelineData& data, const Lane& lane, int y,
                               int h, const TimeAxis& axis, bool names) const {
  const double t0 = axis.start(), t1 = axis.end();
  const double right = axis.left() + axis.width();
  const bool searching = !search_.isEmpty();
  const bool diff = diff_ && data.measured();
  // Colours of the kinds, plain and faded, looked up rather than built per span.
  std::array<QRgb, 2 * 5> kind_rgb{};
  for (int k = 0; k < 5; ++k) {
    kind_rgb[static_cast<std::size_t>(2 * k)] = kind_colour(static_cast<TaskKind>(k)).rgb();
    kind_rgb[static_cast<std::size_t>(2 * k + 1)] =
        faded(kind_colour(static_cast<TaskKind>(k))).rgb();
  }
  const auto rgb_of = [&](const Span& s, bool crit, bool match) -> QRgb {
    const bool fade = (critical_ && !crit) || (searching && !match);
    if (diff) return (fade ? faded(error_colour(s.error)) : error_colour(s.error)).rgb();
    const auto k = static_cast<std::size_t>(s.kind);
    return k < 5 ? kind_rgb[2 * k + (fade ? 1 : 0)] : QColor(Qt::gray).rgb();
  };
  const auto colour_of = [&](const Span& s, bool crit, bool match) {
    return QColor::fromRgb(rgb_of(s, crit, match));
  };
  // The axis mapping without a division per call.
  const double left = axis.left(), px_per_s = axis.width() / axis.span(),
               s_per_px = axis.span() / axis.width();
  const auto to_px = [&](double t) { return left + (t - t0) * px_per_s; };
  // Narrow spans are collected per pixel column into a one-pixel-high strip, drawn stretched over
  // the lane at the end: one image draw per lane instead of a rectangle per column.
  const int strip_left = static_cast<int>(axis.left());
  const int strip_width = std::max(1, static_cast<int>(std::ceil(axis.width())));
  QImage strip(strip_width, std::max(1, h - 2), QImage::Format_ARGB32_Premultiplied);
  std::memset(strip.scanLine(0), 0, static_cast<std::size_t>(strip.bytesPerLine()));
  auto* columns = reinterpret_cast<QRgb*>(strip.scanLine(0));
  bool strip_used = false;
  const QFontMetrics metrics(p.font());
  std::size_t i = lane.first_ending_after(t0);
  const std::size_t n = lane.spans.size();
  while (i < n) {
    const Span& s = lane.spans[i];
    if (s.start > t1) break;
    const double xs = to_px(s.start), xe = to_px(s.end);
    if (xe - xs >= 1.5) {
      const int a = static_cast<int>(std::floor(std::max(xs, axis.left() - 2)));
      const int b = static_cast<int>(std::ceil(std::min(xe, right + 2)));
      const QRect r(a, y + 1, std::max(1, b - a), h - 2);
      const QColor c = colour_of(s, s.critical, s.match);
      p.fillRect(r, c);
      if ((critical_ && s.critical) || (searching && s.match)) {
        p.setPen(QPen(searching && s.match ? QColor(0xff, 0xc8, 0x00) : Qt::black, 2));
        p.drawRect(r.adjusted(1, 1, -1, -1));
      }
      // The task's name where it fits (visible part only).
      const int visible_a = std::max(a, static_cast<int>(axis.left())),
                visible_b = std::min(b, static_cast<int>(right));
      if (names && visible_b - visible_a > 48) {
        p.setPen(c.lightness() > 150 ? Qt::black : Qt::white);
        const QRect text_rect(visible_a + 3, y + 1, visible_b - visible_a - 6, h - 2);
        p.drawText(text_rect, Qt::AlignVCenter | Qt::AlignLeft,
                   metrics.elidedText(data.name(s), Qt::ElideRight, text_rect.width()));
      }
      ++i;
      continue;
    }
    // Narrow: every span starting in this pixel column is drawn as one column.
    const int column = static_cast<int>(std::floor(xs));
    const double column_end = t0 + (column + 1 - left) * s_per_px;
    // Galloping search from i: a column holds few spans, so the answer is near.
    std::size_t j = i + 1, step = 1, lo = i + 1;
    while (j < n && lane.starts[j] < column_end) {
      lo = j + 1;
      j = std::min(n, j + step);
      step *= 2;
    }
    if (lo < j)
      j = static_cast<std::size_t>(
          std::lower_bound(lane.starts.begin() + static_cast<std::ptrdiff_t>(lo),
                           lane.starts.begin() + static_cast<std::ptrdiff_t>(j), column_end) -
          lane.starts.begin());
    // Spans are sorted and do not overlap on a lane, so only the last one of the column can reach
    // beyond it; a wide one is drawn as its own rectangle next.
    if (j - 1 > i && to_px(lane.spans[j - 1].end) - to_px(lane.spans[j - 1].start) >= 1.5) --j;
    const bool crit = lane.critical_prefix[j] > lane.critical_prefix[i];
    const bool match = lane.match_prefix[j] > lane.match_prefix[i];
    const QRgb rgb = rgb_of(s, crit, match);
    // The column's last span may reach into the next pixels.
    const int last_x = static_cast<int>(std::ceil(std::min(to_px(lane.spans[j - 1].end), right)));
    const int from = std::max(column, strip_left),
              to = std::min(std::max(column + 1, last_x), strip_left + strip_width);
    for (int x = from; x < to; ++x) columns[x - strip_left] = rgb;
    strip_used = strip_used || from < to;
    i = j;
  }
  if (strip_used) {
    for (int row = 1; row < strip.height(); ++row)
      std::memcpy(strip.scanLine(row), strip.constScanLine(0),
                  static_cast<std::size_t>(strip.bytesPerLine()));
    p.drawImage(QPoint(strip_left, y + 1), strip);
  }
}

void TimelineScene::paint(QPainter& p, QSize size, const TimeAxis& axis, int scroll_y) const {
  const int w = size.width(), h = size.height();
  p.fillRect(QRect(0, 0, w, h), Qt::white);
  QFont font = p.font();
  font.setPixelSize(11);
  p.setFont(font);
  if (empty()) {
    p.setPen(Qt::darkGray);
    p.drawText(QRect(0, 0, w, h), Qt::AlignCenter,
               QStringLiteral("No timeline loaded: open a scenario or a timeline (File menu), or "
                              "select a row of a plan."));
    return;
  }
  const std::vector<Tick> ticks = axis_ticks(axis);
  // Grid lines behind the lanes.
  p.setPen(QColor(0xe4, 0xe4, 0xe4));
  for (const Tick& t : ticks)
    if (t.x >= kLabelWidth) p.drawLine(QPointF(t.x, kAxisHeight), QPointF(t.x, h));

  const QRect plot(kLabelWidth, kAxisHeight, std::max(0, w - kLabelWidth),
                   std::max(0, h - kAxisHeight));
  const int first = std::max(0, row_at(kAxisHeight, scroll_y));
  for (std::size_t r = static_cast<std::size_t>(first); r < rows_.size(); ++r) {
    const SceneRow& row = rows_[r];
    const int y = kAxisHeight + row.y - scroll_y;
    if (y >= h) break;
    if (y + row.height <= kAxisHeight) continue;
    const TimelineData& data = *timelines_[static_cast<std::size_t>(row.timeline)];
    const QColor section = section_colour(row.timeline == 1);
    p.setClipRect(QRect(0, kAxisHeight, w, h - kAxisHeight));
    switch (row.kind) {
      case SceneRow::Kind::Section: {
        p.fillRect(QRect(0, y, w, row.height), section);
        QFont bold = font;
        bold.setBold(true);
        bold.setPixelSize(12);
        p.setFont(bold);
        p.setPen(Qt::white);
        p.drawText(QRect(8, y, w - 16, row.height), Qt::AlignVCenter | Qt::AlignLeft,
                   QFontMetrics(bold).elidedText(row.label, Qt::ElideRight, w - 16));
        p.setFont(font);
        break;
      }
      case SceneRow::Kind::Group: {
        p.fillRect(QRect(0, y, w, row.height), QColor(0xe9, 0xec, 0xf0));
        p.fillRect(QRect(0, y, 5, row.height), section);
        p.setPen(QColor(0x30, 0x30, 0x30));
        p.drawText(QRect(10, y, w - 20, row.height), Qt::AlignVCenter | Qt::AlignLeft, row.label);
        p.setPen(QColor(0xc8, 0xcc, 0xd2));
        p.drawLine(0, y + row.height - 1, w, y + row.height - 1);
        break;
      }
      case SceneRow::Kind::Lane:
      case SceneRow::Kind::Summary: {
        p.fillRect(QRect(0, y, kLabelWidth, row.height), QColor(0xf6, 0xf7, 0xf9));
        p.fillRect(QRect(0, y, 5, row.height), section);
        const QStringList parts = row.label.split(QChar('\t'));
        p.setPen(QColor(0x20, 0x20, 0x20));
        p.drawText(QRect(12, y, 110, row.height), Qt::AlignVCenter | Qt::AlignLeft, parts.value(0));
        p.setPen(QColor(0x60, 0x60, 0x60));
        p.drawText(QRect(12, y, kLabelWidth - 20, row.height), Qt::AlignVCenter | Qt::AlignRight,
                   parts.value(1));
        p.setClipRect(plot.intersected(QRect(kLabelWidth, y, w - kLabelWidth, row.height)));
        if (row.kind == SceneRow::Kind::Lane)
          paint_lane(p, data, data.lanes()[static_cast<std::size_t>(row.lane)], y, row.height,
                     axis);
        else  // a collapsed group: its lanes over each other, without names
          for (int l : row.members)
            paint_lane(p, data, data.lanes()[static_cast<std::size_t>(l)], y, row.height, axis,
                       false);
        p.setClipping(false);
        p.setPen(QColor(0xee, 0xee, 0xee));
        p.drawLine(kLabelWidth, y + row.height - 1, w, y + row.height - 1);
        break;
      }
    }
  }
  p.setClipping(false);
  p.setPen(QColor(0xb0, 0xb0, 0xb0));
  p.drawLine(kLabelWidth - 1, kAxisHeight, kLabelWidth - 1, h);

  // The axis on top, over anything scrolled under it.
  p.fillRect(QRect(0, 0, w, kAxisHeight), QColor(0xfa, 0xfa, 0xfa));
  p.setPen(QColor(0x40, 0x40, 0x40));
  p.drawText(QRect(8, 0, kLabelWidth - 16, kAxisHeight), Qt::AlignVCenter | Qt::AlignLeft,
             QStringLiteral("time (%1 per px)").arg(format_duration(axis.seconds_per_pixel())));
  p.drawLine(kLabelWidth, kAxisHeight - 1, w, kAxisHeight - 1);
  const QFontMetrics fm(font);
  for (const Tick& t : ticks) {
    if (t.x < kLabelWidth || t.x > w) continue;
    p.drawLine(QPointF(t.x, kAxisHeight - 7), QPointF(t.x, kAxisHeight - 1));
    const int tw = fm.horizontalAdvance(t.label);
    const int tx = std::clamp(static_cast<int>(t.x) - tw / 2, kLabelWidth + 2, w - tw - 2);
    p.drawText(QPoint(tx, kAxisHeight - 11), t.label);
  }
}

}  // namespace parallax::gui
