#include "main_window.h"

#include "parallax/cli/options.h"

#include "parallax/interop/chakra.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QtConcurrent/QtConcurrentRun>

namespace parallax::gui {

namespace {

struct SimOutcome {
  std::shared_ptr<TimelineData> timeline;
  std::optional<Report> report;
  QString error;
};

// Builds the graph and simulates it in a forked child (SimGrid runs once per process), then indexes
// the timeline; safe in a worker thread.
SimOutcome simulate_scenario(const Scenario& scenario) {
  SimOutcome out;
  try {
    sim::SimulationOptions options;
    options.name_events = true;
    sim::SimulationResult result =
        sim::simulate_in_subprocess(model::build_job_graph(scenario), options);
    out.report = std::move(result.report);
    out.timeline = std::make_shared<TimelineData>(std::move(result.timeline));
  } catch (const std::exception& e) {
    out.error = QString::fromStdString(e.what());
  }
  return out;
}

// Imports a Chakra trace and simulates it in a forked child; the timeline carries the imported
// graph. Safe in a worker thread.
SimOutcome simulate_chakra(const QString& prefix, const QString& cluster, const QString& groups) {
  SimOutcome out;
  try {
    interop::ChakraImportOptions import_options;
    import_options.comm_groups = groups.toStdString();
    const interop::ChakraImport imported = interop::import_chakra(
        prefix.toStdString(), model::resolve_cluster(cluster.toStdString()), import_options);
    sim::SimulationOptions options;
    options.name_events = true;
    sim::SimulationResult result = sim::simulate_in_subprocess(imported.graph, options);
    for (const auto& w : imported.warnings) result.report.add_notes(w);
    out.report = std::move(result.report);
    out.timeline = std::make_shared<TimelineData>(std::move(result.timeline));
  } catch (const std::exception& e) {
    out.error = QString::fromStdString(e.what());
  }
  return out;
}

bool is_chakra_file(const QString& path) {
  return path.endsWith(QStringLiteral(".et"));
}

bool is_scenario_file(const QString& path) {
  return path.endsWith(QStringLiteral(".pbtxt")) || path.endsWith(QStringLiteral(".json")) ||
         path.endsWith(QStringLiteral(".txtpb"));
}

}  // namespace

MainWindow::MainWindow(bool headless, QWidget* parent) : QMainWindow(parent), headless_(headless) {
  setWindowTitle(QStringLiteral("parallax"));
  tabs_ = new QTabWidget;
  planner_ = new PlannerView;
  timeline_ = new TimelineView;
  breakdown_ = new BreakdownView;
  tabs_->addTab(planner_, QStringLiteral("Planner"));
  tabs_->addTab(timeline_, QStringLiteral("Timeline"));
  tabs_->addTab(breakdown_, QStringLiteral("Breakdown"));
  setCentralWidget(tabs_);
  build_menus();
  connect(planner_, &PlannerView::row_chosen, this,
          [this](const Scenario& scenario, const QString& layout) {
            simulate_async(scenario, layout);
          });
  statusBar()->showMessage(
      QStringLiteral("Plan a layout, or open a scenario or timeline (File menu)."));
  resize(1400, 900);
  if (!headless_) {
    QSettings settings;
    restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray());
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    tabs_->setCurrentIndex(settings.value(QStringLiteral("window/tab"), 0).toInt());
    if (auto* splitter = timeline_->findChild<QSplitter*>(QStringLiteral("timeline_splitter")))
      splitter->restoreState(
          settings.value(QStringLiteral("window/timeline_splitter")).toByteArray());
  }
  rebuild_recent();
}

