// gui_core without windows: the time<->pixel mapping under zoom, ticks, zoom history, timelines
// indexed into lanes, the scene's rows and collapsing, painting (key pixels, one-pixel aggregation
// of a million tasks), hit testing, the critical path, the diff join, the breakdown, and the item
// models under QAbstractItemModelTester. Run under QT_QPA_PLATFORM=offscreen.
#include "parallax/analysis/compare.h"
#include "parallax/gui/breakdown.h"
#include "parallax/gui/item_models.h"
#include "parallax/gui/time_axis.h"
#include "parallax/gui/timeline_data.h"
#include "parallax/gui/timeline_scene.h"
#include "parallax/interop/chakra.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/lanes.h"

#include <QAbstractItemModelTester>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPainter>
#include <QSortFilterProxyModel>
#include <QtTest>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

using namespace parallax;
using namespace parallax::gui;

namespace {

// The predicted timeline of the bundled tiny scenario (dp 2 x pp 2), simulated once per test run.
const Timeline& tiny_predicted() {
  static const Timeline timeline = [] {
    const Scenario sc =
        model::load_scenario(std::string(PARALLAX_SOURCE_DIR) + "/scenarios/tiny-gpt-cpu.pbtxt");
    sim::SimulationOptions options;
    options.name_events = true;
    return sim::simulate_in_subprocess(model::build_job_graph(sc), options).timeline;
  }();
  return timeline;
}

// A measured timeline derived from a prediction: every task takes `factor` times as long, starting
// where it was predicted to (enough for the join, which looks at durations).
Timeline scaled_measured(const Timeline& predicted, double factor) {
  Timeline m = predicted;
  m.set_source(Timeline::MEASURED);
  m.set_backend("host");
  for (auto& e : *m.mutable_events()) e.set_end_s(e.start_s() + factor * (e.end_s() - e.start_s()));
  return m;
}

// The lane table (parallax/traces/lanes.h) drawn two ways: every span's sub-lane is the lane its task
// gets from the table (the one its event recorded), the Chrome export puts the task on thread tid =
// that lane, and both name it alike. Returns the lanes seen.
std::set<LaneId> check_lanes_agree_with_the_table_and_chrome(const Timeline& timeline,
                                                          const TimelineData& data) {
  std::map<std::uint32_t, int> chrome_tid;  // task id -> tid
  std::map<int, QString> chrome_name;       // tid -> thread name
  const QJsonDocument doc =
      QJsonDocument::fromJson(QByteArray::fromStdString(traces::to_chrome_trace(timeline)));
  for (const QJsonValue& v : doc.object().value(QStringLiteral("traceEvents")).toArray()) {
    const QJsonObject e = v.toObject();
    const int tid = e.value(QStringLiteral("tid")).toInt();
    if (e.value(QStringLiteral("ph")).toString() == QStringLiteral("X"))
      chrome_tid[static_cast<std::uint32_t>(
          e.value(QStringLiteral("args")).toObject().value(QStringLiteral("task_id")).toInt())] = tid;
    if (e.value(QStringLiteral("name")).toString() == QStringLiteral("thread_name"))
      chrome_name[tid] = e.value(QStringLiteral("args")).toObject().value(QStringLiteral("name")).toString();
  }
  std::set<LaneId> seen;
  for (const Lane& lane : data.lanes())
    for (const Span& s : lane.spans) {
      const model::Task& t = data.graph()->tasks()[s.task_id];
      const TimelineEvent& e = timeline.events(static_cast<int>(s.event));
      const parallax::LaneId expected = traces::lane_of(t.stream, t.kind, t.on_host);
      if (!e.has_lane() || e.lane() != expected || lane.sub_lane != expected ||
          chrome_tid.at(s.task_id) != expected)
        qFatal("task %u: recorded lane %d, table %d, GUI %d, Chrome tid %d", s.task_id,
               e.has_lane() ? static_cast<int>(e.lane()) : -1, static_cast<int>(expected),
               static_cast<int>(lane.sub_lane), chrome_tid.at(s.task_id));
      if (chrome_name.at(expected) != sub_lane_name(expected))
        qFatal("lane %d: Chrome names it %s, the GUI %s", static_cast<int>(expected),
               qPrintable(chrome_name.at(expected)), qPrintable(sub_lane_name(expected)));
      seen.insert(expected);
    }
  return seen;
}

int count_colour(const QImage& image, const QColor& colour, QRect area = {}) {
  if (area.isNull()) area = image.rect();
  int n = 0;
  const QRgb want = colour.rgb();
  for (int y = area.top(); y <= area.bottom(); ++y)
    for (int x = area.left(); x <= area.right(); ++x) n += image.pixel(x, y) == want ? 1 : 0;
  return n;
}

}  // namespace

