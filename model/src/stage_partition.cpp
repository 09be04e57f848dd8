#include "parallax/model/stage_partition.h"

#include "parallax/model/layout_rules.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace parallax::model {

namespace {

constexpr std::int64_t kMaxDegree = std::int64_t{1} << 20;

std::string str(std::int64_t n) { return std::to_string(n); }

// Up to 12 values of `first .. last` that `ok` accepts, as "1, 2, 4 (and more)"; "none" when none.
template <class Ok>
std::string choices(std::int64_t first, std::int64_t last, Ok ok) {
  std::string out;
  int shown = 0;
  for (std::int64_t x = first; x <= last; ++x) {
    if (!ok(x)) continue;
    if (shown == 12) return out + ", ...";
    out += (shown++ ? ", " : "") + str(x);
  }
  return shown ? out : "none";
}

// Megatron's uneven first / last stage (transformer_config.py __post_init__ checks): the middle stages
// share what is left evenly, every stage's layers divide into its chunks.
struct UnevenSplit {
  std::int64_t middle_stages = 0, middle_layers = 0;
};
std::optional<std::string> uneven_problem(std::int64_t L, std::int64_t p, std::int64_t v, std::int64_t first,
                                          std::int64_t last, UnevenSplit* split) {
  UnevenSplit s;
  s.middle_stages = p - (first > 0 ? 1 : 0) - (last > 0 ? 1 : 0);
  s.middle_layers = L - first - last;
  if (s.middle_layers < 0)
    return "first_stage_layers + last_stage_layers = " + str(first + last) + " exceeds num_layers " + str(L);
  if ((s.middle_layers > 0) != (s.middle_stages > 0))
    return "leaves " + str(s.middle_layers) + " layers for " + str(s.middle_stages) +
           " middle pipeline stages (Megatron needs both or neither)";
  if (s.middle_stages > 0 && (s.middle_layers % s.middle_stages != 0 || (s.middle_layers / s.middle_stages) % v != 0))
    return "the " + str(s.middle_layers) + " layers left for the " + str(s.middle_stages) +
           " middle stages do not divide evenly into them and their " + str(v) + " chunks each";
  if (split) *split = s;
  return std::nullopt;
}

std::optional<StagePartitionProblem> build(const ModelSpec& model, const Layout& l, std::vector<std::int64_t>* out) {
  const std::int64_t L = model.num_layers(), p = l.pp();
  const bool interleaved = l.schedule() == Layout::INTERLEAVED_1F1B;
  const std::int64_t v = interleaved ? l.virtual_stages() : 1;
  if (L < 1 || p < 1 || v < 1) return StagePartitionProblem{{"layout", "pp"}, "num_layers, pp and virtual_stages must be >= 1"};
  const std::int64_t n = p * v;
  const std::string n_text = interleaved ? "pp * virtual_stages = " + str(p) + " * " + str(v) + " = " + str(n) : "pp = " + str(p);
  const bool first_last = l.first_stage_layers() != 0 || l.last_stage_layers() != 0;
  const bool slots = l.embedding_in_pipeline_split() || l.loss_in_pipeline_split();
  // Checked before the per-stage list is allocated (a fuzzed virtual_stages of 2^31 - 1): even a
  // partition with empty chunks has at most one virtual stage per layer plus the embedding's and
  // the loss's slots.
  if (n > L + 2)
    return StagePartitionProblem{{"layout", interleaved ? "virtual_stages" : "pp"},
                                 n_text + " virtual stages for " + str(L) +
                                     " layers: at most num_layers + 2 (one per layer, and the embedding's and "
                                     "the loss's slots)"};
  std::vector<std::int64_t> layers(static_cast<std::size_t>(n), 0);

  if (l.stage_layers_size() > 0) {
    for (const auto& [name, set] : {std::pair{"first_stage_layers", l.first_stage_layers() != 0},
                                    {"last_stage_layers", l.last_stage_layers() != 0},
                                    {"embedding_in_pipeline_split", l.embedding_in_pipeline_split()},
                                    {"loss_in_pipeline_split", l.loss_in_pipeline_split()}})
      if (set)
        return StagePartitionProblem{{"layout", name},
                                     "cannot be combined with stage_layers (the explicit list gives every virtual "
                                     "stage's layers); leave it at its default"};
    if (l.stage_layers_size() != n)
      return StagePartitionProblem{{"layout", "stage_layers"},
                                   "has " + str(l.stage_layers_size()) + " entries but " + n_text +
                                       " virtual stages need one each, in virtual-stage order (chunk * pp + stage)"};
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t x = l.stage_layers(static_cast<int>(i));
      if (x < 0)
        return StagePartitionProblem{{"layout", "stage_layers"},
                                     "entry " + str(i) + " is " + str(x) + "; layer counts must be >= 0"};
      layers[static_cast<std::size_t>(i)] = x;
      sum += x;
    }
    if (sum != L)
      return StagePartitionProblem{{"layout", "stage_layers"},
                                   "sums to " + str(sum) + " layers but num_layers is " + str(L)};
    // Pipeline transfers are told apart by the layer above their boundary: pp empty virtual stages in
    // a row would give one stage-to-stage link two transfers of the same name.
    for (std::int64_t i = 0, run = 0; i < n && p > 1; ++i) {
      run = layers[static_cast<std::size_t>(i)] == 0 ? run + 1 : 0;
      if (run >= p)
        return StagePartitionProblem{{"layout", "stage_layers"},
                                     "entries " + str(i - run + 1) + " to " + str(i) + " are 0: at most pp - 1 = " +
                                         str(p - 1) + " virtual stages in a row may be empty"};
    }
  } else if (first_last) {
    if (slots)
      return StagePartitionProblem{
          {"layout", l.embedding_in_pipeline_split() ? "embedding_in_pipeline_split" : "loss_in_pipeline_split"},
          "cannot be combined with first_stage_layers / last_stage_layers (Megatron refuses it too); use one or "
          "the other, or give stage_layers"};
    if (p < 2)
      return StagePartitionProblem{{"layout", l.first_stage_layers() != 0 ? "first_stage_layers" : "last_stage_layers"},
                                   "an uneven first or last stage needs pp >= 2"};
    const std::int64_t first = l.first_stage_layers(), last = l.last_stage_layers();
    for (const auto& [name, value] : {std::pair{"first_stage_layers", first}, {"last_stage_layers", last}})
      if (value % v != 0)
        return StagePartitionProblem{{"layout", name},
                                     str(value) + " is not divisible by virtual_stages " + str(v) +
                                         " (each chunk of the stage holds the same number of layers)"};
    UnevenSplit split;
    if (const auto why = uneven_problem(L, p, v, first, last, &split)) {
      // Name the field the user set (first when both are), with the values that would work.
      const bool fix_first = first > 0;
      const std::string field = fix_first ? "first_stage_layers" : "last_stage_layers";
      const std::string valid = choices(1, L, [&](std::int64_t x) {
        return x % v == 0 && !uneven_problem(L, p, v, fix_first ? x : first, fix_first ? last : x, nullptr);
      });
      return StagePartitionProblem{{"layout", field}, *why + "; valid " + field + " (with the other as given): " + valid};
    }
    const std::int64_t middle = split.middle_stages > 0 ? split.middle_layers / split.middle_stages : 0;
    for (std::int64_t stage = 0; stage < p; ++stage) {
      std::int64_t on_stage = middle;
      if (stage == 0 && first > 0) on_stage = first;
      if (stage == p - 1 && last > 0) on_stage = last;
      for (std::int64_t c = 0; c < v; ++c) layers[static_cast<std::size_t>(c * p + stage)] = on_stage / v;
    }
  } else if (slots) {
    const std::int64_t total = L + (l.embedding_in_pipeline_split() ? 1 : 0) + (l.loss_in_pipeline_split() ? 1 : 0);
    if (total % p != 0)
      return StagePartitionProblem{{"layout", "pp"},
                                   "num_layers " + str(L) + " plus the embedding and / or loss slots = " + str(total) +
                                       " is not divisible by pp " + str(p) + "; valid pp: " + divisors_text(total, kMaxDegree)};
    const std::int64_t per_stage = total / p;
    if (per_stage % v != 0)
      return StagePartitionProblem{{"layout", "virtual_stages"},
                                   "the " + str(per_stage) + " layer slots of each stage are not divisible by virtual_stages " +
                                       str(v) + "; valid virtual_stages: " + divisors_text(per_stage, kMaxDegree)};
    std::fill(layers.begin(), layers.end(), per_stage / v);
    if (l.embedding_in_pipeline_split()) --layers.front();
    if (l.loss_in_pipeline_split()) --layers.back();
    if (layers.front() < 0 || layers.back() < 0)
      return StagePartitionProblem{{"layout", "loss_in_pipeline_split"},
                                   "the embedding and the loss do not fit in the one chunk of " + str(per_stage / v) +
                                       " layer slot"};
  } else {
    const LayoutFacts facts = LayoutFacts::of(model);
    LayoutShape shape = LayoutShape::of(l);
    if (first_broken_rule(facts, shape, LayoutRule::LayersPpV, LayoutRule::LayersPpV)) {
      const LayoutRuleViolation why = explain_broken_rule(LayoutRule::LayersPpV, facts, shape);
      return StagePartitionProblem{why.field, why.problem};
    }
    std::fill(layers.begin(), layers.end(), L / n);
  }
  if (out) *out = std::move(layers);
  return std::nullopt;
}

}  // namespace

