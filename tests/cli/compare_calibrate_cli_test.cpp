// parallax compare, calibrate and simulate --calibration as users run them: a timeline compared with
// itself, a self-calibration that changes nothing, JSON keys, and exit code 2 on bad input.
#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace parallax {
namespace {

using testing::run_command;
namespace fs = std::filesystem;

std::string cli() { return PARALLAX_CLI; }
std::string tiny() { return (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string(); }

double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return -1e300;
  return std::strtod(json.c_str() + at + key.size() + 4, nullptr);
}

TEST(CliCompareCalibrate, RoundTripOnASimulatedTimeline) {
  const testing::TempDir dir;
  const auto pb = dir / "timeline.pb", chrome = dir / "chrome.json", cal = dir / "calibration.pbtxt";
  auto r = run_command(cli() + " simulate " + tiny() + " --json --timeline " + pb.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double step = json_number(r.out, "step_time_s");

  r = run_command(cli() + " compare " + pb.string() + " " + pb.string() + " --json --top 3 --chrome " + chrome.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key : {"\"step_time_predicted_s\"", "\"step_time_measured_s\"", "\"step_time_error_pct\": 0",
                          "\"classes\"", "\"top_tasks\"", "\"critical_path\"", "\"predicted\"", "\"measured\"",
                          "\"name\": \"gemm", "\"median_error_pct\""})
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
  EXPECT_NEAR(json_number(r.out, "step_time_predicted_s"), step, 1e-9 * step);
  EXPECT_TRUE(fs::exists(chrome));
  std::ifstream in(chrome);
  std::stringstream trace;
  trace << in.rdbuf();
  EXPECT_NE(trace.str().find("[predicted]"), std::string::npos);
  r = run_command(cli() + " compare " + pb.string() + " " + pb.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"step time", "by class", "largest errors", "critical path", "note"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line;

  r = run_command(cli() + " calibrate " + pb.string() + " -o " + cal.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("fitted      gpu.memory_bound_efficiency"), std::string::npos) << r.out;
  std::ifstream c(cal);
  std::stringstream text;
  text << c.rdbuf();
  EXPECT_EQ(text.str().rfind("# parallax calibration", 0), 0u) << text.str();
  EXPECT_NE(text.str().find("# fitted gpu.gemm_efficiency"), std::string::npos) << text.str();
  r = run_command(cli() + " calibrate " + pb.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key : {"\"fitted\"", "\"skipped\"", "\"errors\"", "\"mean_abs_error_after_s\"", "\"output\""})
    EXPECT_NE(r.out.find(key), std::string::npos) << key;

  // Calibrating a prediction on itself changes nothing.
  r = run_command(cli() + " simulate " + tiny() + " --json --calibration " + cal.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(json_number(r.out, "step_time_s"), step, 1e-3 * step);
  EXPECT_NE(r.out.find("calibrated from " + cal.string()), std::string::npos) << r.out;
}

TEST(CliCompareCalibrate, BadInputExitsTwo) {
  const testing::TempDir dir;
  const auto bad = dir / "bad.pbtxt";
  auto r = run_command(cli() + " compare " + tiny());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("need two timelines"), std::string::npos) << r.err;
  r = run_command(cli() + " compare /nonexistent/a.pb /nonexistent/b.pb");
  EXPECT_EQ(r.exit_code, 2);
  r = run_command(cli() + " calibrate " + tiny());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a valid parallax.Timeline"), std::string::npos) << r.err;
  r = run_command(cli() + " compare a.pb b.pb --top many");
  EXPECT_EQ(r.exit_code, 2);
  std::ofstream(bad) << "gpu { memory_bound_efficiency: 1.5 }\n";
  r = run_command(cli() + " simulate " + tiny() + " --calibration " + bad.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad.string() + ": merged over the scenario's cluster"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cluster.gpu.memory_bound_efficiency: must be in (0, 1]"), std::string::npos) << r.err;
  r = run_command(cli() + " compare --help");
  EXPECT_EQ(r.exit_code, 0);
  r = run_command(cli() + " calibrate --help");
  EXPECT_EQ(r.exit_code, 0);
}

}  // namespace
}  // namespace parallax