class CoreTest : public QObject {
  Q_OBJECT
 private slots:
  // ---- time <-> pixel ----
  void time_to_pixel_data() {
    QTest::addColumn<double>("start");
    QTest::addColumn<double>("end");
    QTest::addColumn<double>("left");
    QTest::addColumn<double>("width");
    QTest::addColumn<double>("anchor");
    QTest::addColumn<double>("factor");
    QTest::addColumn<double>("time");
    QTest::addColumn<double>("pixel");  // where `time` lands after the zoom (by hand)
    // [0, 1] s on 1000 px from x 200; zoom x2 at the left edge: [0, 0.5]; t 0.25 -> 200 + 500.
    QTest::newRow("zoom in at left edge")
        << 0.0 << 1.0 << 200.0 << 1000.0 << 200.0 << 2.0 << 0.25 << 700.0;
    // Zoom x4 at the middle (x 700, t 0.5): [0.375, 0.625]; t 0.5 stays at 700, 0.4375 -> 450.
    QTest::newRow("zoom in at middle")
        << 0.0 << 1.0 << 200.0 << 1000.0 << 700.0 << 4.0 << 0.4375 << 450.0;
    // Zoom out x0.5 at the right edge (x 1200, t 1): [-1, 1]; t 0 -> 200 + 500.
    QTest::newRow("zoom out at right edge")
        << 0.0 << 1.0 << 200.0 << 1000.0 << 1200.0 << 0.5 << 0.0 << 700.0;
    // Microseconds far from zero: [10, 10 + 1e-6] on 100 px, zoom x10 at x 50: [10 + 4.5e-7, 10
    // + 5.5e-7].
    QTest::newRow("deep zoom far from zero")
        << 10.0 << 10.000001 << 0.0 << 100.0 << 50.0 << 10.0 << 10.0000005 << 50.0;
    // A zoom past the 1 ns floor stops at 1 ns: [0, 1e-8] at x 0 by 1000 -> [0, 1e-9]; t 5e-10 ->
    // 250 of 500.
    QTest::newRow("minimum span") << 0.0 << 1e-8 << 0.0 << 500.0 << 0.0 << 1000.0 << 5e-10 << 250.0;
  }
  void time_to_pixel() {
    QFETCH(double, start);
    QFETCH(double, end);
    QFETCH(double, left);
    QFETCH(double, width);
    QFETCH(double, anchor);
    QFETCH(double, factor);
    QFETCH(double, time);
    QFETCH(double, pixel);
    TimeAxis axis(start, end, left, width);
    QCOMPARE(axis.to_pixel(start), left);
    QVERIFY(std::abs(axis.to_pixel(end) - (left + width)) < 1e-6);
    const double anchor_time = axis.to_time(anchor);
    axis.zoom_at(anchor, factor);
    // The time under the anchor did not move.
    QVERIFY2(std::abs(axis.to_time(anchor) - anchor_time) <=
                 1e-12 * std::max(1.0, std::abs(anchor_time)),
             qPrintable(QString::number(axis.to_time(anchor) - anchor_time)));
    QVERIFY2(std::abs(axis.to_pixel(time) - pixel) < 1e-3,
             qPrintable(QString::number(axis.to_pixel(time))));
    // Round trip.
    for (double x : {left, left + width / 3, left + width})
      QVERIFY(std::abs(axis.to_pixel(axis.to_time(x)) - x) < 1e-6);
  }

  void pan_and_clamp() {
    TimeAxis axis(0, 1, 0, 100);
    axis.pan_pixels(10);  // dragging right by 10 px shows 0.1 s earlier
    QVERIFY(std::abs(axis.start() + 0.1) < 1e-12);
    QVERIFY(std::abs(axis.end() - 0.9) < 1e-12);
    axis.clamp_to(0, 2);
    QVERIFY(std::abs(axis.start()) < 1e-12);
    QVERIFY(std::abs(axis.span() - 1) < 1e-12);
  }

  void ticks_data() {
    QTest::addColumn<double>("start");
    QTest::addColumn<double>("end");
    QTest::addColumn<double>("step");
    QTest::addColumn<QString>("first");
    QTest::addColumn<QString>("second");
    // 1 s over 1000 px, ticks >= 90 px apart: 0.09 s at least -> 0.1 s.
    QTest::newRow("seconds") << 0.0 << 1.0 << 0.1 << "0.0 s"
                             << "0.1 s";
    // 12 ms over 1000 px: >= 1.08 ms -> 2 ms, in ms.
    QTest::newRow("milliseconds") << 0.0 << 0.012 << 0.002 << "0 ms"
                                  << "2 ms";
    // 0.3 ms from 1.2345 ms: >= 27 us -> 50 us, labels in us.
    QTest::newRow("microseconds") << 0.0012345 << 0.0015345 << 5e-5 << "1250 \u00b5s"
                                  << "1300 \u00b5s";
    // 1 us at 100 s: relative labels after an absolute first tick.
    QTest::newRow("deep zoom") << 100.0 << 100.000001 << 1e-7 << "100.0000000 s"
                               << "+0.1 \u00b5s";
    // 40 s: >= 3.6 s -> 5 s.
    QTest::newRow("long step") << 0.0 << 40.0 << 5.0 << "0 s"
                               << "5 s";
  }
  void ticks() {
    QFETCH(double, start);
    QFETCH(double, end);
    QFETCH(double, step);
    QFETCH(QString, first);
    QFETCH(QString, second);
    const TimeAxis axis(start, end, 0, 1000);
    QVERIFY(std::abs(tick_step(axis.span(), 1000, 90) - step) < step * 1e-9);
    const auto t = axis_ticks(axis, 90);
    QVERIFY(t.size() >= 2);
    QCOMPARE(t[0].label, first);
    QCOMPARE(t[1].label, second);
    for (std::size_t i = 1; i < t.size(); ++i) QVERIFY(t[i].x - t[i - 1].x >= 90 - 1e-6);
    QVERIFY(t.front().time_s >= start - step * 1e-9 && t.back().time_s <= end + step * 1e-9);
  }

