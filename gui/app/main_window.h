// The main window of parallax-gui: planner, timeline and breakdown tabs, the File menu (open,
// export, recent files), remembered layout; and the headless screenshot mode built on the same
// window.
#pragma once

#include "views.h"

#include "parallax/sim/simulate.h"

#include <QImage>
#include <QMainWindow>

#include <memory>
#include <optional>

class QMenu;
class QTabWidget;

namespace parallax::gui {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  enum Tab { PlannerTab = 0, TimelineTab = 1, BreakdownTab = 2 };
  // headless: no settings read or written, errors go to the status bar instead of dialogs.
  explicit MainWindow(bool headless = false, QWidget* parent = nullptr);

  PlannerView* planner() const { return planner_; }
  TimelineView* timeline() const { return timeline_; }
  BreakdownView* breakdown() const { return breakdown_; }
  QTabWidget* tabs() const { return tabs_; }
  const QString& last_error() const { return last_error_; }
  bool simulating() const { return simulating_; }

  // Opens by kind: a scenario (.pbtxt, .json: simulated in the background), a Chakra trace (any
  // PREFIX.<rank>.et: imported and simulated on a cluster the user picks) or a timeline (.pb,
  // placed by its source). Errors are shown, and kept in last_error().
  void open_file(const QString& path);
  // The same, in this thread (screenshots, tests). `expect` checks a timeline's source.
  bool load_scenario_now(const QString& path, QString* error);
  bool load_timeline_now(const QString& path, std::optional<Timeline::Source> expect,
                         QString* error);
  // Imports the Chakra trace PREFIX.<rank>.et and simulates it on a cluster preset (or file), in
  // this thread. `groups`: a comm-groups JSON; empty: PREFIX.comm_groups.json if it exists, else
  // every collective on all ranks (as `parallax simulate --chakra`).
  bool load_chakra_now(const QString& prefix, const QString& cluster, const QString& groups,
                       QString* error);
  // Simulates a scenario in the background, then shows its timeline and breakdown.
  void simulate_async(const Scenario& scenario, const QString& what);
  // The same for a Chakra trace.
  void simulate_chakra_async(const QString& prefix, const QString& cluster,
                             const QString& groups = {});

  bool export_png(const QString& path, QString* error);
  bool export_chrome(const QString& path, QString* error);

 signals:
  void simulation_finished(bool ok);

 protected:
  void closeEvent(QCloseEvent*) override;

 private:
  void set_predicted(std::shared_ptr<TimelineData> predicted, std::optional<Report> report);
  void set_measured(std::shared_ptr<TimelineData> measured);
  void refresh();
  void report_error(const QString& message);
  void add_recent(const QString& path);
  void rebuild_recent();
  void build_menus();
  template <typename Work>
  void run_simulation_async(const QString& what, Work work);

  bool headless_;
  QTabWidget* tabs_;
  PlannerView* planner_;
  TimelineView* timeline_;
  BreakdownView* breakdown_;
  QMenu* recent_menu_ = nullptr;
  std::shared_ptr<TimelineData> predicted_, measured_;
  std::optional<Report> report_;
  QString last_error_;
  bool simulating_ = false;
};

struct ScreenshotOptions {
  QString output, view, scenario, chakra, cluster, comm_groups, timeline, measured, search;
  bool diff = false, critical = false;
  QSize size{1600, 1000};
};
// parallax-gui's usage text (--help).
const char* usage();
// Parses, with the option parser of every command (parallax/cli/options.h), `--screenshot FILE.png --view planner|timeline|breakdown [--scenario S] [--chakra PREFIX
// --cluster PRESET [--comm-groups F]] [--timeline PRED.pb]
// [--measured MEAS.pb] [--diff] [--critical-path] [--search TEXT] [--size WxH]`; nullopt and
// `error` on bad arguments.
std::optional<ScreenshotOptions> parse_screenshot_args(const QStringList& args, QString* error);
// Loads the inputs into a headless window of the fixed size and renders the view; a null image and
// `error` on failure.
QImage render_view(const ScreenshotOptions& options, QString* error);
// The window render_view grabs, shown (offscreen) and laid out, for tests to inspect; null on
// failure.
std::unique_ptr<MainWindow> prepare_view(const ScreenshotOptions& options, QString* error);

}  // namespace parallax::gui
