// parallax-gui end to end, offscreen: fill the planner form, click Plan, wait, select the best row
// and see its timeline; cancel a long plan; screenshots of each view on the bundled scenario (key
// pixels checked, PNGs saved under the build folder); the --screenshot command line; open and
// export.
#include "main_window.h"

#include "parallax/traces/io.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QProcess>
#include <QProgressBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QtTest>

#include <sys/wait.h>

#include <cerrno>

using namespace parallax;
using namespace parallax::gui;

namespace {

const QString kTiny = QStringLiteral(PARALLAX_SOURCE_DIR "/scenarios/tiny-gpt-cpu.pbtxt");
const QString kPredicted = QStringLiteral(PARALLAX_GUI_DATA_DIR "/tiny.predicted.pb");
const QString kMeasured = QStringLiteral(PARALLAX_GUI_DATA_DIR "/tiny.measured.pb");

int count_colour(const QImage& image, const QColor& colour, QRect area = {}) {
  if (area.isNull()) area = image.rect();
  int n = 0;
  const QRgb want = colour.rgb();
  for (int y = area.top(); y <= area.bottom(); ++y)
    for (int x = area.left(); x <= area.right(); ++x)
      n += (image.pixel(x, y) & 0xffffff) == (want & 0xffffff) ? 1 : 0;
  return n;
}

// First row (from the top) holding at least `min` pixels of `colour`, or -1.
int first_row_with(const QImage& image, const QColor& colour, int min) {
  for (int y = 0; y < image.height(); ++y)
    if (count_colour(image, colour, QRect(0, y, image.width(), 1)) >= min) return y;
  return -1;
}

void save(const QImage& image, const QString& name) {
  QVERIFY(image.save(QStringLiteral(PARALLAX_GUI_PNG_DIR "/") + name));
}

}  // namespace

