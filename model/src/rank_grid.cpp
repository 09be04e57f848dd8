#include "parallax/model/rank_grid.h"

#include <algorithm>
#include <stdexcept>

namespace parallax::model {

namespace {
constexpr std::array<std::string_view, kGridDims> kNames{"tp", "cp", "ep", "dp", "pp"};
}

std::string_view grid_dim_name(GridDim dim) { return kNames[static_cast<std::size_t>(dim)]; }

std::optional<GridOrder> parse_rank_order(std::string_view text) {
  GridOrder order{};
  std::array<bool, kGridDims> seen{};
  std::size_t n = 0;
  while (true) {
    const auto dash = text.find('-');
    const std::string_view name = text.substr(0, dash);
    const auto it = std::find(kNames.begin(), kNames.end(), name);
    if (it == kNames.end() || n == kGridDims) return std::nullopt;
    const auto i = static_cast<std::size_t>(it - kNames.begin());
    if (seen[i]) return std::nullopt;
    seen[i] = true;
    order[n++] = static_cast<GridDim>(i);
    if (dash == std::string_view::npos) break;
    text.remove_prefix(dash + 1);
  }
  if (n != kGridDims) return std::nullopt;
  return order;
}

std::string rank_order_text(const GridOrder& order) {
  std::string out;
  for (GridDim dim : order) out += (out.empty() ? "" : "-") + std::string(grid_dim_name(dim));
  return out;
}

RankGrid::RankGrid(std::int64_t tp, std::int64_t dp, std::int64_t pp)
    : RankGrid(GridCoords{tp, 1, 1, dp, pp}, kDefaultRankOrder) {}

RankGrid::RankGrid(const GridCoords& extent, const GridOrder& order, std::optional<ExpertGrid> experts)
    : extent_(extent), order_(order), expert_(experts.value_or(ExpertGrid{})), has_experts_(experts.has_value()) {
  std::int64_t stride = 1;
  for (GridDim dim : order_) {
    if (extent_[index(dim)] < 1) throw std::invalid_argument("rank grid: a dimension's extent is below 1");
    stride_[index(dim)] = stride;
    stride *= extent_[index(dim)];
  }
  size_ = stride;
  if (expert_.ep < 1 || expert_.etp < 1 || (size_ / extent_[index(GridDim::Pp)]) % (expert_.ep * expert_.etp) != 0)
    throw std::invalid_argument("rank grid: ep x etp does not divide the ranks of a pipeline stage");
  if (has_experts_ && extent_[index(GridDim::Ep)] > 1)
    throw std::invalid_argument("rank grid: ep is folded into tp x cp x dp; the Ep extent must be 1");
}

std::uint32_t RankGrid::stage_rank(std::int64_t stage, std::int64_t q) const {
  GridCoords c{};
  c[index(GridDim::Pp)] = stage;
  for (GridDim dim : order_) {
    if (dim == GridDim::Pp) continue;
    c[index(dim)] = q % extent(dim);
    q /= extent(dim);
  }
  return rank(c);
}

GridCoords RankGrid::coords(std::uint32_t r) const {
  GridCoords c{};
  for (std::size_t i = 0; i < kGridDims; ++i) c[i] = coord(static_cast<GridDim>(i), r);
  return c;
}

std::uint32_t RankGrid::rank(const GridCoords& c) const {
  std::int64_t r = 0;
  for (std::size_t i = 0; i < kGridDims; ++i) r += c[i] * stride_[i];
  return static_cast<std::uint32_t>(r);
}

std::vector<std::uint32_t> RankGrid::stage_ranks(std::int64_t stage) const {
  return vary(stage_representative(stage), {GridDim::Tp, GridDim::Cp, GridDim::Ep, GridDim::Dp});
}

std::int64_t RankGrid::pipeline(std::uint32_t r) const {
  std::int64_t index = 0, scale = 1;
  for (GridDim dim : order_) {
    if (dim == GridDim::Pp) continue;
    index += coord(dim, r) * scale;
    scale *= extent(dim);
  }
  return index;
}

bool RankGrid::has_group(CommGroup group) const {
  switch (group) {
    case GROUP_TP: return extent(GridDim::Tp) > 1;
    case GROUP_CP: return extent(GridDim::Cp) > 1;
    case GROUP_EP: return extent(GridDim::Ep) > 1 || expert_.ep > 1;
    case GROUP_EXPERT_TP: return expert_.etp > 1;
    case GROUP_EXPERT_DP: return has_experts_ && expert_data_parallel() > 1;
    case GROUP_DP: return extent(GridDim::Dp) > 1;
    case GROUP_DP_CP: return extent(GridDim::Cp) > 1;
    case GROUP_PP:
    case GROUP_EMBEDDING: return extent(GridDim::Pp) > 1;
    default: return false;
  }
}

std::vector<std::uint32_t> RankGrid::vary(std::uint32_t r, std::initializer_list<GridDim> dims) const {
  std::vector<std::uint32_t> out{r};
  for (GridDim dim : dims) {
    std::vector<std::uint32_t> next;
    next.reserve(out.size() * static_cast<std::size_t>(extent(dim)));
    for (std::uint32_t m : out)
      for (std::int64_t i = 0; i < extent(dim); ++i) next.push_back(with(m, dim, i));
    out = std::move(next);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint32_t> RankGrid::members(CommGroup group, std::uint32_t r) const {
  switch (group) {
    case GROUP_TP: return vary(r, {GridDim::Tp});
    case GROUP_CP: return vary(r, {GridDim::Cp});
    case GROUP_EP:
    case GROUP_EXPERT_TP:
    case GROUP_EXPERT_DP: {
      if (!has_experts_) return group == GROUP_EP ? vary(r, {GridDim::Ep}) : std::vector<std::uint32_t>{r};
      // r's place in the expert grid: q = e + etp (p + ep x), e its expert tp, p its ep, x its
      // expert dp coordinate.
      const std::int64_t q = pipeline(r), s = stage(r), ep = expert_.ep, etp = expert_.etp;
      const std::int64_t e = q % etp, block = q / (etp * ep) * (etp * ep);
      std::vector<std::uint32_t> m;
      if (group == GROUP_EXPERT_TP)
        for (std::int64_t i = 0; i < etp; ++i) m.push_back(stage_rank(s, q - e + i));
      else if (group == GROUP_EP)
        for (std::int64_t i = 0; i < ep; ++i) m.push_back(stage_rank(s, block + i * etp + e));
      else
        for (std::int64_t i = 0; i < expert_data_parallel(); ++i) m.push_back(stage_rank(s, q % (etp * ep) + i * etp * ep));
      std::sort(m.begin(), m.end());
      return m;
    }
    case GROUP_DP: return vary(r, {GridDim::Dp});
    case GROUP_DP_CP: return vary(r, {GridDim::Dp, GridDim::Cp});
    case GROUP_PP: return vary(r, {GridDim::Pp});
    case GROUP_EMBEDDING: {
      std::vector<std::uint32_t> m{with(r, GridDim::Pp, 0)};
      if (extent(GridDim::Pp) > 1) m.push_back(with(r, GridDim::Pp, extent(GridDim::Pp) - 1));
      return m;
    }
    default: return {r};
  }
}

std::string rank_label(const RankGrid& grid, std::uint32_t r) {
  std::string out = "rank " + std::to_string(r) + " (dp" + std::to_string(grid.dp(r)) + " tp" + std::to_string(grid.tp(r)) +
                    " pp" + std::to_string(grid.stage(r));
  if (grid.extent(GridDim::Cp) > 1) out += " cp" + std::to_string(grid.cp(r));
  if (grid.extent(GridDim::Ep) > 1) out += " ep" + std::to_string(grid.ep(r));
  const std::int64_t etp = grid.expert_tensor_parallel();
  if (grid.expert_parallel() > 1) out += " ep" + std::to_string(grid.pipeline(r) / etp % grid.expert_parallel());
  if (etp > 1) out += " etp" + std::to_string(grid.pipeline(r) % etp);
  return out + ")";
}

std::string grid_shape_text(const RankGrid& grid) {
  std::string out = "dp " + std::to_string(grid.extent(GridDim::Dp)) + " x tp " + std::to_string(grid.extent(GridDim::Tp)) +
                    " x pp " + std::to_string(grid.extent(GridDim::Pp));
  if (grid.extent(GridDim::Cp) > 1) out += " x cp " + std::to_string(grid.extent(GridDim::Cp));
  if (grid.extent(GridDim::Ep) > 1) out += " x ep " + std::to_string(grid.extent(GridDim::Ep));
  if (grid.expert_parallel() > 1 || grid.expert_tensor_parallel() > 1) {
    out += " (";
    if (grid.expert_parallel() > 1) out += "ep " + std::to_string(grid.expert_parallel());
    if (grid.expert_parallel() > 1 && grid.expert_tensor_parallel() > 1) out += " x ";
    if (grid.expert_tensor_parallel() > 1) out += "etp " + std::to_string(grid.expert_tensor_parallel());
    out += " within)";
  }
  return out;
}

RankGrid rank_grid(const Scenario& sc) {
  const Layout& l = sc.layout();
  const auto order = parse_rank_order(l.rank_order());
  if (!order)
    throw std::invalid_argument("layout.rank_order \"" + l.rank_order() +
                                "\" is not a permutation of tp, cp, ep, dp, pp joined by '-'");
  // Megatron's ep and etp fold into tp x cp x dp (the expert grid of each stage), so the dense
  // grid's Ep extent is 1.
  std::optional<ExpertGrid> experts;
  if (sc.model().num_experts() > 0) experts = ExpertGrid{std::max(1, l.ep()), std::max(1, l.etp())};
  return RankGrid(GridCoords{l.tp(), l.cp(), 1, l.dp(), l.pp()}, *order, experts);
}

}  // namespace parallax::model
