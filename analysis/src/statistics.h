// Small statistics shared by compare and calibrate.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace parallax::analysis {

// The median (the mean of the two middle values for an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) return *mid;
  const double upper = *mid;
  return 0.5 * (*std::max_element(v.begin(), mid) + upper);
}

}  // namespace parallax::analysis
