// Number formatting (and the model's label) shared by the subcommands' text output.
#pragma once

#include "parallax/parallax.pb.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace parallax::cli {

// 3 significant digits with an SI prefix: "175 G", "4.51 EFLOP".
// What to call a model in a report: its name, else what its layer is (GELU + LayerNorm + learned
// positions: GPT; anything else: a transformer, e.g. a Llama-style one from --hf-config or a table row).
inline std::string model_label(const ModelSpec& m) {
  if (!m.name().empty()) return m.name();
  const bool gpt = m.activation() == ModelSpec::GELU && m.normalization() == ModelSpec::LAYERNORM &&
                   m.position_embedding() == ModelSpec::LEARNED;
  return gpt ? "GPT" : "transformer";
}

inline std::string si(double v, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E", "Z"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 7) {
    v /= 1000;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", v, prefixes[i], unit);
  return buf;
}

inline std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

// 1234567 -> "1,234,567"
// (Built front to back: GCC 12 reports a false -Wrestrict on the inlined string::insert.)
inline std::string count(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// Seconds in the unit that reads best: "850 us", "12.3 ms", "4.56 s", "3.2 h", "25.9 days".
inline std::string duration(double s) {
  char buf[32];
  if (s < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  } else if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  } else if (s < 2 * 86400) {
    std::snprintf(buf, sizeof buf, "%.3g h", s / 3600);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g days", s / 86400);
  }
  return buf;
}

}  // namespace parallax::cli
