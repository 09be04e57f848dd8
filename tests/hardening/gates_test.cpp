// The pass/fail gates and the files they read: timelines (compare, calibrate), validation tables
// (validate, plan --table), plan's ranking when simulations fail, and calibration overlays. Each test
// gives an input that once passed a gate or gave a wrong number, and checks it is refused now.
#include "parallax/analysis/calibrate.h"
#include "parallax/analysis/compare.h"
#include "parallax/model/job_graph.h"
#include "parallax/model/scenario.h"
#include "parallax/sim/simulate.h"
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using analysis::calibrate;
using analysis::compare_timelines;
using testing::run_command;

std::string cli() { return PARALLAX_CLI; }
std::string tiny_path() { return (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string(); }

const Scenario& tiny() {
  static const Scenario sc = model::load_scenario(tiny_path());
  return sc;
}

// The tiny scenario's predicted timeline (named events, as the executor writes them), simulated once.
const Timeline& predicted() {
  static const Timeline timeline = [] {
    sim::SimulationOptions options;
    options.name_events = true;
    return sim::simulate_in_subprocess(model::build_job_graph(tiny()), options).timeline;
  }();
  return timeline;
}

// A measurement as the executor writes one: every rank of a stage with its representative's events.
Timeline measured() { return testing::as_measured(predicted(), tiny()); }

using testing::input_error;

// ---- timelines: compare and calibrate ----

TEST(GatesTimeline, AnEventEndingBeforeItStartsIsRefused) {
  Timeline m = measured();
  m.mutable_events(0)->set_end_s(-5);
  for (const std::string& msg : {input_error([&] { compare_timelines(predicted(), m); }),
                                 input_error([&] { calibrate(m, tiny().cluster()); })}) {
    EXPECT_NE(msg.find("the measured timeline: event 0 (task "), std::string::npos) << msg;
    EXPECT_NE(msg.find("ends before it starts"), std::string::npos) << msg;
    EXPECT_NE(msg.find("end_s -5"), std::string::npos) << msg;
  }
}

TEST(GatesTimeline, ATimeBeyondAYearIsRefused) {
  Timeline m = measured();
  m.mutable_events(2)->set_end_s(1e300);
  for (const std::string& msg : {input_error([&] { compare_timelines(predicted(), m); }),
                                 input_error([&] { calibrate(m, tiny().cluster()); })}) {
    EXPECT_NE(msg.find("event 2 (task "), std::string::npos) << msg;
    EXPECT_NE(msg.find("end_s 1e+300"), std::string::npos) << msg;
    EXPECT_NE(msg.find("within a year"), std::string::npos) << msg;
  }
}

TEST(GatesTimeline, ADuplicatedEventIsRefused) {
  Timeline m = measured();
  *m.add_events() = m.events(3);
  const int copy = m.events_size() - 1;
  for (const std::string& msg : {input_error([&] { compare_timelines(predicted(), m); }),
                                 input_error([&] { calibrate(m, tiny().cluster()); })}) {
    EXPECT_NE(msg.find("events 3 and " + std::to_string(copy) + " are both task " +
                       std::to_string(m.events(3).task_id()) + " on rank " + std::to_string(m.events(3).rank())),
              std::string::npos)
        << msg;
  }
}

TEST(GatesTimeline, ATimelineWithoutEventsIsRefused) {
  Timeline m = measured();
  m.clear_events();
  for (const std::string& msg : {input_error([&] { compare_timelines(predicted(), m); }),
                                 input_error([&] { calibrate(m, tiny().cluster()); })})
    EXPECT_NE(msg.find("the measured timeline has no events"), std::string::npos) << msg;
  Timeline p = predicted();
  p.clear_events();
  EXPECT_NE(input_error([&] { compare_timelines(p, measured()); }).find("the predicted timeline has no events"),
            std::string::npos);
}

TEST(GatesTimeline, CompareAndCalibrateExitTwoOnAnImpossibleTimeline) {
  const testing::TempDir dir;
  const auto p = dir / "p.pb", m = dir / "m.pb", cal = dir / "cal.pbtxt";
  traces::write_binary(p, predicted());
  Timeline bad = measured();
  bad.mutable_events(0)->set_end_s(bad.events(0).start_s() - 1e-3);
  traces::write_binary(m, bad);
  auto r = run_command(cli() + " compare " + p.string() + " " + m.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("ends before it starts"), std::string::npos) << r.err;
  r = run_command(cli() + " calibrate " + m.string() + " -o " + cal.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find(m.string() + ": the measured timeline: event 0"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(cal));
  bad.clear_events();
  traces::write_binary(m, bad);
  r = run_command(cli() + " compare " + p.string() + " " + m.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("has no events"), std::string::npos) << r.err;
}

// The events of a timeline whose embedded scenario was changed (4 layers -> 6) are not of the graph
// calibrate rebuilds from it: fitting them would fit the wrong tasks.
TEST(GatesTimeline, CalibrateRefusesEventsOfAnotherGraph) {
  Timeline m = measured();
  m.mutable_scenario()->mutable_model()->set_num_layers(6);
  const std::string msg = input_error([&] { calibrate(m, m.scenario().cluster()); });
  EXPECT_NE(msg.find("the events are not of the job graph of the timeline's embedded scenario"), std::string::npos)
      << msg;
  // Without recorded names the kinds and ranks still tell.
  for (auto& e : *m.mutable_events()) e.clear_name();
  EXPECT_NE(input_error([&] { calibrate(m, m.scenario().cluster()); }).find("not of the job graph"), std::string::npos);
  // The timeline as written calibrates.
  EXPECT_NO_THROW(calibrate(measured(), tiny().cluster()));
}

// A cluster number that makes the models' times non-finite (here a zero intra-node bandwidth
// efficiency) is refused rather than printed as "inf days" and fitted.
TEST(GatesTimeline, CalibrateRefusesAPriorGivingNonFiniteTimes) {
  Timeline m = measured();
  m.mutable_scenario()->mutable_cluster()->mutable_intra_node()->set_bandwidth_efficiency(0);
  EXPECT_THROW(calibrate(m, m.scenario().cluster()), InputError);
  Timeline n = measured();
  n.mutable_scenario()->mutable_cluster()->mutable_gpu()->set_kernel_overhead_us(std::nan(""));
  EXPECT_THROW(calibrate(n, n.scenario().cluster()), InputError);
}

// ---- calibration overlays ----

std::string overlay_text() {
  analysis::CalibrationSummary summary;
  const ClusterSpec overlay = calibrate(measured(), tiny().cluster(), &summary);
  return analysis::calibration_text(overlay, summary);
}

TEST(GatesOverlay, ATruncatedOverlayIsRefusedAndAWholeOneRead) {
  const std::string text = overlay_text();
  ASSERT_EQ(text.rfind(analysis::kOverlayFirstLine, 0), 0u) << text;
  const ClusterSpec whole = analysis::parse_calibration(text, "cal.pbtxt");
  const std::size_t fields = analysis::overlay_fields(whole).size();
  ASSERT_GE(fields, 2u) << text;
  EXPECT_NE(text.find("# end of overlay: " + std::to_string(fields) + " fields\n"), std::string::npos) << text;
  // Cut after the first top-level block: still a valid ClusterSpec, with fewer fields.
  const auto block_end = text.find("\n}\n");
  ASSERT_NE(block_end, std::string::npos) << text;
  const std::string cut = text.substr(0, block_end + 3);
  ClusterSpec part;
  traces::parse_text_or_json(cut, "cut.pbtxt", false, part);
  ASSERT_LT(analysis::overlay_fields(part).size(), fields);
  const std::string msg = input_error([&] { analysis::parse_calibration(cut, "cut.pbtxt"); });
  EXPECT_NE(msg.find("cut.pbtxt: incomplete calibration overlay"), std::string::npos) << msg;
  // A last line that counts other fields: refused too.
  std::string edited = text;
  edited.replace(edited.rfind(std::to_string(fields) + " fields"), std::to_string(fields).size(),
                 std::to_string(fields + 1));
  EXPECT_NE(input_error([&] { analysis::parse_calibration(edited, "e.pbtxt"); }).find("incomplete"),
            std::string::npos);
  // Hand-written (no first line): read as it is.
  EXPECT_NO_THROW(analysis::parse_calibration("gpu { memory_bound_efficiency: 0.5 }\n", "hand.pbtxt"));

  // simulate --calibration reads files the same way.
  const testing::TempDir dir;
  std::ofstream(dir / "whole.pbtxt") << text;
  std::ofstream(dir / "cut.pbtxt") << cut;
  std::ofstream(dir / "hand.pbtxt") << "gpu { memory_bound_efficiency: 0.5 }\n";
  EXPECT_EQ(analysis::overlay_fields(analysis::read_calibration(dir / "whole.pbtxt")).size(), fields);
  EXPECT_NO_THROW(analysis::read_calibration(dir / "hand.pbtxt"));
  EXPECT_NE(input_error([&] { analysis::read_calibration(dir.path()); }).find("is a directory"), std::string::npos);
  auto r = run_command(cli() + " simulate " + tiny_path() + " --calibration " + (dir / "cut.pbtxt").string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find((dir / "cut.pbtxt").string() + ": incomplete calibration overlay"), std::string::npos) << r.err;
  r = run_command(cli() + " simulate " + tiny_path() + " --calibration " + (dir / "whole.pbtxt").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// ---- validation tables: validate and plan --table ----

// public.tsv's header and its K1 row with `column` set to `value`.
std::string k1_table(const std::string& column = "", const std::string& value = "") {
  std::ifstream in(testing::source_dir() / "validation" / "public.tsv");
  std::string line, header, row;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header.empty()) header = line;
    else if (line.rfind("K1\t", 0) == 0) row = line;
  }
  if (!column.empty()) {
    std::vector<std::string> names, cells;
    std::stringstream h(header), c(row);
    for (std::string x; std::getline(h, x, '\t');) names.push_back(x);
    for (std::string x; std::getline(c, x, '\t');) cells.push_back(x);
    row.clear();
    for (std::size_t i = 0; i < cells.size(); ++i)
      row += (i ? "\t" : "") + (names[i] == column ? value : cells[i]);
  }
  return header + "\n" + row + "\n";
}

TEST(GatesTable, ValidateNeverPassesOnNothing) {
  const testing::TempDir dir;
  const std::string table = (testing::source_dir() / "validation" / "public.tsv").string();
  for (const char* only : {"NOPE", "''", ",,,"}) {
    const auto r = run_command(cli() + " validate " + table + " --only " + std::string(only) + " --max-mape 5");
    EXPECT_EQ(r.exit_code, 2) << only << "\n" << r.out;
    EXPECT_EQ(r.out.find("MAPE"), std::string::npos) << r.out;
  }
  auto r = run_command(cli() + " validate " + table + " --only K1,NOPE --max-mape 5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("matches --only id \"NOPE\" (the table's ids: N1, N2"), std::string::npos) << r.err;
  r = run_command(cli() + " validate " + table + " --only ,,, --max-mape 5");
  EXPECT_NE(r.err.find("--only names no row id"), std::string::npos) << r.err;

  const auto header_only = dir / "header.tsv";
  std::ofstream(header_only) << k1_table().substr(0, k1_table().find('\n') + 1);
  r = run_command(cli() + " validate " + header_only.string() + " --max-mape 5");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find(header_only.string() + ": no rows after the header"), std::string::npos) << r.err;

  for (const char* value : {"inf", "nan", "0", "-1"}) {
    const auto inf = dir / "inf.tsv";
    std::ofstream(inf) << k1_table("measured_iter_s", value);
    r = run_command(cli() + " validate " + inf.string() + " --max-mape 5");
    EXPECT_EQ(r.exit_code, 2) << value << "\n" << r.out;
    EXPECT_NE(r.err.find(inf.string() + ":2: column \"measured_iter_s\" must be a finite number above 0 (got \"" +
                         std::string(value) + "\")"),
              std::string::npos)
        << r.err;
  }
}