  void zoom_history() {
    ZoomStack stack;
    QVERIFY(stack.empty());
    stack.push(0, 1);
    stack.push(0.25, 0.5);
    QCOMPARE(stack.size(), std::size_t{2});
    QCOMPARE(stack.pop(), std::make_pair(0.25, 0.5));
    QCOMPARE(stack.pop(), std::make_pair(0.0, 1.0));
    QVERIFY(stack.empty());
  }

  void format_durations() {
    QCOMPARE(format_duration(1.5e-3), QStringLiteral("1.50 ms"));
    QCOMPARE(format_duration(250e-6), QStringLiteral("250 \u00b5s"));
    QCOMPARE(format_duration(2.04), QStringLiteral("2.04 s"));
    QCOMPARE(format_duration(0), QStringLiteral("0 s"));
  }

  // ---- timelines ----
  void lanes_of_a_simulated_timeline() {
    const TimelineData data(tiny_predicted());
    QVERIFY(data.graph());
    QCOMPARE(data.num_events(), static_cast<std::size_t>(tiny_predicted().events_size()));
    std::size_t spans = 0;
    for (const Lane& lane : data.lanes()) {
      spans += lane.spans.size();
      for (std::size_t i = 1; i < lane.spans.size(); ++i) {
        QVERIFY(lane.spans[i - 1].start <= lane.spans[i].start);
        QVERIFY(lane.max_end[i - 1] <= lane.max_end[i]);
      }
      // Receives have their own sub-lane.
      for (const Span& s : lane.spans) QCOMPARE(s.kind == RECV, lane.sub_lane == 4);
    }
    QCOMPARE(spans, data.num_events());
    QCOMPARE(check_lanes_agree_with_the_table_and_chrome(tiny_predicted(), data),
             (std::set<LaneId>{LANE_COMPUTE, LANE_DP_COMM, LANE_PP_SEND, LANE_PP_RECV}));
    // Under symmetry: one representative per stage (ranks 0 and 2), each standing for 2.
    QCOMPARE(data.ranks().size(), std::size_t{2});
    QCOMPARE(data.ranks()[1].stage, 1);
    QCOMPARE(data.ranks()[0].multiplicity, 2u);
    // Names come from the simulator; tooltips name the GEMM shape.
    bool gemm_seen = false;
    for (const Lane& lane : data.lanes())
      for (const Span& s : lane.spans)
        if (s.kind == GEMM && !gemm_seen) {
          gemm_seen = true;
          QVERIFY(data.tooltip(s).contains(QStringLiteral(" \u00d7 k ")));
          QVERIFY(data.tooltip(s).contains(data.name(s).toHtmlEscaped()));
        }
    QVERIFY(gemm_seen);
  }

  void an_event_outside_the_graph_is_refused() {
    Timeline t = tiny_predicted();
    t.mutable_events(0)->set_task_id(99999999);
    try {
      TimelineData data(t, QStringLiteral("bad.pb"));
      QFAIL("no error");
    } catch (const InputError& e) {
      QVERIFY2(QString(e.what()).contains(QStringLiteral("bad.pb: event 0 names task 99999999")),
               e.what());
    }
  }

  void impossible_events_are_refused() {
    // The check compare and calibrate make (analysis::validate_timeline): a NaN end, an event that
    // ends before it starts, and a task twice on one rank are refused when a timeline is loaded.
    Timeline nan_end = tiny_predicted();
    nan_end.mutable_events(1)->set_end_s(std::nan(""));
    Timeline backwards = tiny_predicted();
    backwards.mutable_events(1)->set_end_s(backwards.events(1).start_s() - 1e-3);
    Timeline twice = tiny_predicted();
    *twice.add_events() = twice.events(1);
    const std::pair<const Timeline*, QString> cases[] = {
        {&nan_end, QStringLiteral("not a finite number")},
        {&backwards, QStringLiteral("ends before it starts")},
        {&twice, QStringLiteral("are both task")}};
    for (const auto& [timeline, needle] : cases) {
      try {
        TimelineData data(*timeline, QStringLiteral("bad.pb"));
        QFAIL(qPrintable(QStringLiteral("no error (expected: ") + needle + QStringLiteral(")")));
      } catch (const InputError& e) {
        QVERIFY2(QString(e.what()).startsWith(QStringLiteral("bad.pb: event 1")) ||
                     QString(e.what()).startsWith(QStringLiteral("bad.pb: events 1 and")),
                 e.what());
        QVERIFY2(QString(e.what()).contains(needle), e.what());
      }
    }
  }

