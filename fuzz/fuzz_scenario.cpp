// libFuzzer target: a scenario in protobuf text format (PARALLAX_FUZZ_JSON=0) or in protobuf's JSON
// mapping (=1), parsed, merged with presets, validated, and (when small) built into a job graph
// with its memory model. Bad input must end in parallax::InputError; anything else (another
// exception, a crash, a sanitizer report, a hang) is a finding.
#include "fuzz_support.h"
#include "scenario_mutator.h"

#include "parallax/model/job_graph.h"
#include "parallax/model/memory_model.h"
#include "parallax/model/scenario.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
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

// libFuzzer's hook for a custom mutation, defined only in the libFuzzer build (fuzz/CMakeLists.txt
// sets PARALLAX_FUZZ_MUTATOR): the gcc replay build links no libFuzzer, so it has no
// LLVMFuzzerMutate.
#ifdef PARALLAX_FUZZ_MUTATOR
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  // Half the time an extreme number in a field of a scenario that parses; otherwise (and when the
  // input does not parse or the result would not fit) libFuzzer's byte mutation.
  if (rng() % 2 == 0) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    if (const auto out =
            parallax::fuzz::mutate_scenario_number(input, PARALLAX_FUZZ_JSON != 0, rng);
        out && out->size() <= max_size) {
      std::memcpy(data, out->data(), out->size());
      return out->size();
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}
#endif