void MainWindow::build_menus() {
  QMenu* file = menuBar()->addMenu(QStringLiteral("&File"));
  file->addAction(QStringLiteral("Open &scenario\u2026"), QKeySequence::Open, this, [this] {
    const QString path =
        QFileDialog::getOpenFileName(this, QStringLiteral("Open scenario"), {},
                                     QStringLiteral("Scenarios (*.pbtxt *.json);;All files (*)"));
    if (!path.isEmpty()) open_file(path);
  });
  const auto open_timeline = [this](Timeline::Source source) {
    const QString path = QFileDialog::getOpenFileName(
        this,
        source == Timeline::PREDICTED ? QStringLiteral("Open predicted timeline")
                                      : QStringLiteral("Open measured timeline"),
        {}, QStringLiteral("Timelines (*.pb);;All files (*)"));
    if (path.isEmpty()) return;
    QString error;
    if (load_timeline_now(path, source, &error))
      add_recent(path);
    else
      report_error(error);
  };
  file->addAction(QStringLiteral("Open &predicted timeline\u2026"), this,
                  [=] { open_timeline(Timeline::PREDICTED); });
  file->addAction(QStringLiteral("Open &measured timeline\u2026"), this,
                  [=] { open_timeline(Timeline::MEASURED); });
  file->addAction(QStringLiteral("Open &Chakra trace\u2026"), this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, QStringLiteral("Open Chakra trace (any rank's file)"), {},
        QStringLiteral("Chakra execution traces (*.et);;All files (*)"));
    if (!path.isEmpty()) open_file(path);
  });
  recent_menu_ = file->addMenu(QStringLiteral("Open &recent"));
  file->addSeparator();
  file->addAction(QStringLiteral("Export view as &PNG\u2026"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, QStringLiteral("Export view"),
                                                      QStringLiteral("parallax.png"),
                                                      QStringLiteral("PNG images (*.png)"));
    QString error;
    if (!path.isEmpty() && !export_png(path, &error)) report_error(error);
  });
  file->addAction(QStringLiteral("Export timelines as &Chrome JSON\u2026"), this, [this] {
    const QString path = QFileDialog::getSaveFileName(
        this, QStringLiteral("Export timelines"), QStringLiteral("timelines.json"),
        QStringLiteral("Chrome Trace Event JSON (*.json)"));
    QString error;
    if (!path.isEmpty() && !export_chrome(path, &error)) report_error(error);
  });
  file->addSeparator();
  file->addAction(QStringLiteral("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  QMenu* view = menuBar()->addMenu(QStringLiteral("&View"));
  view->addAction(QStringLiteral("&Planner"), QKeySequence(Qt::CTRL | Qt::Key_1), this,
                  [this] { tabs_->setCurrentIndex(PlannerTab); });
  view->addAction(QStringLiteral("&Timeline"), QKeySequence(Qt::CTRL | Qt::Key_2), this,
                  [this] { tabs_->setCurrentIndex(TimelineTab); });
  view->addAction(QStringLiteral("&Breakdown"), QKeySequence(Qt::CTRL | Qt::Key_3), this,
                  [this] { tabs_->setCurrentIndex(BreakdownTab); });
}

void MainWindow::report_error(const QString& message) {
  last_error_ = message;
  statusBar()->showMessage(message);
  if (!headless_) QMessageBox::warning(this, QStringLiteral("parallax"), message);
}

namespace {

QString chakra_prefix(const QString& path) {
  static const QRegularExpression rank_file(QStringLiteral("^(.+)\\.\\d+\\.et$"));
  const QRegularExpressionMatch m = rank_file.match(path);
  return m.hasMatch() ? m.captured(1) : QString();
}

QStringList cluster_presets() {
  QStringList names;
  const QDir dir(QString::fromStdString((model::data_dir() / "clusters").string()));
  for (const QFileInfo& f : dir.entryInfoList({QStringLiteral("*.pbtxt")}, QDir::Files, QDir::Name))
    names << f.completeBaseName();
  return names;
}

}  // namespace

void MainWindow::open_file(const QString& path) {
  if (is_chakra_file(path)) {
    const QString prefix = chakra_prefix(path);
    if (prefix.isEmpty()) {
      report_error(path + QStringLiteral(": a Chakra trace is one file per rank, PREFIX.<rank>.et "
                                         "(e.g. trace.0.et); this name has no rank number"));
      return;
    }
    // Which cluster to simulate it on: asked each time, the last choice offered first.
    QString cluster = QStringLiteral("dgx-a100-80g");
    if (!headless_) {
      QSettings settings;
      const QString last = settings.value(QStringLiteral("chakra/cluster"), cluster).toString();
      const QStringList presets = cluster_presets();
      bool ok = false;
      cluster = QInputDialog::getItem(
          this, QStringLiteral("Simulate a Chakra trace"),
          QStringLiteral("Cluster to simulate %1 on:").arg(QFileInfo(prefix).fileName()), presets,
          std::max<int>(0, static_cast<int>(presets.indexOf(last))), false, &ok);
      if (!ok) return;
      settings.setValue(QStringLiteral("chakra/cluster"), cluster);
    }
    // Communicators: PREFIX.comm_groups.json when it exists (as the CLI), else the user picks a
    // comm-groups JSON or runs every collective on all ranks.
    QString groups;
    if (!headless_ && !QFileInfo::exists(prefix + QStringLiteral(".comm_groups.json"))) {
      QMessageBox ask(QMessageBox::Question, QStringLiteral("Communicator groups"),
                      QStringLiteral("There is no %1.comm_groups.json. Which ranks does each "
                                     "collective run on?")
                          .arg(QFileInfo(prefix).fileName()),
                      QMessageBox::NoButton, this);
      QPushButton* choose =
          ask.addButton(QStringLiteral("Choose a comm-groups JSON\u2026"), QMessageBox::AcceptRole);
      ask.addButton(QStringLiteral("All ranks"), QMessageBox::RejectRole);
      ask.exec();
      if (ask.clickedButton() == choose) {
        groups = QFileDialog::getOpenFileName(
            this, QStringLiteral("Comm-groups JSON ({\"<pg_name>\": [ranks]})"),
            QFileInfo(prefix).absolutePath(), QStringLiteral("JSON (*.json);;All files (*)"));
        if (groups.isEmpty()) return;
      }
    }
    add_recent(path);
    simulate_chakra_async(prefix, cluster, groups);
    return;
  }
  if (is_scenario_file(path)) {
    try {
      const Scenario scenario = model::load_scenario(path.toStdString());
      planner_->set_from_scenario(scenario);
      add_recent(path);
      simulate_async(scenario, QFileInfo(path).fileName());
    } catch (const std::exception& e) {
      report_error(QString::fromStdString(e.what()));
    }
    return;
  }
  QString error;
  if (load_timeline_now(path, std::nullopt, &error))
    add_recent(path);
  else
    report_error(error);
}

bool MainWindow::load_scenario_now(const QString& path, QString* error) {
  try {
    const Scenario scenario = model::load_scenario(path.toStdString());
    planner_->set_from_scenario(scenario);
    SimOutcome out = simulate_scenario(scenario);
    if (!out.timeline) {
      if (error) *error = path + QStringLiteral(": simulation failed: ") + out.error;
      return false;
    }
    set_predicted(std::move(out.timeline), std::move(out.report));
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

bool MainWindow::load_chakra_now(const QString& prefix, const QString& cluster,
                                 const QString& groups, QString* error) {
  SimOutcome out = simulate_chakra(prefix, cluster, groups);
  if (!out.timeline) {
    if (error) *error = prefix + QStringLiteral(": ") + out.error;
    return false;
  }
  set_predicted(std::move(out.timeline), std::move(out.report));
  return true;
}

void MainWindow::simulate_chakra_async(const QString& prefix, const QString& cluster,
                                       const QString& groups) {
  const QString what = QFileInfo(prefix).fileName() + QStringLiteral(" on ") + cluster;
  run_simulation_async(
      what, [prefix, cluster, groups] { return simulate_chakra(prefix, cluster, groups); });
}

bool MainWindow::load_timeline_now(const QString& path, std::optional<Timeline::Source> expect,
                                   QString* error) {
  try {
    Timeline timeline;
    traces::read_binary(path.toStdString(), timeline);
    if (timeline.events_size() == 0)
      throw InputError(path.toStdString() +
                       ": no events: not a parallax.Timeline (write one with `parallax simulate S "
                       "--timeline F.pb` "
                       "or `parallax exec S -o F.pb`)");
    if (expect && timeline.source() != *expect)
      throw InputError(path.toStdString() + ": this is a " +
                       (timeline.source() == Timeline::MEASURED ? "measured" : "predicted") +
                       " timeline; open it as " +
                       (timeline.source() == Timeline::MEASURED ? "the measured (--measured)"
                                                                : "the predicted (--timeline)") +
                       " one");
    auto data = std::make_shared<TimelineData>(std::move(timeline), path);
    if (data->measured())
      set_measured(std::move(data));
    else
      set_predicted(std::move(data), std::nullopt);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

void MainWindow::simulate_async(const Scenario& scenario, const QString& what) {
  run_simulation_async(what, [scenario] { return simulate_scenario(scenario); });
}

template <typename Work>
void MainWindow::run_simulation_async(const QString& what, Work work) {
  simulating_ = true;
  statusBar()->showMessage(QStringLiteral("simulating %1\u2026").arg(what));
  auto* watcher = new QFutureWatcher<SimOutcome>(this);
  connect(watcher, &QFutureWatcher<SimOutcome>::finished, this, [this, watcher, what] {
    SimOutcome out = watcher->result();
    watcher->deleteLater();
    simulating_ = false;
    if (!out.timeline) {
      report_error(what + QStringLiteral(": simulation failed: ") + out.error);
      emit simulation_finished(false);
      return;
    }
    statusBar()->showMessage(QStringLiteral("%1: simulated step %2")
                                 .arg(what, format_duration(out.report->step_time_s())));
    set_predicted(std::move(out.timeline), std::move(out.report));
    tabs_->setCurrentIndex(TimelineTab);
    emit simulation_finished(true);
  });
  watcher->setFuture(QtConcurrent::run(std::move(work)));
}

void MainWindow::set_predicted(std::shared_ptr<TimelineData> predicted,
                               std::optional<Report> report) {
  predicted_ = std::move(predicted);
  report_ = std::move(report);
  refresh();
}

void MainWindow::set_measured(std::shared_ptr<TimelineData> measured) {
  measured_ = std::move(measured);
  refresh();
}

void MainWindow::refresh() {
  timeline_->set_timelines(predicted_, measured_);
  std::vector<std::pair<QString, Breakdown>> sources;
  if (report_)
    sources.emplace_back(QStringLiteral("predicted: the simulation's report"),
                         breakdown_from_report(*report_));
  if (predicted_ && !report_)
    sources.emplace_back(QStringLiteral("predicted timeline"),
                         breakdown_from_timeline(*predicted_));
  if (measured_)
    sources.emplace_back(QStringLiteral("measured timeline"),
                         breakdown_from_timeline(*measured_));
  breakdown_->set_sources(std::move(sources));
  QString title = QStringLiteral("parallax");
  if (predicted_)
    title +=
        QStringLiteral(" \u2014 ") + QString::fromStdString(predicted_->proto().scenario_name());
  setWindowTitle(title);
}

bool MainWindow::export_png(const QString& path, QString* error) {
  const QImage image = tabs_->currentWidget()->grab().toImage();
  if (image.save(path, "PNG")) return true;
  if (error) *error = path + QStringLiteral(": cannot write the PNG (is the directory writable?)");
  return false;
}

bool MainWindow::export_chrome(const QString& path, QString* error) {
  if (!predicted_ && !measured_) {
    if (error) *error = QStringLiteral("no timeline to export: open or simulate one first");
    return false;
  }
  try {
    traces::write_chrome_trace(path.toStdString(), {predicted_ ? &predicted_->proto() : nullptr,
                                                    measured_ ? &measured_->proto() : nullptr});
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

void MainWindow::add_recent(const QString& path) {
  if (headless_) return;
  QSettings settings;
  QStringList recent = settings.value(QStringLiteral("recent")).toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  recent.removeAll(absolute);
  recent.prepend(absolute);
  while (recent.size() > 10) recent.removeLast();
  settings.setValue(QStringLiteral("recent"), recent);
  rebuild_recent();
}

void MainWindow::rebuild_recent() {
  recent_menu_->clear();
  const QStringList recent =
      headless_ ? QStringList() : QSettings().value(QStringLiteral("recent")).toStringList();
  for (const QString& path : recent)
    recent_menu_->addAction(path, this, [this, path] { open_file(path); });
  recent_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::closeEvent(QCloseEvent* e) {
  if (!headless_) {
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    settings.setValue(QStringLiteral("window/tab"), tabs_->currentIndex());
    if (auto* splitter = timeline_->findChild<QSplitter*>(QStringLiteral("timeline_splitter")))
      settings.setValue(QStringLiteral("window/timeline_splitter"), splitter->saveState());
  }
  if (planner_->planning()) planner_->cancel_plan();
  QMainWindow::closeEvent(e);
}

// ---------------------------------------------------------------------------------------------
// Headless screenshots
// ---------------------------------------------------------------------------------------------

const char* usage() {
  return "usage: parallax-gui [SCENARIO.pbtxt | TIMELINE.pb | TRACE.<rank>.et ...]\n"
         "       parallax-gui --screenshot FILE.png --view planner|timeline|breakdown\n"
         "           [--scenario S | --chakra PREFIX --cluster PRESET [--comm-groups F]]\n"
         "           [--timeline PRED.pb] [--measured MEAS.pb] [--diff] [--critical-path]\n"
         "           [--search TEXT] [--size WxH]\n"
         "A Chakra trace (one PREFIX.<rank>.et per rank) is imported and simulated on the\n"
         "cluster you choose; its timelines (parallax simulate --chakra --timeline, parallax\n"
         "exec --chakra -o) carry the imported graph and open like any other.\n"
         "The screenshot mode renders the view offscreen at a fixed size (1600x1000) and exits.\n";
}

std::optional<ScreenshotOptions> parse_screenshot_args(const QStringList& args, QString* error) {
  ScreenshotOptions o;
  const auto fail = [&](const QString& message) {
    if (error) *error = message;
    return std::nullopt;
  };
  std::string output, view, scenario, timeline, measured, chakra, cluster, comm_groups, search;
  const auto size = [&](const std::string& text) {
    const QString s = QString::fromStdString(text);
    const QStringList wh = s.split(QChar('x'));
    bool w_ok = false, h_ok = false;
    const int w = wh.value(0).toInt(&w_ok), h = wh.value(1).toInt(&h_ok);
    if (wh.size() != 2 || !w_ok || !h_ok || w < 200 || h < 200 || w > 8000 || h > 8000)
      throw InputError("--size needs WxH between 200x200 and 8000x8000, e.g. --size 1600x1000 (got \"" +
                       text + "\")");
    o.size = QSize(w, h);
  };
  std::vector<std::string> argv;
  for (const QString& a : args) argv.push_back(a.toStdString());
  try {
    if (!cli::Options("parallax-gui", usage())
             .output("--screenshot", output, "the PNG file to write, e.g. --screenshot view.png")
             .text("--view", view, "planner, timeline or breakdown")
             .text("--scenario", scenario, "a scenario file, e.g. --scenario tiny.pbtxt")
             .text("--timeline", timeline, "a predicted timeline, e.g. --timeline predicted.pb")
             .text("--measured", measured, "a measured timeline, e.g. --measured measured.pb")
             .text("--chakra", chakra, "a trace prefix, e.g. --chakra traces/workload")
             .text("--cluster", cluster, "a cluster preset, e.g. --cluster dgx-a100-80g")
             .text("--comm-groups", comm_groups, "a file name, e.g. --comm-groups groups.json")
             .text("--search", search, "the text to search for")
             .flag("--diff", o.diff)
             .flag("--critical-path", o.critical)
             .value("--size", size, "WxH, e.g. --size 1600x1000")
             .parse(argv))
      return fail(QStringLiteral("--help given with --screenshot; see the usage above"));
    cli::check_files({{"--scenario", scenario},
                      {"--timeline", timeline},
                      {"--measured", measured},
                      {"--cluster", cluster},
                      {"--comm-groups", comm_groups}},
                     {{"--screenshot", output}});
  } catch (const InputError& e) {
    return fail(QString::fromStdString(e.what()));
  }
  o.output = QString::fromStdString(output);
  o.view = QString::fromStdString(view);
  o.scenario = QString::fromStdString(scenario);
  o.timeline = QString::fromStdString(timeline);
  o.measured = QString::fromStdString(measured);
  o.chakra = QString::fromStdString(chakra);
  o.cluster = QString::fromStdString(cluster);
  o.comm_groups = QString::fromStdString(comm_groups);
  o.search = QString::fromStdString(search);
  if (o.output.isEmpty()) return fail(QStringLiteral("--screenshot needs the PNG file to write"));
  if (o.view != QLatin1String("planner") && o.view != QLatin1String("timeline") &&
      o.view != QLatin1String("breakdown"))
    return fail(
        QStringLiteral("--view must be planner, timeline or breakdown (got \"%1\")").arg(o.view));
  if (!o.chakra.isEmpty() && !o.scenario.isEmpty())
    return fail(QStringLiteral("--chakra and --scenario both give the prediction; give one"));
  if (!o.chakra.isEmpty() && o.cluster.isEmpty())
    return fail(QStringLiteral(
        "--chakra needs --cluster PRESET (e.g. dgx-a100-80g) to simulate the trace on"));
  if (o.chakra.isEmpty() && (!o.cluster.isEmpty() || !o.comm_groups.isEmpty()))
    return fail(QStringLiteral("--cluster and --comm-groups are for --chakra PREFIX"));
  if (o.diff && o.measured.isEmpty())
    return fail(QStringLiteral(
        "--diff needs --measured MEAS.pb (and a prediction: --timeline or --scenario)"));
  return o;
}

QImage render_view(const ScreenshotOptions& o, QString* error) {
  const auto window = prepare_view(o, error);
  return window ? window->grab().toImage() : QImage();
}

std::unique_ptr<MainWindow> prepare_view(const ScreenshotOptions& o, QString* error) {
  auto window = std::make_unique<MainWindow>(true);
  MainWindow& w = *window;
  w.resize(o.size);
  if (!o.scenario.isEmpty() && !w.load_scenario_now(o.scenario, error)) return nullptr;
  if (!o.chakra.isEmpty() && !w.load_chakra_now(o.chakra, o.cluster, o.comm_groups, error))
    return nullptr;
  if (!o.timeline.isEmpty() && !w.load_timeline_now(o.timeline, Timeline::PREDICTED, error))
    return nullptr;
  if (!o.measured.isEmpty() && !w.load_timeline_now(o.measured, Timeline::MEASURED, error))
    return nullptr;
  const int tab = o.view == QLatin1String("planner")    ? MainWindow::PlannerTab
                  : o.view == QLatin1String("timeline") ? MainWindow::TimelineTab
                                                        : MainWindow::BreakdownTab;
  w.tabs()->setCurrentIndex(tab);
  w.show();
  QCoreApplication::processEvents();
  if (tab == MainWindow::PlannerTab && !o.scenario.isEmpty() && !w.planner()->plan_now(error))
    return nullptr;
  if (tab == MainWindow::TimelineTab) {
    if (o.diff) {
      if (!w.timeline()->scene().diff_available()) {
        if (error) *error = QStringLiteral("--diff: ") + w.timeline()->scene().pair_note();
        return nullptr;
      }
      w.timeline()->diff_box()->setChecked(true);
    }
    if (o.critical) w.timeline()->critical_box()->setChecked(true);
    if (!o.search.isEmpty()) {
      w.timeline()->search_box()->setText(o.search);
      emit w.timeline()->search_box()->returnPressed();
    }
  }
  QCoreApplication::processEvents();
  return window;
}

}  // namespace parallax::gui