  void imported_trace_carries_its_graph() {
    // PyTorch FSDP on 2 ranks, simulated as `parallax simulate --chakra` does: the timeline carries
    // the imported graph (its scenario has no model), so names, shapes, communicators and the
    // critical path are there; CPU-side ops get their own lane.
    const interop::ChakraImport imported = interop::import_chakra(
        std::string(PARALLAX_SOURCE_DIR) + "/tests/data/chakra/fsdp-mlp-pytorch-2/chakra_trace",
        model::resolve_cluster("dgx-a100-80g"));
    sim::SimulationOptions options;
    options.name_events = true;
    Timeline timeline = sim::simulate_in_subprocess(imported.graph, options).timeline;
    QVERIFY(timeline.has_graph());
    TimelineData data(timeline, QStringLiteral("fsdp.pb"));
    QVERIFY(data.graph());
    QVERIFY(data.graph()->imported());
    QCOMPARE(data.graph()->num_tasks(), imported.graph.num_tasks());
    QCOMPARE(data.ranks().size(), std::size_t{2});
    std::size_t host_spans = 0;
    bool collective_tooltip = false;
    for (const Lane& lane : data.lanes())
      for (const Span& s : lane.spans) {
        const model::Task& t = data.graph()->tasks()[s.task_id];
        QCOMPARE(lane.sub_lane == 5, t.on_host);
        host_spans += t.on_host;
        QCOMPARE(data.name(s).toStdString(), imported.graph.task_name(s.task_id));
        if (s.kind == COLLECTIVE && !collective_tooltip) {
          collective_tooltip = true;
          QVERIFY2(data.tooltip(s).contains(QStringLiteral("communicator")),
                   qPrintable(data.tooltip(s)));
        }
      }
    QVERIFY(host_spans > 0);
    QVERIFY(collective_tooltip);
    QVERIFY(check_lanes_agree_with_the_table_and_chrome(timeline, data).contains(LANE_HOST));
    QVERIFY(data.mark_critical_path() > 0);
    // Its breakdown (as for a measured import): time per rank, memory unknown, said why.
    const Breakdown b = breakdown_from_timeline(data);
    QCOMPARE(b.rows.size(), std::size_t{2});
    QVERIFY(b.rows[0].compute_s > 0);
    QVERIFY(b.rows[0].memory_bytes < 0);
    QVERIFY(b.memory_unknown.contains(QStringLiteral("imported")));
    // Without its graph the model-less scenario cannot be rebuilt: a clear error, not a crash.
    timeline.clear_graph();
    try {
      TimelineData bad(timeline, QStringLiteral("fsdp.pb"));
      QFAIL("no error");
    } catch (const InputError& e) {
      QVERIFY2(QString(e.what()).contains(QStringLiteral("fsdp.pb: scenario")), e.what());
    }
  }

  void critical_path_spans_the_step() {
    TimelineData data(tiny_predicted());
    const std::size_t n = data.mark_critical_path();
    QVERIFY(n > 10);
    double first = INFINITY, last = -INFINITY;
    std::size_t marked = 0;
    for (const Lane& lane : data.lanes())
      for (const Span& s : lane.spans)
        if (s.critical) {
          ++marked;
          first = std::min(first, s.start);
          last = std::max(last, s.end);
        }
    QCOMPARE(marked, n);
    // From the step's first task to its last.
    QCOMPARE(last, data.end());
    QCOMPARE(first, data.start());
  }

  void diff_join_on_task_ids() {
    auto predicted = std::make_shared<TimelineData>(tiny_predicted());
    auto measured = std::make_shared<TimelineData>(scaled_measured(tiny_predicted(), 1.5));
    TimelineScene scene;
    scene.set_timelines(predicted, measured);
    QVERIFY2(scene.diff_available(), qPrintable(scene.pair_note()));
    QVERIFY2(scene.pair_note().contains(QStringLiteral("%")), qPrintable(scene.pair_note()));
    scene.set_diff(true);
    std::size_t with_error = 0;
    for (const Lane& lane : measured->lanes())
      for (const Span& s : lane.spans)
        if (!std::isnan(s.error)) {
          ++with_error;
          if (s.end - s.start > 1e-7)
            QVERIFY2(std::abs(s.error - 0.5f) < 1e-3f, qPrintable(QString::number(s.error)));
        }
    QVERIFY(with_error > measured->num_events() * 9 / 10);
    QCOMPARE(error_colour(0.5f), QColor(0xc6, 0x1a, 0x1a));
    QCOMPARE(error_colour(-0.9f), QColor(0x1f, 0x66, 0xc4));
    // A measurement of another scenario is not comparable: diff stays off, with the reason.
    Timeline other = scaled_measured(tiny_predicted(), 1.0);
    other.mutable_scenario()->mutable_layout()->set_global_batch_size(32);
    scene.set_timelines(predicted, std::make_shared<TimelineData>(other));
    QVERIFY(!scene.diff_available());
    QVERIFY(!scene.diff());
    QVERIFY2(scene.pair_note().startsWith(QStringLiteral("not comparable")),
             qPrintable(scene.pair_note()));
  }