StagePartition StagePartition::even(std::int64_t num_layers, std::int64_t pp, std::int64_t chunks) {
  if (pp < 1 || chunks < 1 || num_layers % (pp * chunks) != 0)
    throw std::invalid_argument("stage partition: the layers do not divide evenly over pp * chunks");
  return StagePartition(std::vector<std::int64_t>(static_cast<std::size_t>(pp * chunks), num_layers / (pp * chunks)), pp);
}

StagePartition::StagePartition(std::vector<std::int64_t> chunk_layers, std::int64_t pp)
    : layers_(std::move(chunk_layers)), pp_(pp) {
  if (pp_ < 1 || layers_.empty() || layers_.size() % static_cast<std::size_t>(pp_) != 0)
    throw std::invalid_argument("stage partition: one entry per virtual stage, pp * chunks of them");
  first_.assign(layers_.size() + 1, 0);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i] < 0) throw std::invalid_argument("stage partition: a negative layer count");
    first_[i + 1] = first_[i] + layers_[i];
  }
}

std::int64_t StagePartition::stage_layers(std::int64_t stage) const {
  std::int64_t sum = 0;
  for (std::int64_t c = 0; c < chunks(); ++c) sum += layers_of_chunk(stage, c);
  return sum;
}

bool StagePartition::even() const {
  return std::adjacent_find(layers_.begin(), layers_.end(), std::not_equal_to<>()) == layers_.end();
}

bool has_partition_fields(const Layout& l) {
  return l.stage_layers_size() > 0 || l.first_stage_layers() != 0 || l.last_stage_layers() != 0 ||
         l.embedding_in_pipeline_split() || l.loss_in_pipeline_split();
}

std::optional<StagePartitionProblem> stage_partition_problem(const ModelSpec& model, const Layout& layout) {
  return build(model, layout, nullptr);
}

std::optional<StagePartition> try_stage_partition(const ModelSpec& model, const Layout& layout) {
  std::vector<std::int64_t> layers;
  if (build(model, layout, &layers)) return std::nullopt;
  return StagePartition(std::move(layers), layout.pp());
}

StagePartition stage_partition(const Scenario& scenario) {
  std::vector<std::int64_t> layers;
  if (const auto why = build(scenario.model(), scenario.layout(), &layers))
    throw std::invalid_argument("stage partition: layout." + why->field.back() + ": " + why->problem);
  return StagePartition(std::move(layers), scenario.layout().pp());
}

}  // namespace parallax::model
