// libFuzzer target: a scenario in protobuf text format (PARALLAX_FUZZ_JSON=0) or in protobuf's JSON
// mapping (=1), parsed, merged with presets, validated, and (when small) built into a job graph
// with its memory model. Bad input must end in parallax::InputError; anything else (another
// exception, a crash, a sanitizer report, a hang) is a finding.
#include "fuzz_support.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/scenario.h"

#include <cstddef>
#include <cstdint>
#include <string>

#ifndef PARALLAX_FUZZ_JSON
#error "PARALLAX_FUZZ_JSON must be 0 (text format) or 1 (JSON)"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool json = PARALLAX_FUZZ_JSON != 0;
  try {
    // Presets named by the input are looked up in the bundled scenarios/ (the data dir), as for a
    // scenario written next to them.
    const parallax::Scenario sc = parallax::model::parse_scenario(
        text, json ? "fuzz.json" : "fuzz.pbtxt", json, parallax::model::data_dir());
    (void)parallax::model::dims(sc);
    if (parallax::fuzz::small_enough_to_build(sc)) {
      const parallax::model::JobGraph graph = parallax::model::build_job_graph(sc);
      (void)graph.topological_order();
      (void)graph.hardware_flops();
      (void)parallax::model::estimate_memory(sc);
    }
  } catch (const parallax::InputError&) {
    // The reader's answer to bad input.
  }
  return 0;
}
