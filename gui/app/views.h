// The widgets of parallax-gui. They hold no logic worth testing apart from the wiring: models,
// mapping, layout and painting live in gui_core.
#pragma once

#include "parallax/gui/breakdown.h"
#include "parallax/gui/item_models.h"
#include "parallax/gui/time_axis.h"
#include "parallax/gui/timeline_scene.h"
#include "parallax/planner/plan.h"

#include <QElapsedTimer>
#include <QFutureWatcher>
#include <QWidget>

#include <atomic>
#include <memory>
#include <optional>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QScrollBar;
class QSortFilterProxyModel;
class QSpinBox;
class QSplitter;
class QTableView;

namespace parallax::gui {

class PlannerView : public QWidget {
  Q_OBJECT
 public:
  explicit PlannerView(QWidget* parent = nullptr);

  // Fills the form from a scenario: its model as custom fields, its cluster, GPU count and batch.
  void set_from_scenario(const Scenario& scenario);
  // The request the form describes; throws InputError naming the field to fix.
  planner::PlanRequest request() const;
  // Plans in a worker thread; progress and results arrive in the UI thread.
  void start_plan();
  void cancel_plan();
  // Plans in this thread (headless screenshots).
  bool plan_now(QString* error);
  bool planning() const { return watcher_ != nullptr; }

  QComboBox* model_box() const { return model_; }
  QComboBox* cluster_box() const { return cluster_; }
  QSpinBox* gpus_box() const { return gpus_; }
  QSpinBox* batch_box() const { return batch_; }
  QSpinBox* top_box() const { return top_; }
  QPushButton* plan_button() const { return plan_button_; }
  QPushButton* cancel_button() const { return cancel_button_; }
  QProgressBar* progress() const { return progress_; }
  QTableView* results() const { return table_; }
  QLabel* status() const { return status_; }
  PlanResultsModel* model() const { return results_; }
  QSortFilterProxyModel* proxy() const { return proxy_; }

 signals:
  void plan_finished(bool ok);
  void row_chosen(const parallax::Scenario& scenario, const QString& layout);

 private:
  void custom_toggled();
  void show_result(planner::PlanResult result);

  QComboBox *model_, *cluster_;
  QSpinBox *layers_, *hidden_, *heads_, *seq_, *vocab_, *gpus_, *batch_, *top_;
  QWidget* custom_fields_;
  QPushButton *plan_button_, *cancel_button_;
  QProgressBar* progress_;
  QLabel* status_;
  QTableView* table_;
  PlanResultsModel* results_;
  QSortFilterProxyModel* proxy_;
  std::optional<ClusterSpec> scenario_cluster_;
  std::optional<ModelSpec> scenario_model_;
  Layout scenario_layout_;
  Options scenario_options_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  struct Outcome {
    std::optional<planner::PlanResult> result;
    QString error;
    bool cancelled = false;
  };
  QFutureWatcher<Outcome>* watcher_ = nullptr;
};

// The drawing surface of the timeline: zoom (wheel), pan (drag), range zoom (shift-drag or
// right-drag), zoom history (Backspace), group headers collapse on click, tooltips.
class TimelineCanvas : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineCanvas(TimelineScene* scene, QWidget* parent = nullptr);
  const TimeAxis& axis() const { return axis_; }
  const ZoomStack& history() const { return history_; }
  void fit();
  void back();
  void zoom_to(double start_s, double end_s);  // pushes the current range
  void scene_changed(bool refit);
  void scroll_to_row(int row);
  int scroll() const { return scroll_y_; }

 signals:
  void view_changed();

 protected:
  void paintEvent(QPaintEvent*) override;
  void resizeEvent(QResizeEvent*) override;
  void wheelEvent(QWheelEvent*) override;
  void mousePressEvent(QMouseEvent*) override;
  void mouseMoveEvent(QMouseEvent*) override;
  void mouseReleaseEvent(QMouseEvent*) override;
  void keyPressEvent(QKeyEvent*) override;
  bool event(QEvent*) override;

 private:
  int plot_width() const;
  void update_scrollbar();

  TimelineScene* scene_;
  TimeAxis axis_;
  ZoomStack history_;
  QScrollBar* scrollbar_;
  int scroll_y_ = 0;
  enum class Drag { None, Pan, Range } drag_ = Drag::None;
  QPoint press_, last_;
  QElapsedTimer last_wheel_;
};

class TimelineView : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineView(QWidget* parent = nullptr);
  void set_timelines(std::shared_ptr<TimelineData> predicted,
                     std::shared_ptr<TimelineData> measured);
  TimelineScene& scene() { return scene_; }
  TimelineCanvas* canvas() const { return canvas_; }
  QCheckBox* diff_box() const { return diff_; }
  QCheckBox* critical_box() const { return critical_; }
  QLineEdit* search_box() const { return search_; }
  QComboBox* group_box() const { return group_; }
  TaskSearchModel* search_model() const { return search_model_; }

 private:
  void refresh_controls();
  void run_search();

  TimelineScene scene_;
  TimelineCanvas* canvas_;
  QComboBox* group_;
  QCheckBox *diff_, *critical_;
  QLineEdit* search_;
  QLabel *search_count_, *info_;
  QTableView* search_results_;
  TaskSearchModel* search_model_;
  QSortFilterProxyModel* search_proxy_;
  QSplitter* splitter_;
};

class BreakdownView : public QWidget {
  Q_OBJECT
 public:
  explicit BreakdownView(QWidget* parent = nullptr);
  // Sources the view can show, by name ("predicted (simulation report)", ...).
  void set_sources(std::vector<std::pair<QString, Breakdown>> sources);
  const Breakdown* current() const;
  QComboBox* source_box() const { return source_; }

 protected:
  bool event(QEvent*) override;

 private:
  class Chart;
  std::vector<std::pair<QString, Breakdown>> sources_;
  QComboBox* source_;
  Chart* chart_;
};

}  // namespace parallax::gui