  void search_marks_and_lists() {
    auto predicted = std::make_shared<TimelineData>(tiny_predicted());
    TimelineScene scene;
    scene.set_timelines(predicted, nullptr);
    std::size_t expected = 0;
    for (const auto& e : tiny_predicted().events())
      expected += QString::fromStdString(e.name()).contains("FC1", Qt::CaseInsensitive);
    QVERIFY(expected > 0);
    QCOMPARE(scene.set_search(QStringLiteral("FC1")), expected);
    TaskSearchModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.search(scene, QStringLiteral("fc1"));
    QCOMPARE(static_cast<std::size_t>(model.rowCount()), expected);
    QVERIFY(model.data(model.index(0, TaskSearchModel::Name))
                .toString()
                .contains(QStringLiteral("fc1")));
    model.search(scene, QStringLiteral("fc1"), 3);
    QCOMPARE(model.rowCount(), 3);
    QVERIFY(model.truncated());
    QSortFilterProxyModel proxy;
    proxy.setSourceModel(&model);
    proxy.setSortRole(kSortRole);
    QAbstractItemModelTester proxy_tester(&proxy,
                                          QAbstractItemModelTester::FailureReportingMode::QtTest);
    proxy.sort(TaskSearchModel::Duration, Qt::DescendingOrder);
    QVERIFY(proxy.data(proxy.index(0, TaskSearchModel::Duration), kSortRole).toDouble() >=
            proxy.data(proxy.index(2, TaskSearchModel::Duration), kSortRole).toDouble());
  }

  // ---- the scene ----
  void rows_group_and_collapse() {
    auto predicted = std::make_shared<TimelineData>(tiny_predicted());
    auto measured = std::make_shared<TimelineData>(scaled_measured(tiny_predicted(), 1.2));
    TimelineScene scene;
    scene.set_timelines(predicted, measured);
    int sections = 0, groups = 0, lanes = 0;
    for (const SceneRow& r : scene.rows()) {
      sections += r.kind == SceneRow::Kind::Section;
      groups += r.kind == SceneRow::Kind::Group;
      lanes += r.kind == SceneRow::Kind::Lane;
    }
    QCOMPARE(sections, 2);
    QCOMPARE(groups, 4);  // two stages in each timeline
    QCOMPARE(static_cast<std::size_t>(lanes), predicted->lanes().size() + measured->lanes().size());
    QCOMPARE(scene.rows().front().kind, SceneRow::Kind::Section);
    QVERIFY(scene.rows().front().label.startsWith(QStringLiteral("PREDICTED")));
    const int before = static_cast<int>(scene.rows().size());
    const int height = scene.content_height();
    std::size_t stage0_lanes = 0;
    for (const SceneRow& r : scene.rows())
      stage0_lanes += r.kind == SceneRow::Kind::Lane && r.timeline == 0 && r.group == 0;
    QVERIFY(scene.toggle_group(1));  // stage 0 of the prediction
    QVERIFY(scene.rows()[1].collapsed);
    QVERIFY(static_cast<int>(scene.rows().size()) < before);
    QVERIFY(scene.content_height() < height);
    // The collapsed group keeps one summary row: all its lanes, compute drawn last (on top).
    const SceneRow& summary = scene.rows()[2];
    QCOMPARE(summary.kind, SceneRow::Kind::Summary);
    QCOMPARE(summary.members.size(), stage0_lanes);
    QCOMPARE(predicted->lanes()[static_cast<std::size_t>(summary.members.back())].sub_lane, 0);
    QVERIFY(predicted->lanes()[static_cast<std::size_t>(summary.members.front())].sub_lane != 0);
    {
      QImage image(1200, 600, QImage::Format_ARGB32_Premultiplied);
      QPainter painter(&image);
      scene.paint(painter, image.size(), scene.full_axis(image.width()), 0);
      painter.end();
      const QRect row(TimelineScene::kLabelWidth, TimelineScene::kAxisHeight + summary.y,
                      image.width() - TimelineScene::kLabelWidth, summary.height);
      // Compute and the pipeline/data-parallel communication of the group both show.
      QVERIFY(count_colour(image, kind_colour(GEMM), row) > 200);
      QVERIFY(count_colour(image, kind_colour(COLLECTIVE), row) +
                  count_colour(image, kind_colour(SEND), row) +
                  count_colour(image, kind_colour(RECV), row) >
              0);
    }
    QVERIFY(!scene.toggle_group(0));  // a section header is not a group
    QVERIFY(scene.toggle_group(1));
    QCOMPARE(static_cast<int>(scene.rows().size()), before);
    // By replica: both representatives are replica 0, so one group per timeline.
    scene.set_group_by(GroupBy::Replica);
    groups = 0;
    for (const SceneRow& r : scene.rows()) groups += r.kind == SceneRow::Kind::Group;
    QCOMPARE(groups, 2);
  }

