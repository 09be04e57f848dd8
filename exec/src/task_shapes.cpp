#include "parallax/exec/task_shapes.h"

#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

namespace parallax::exec {
namespace {

struct HeadCounts {
  std::int64_t heads, kv_heads, head_dim;
};

// The scenario's attention heads on one rank; the schema's zeros mean "as GPT" (job_graph.h,
// parallax.proto ModelSpec).
HeadCounts head_counts(const Scenario& scenario, const std::string& which) {
  const auto& m = scenario.model();
  const std::int64_t a = m.num_heads(), t = scenario.layout().tp();
  const std::int64_t groups = m.num_query_groups() ? m.num_query_groups() : a;
  const std::int64_t head_dim = m.head_dim() ? m.head_dim() : (a > 0 ? m.hidden_size() / a : 0);
  if (a <= 0 || t <= 0 || groups <= 0 || head_dim <= 0 || a % t != 0 || a % groups != 0)
    throw InputError(which + ": the scenario's num_heads " + std::to_string(a) + ", num_query_groups " +
                     std::to_string(groups) + " and tp " + std::to_string(t) +
                     " give no whole number of heads per rank");
  // Megatron replicates kv heads when tp exceeds them: each rank then holds one.
  const std::int64_t kv = groups >= t ? groups / t : 1;
  if (groups >= t && groups % t != 0)
    throw InputError(which + ": num_query_groups " + std::to_string(groups) + " is not a multiple of tp " +
                     std::to_string(t));
  return {a / t, kv, head_dim};
}

std::string task_label(const model::JobGraph& graph, std::uint32_t task, const std::string& source) {
  return source + ": task " + std::to_string(task) + " (" + graph.task_name(task) + ")";
}

}  // namespace

bool is_layer_kernel(model::Op op) {
  switch (op) {
    case model::Op::RmsNorm:
    case model::Op::FinalRmsNorm:
    case model::Op::Rope:
    case model::Op::FlashAttention:
    case model::Op::Swiglu:
    case model::Op::SquaredRelu:
      return true;
    default:
      return false;
  }
}

FlashAttentionShape flash_attention_shape(const model::JobGraph& graph, std::uint32_t task,
                                          const std::string& source) {
  const model::Task& t = graph.tasks().at(task);
  const std::string which = task_label(graph, task, source);
  if (t.op != model::Op::FlashAttention || t.kind != GEMM)
    throw InputError(which + " is not a flash attention task of kind GEMM");
  if (!graph.scenario().has_model())
    throw InputError(which + ": flash attention needs the scenario's model (heads, head_dim) to run");
  const HeadCounts h = head_counts(graph.scenario(), which);
  // Context parallelism: each kernel of the ring attends this rank's s / cp queries to one s / cp block.
  const std::int64_t seq = model::local_seq(model::dims(graph.scenario()));
  auto mismatch = [&](const std::string& field, std::int64_t got, std::int64_t want, const std::string& from) {
    throw InputError(which + ": " + field + " is " + std::to_string(got) + " but the scenario gives " +
                     std::to_string(want) + " (" + from + "); the plan's task and its scenario disagree: write the " +
                     "plan again with `parallax inspect -o`");
  };
  if (t.gemm_m != seq) mismatch("gemm_m (query tokens)", t.gemm_m, seq, "model.seq_length / layout.cp");
  if (t.gemm_n != seq) mismatch("gemm_n (key tokens)", t.gemm_n, seq, "model.seq_length / layout.cp");
  if (t.gemm_k != h.head_dim) mismatch("gemm_k (head_dim)", t.gemm_k, h.head_dim, "model.head_dim");
  if (t.gemm_batch == 0 || t.gemm_batch % h.heads != 0)
    mismatch("gemm_batch (micro-batch x query heads per rank)", t.gemm_batch, h.heads, "a multiple of num_heads / tp");
  const std::int64_t b = t.gemm_batch / h.heads;
  if (b != graph.scenario().layout().micro_batch_size())
    mismatch("gemm_batch / (num_heads / tp)", b, graph.scenario().layout().micro_batch_size(),
             "layout.micro_batch_size");
  FlashAttentionShape shape;
  shape.batch = static_cast<std::uint32_t>(b);
  shape.heads = static_cast<std::uint32_t>(h.heads);
  shape.kv_heads = static_cast<std::uint32_t>(h.kv_heads);
  shape.seq = static_cast<std::uint32_t>(seq);
  shape.head_dim = static_cast<std::uint32_t>(h.head_dim);
  shape.backward = t.phase == BACKWARD;
  return shape;
}

LayerOpShape layer_op_shape(const model::JobGraph& graph, std::uint32_t task, const std::string& source) {
  const model::Task& t = graph.tasks().at(task);
  const std::string which = task_label(graph, task, source);
  if (!is_layer_kernel(t.op) || t.op == model::Op::FlashAttention || t.kind != MEMORY_BOUND)
    throw InputError(which + " is not an elementwise layer op of kind MEMORY_BOUND");
  if (!graph.scenario().has_model())
    throw InputError(which + ": " + std::string(model::op_name(t.op)) +
                     " needs the scenario's model (hidden and FFN sizes) to run");
  const Scenario& scenario = graph.scenario();
  const model::Dims d = model::dims(scenario);
  const bool bwd = t.phase == BACKWARD;
  const std::int64_t tokens = model::local_tokens(d);
  auto divide = [&](std::int64_t value, std::int64_t by, const std::string& what) {
    if (by <= 0 || value % by != 0)
      throw InputError(which + ": " + what + " " + std::to_string(value) + " is not a multiple of tp " +
                       std::to_string(by));
    return value / by;
  };
  LayerOpShape shape;
  shape.backward = bwd;
  shape.rows = static_cast<std::uint64_t>(tokens);
  switch (t.op) {
    case model::Op::RmsNorm:
    case model::Op::FinalRmsNorm:
      if (d.sp) shape.rows = static_cast<std::uint64_t>(divide(tokens, d.t, "micro_batch_size x seq_length"));
      shape.cols = static_cast<std::uint64_t>(d.h);
      shape.bytes_per_value = static_cast<std::uint32_t>((bwd ? 3 : 2) * d.e);
      break;
    case model::Op::SquaredRelu:
      shape.cols = static_cast<std::uint64_t>(divide(d.f, d.t, "ffn_hidden_size"));
      shape.bytes_per_value = static_cast<std::uint32_t>((bwd ? 3 : 2) * d.e);
      break;
    case model::Op::Swiglu:
      shape.cols = static_cast<std::uint64_t>(divide(d.f, d.t, "ffn_hidden_size"));
      shape.bytes_per_value = static_cast<std::uint32_t>((bwd ? 5 : 3) * d.e);
      break;
    case model::Op::Rope: {
      const HeadCounts h = head_counts(scenario, which);
      if (h.head_dim % 2 != 0)
        throw InputError(which + ": RoPE rotates pairs of values, but head_dim " + std::to_string(h.head_dim) +
                         " is odd");
      shape.cols = static_cast<std::uint64_t>((h.heads + h.kv_heads) * h.head_dim);
      shape.seq = static_cast<std::uint32_t>(model::local_seq(d));
      shape.head_dim = static_cast<std::uint32_t>(h.head_dim);
      shape.bytes_per_value = static_cast<std::uint32_t>(2 * d.e);
      break;
    }
    default:
      break;
  }
  const std::uint64_t want = shape.values() * shape.bytes_per_value;
  if (t.bytes != want)
    throw InputError(which + ": bytes is " + std::to_string(t.bytes) + " but the scenario gives " +
                     std::to_string(shape.rows) + " x " + std::to_string(shape.cols) + " values x " +
                     std::to_string(shape.bytes_per_value) + " bytes = " + std::to_string(want) +
                     " (exec/include/parallax/exec/task_shapes.h); the plan's task and its scenario disagree");
  return shape;
}

}  // namespace parallax::exec
