// libFuzzer target: a timeline file (parallax.Timeline, protobuf binary) as `parallax compare`,
// `parallax calibrate` and `--chrome` consume it: parsed, exported as Chrome Trace Event JSON,
// compared with itself (both as prediction and measurement, which rebuilds the job graph from the
// embedded scenario) and calibrated against its own cluster. Bad input must end in
// parallax::InputError; anything else is a finding.
#include "fuzz_support.h"

#include "parallax/analysis/calibrate.h"
#include "parallax/analysis/compare.h"
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  parallax::Timeline timeline;
  try {
    parallax::traces::parse_binary(bytes, "fuzz-timeline.pb", timeline);
  } catch (const parallax::InputError&) {
    return 0;
  }
  (void)parallax::traces::to_chrome_trace({&timeline, &timeline});
  // compare and calibrate rebuild the job graph; a valid scenario of a big job is legitimate and
  // slow.
  if (timeline.has_scenario() && !parallax::fuzz::small_enough_to_build(timeline.scenario()))
    return 0;
  try {
    (void)parallax::analysis::compare_timelines(timeline, timeline);
  } catch (const parallax::InputError&) {
  }
  try {
    parallax::analysis::CalibrationSummary summary;
    const parallax::ClusterSpec overlay =
        parallax::analysis::calibrate(timeline, timeline.scenario().cluster(), &summary);
    (void)parallax::analysis::calibration_text(overlay, summary);
  } catch (const parallax::InputError&) {
  }
  return 0;
}