  void paint_key_pixels_and_hit() {
    auto predicted = std::make_shared<TimelineData>(tiny_predicted());
    auto measured = std::make_shared<TimelineData>(scaled_measured(tiny_predicted(), 1.2));
    TimelineScene scene;
    scene.set_timelines(predicted, measured);
    const QSize size(1400, 900);
    QImage image(size, QImage::Format_ARGB32_Premultiplied);
    const TimeAxis axis = scene.full_axis(size.width());
    {
      QPainter p(&image);
      scene.paint(p, size, axis, 0);
    }
    image.save(QStringLiteral(PARALLAX_GUI_PNG_DIR "/core_timeline.png"));
    // Section bands at their rows, in their colours.
    for (const SceneRow& r : scene.rows())
      if (r.kind == SceneRow::Kind::Section && TimelineScene::kAxisHeight + r.y + 2 < size.height())
        QCOMPARE(image.pixelColor(3, TimelineScene::kAxisHeight + r.y + 2),
                 section_colour(r.timeline == 1));
    // The widest GEMM of the first lane is painted in the GEMM colour at its middle, and hit there.
    const SceneRow* lane_row = nullptr;
    for (const SceneRow& r : scene.rows())
      if (r.kind == SceneRow::Kind::Lane && r.timeline == 0) {
        lane_row = &r;
        break;
      }
    QVERIFY(lane_row);
    const Lane& lane = predicted->lanes()[static_cast<std::size_t>(lane_row->lane)];
    std::size_t widest = 0;
    for (std::size_t i = 0; i < lane.spans.size(); ++i)
      if (lane.spans[i].kind == GEMM && lane.spans[i].end - lane.spans[i].start >
                                            lane.spans[widest].end - lane.spans[widest].start)
        widest = i;
    const Span& s = lane.spans[widest];
    const double x = axis.to_pixel((s.start + s.end) / 2);
    const int y = TimelineScene::kAxisHeight + lane_row->y + 2;  // above any label text
    QVERIFY2(axis.to_pixel(s.end) - axis.to_pixel(s.start) > 3,
             "the widest GEMM should be a few pixels wide");
    QCOMPARE(image.pixelColor(static_cast<int>(x), y), kind_colour(GEMM));
    const auto hit = scene.hit(x, y, axis, 0);
    QVERIFY(hit);
    QCOMPARE(hit->timeline, 0);
    QCOMPARE(hit->span, widest);
    QVERIFY(!scene.hit(10, y, axis, 0));  // the label column
    // The axis shows ticks: dark pixels in the tick band.
    QVERIFY(count_colour(image, QColor(0x40, 0x40, 0x40),
                         QRect(TimelineScene::kLabelWidth, 0, 1000, TimelineScene::kAxisHeight)) >
            20);
  }

  // A million one-nanosecond tasks in one lane, then a gap, then one long task: the dense part is
  // drawn as busy columns, the gap stays white, the long task is one rectangle.
  void million_tasks_aggregate_per_pixel() {
    Timeline t;
    t.set_source(Timeline::PREDICTED);
    t.set_scenario_name("dense");
    for (int i = 0; i < 1'000'000; ++i) {
      auto* e = t.add_events();
      e->set_task_id(static_cast<std::uint32_t>(i));
      e->set_start_s(i * 1e-9);
      e->set_end_s(i * 1e-9 + 0.5e-9);
      e->set_kind(MEMORY_BOUND);
    }
    auto* e = t.add_events();  // [2 ms, 3 ms]
    e->set_task_id(1'000'000);
    e->set_start_s(2e-3);
    e->set_end_s(3e-3);
    e->set_kind(GEMM);
    TimelineScene scene;
    scene.set_timelines(std::make_shared<TimelineData>(t), nullptr);
    const QSize size(TimelineScene::kLabelWidth + 1000, 200);
    const TimeAxis axis(0, 3e-3, TimelineScene::kLabelWidth, 1000);  // 3 us per pixel
    QImage image(size, QImage::Format_ARGB32_Premultiplied);
    {
      QPainter p(&image);
      scene.paint(p, size, axis, 0);
    }
    const SceneRow& row = scene.rows().back();
    QCOMPARE(row.kind, SceneRow::Kind::Lane);
    const int y = TimelineScene::kAxisHeight + row.y + 2;  // above the task's label
    // Dense: [0, 1 ms] = pixels 0..333 of the plot.
    for (int px : {0, 100, 300, 330})
      QCOMPARE(image.pixelColor(TimelineScene::kLabelWidth + px, y), kind_colour(MEMORY_BOUND));
    // Gap (1 ms, 2 ms) = 334..666 (grid lines aside: test rows between ticks).
    QCOMPARE(image.pixelColor(TimelineScene::kLabelWidth + 400, y), QColor(Qt::white));
    QCOMPARE(image.pixelColor(TimelineScene::kLabelWidth + 650, y), QColor(Qt::white));
    for (int px : {670, 800, 990})
      QCOMPARE(image.pixelColor(TimelineScene::kLabelWidth + px, y), kind_colour(GEMM));
  }