TEST(GatesTable, DuplicateIdsAndExtraCellsAreRefused) {
  const testing::TempDir dir;
  const auto twice = dir / "twice.tsv", extra = dir / "extra.tsv";
  const std::string table = k1_table();
  const std::string row = table.substr(table.find('\n') + 1);
  std::ofstream(twice) << table << row;
  std::string extra_row = row;
  extra_row.insert(extra_row.size() - 1, "\tstray");
  std::ofstream(extra) << table.substr(0, table.find('\n') + 1) << extra_row;
  for (const std::string& command : {std::string(" validate "), std::string(" plan --table ")}) {
    auto r = run_command(cli() + command + twice.string());
    EXPECT_EQ(r.exit_code, 2) << command << r.out;
    EXPECT_NE(r.err.find(twice.string() + ":3: row id \"K1\" is already used on line 2"), std::string::npos) << r.err;
    r = run_command(cli() + command + extra.string());
    EXPECT_EQ(r.exit_code, 2) << command << r.out;
    EXPECT_NE(r.err.find(extra.string() + ":2: the row has 24 cells but the header names 23 columns (cell 24 is "
                                          "\"stray\")"),
              std::string::npos)
        << r.err;
  }
}

TEST(GatesTable, PlanTableExitsTwoWhenARowCannotBePlanned) {
  const testing::TempDir dir;
  const auto table = dir / "gpu.tsv";
  std::ofstream(table) << k1_table("gpu", "x100-1g");
  auto r = run_command(cli() + " plan --table " + table.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no cluster preset for gpu \"x100-1g\""), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("1 of 1 rows of " + table.string() + " could not be planned"), std::string::npos) << r.err;
  r = run_command(cli() + " plan --table " + table.string() + " --json");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  // validate agrees.
  r = run_command(cli() + " validate " + table.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

TEST(GatesTable, PlanOnlyNeedsTable) {
  const auto r = run_command(cli() + " plan " + tiny_path() + " --only K1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("--only needs --table"), std::string::npos) << r.err;
}

// ---- plan: no winner from failed simulations or non-finite estimates ----

TEST(GatesPlan, NoWinnerWhenNothingCouldBeSimulatedOrEstimated) {
  const testing::TempDir dir;
  const std::string text = testing::file_text(tiny_path());
  // NaN overhead and a zero efficiency give non-finite estimates; a link of 1e300 GB/s is estimated
  // fine but crashes every simulation (the crash stays in the child process).
  for (const char* cluster : {"gpu { kernel_overhead_us: nan }", "intra_node { bandwidth_efficiency: 0 }",
                              "intra_node { gb_per_s: 1e300 }"}) {
    std::string changed = text;
    changed.insert(changed.find("num_nodes: 1"), std::string(cluster) + " ");
    const auto path = dir / "bad.pbtxt";
    std::ofstream(path) << changed;
    const auto r = run_command(cli() + " plan " + path.string() + " --top 2");
    EXPECT_NE(r.exit_code, 0) << cluster << "\n" << r.out;
    EXPECT_EQ(r.out.find("winner"), std::string::npos) << cluster << "\n" << r.out;
    EXPECT_FALSE(r.err.empty()) << cluster;
  }
}

}  // namespace
}  // namespace parallax
