// What the timeline view shows: the predicted and the measured timeline stacked in two sections on
// one time axis (locked: one TimeAxis draws both), each grouped by pipeline stage, data-parallel
// replica or tensor rank into collapsible groups, one lane per rank and stream. Paints onto any
// QPainter; only what is visible is visited, and spans narrower than a pixel are merged into
// one-pixel columns found by binary search, so a repaint costs O(visible lanes x pixel columns x
// log spans).
#pragma once

#include "parallax/gui/time_axis.h"
#include "parallax/gui/timeline_data.h"

#include <QColor>
#include <QPainter>
#include <QSize>

#include <array>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace parallax::gui {

enum class GroupBy { Stage, Replica, TensorRank };

// Colours of task kinds, of the two sections and of the diff scale (shared with the legend and
// tests).
QColor kind_colour(TaskKind kind);
QColor section_colour(bool measured);
// Blue (measured faster than predicted) through grey (as predicted) to red (slower), saturating at
// +-50%; NaN (no prediction for the task) is black.
QColor error_colour(float error);

struct SceneRow {
  // Summary: the one row a collapsed group keeps, its lanes drawn on top of each other (compute
  // over communication), so the group's activity stays visible.
  enum class Kind { Section, Group, Lane, Summary } kind = Kind::Lane;
  int timeline = 0;       // 0 predicted, 1 measured
  int group = 0;          // group key (stage, replica or tensor index)
  int lane = -1;          // index into TimelineData::lanes() for Lane rows
  std::vector<int> members;  // Summary rows: the group's lanes, drawn in this order
  int y = 0, height = 0;  // in content coordinates (below the axis)
  QString label;
  bool collapsed = false;
};

struct SceneHit {
  int timeline = 0;
  int lane = 0;
  std::size_t span = 0;
};

class TimelineScene {
 public:
  static constexpr int kLabelWidth = 200, kAxisHeight = 28, kLaneHeight = 18, kGroupHeight = 20,
                       kSectionHeight = 26;

  // Either may be null. When both are given they are joined (analysis::compare_timelines): the step
  // time error goes into the measured header; a pair that does not belong together leaves a note
  // instead.
  void set_timelines(std::shared_ptr<TimelineData> predicted,
                     std::shared_ptr<TimelineData> measured);
  const std::shared_ptr<TimelineData>& timeline(int i) const {
    return timelines_[static_cast<std::size_t>(i)];
  }
  bool empty() const { return !timelines_[0] && !timelines_[1]; }

  void set_group_by(GroupBy group_by);
  GroupBy group_by() const { return group_by_; }
  // Collapses or expands the group of a Group row; returns false for other rows.
  bool toggle_group(int row);
  void set_diff(bool on);
  bool diff() const { return diff_; }
  bool diff_available() const { return diff_available_; }
  void set_critical(bool on);
  bool critical() const { return critical_; }
  std::size_t critical_tasks() const { return critical_tasks_; }
  // Marks matching spans in both timelines; returns how many.
  std::size_t set_search(const QString& text);
  const QString& search() const { return search_; }
  const QString& pair_note() const {
    return pair_note_;
  }  // why diff mode is off, or the step error

  const std::vector<SceneRow>& rows() const { return rows_; }
  int content_height() const { return content_height_; }
  // Union of the loaded timelines' time ranges.
  double start() const;
  double end() const;
  // The axis for a view of `width` pixels: plot from kLabelWidth to width, showing everything.
  TimeAxis full_axis(int width) const;

  // The row under y (view coordinates, the content scrolled by `scroll_y`), or -1.
  int row_at(double y, int scroll_y) const;
  // The span under a point, with a pixel of slack around spans narrower than a pixel.
  std::optional<SceneHit> hit(double x, double y, const TimeAxis& axis, int scroll_y) const;
  const Span& span(const SceneHit& h) const;

  void paint(QPainter& painter, QSize size, const TimeAxis& axis, int scroll_y) const;

 private:
  void relayout();
  int group_of(const RankInfo& r) const;
  void paint_lane(QPainter& p, const TimelineData& data, const Lane& lane, int y, int h,
                  const TimeAxis& axis, bool names = true) const;

  std::array<std::shared_ptr<TimelineData>, 2> timelines_;
  GroupBy group_by_ = GroupBy::Stage;
  std::set<std::pair<int, int>> collapsed_;  // (timeline, group)
  bool diff_ = false, diff_available_ = false, critical_ = false;
  std::size_t critical_tasks_ = 0;
  QString search_, pair_note_;
  std::vector<SceneRow> rows_;
  int content_height_ = 0;
};

}  // namespace parallax::gui
