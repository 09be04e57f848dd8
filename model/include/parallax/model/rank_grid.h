// Where a rank sits in the 3D layout and who its communicator peers are: Megatron's order,
// rank = tp + t * (dp + d * stage).
#pragma once

#include "parallax/parallax.pb.h"

#include <cstdint>
#include <vector>

namespace parallax::model {

struct RankGrid {
  std::int64_t t = 1, d = 1, p = 1;

  std::int64_t tp(std::uint32_t r) const { return r % t; }
  std::int64_t dp(std::uint32_t r) const { return (r / t) % d; }
  std::int64_t stage(std::uint32_t r) const { return r / (t * d); }
  std::uint32_t rank(std::int64_t tp_index, std::int64_t dp_index, std::int64_t stage_index) const {
    return static_cast<std::uint32_t>(tp_index + t * (dp_index + d * stage_index));
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(t * d * p); }

  // The global ranks of `group` that `r` belongs to, in rank order (the communicator's rank order).
  std::vector<std::uint32_t> members(CommGroup group, std::uint32_t r) const {
    std::vector<std::uint32_t> m;
    switch (group) {
      case GROUP_TP:
        for (std::int64_t i = 0; i < t; ++i) m.push_back(rank(i, dp(r), stage(r)));
        break;
      case GROUP_DP:
        for (std::int64_t i = 0; i < d; ++i) m.push_back(rank(tp(r), i, stage(r)));
        break;
      case GROUP_EMBEDDING:
        m.push_back(rank(tp(r), dp(r), 0));
        if (p > 1) m.push_back(rank(tp(r), dp(r), p - 1));
        break;
      case GROUP_PP:
        for (std::int64_t i = 0; i < p; ++i) m.push_back(rank(tp(r), dp(r), i));
        break;
      default:
        m.push_back(r);
    }
    return m;
  }
};

inline RankGrid rank_grid(const Scenario& sc) {
  return RankGrid{sc.layout().tp(), sc.layout().dp(), sc.layout().pp()};
}

}  // namespace parallax::model