class AppTest : public QObject {
  Q_OBJECT
 private slots:
  void plan_select_and_see_timeline() {
    MainWindow w(true);
    w.resize(1400, 900);
    w.show();
    PlannerView* p = w.planner();
    // The small case of the planner tests: 8 layers, 8 GPUs of a DGX A100, batch 32; 2 simulated.
    p->model_box()->setCurrentText(QStringLiteral("custom (fields below)"));
    for (const auto& [name, value] :
         {std::pair{"layers", 8}, {"hidden", 512}, {"heads", 8}, {"seq", 256}, {"vocab", 1024}}) {
      auto* box = p->findChild<QSpinBox*>(QString::fromLatin1(name));
      QVERIFY2(box, name);
      box->setValue(value);
    }
    p->cluster_box()->setCurrentText(QStringLiteral("dgx-a100-80g"));
    p->gpus_box()->setValue(8);
    p->batch_box()->setValue(32);
    p->top_box()->setValue(2);
    QSignalSpy finished(p, &PlannerView::plan_finished);
    QTest::mouseClick(p->plan_button(), Qt::LeftButton);
    QVERIFY(p->planning());
    QVERIFY(!p->plan_button()->isEnabled());
    QVERIFY(p->cancel_button()->isEnabled());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 240000);
    QVERIFY2(finished.at(0).at(0).toBool(), qPrintable(p->status()->text()));
    QCOMPARE(p->progress()->value(), 1000);
    QCOMPARE(p->model()->rowCount(), 2);
    // The table is sorted by step time: the best row is the first.
    const double best =
        p->proxy()->data(p->proxy()->index(0, PlanResultsModel::StepTime), kSortRole).toDouble();
    QVERIFY(best > 0);
    QVERIFY(
        best <=
        p->proxy()->data(p->proxy()->index(1, PlanResultsModel::StepTime), kSortRole).toDouble());
    QSignalSpy simulated(&w, &MainWindow::simulation_finished);
    p->results()->selectRow(0);
    QTRY_COMPARE_WITH_TIMEOUT(simulated.count(), 1, 120000);
    QVERIFY2(simulated.at(0).at(0).toBool(), qPrintable(w.last_error()));
    QCOMPARE(w.tabs()->currentIndex(), static_cast<int>(MainWindow::TimelineTab));
    const auto& shown = w.timeline()->scene().timeline(0);
    QVERIFY(shown);
    QVERIFY(shown->num_events() > 100);
    // It is the selected layout's simulation: the same step time as the table's.
    const int source_row = p->proxy()->mapToSource(p->proxy()->index(0, 0)).row();
    const std::string layout = p->model()->row(source_row).scenario.name();
    QCOMPARE(shown->proto().scenario_name(), layout);
    QVERIFY(std::abs((shown->end() - shown->start()) - best) < 1e-6 * best + 1e-9);
    // The canvas painted lanes: the GEMM colour is on screen.
    const QImage image = w.timeline()->canvas()->grab().toImage();
    QVERIFY(count_colour(image, kind_colour(GEMM)) > 500);
    save(w.grab().toImage(), QStringLiteral("e2e_timeline.png"));
  }

  void cancel_leaves_no_process() {
    MainWindow w(true);
    w.show();
    PlannerView* p = w.planner();
    // Quick to estimate, a few seconds per simulation: cancelled while simulating.
    p->model_box()->setCurrentText(QStringLiteral("gpt-1.7b"));
    QCOMPARE(p->model_box()->currentText(), QStringLiteral("gpt-1.7b"));
    p->cluster_box()->setCurrentText(QStringLiteral("dgx-a100-80g"));
    p->gpus_box()->setValue(64);
    p->batch_box()->setValue(512);
    p->top_box()->setValue(20);
    QSignalSpy finished(p, &PlannerView::plan_finished);
    QTest::mouseClick(p->plan_button(), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(
        p->progress()->format().startsWith(QStringLiteral("simulating")) || finished.count() > 0,
        240000);
    QCOMPARE(finished.count(), 0);
    QTest::mouseClick(p->cancel_button(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    QCOMPARE(finished.at(0).at(0).toBool(), false);
    QCOMPARE(p->status()->text(), QStringLiteral("Plan cancelled."));
    QVERIFY(p->plan_button()->isEnabled());
    // Every simulation child was reaped.
    errno = 0;
    QCOMPARE(::waitpid(-1, nullptr, WNOHANG), -1);
    QCOMPARE(errno, ECHILD);
  }

  void bad_screenshot_arguments() {
    QString error;
    QVERIFY(!parse_screenshot_args({"--screenshot", "x.png", "--view", "flames"}, &error));
    QVERIFY2(error.contains(
                 QStringLiteral("--view must be planner, timeline or breakdown (got \"flames\")")),
             qPrintable(error));
    QVERIFY(!parse_screenshot_args(
        {"--screenshot", "x.png", "--view", "timeline", "--size", "10x10"}, &error));
    QVERIFY(error.contains(QStringLiteral("--size")));
    QVERIFY(!parse_screenshot_args({"--view", "timeline"}, &error));
    QVERIFY(error.contains(QStringLiteral("--screenshot needs")));
    auto o = parse_screenshot_args(
        {"--screenshot", "x.png", "--view", "timeline", "--timeline", "/nonexistent.pb"}, &error);
    QVERIFY(o);
    QVERIFY(render_view(*o, &error).isNull());
    QVERIFY2(error.contains(QStringLiteral("/nonexistent.pb")), qPrintable(error));
  }

  void screenshot_planner() {
    QString error;
    auto o = parse_screenshot_args(
        {"--screenshot", "p.png", "--view", "planner", "--scenario", kTiny}, &error);
    QVERIFY2(o, qPrintable(error));
    auto w = prepare_view(*o, &error);
    QVERIFY2(w, qPrintable(error));
    QCOMPARE(w->size(), QSize(1600, 1000));
    QVERIFY(w->planner()->model()->rowCount() > 0);
    const QImage image = w->grab().toImage();
    save(image, QStringLiteral("planner.png"));
    QCOMPARE(image.size(), QSize(1600, 1000));
    // The first data row's text is drawn (dark pixels) inside the table.
    QTableView* table = w->planner()->results();
    const QRect cell = table->visualRect(table->model()->index(0, PlanResultsModel::StepTime));
    const QRect on_window(table->viewport()->mapTo(w.get(), cell.topLeft()), cell.size());
    int dark = 0;
    for (int y = on_window.top(); y <= on_window.bottom(); ++y)
      for (int x = on_window.left(); x <= on_window.right(); ++x)
        dark += qGray(image.pixel(x, y)) < 100;
    QVERIFY2(dark > 10, "the step time of the best layout should be written in the table");
  }

  void screenshot_timeline() {
    QString error;
    auto o = parse_screenshot_args({"--screenshot", "t.png", "--view", "timeline", "--timeline",
                                    kPredicted, "--measured", kMeasured},
                                   &error);
    QVERIFY2(o, qPrintable(error));
    const QImage image = render_view(*o, &error);
    QVERIFY2(!image.isNull(), qPrintable(error));
    save(image, QStringLiteral("timeline.png"));
    // Both sections, predicted above measured, and tasks in the kind colours.
    const int predicted = first_row_with(image, section_colour(false), 800);
    const int measured = first_row_with(image, section_colour(true), 800);
    QVERIFY(predicted > 0);
    QVERIFY(measured > predicted);
    QVERIFY(count_colour(image, kind_colour(GEMM),
                         QRect(0, predicted, image.width(), measured - predicted)) > 500);
    QVERIFY(count_colour(image, kind_colour(GEMM),
                         QRect(0, measured, image.width(), image.height() - measured)) > 500);
  }

  void screenshot_timeline_diff() {
    QString error;
    auto o =
        parse_screenshot_args({"--screenshot", "t.png", "--view", "timeline", "--timeline",
                               kPredicted, "--measured", kMeasured, "--diff", "--critical-path"},
                              &error);
    QVERIFY2(o, qPrintable(error));
    auto w = prepare_view(*o, &error);
    QVERIFY2(w, qPrintable(error));
    QVERIFY(w->timeline()->diff_box()->isChecked());
    QVERIFY(w->timeline()->scene().critical_tasks() > 0);
    const QImage image = w->grab().toImage();
    save(image, QStringLiteral("timeline_diff.png"));
    // Measured tasks are coloured by their error: no kind colour below the measured header.
    const int measured = first_row_with(image, section_colour(true), 800);
    QVERIFY(measured > 0);
    const QRect below(TimelineScene::kLabelWidth + 10, measured + TimelineScene::kSectionHeight,
                      image.width() - TimelineScene::kLabelWidth - 40,
                      image.height() - measured - TimelineScene::kSectionHeight - 30);
    QCOMPARE(count_colour(image, kind_colour(GEMM), below), 0);
  }

  void screenshot_breakdown() {
    QString error;
    auto o = parse_screenshot_args({"--screenshot", "b.png", "--view", "breakdown", "--scenario",
                                    kTiny, "--measured", kMeasured},
                                   &error);
    QVERIFY2(o, qPrintable(error));
    auto w = prepare_view(*o, &error);
    QVERIFY2(w, qPrintable(error));
    QCOMPARE(w->breakdown()->source_box()->count(), 2);  // the report, the measured timeline
    const QImage image = w->grab().toImage();
    save(image, QStringLiteral("breakdown.png"));
    QVERIFY(count_colour(image, breakdown_colour(0)) > 2000);      // compute bars
    QVERIFY(count_colour(image, QColor(0x76, 0xb7, 0xb2)) > 500);  // memory bars that fit
    w->breakdown()->source_box()->setCurrentIndex(1);
    save(w->grab().toImage(), QStringLiteral("breakdown_measured.png"));
  }

  void screenshot_command_line() {
    const QString out = QStringLiteral(PARALLAX_GUI_PNG_DIR "/cli_timeline.png");
    QFile::remove(out);
    QProcess process;
    process.start(QStringLiteral(PARALLAX_GUI_EXE), {"--screenshot", out, "--view", "timeline",
                                                     "--scenario", kTiny, "--measured", kMeasured});
    QVERIFY(process.waitForFinished(120000));
    QCOMPARE(process.exitCode(), 0);
    const QImage image(out);
    QCOMPARE(image.size(), QSize(1600, 1000));
    QProcess bad;
    bad.start(QStringLiteral(PARALLAX_GUI_EXE),
              {"--screenshot", out, "--view", "timeline", "--measured", kTiny});
    QVERIFY(bad.waitForFinished(60000));
    QCOMPARE(bad.exitCode(), 2);
    QVERIFY2(bad.readAllStandardError().contains("tiny-gpt-cpu.pbtxt"), "the error names the file");
  }

  void screenshot_chakra() {
    // The GPT dp2 x tp2 Chakra trace with its communicators, simulated on a DGX A100: one group of
    // lanes per rank (4), kernels in the kind colours, the critical path found in the imported
    // graph.
    const QString prefix =
        QStringLiteral(PARALLAX_SOURCE_DIR "/tests/data/chakra/gpt-stg-dp2-tp2/workload");
    const QString groups =
        QStringLiteral(PARALLAX_SOURCE_DIR "/tests/data/chakra/gpt-stg-dp2-tp2/comm_groups.json");
    QString error;
    auto o = parse_screenshot_args(
        {"--screenshot", "c.png", "--view", "timeline", "--chakra", prefix, "--cluster",
         "dgx-a100-80g", "--comm-groups", groups, "--critical-path"},
        &error);
    QVERIFY2(o, qPrintable(error));
    auto w = prepare_view(*o, &error);
    QVERIFY2(w, qPrintable(error));
    const TimelineScene& scene = w->timeline()->scene();
    QVERIFY(scene.critical_tasks() > 0);
    const QImage image = w->grab().toImage();
    save(image, QStringLiteral("chakra_timeline.png"));
    const int predicted = first_row_with(image, section_colour(false), 800);
    QVERIFY(predicted > 0);
    QVERIFY(count_colour(image, kind_colour(GEMM)) + count_colour(image, kind_colour(COLLECTIVE)) >
            500);
    // The breakdown of the simulated trace.
    w->tabs()->setCurrentIndex(MainWindow::BreakdownTab);
    QCoreApplication::processEvents();
    save(w->grab().toImage(), QStringLiteral("chakra_breakdown.png"));
    QVERIFY(count_colour(w->grab().toImage(), breakdown_colour(0)) > 500);

    // Arguments: --chakra needs a cluster; --cluster needs --chakra; not both predictions.
    QVERIFY(!parse_screenshot_args(
        {"--screenshot", "c.png", "--view", "timeline", "--chakra", prefix}, &error));
    QVERIFY2(error.contains(QStringLiteral("--chakra needs --cluster")), qPrintable(error));
    QVERIFY(!parse_screenshot_args(
        {"--screenshot", "c.png", "--view", "timeline", "--cluster", "dgx-h100"}, &error));
    QVERIFY(!parse_screenshot_args({"--screenshot", "c.png", "--view", "timeline", "--chakra",
                                    prefix, "--cluster", "dgx-h100", "--scenario", kTiny},
                                   &error));
    // A missing trace names the file it looked for.
    QVERIFY(!MainWindow(true).load_chakra_now(QStringLiteral("/nonexistent/trace"),
                                              QStringLiteral("dgx-h100"), {}, &error));
    QVERIFY2(error.contains(QStringLiteral("/nonexistent/trace.0.et")), qPrintable(error));
  }

  void open_chakra_file_simulates_in_the_background() {
    // File > Open of any rank's .et: imported and simulated off the UI thread (headless: on the
    // default cluster), then shown.
    MainWindow w(true);
    QSignalSpy finished(&w, &MainWindow::simulation_finished);
    w.open_file(QStringLiteral(PARALLAX_SOURCE_DIR
                               "/tests/data/chakra/fsdp-mlp-pytorch-2/chakra_trace.1.et"));
    QVERIFY(w.simulating());
    QVERIFY(finished.wait(120000));
    QCOMPARE(finished.at(0).at(0).toBool(), true);
    QCOMPARE(w.tabs()->currentIndex(), static_cast<int>(MainWindow::TimelineTab));
    QVERIFY2(
        w.statusBar()->currentMessage().contains(QStringLiteral("chakra_trace on dgx-a100-80g: "
                                                                "simulated step")),
        qPrintable(w.statusBar()->currentMessage()));
    QVERIFY(!w.timeline()->scene().rows().empty());
    // A name without a rank number is refused with the expected form.
    w.open_file(QStringLiteral("/tmp/trace.et"));
    QVERIFY2(w.last_error().contains(QStringLiteral("PREFIX.<rank>.et")),
             qPrintable(w.last_error()));
  }

  void open_and_export() {
    MainWindow w(true);
    w.resize(1200, 800);
    w.show();
    QString error;
    QVERIFY2(w.load_timeline_now(kMeasured, std::nullopt, &error), qPrintable(error));
    QVERIFY(!w.load_timeline_now(kMeasured, Timeline::PREDICTED, &error));
    QVERIFY2(error.contains(QStringLiteral("this is a measured timeline")), qPrintable(error));
    QVERIFY(w.load_timeline_now(kPredicted, std::nullopt, &error));
    QVERIFY(w.timeline()->scene().diff_available());
    const QString json = QStringLiteral(PARALLAX_GUI_PNG_DIR "/export.json");
    QVERIFY2(w.export_chrome(json, &error), qPrintable(error));
    QFile f(json);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray text = f.readAll();
    QVERIFY(text.contains("[predicted]"));
    QVERIFY(text.contains("[measured]"));
    w.tabs()->setCurrentIndex(MainWindow::TimelineTab);
    const QString png = QStringLiteral(PARALLAX_GUI_PNG_DIR "/export.png");
    QVERIFY2(w.export_png(png, &error), qPrintable(error));
    QVERIFY(!QImage(png).isNull());
    QVERIFY(!w.export_png(QStringLiteral("/nonexistent-dir/x.png"), &error));
    // Zoom history on the canvas.
    TimelineCanvas* c = w.timeline()->canvas();
    const double span = c->axis().span();
    c->zoom_to(c->axis().start(), c->axis().start() + span / 4);
    QVERIFY(std::abs(c->axis().span() - span / 4) < span * 1e-9);
    QTest::keyClick(c, Qt::Key_Backspace);
    QVERIFY(std::abs(c->axis().span() - span) < span * 1e-9);
    // Wheel zoom keeps the time under the cursor.
    const QPointF at(TimelineScene::kLabelWidth + 300, 100);
    const double t = c->axis().to_time(at.x());
    QWheelEvent wheel(at, c->mapToGlobal(at), QPoint(), QPoint(0, 240), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(c, &wheel);
    QVERIFY(c->axis().span() < span);
    QVERIFY(std::abs(c->axis().to_time(at.x()) - t) < span * 1e-9);
    // Shift-drag zooms to the dragged range (and can be undone).
    c->fit();
    const double full = c->axis().span();
    const int y_lanes = TimelineScene::kAxisHeight + 60;
    QTest::mousePress(c, Qt::LeftButton, Qt::ShiftModifier,
                      QPoint(TimelineScene::kLabelWidth + 100, y_lanes));
    QMouseEvent move(QEvent::MouseMove, QPointF(TimelineScene::kLabelWidth + 300, y_lanes),
                     c->mapToGlobal(QPointF(TimelineScene::kLabelWidth + 300, y_lanes)),
                     Qt::LeftButton, Qt::LeftButton, Qt::ShiftModifier);
    QApplication::sendEvent(c, &move);
    QTest::mouseRelease(c, Qt::LeftButton, Qt::ShiftModifier,
                        QPoint(TimelineScene::kLabelWidth + 300, y_lanes));
    QVERIFY2(std::abs(c->axis().span() - full * 200 / c->axis().width()) < full * 1e-6,
             qPrintable(QString::number(c->axis().span() / full)));
    c->back();
    QVERIFY(std::abs(c->axis().span() - full) < full * 1e-9);
    // A click on a group header in the label column collapses the group.
    const auto& rows = w.timeline()->scene().rows();
    const std::size_t before = rows.size();
    QCOMPARE(rows[1].kind, SceneRow::Kind::Group);
    QTest::mouseClick(c, Qt::LeftButton, Qt::NoModifier,
                      QPoint(20, TimelineScene::kAxisHeight + rows[1].y + 5));
    QVERIFY(w.timeline()->scene().rows().size() < before);
    QVERIFY(w.timeline()->scene().rows()[1].collapsed);
    // Search.
    w.timeline()->search_box()->setText(QStringLiteral("fc1"));
    emit w.timeline()->search_box()->returnPressed();
    QVERIFY(w.timeline()->search_model()->rowCount() > 0);
  }
};

QTEST_MAIN(AppTest)
#include "app_test.moc"
