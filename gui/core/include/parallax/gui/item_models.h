// Item models of the GUI: the planner's ranked layouts and the tasks a search found. Checked with
// QAbstractItemModelTester in the tests; the views sort them through a QSortFilterProxyModel, which
// sorts by kSortRole (numbers, not their text).
#pragma once

#include "parallax/gui/timeline_scene.h"
#include "parallax/planner/plan.h"

#include <QAbstractTableModel>

#include <vector>

namespace parallax::gui {

inline constexpr int kSortRole = Qt::UserRole + 1;

class PlanResultsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    Rank,
    Layout,
    StepTime,
    TflopsPerGpu,
    Mfu,
    Memory,
    Headroom,
    Bubble,
    ExposedComm,
    Bottleneck,
    Source,
    kColumns
  };

  using QAbstractTableModel::QAbstractTableModel;
  void set_result(planner::PlanResult result);
  void clear();
  const planner::PlanResult& result() const { return result_; }
  const planner::PlanRow& row(int r) const { return result_.rows[static_cast<std::size_t>(r)]; }
  // A layout does not fit when its memory exceeds the capacity (or its simulation says so).
  static bool fits(const planner::PlanRow& row);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  planner::PlanResult result_;
};

// Tasks whose name contains a text, in both timelines of a scene: name, timeline, rank, stream,
// start, duration. Capped at `limit` hits (a million-task timeline may match most of its tasks).
class TaskSearchModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Name, Source, RankColumn, SubLane, Start, Duration, kColumns };
  struct Hit {
    int timeline;
    std::uint32_t lane, span;
  };

  using QAbstractTableModel::QAbstractTableModel;
  void search(const TimelineScene& scene, const QString& text, std::size_t limit = 5000);
  const Hit& hit(int row) const { return hits_[static_cast<std::size_t>(row)]; }
  bool truncated() const { return truncated_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  const TimelineScene* scene_ = nullptr;
  std::vector<Hit> hits_;
  bool truncated_ = false;
};

}  // namespace parallax::gui