  // ---- breakdown ----
  void breakdown_needs_the_job_graph() {
    // Without a scenario or graph nothing tells a pipeline bubble from idle time: no rows, and why.
    Timeline t;
    auto* ev = t.add_events();
    ev->set_rank(0);
    ev->set_kind(GEMM);
    ev->set_start_s(0);
    ev->set_end_s(1);
    const TimelineData data(t);
    QVERIFY(!data.graph());
    const Breakdown b = breakdown_from_timeline(data);
    QVERIFY(b.rows.empty());
    QCOMPARE(b.step_s, 1.0);
    QVERIFY2(b.note.contains(QStringLiteral("needs the job graph")), qPrintable(b.note));
  }

  // The GUI's critical path and breakdown of a simulated timeline are the simulator's report's
  // (tests/analysis/one_analysis_test.cpp holds compare to the same): the path's task ids in order,
  // and each rank's parts to 1e-12. The pipeline-only scenario has bubble, so that definition is
  // exercised too.
  void one_analysis_as_the_report_data() {
    QTest::addColumn<QString>("scenario");
    QTest::newRow("dp2 pp2") << QStringLiteral("tiny-gpt-cpu.pbtxt");
    QTest::newRow("pp2") << QStringLiteral("tiny-gpt-cpu-pp2.pbtxt");
  }
  void one_analysis_as_the_report() {
    QFETCH(QString, scenario);
    const Scenario sc = model::load_scenario(std::string(PARALLAX_SOURCE_DIR) + "/scenarios/" +
                                             scenario.toStdString());
    const sim::SimulationResult result = sim::simulate_in_subprocess(model::build_job_graph(sc));
    const Report& report = result.report;
    TimelineData data(result.timeline);
    QVERIFY(data.mark_critical_path() > 0);
    // The report carries the path's summary (segments with their first and last tasks), compare the
    // task ids: the GUI's path is compare's, and compare's summary is the report's.
    Timeline measured = result.timeline;
    measured.set_source(Timeline::MEASURED);
    const analysis::CompareResult compared = analysis::compare_timelines(result.timeline, measured);
    QVERIFY(google::protobuf::util::MessageDifferencer::Equals(compared.critical_path_predicted.path,
                                                               report.critical_path()));
    const std::vector<std::uint32_t>& report_path = compared.critical_path_predicted.tasks;
    QVERIFY(!report_path.empty());
    QCOMPARE(data.critical_path_tasks(), report_path);
    QCOMPARE(compared.critical_path_measured.tasks, report_path);
    // The marked spans are the path's tasks.
    std::vector<std::uint32_t> marked;
    for (const Lane& lane : data.lanes())
      for (const Span& s : lane.spans)
        if (s.critical) marked.push_back(s.task_id);
    std::sort(marked.begin(), marked.end());
    std::vector<std::uint32_t> sorted_path = report_path;
    std::sort(sorted_path.begin(), sorted_path.end());
    QCOMPARE(marked, sorted_path);

    const Breakdown b = breakdown_from_timeline(data);
    QCOMPARE(b.rows.size(), static_cast<std::size_t>(report.breakdown_size()));
    double bubble = 0;
    for (const RankBreakdown& r : report.breakdown()) {
      const auto row = std::find_if(b.rows.begin(), b.rows.end(),
                                    [&](const BreakdownRow& x) { return x.rank == r.rank(); });
      QVERIFY2(row != b.rows.end(), qPrintable(QStringLiteral("rank %1").arg(r.rank())));
      QVERIFY(std::fabs(row->compute_s - r.compute_s()) <= 1e-12);
      QVERIFY(std::fabs(row->exposed_comm_s - r.exposed_comm_s()) <= 1e-12);
      QVERIFY(std::fabs(row->overlapped_comm_s - r.overlapped_comm_s()) <= 1e-12);
      QVERIFY(std::fabs(row->bubble_s - r.bubble_s()) <= 1e-12);
      QVERIFY(std::fabs(row->idle_s - r.idle_s()) <= 1e-12);
      QVERIFY(std::fabs(b.total_s(*row) - report.step_time_s()) <= 1e-12);
      bubble += row->bubble_s;
    }
    QVERIFY(bubble > 0);
  }

