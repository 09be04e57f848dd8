// Where a rank sits in the N-dimensional layout grid (tp, cp, ep, dp, pp in a configurable order,
// fastest first, Megatron's default "tp-cp-ep-dp-pp") and the one table of its communicator peers.
// With the default order and cp = ep = 1: rank = tp + t * (dp + d * stage).
#pragma once

#include "parallax/parallax.pb.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::model {

enum class GridDim : int { Tp = 0, Cp = 1, Ep = 2, Dp = 3, Pp = 4 };
inline constexpr std::size_t kGridDims = 5;
using GridOrder = std::array<GridDim, kGridDims>;  // fastest-varying dimension first
using GridCoords = std::array<std::int64_t, kGridDims>;  // indexed by GridDim

// The groups collectives run on, in the order executors create their communicators (PP transfers are
// point-to-point).
inline constexpr std::array<CommGroup, 8> kCollectiveGroups{GROUP_TP,    GROUP_CP,        GROUP_EP,        GROUP_DP,
                                                            GROUP_DP_CP, GROUP_EXPERT_DP, GROUP_EXPERT_TP, GROUP_EMBEDDING};

inline constexpr GridOrder kDefaultRankOrder{GridDim::Tp, GridDim::Cp, GridDim::Ep, GridDim::Dp, GridDim::Pp};

std::string_view grid_dim_name(GridDim dim);  // "tp", "cp", "ep", "dp", "pp"
// A permutation of the five names joined by '-' (Layout.rank_order); nullopt otherwise.
std::optional<GridOrder> parse_rank_order(std::string_view text);
std::string rank_order_text(const GridOrder& order);

// Megatron's expert grid (a Mixture-of-Experts model only): each stage's tp x cp x dp ranks, in
// RankGrid::pipeline() order, regrouped as expert tp (etp, fastest) x ep x expert dp.
struct ExpertGrid {
  std::int64_t ep = 1, etp = 1;
};

class RankGrid {
 public:
  RankGrid() : RankGrid(1, 1, 1) {}
  // Megatron's default order with cp = ep = 1.
  RankGrid(std::int64_t tp, std::int64_t dp, std::int64_t pp);
  // `extent` indexed by GridDim; each at least 1. `experts`: the expert grid, folded into the
  // tp x cp x dp ranks of each stage (ep x etp must divide their count; the Ep extent is then 1).
  RankGrid(const GridCoords& extent, const GridOrder& order, std::optional<ExpertGrid> experts = std::nullopt);

  std::int64_t extent(GridDim dim) const { return extent_[index(dim)]; }
  // Rank distance between neighbours along `dim`: the product of the extents of faster dimensions.
  std::int64_t stride(GridDim dim) const { return stride_[index(dim)]; }
  const GridOrder& order() const { return order_; }
  std::uint32_t size() const { return static_cast<std::uint32_t>(size_); }

  std::int64_t coord(GridDim dim, std::uint32_t r) const { return (r / stride(dim)) % extent(dim); }
  std::int64_t tp(std::uint32_t r) const { return coord(GridDim::Tp, r); }
  std::int64_t cp(std::uint32_t r) const { return coord(GridDim::Cp, r); }
  std::int64_t ep(std::uint32_t r) const { return coord(GridDim::Ep, r); }
  std::int64_t dp(std::uint32_t r) const { return coord(GridDim::Dp, r); }
  std::int64_t stage(std::uint32_t r) const { return coord(GridDim::Pp, r); }
  GridCoords coords(std::uint32_t r) const;

  std::uint32_t rank(const GridCoords& c) const;
  // The rank whose coordinates are r's with `dim` set to `index`.
  std::uint32_t with(std::uint32_t r, GridDim dim, std::int64_t index) const {
    return static_cast<std::uint32_t>(static_cast<std::int64_t>(r) + (index - coord(dim, r)) * stride(dim));
  }
  // The rank standing for pipeline stage `stage` under symmetry: every other coordinate 0. Valid for
  // any order.
  std::uint32_t stage_representative(std::int64_t stage) const { return with(0, GridDim::Pp, stage); }
  // Every rank of pipeline stage `stage`, in rank order.
  std::vector<std::uint32_t> stage_ranks(std::int64_t stage) const;
  // Which of the size() / pp pipelines r is in (0 .. pipelines() - 1): its coordinates without pp.
  std::int64_t pipeline(std::uint32_t r) const;
  std::int64_t pipelines() const { return size_ / extent(GridDim::Pp); }
  // Whether the layout has `group` as a communicator of more than one rank (DP_CP only when cp > 1:
  // with cp = 1 it is the DP group; EP, EXPERT_TP and EXPERT_DP only with an expert grid).
  bool has_group(CommGroup group) const;
  // The expert grid (ExpertGrid); without one ep = etp = 1 and expert dp is the stage's rank count.
  bool has_experts() const { return has_experts_; }
  std::int64_t expert_parallel() const { return expert_.ep; }
  std::int64_t expert_tensor_parallel() const { return expert_.etp; }
  std::int64_t expert_data_parallel() const { return size_ / extent(GridDim::Pp) / (expert_.ep * expert_.etp); }

  // The global ranks of `group` that `r` belongs to, in rank order (the communicator's rank order):
  // TP, CP, DP, PP vary one coordinate; DP_CP varies dp and cp; in the expert grid (r's stage in
  // pipeline() order) EXPERT_TP is the etp consecutive ranks around r, EP the ep ranks etp apart
  // around r, EXPERT_DP the stage's ranks at r's expert tp and ep coordinates; EMBEDDING is the
  // first and the last stage; any other group is r alone.
  std::vector<std::uint32_t> members(CommGroup group, std::uint32_t r) const;

 private:
  static std::size_t index(GridDim dim) { return static_cast<std::size_t>(dim); }
  // The rank of `stage` whose index within its stage (pipeline()) is q.
  std::uint32_t stage_rank(std::int64_t stage, std::int64_t q) const;
  // The ranks reached from r by varying the dimensions in `dims` over their extents, sorted.
  std::vector<std::uint32_t> vary(std::uint32_t r, std::initializer_list<GridDim> dims) const;

  GridCoords extent_{1, 1, 1, 1, 1};
  GridCoords stride_{1, 1, 1, 1, 1};
  GridOrder order_ = kDefaultRankOrder;
  std::int64_t size_ = 1;
  ExpertGrid expert_;
  bool has_experts_ = false;
};

// "rank 5 (dp1 tp1 pp0)", with cp / ep / etp coordinates where those dimensions exist: timeline lane
// labels.
std::string rank_label(const RankGrid& grid, std::uint32_t r);
// "dp 2 x tp 2 x pp 2", with cp / ep / etp where they exceed 1: error messages.
std::string grid_shape_text(const RankGrid& grid);

// The layout's grid. The scenario must have passed validation (a valid rank_order); an invalid order
// throws std::invalid_argument.
RankGrid rank_grid(const Scenario& sc);

}  // namespace parallax::model