  void breakdown_paint_and_tooltip() {
    Report report;
    report.set_scenario_name("two ranks");
    report.set_step_time_s(2);
    report.set_memory_capacity_bytes(80e9);
    for (int i = 0; i < 2; ++i) {
      auto* b = report.add_breakdown();
      b->set_rank(static_cast<std::uint32_t>(i));
      b->set_pp_stage(i);
      b->set_compute_s(1.2);
      b->set_exposed_comm_s(0.3);
      b->set_overlapped_comm_s(0.4);
      b->set_bubble_s(0.4);
      b->set_idle_s(0.1);
      b->set_peak_memory_bytes(i == 0 ? 40e9 : 90e9);
    }
    const Breakdown b = breakdown_from_report(report);
    const QSize size(1200, 700);
    QImage image(size, QImage::Format_ARGB32_Premultiplied);
    {
      QPainter p(&image);
      paint_breakdown(p, size, b);
    }
    image.save(QStringLiteral(PARALLAX_GUI_PNG_DIR "/core_breakdown.png"));
    const QRectF bar = breakdown_step_bar(b, size, 0);
    QVERIFY(bar.width() > 500);
    // compute is the first 60% of the bar, then exposed communication, bubble, idle.
    QCOMPARE(image.pixelColor(QPointF(bar.left() + bar.width() * 0.3, bar.top() + 3).toPoint()),
             breakdown_colour(0));
    QCOMPARE(image.pixelColor(QPointF(bar.left() + bar.width() * 0.67, bar.top() + 3).toPoint()),
             breakdown_colour(1));
    QCOMPARE(image.pixelColor(QPointF(bar.left() + bar.width() * 0.85, bar.top() + 3).toPoint()),
             breakdown_colour(3));
    QCOMPARE(image.pixelColor(QPointF(bar.left() + bar.width() * 0.98, bar.top() + 3).toPoint()),
             breakdown_colour(4));
    // Memory: rank 1 does not fit and is red.
    const QRectF m1 = breakdown_memory_bar(b, size, 1);
    QCOMPARE(image.pixelColor(m1.center().toPoint() - QPoint(0, 3)), QColor(0xc6, 0x1a, 0x1a));
    const QRectF m0 = breakdown_memory_bar(b, size, 0);
    QVERIFY(m0.width() < m1.width());
    const QString tip = breakdown_tooltip(b, size, bar.center());
    QVERIFY2(tip.contains(QStringLiteral("compute: 1.20 s (60.0%)")), qPrintable(tip));
    QVERIFY(breakdown_tooltip(b, size, m1.center()).contains(QStringLiteral("headroom")));
    QVERIFY(breakdown_tooltip(b, size, QPointF(2, 2)).isEmpty());
  }

  // ---- the planner's model ----
  void plan_results_model() {
    planner::PlanRequest request;
    QVERIFY(google::protobuf::TextFormat::ParseFromString(
        "name: 'small' num_layers: 8 hidden_size: 512 num_heads: 8 seq_length: 256 vocab_size: "
        "1024",
        &request.model));
    request.gpus = 8;
    request.global_batch_size = 32;
    request.cluster = model::resolve_cluster("dgx-a100-80g", 8);
    planner::PlanOptions options;
    options.top_k = 3;
    planner::PlanResult result = planner::plan(request, options);
    QCOMPARE(result.rows.size(), std::size_t{3});
    // One row made not to fit, to see it marked.
    result.rows[2].memory_bytes = result.rows[2].capacity_bytes * 1.5;
    PlanResultsModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.set_result(result);
    QCOMPARE(model.rowCount(), 3);
    QCOMPARE(model.columnCount(), static_cast<int>(PlanResultsModel::kColumns));
    QVERIFY(!model.data(model.index(0, PlanResultsModel::Memory), Qt::BackgroundRole).isValid());
    QVERIFY(model.data(model.index(2, PlanResultsModel::Memory), Qt::BackgroundRole).isValid());
    QVERIFY(model.data(model.index(2, PlanResultsModel::Memory))
                .toString()
                .contains(QStringLiteral("does not fit")));
    QCOMPARE(model.data(model.index(0, PlanResultsModel::Source)).toString(),
             QStringLiteral("simulated"));
    QSortFilterProxyModel proxy;
    proxy.setSourceModel(&model);
    proxy.setSortRole(kSortRole);
    QAbstractItemModelTester proxy_tester(&proxy,
                                          QAbstractItemModelTester::FailureReportingMode::QtTest);
    proxy.sort(PlanResultsModel::StepTime, Qt::DescendingOrder);
    for (int r = 1; r < 3; ++r)
      QVERIFY(proxy.data(proxy.index(r - 1, PlanResultsModel::StepTime), kSortRole).toDouble() >=
              proxy.data(proxy.index(r, PlanResultsModel::StepTime), kSortRole).toDouble());
    model.clear();
    QCOMPARE(proxy.rowCount(), 0);
  }
};

QTEST_MAIN(CoreTest)
#include "core_test.moc"
