// Loading a scenario: parse (text format or JSON), merge cluster and GPU presets, validate.
#pragma once

#include "parallax/model/presets.h"
#include "parallax/parallax.pb.h"
#include "parallax/traces/io.h"  // InputError

#include <cstdint>
#include <filesystem>
#include <string>

namespace parallax::model {

// Directory holding bundled presets (clusters/, gpus/): $PARALLAX_DATA_DIR if set, else the source
// tree's scenarios/ compiled in.
std::filesystem::path data_dir();

// Reads a scenario, resolves `cluster.preset` and `cluster.gpu.preset` (looked up next to the
// scenario in clusters/ and gpus/, then in data_dir()), and validates it. On bad input throws
// InputError naming the file, the line, the field and the fix.
Scenario load_scenario(const std::filesystem::path& path);

// A model that replaces a scenario's model block (--hf-config): the scenario's seq_length and
// precision are kept where the scenario sets them (the model file says what the model is, the
// scenario how it is trained); `seq_length` > 0 (--seq) overrides both.
struct ModelReplacement {
  ModelSpec model;
  std::string source;  // the file the model came from: messages about model fields name it
  int seq_length = 0;
};
// load_scenario with the model block replaced before validation.
Scenario load_scenario(const std::filesystem::path& path, const ModelReplacement& replacement);
// The model of a replacement with --seq applied, for callers with no scenario (plan MODEL).
ModelSpec replaced_model(const ModelReplacement& replacement);

// Same from text; `name` stands for the file in messages, presets are looked up from `base_dir`.
Scenario parse_scenario(const std::string& text, const std::string& name, bool json,
                        const std::filesystem::path& base_dir);

// Validates a scenario whose presets are already merged, e.g. the one a plan or a timeline embeds;
// `name` stands for where it came from in messages ("plan.pb: scenario"). Throws InputError as
// load_scenario does (without line numbers).
void validate_scenario(const Scenario& scenario, const std::string& name);
// Validates a cluster whose presets are merged as a scenario's cluster block is, for `precision`;
// messages name the preset file and line a bad field came from, else `name`.
void validate_cluster(const ResolvedCluster& cluster, const std::string& name, Precision precision = BF16);
// The same for the scenario of a graph imported from an execution trace (interop::import_chakra): no
// model; the node and GPU counts and the rank count (layout.dp, tp = pp = 1, no symmetry) are
// checked, the machine model is not (only the simulator uses it, and it imports the trace itself).
void validate_imported_scenario(const Scenario& scenario, const std::string& name);

// The numbers every formula uses, in the notation of docs/architecture.md ("What the builder emits"), as 64-bit integers.
struct Dims {
  std::int64_t L, h, a, f, s, V;  // layers, hidden, heads, FFN size, sequence, vocabulary
  std::int64_t b, B;              // micro-batch size, global batch size
  std::int64_t t, p, d, v;        // tensor, pipeline, data parallel degrees; virtual stages
  std::int64_t m;                 // micro-batches per pipeline per step: B / (b d)
  std::int64_t e;                 // bytes per element of the training precision
  std::int64_t gpus;              // d t p
  bool sp;                        // sequence parallel
  // The layer's shape beyond GPT (model::LayerDescription reads these). Zero / default means the
  // GPT value, so a Dims written field by field for a GPT layer needs none of them.
  std::int64_t g = 0;   // key/value heads (query groups); 0: a
  std::int64_t hd = 0;  // head dimension; 0: h / a
  std::int64_t Vp = 0;  // vocabulary padded as Megatron pads it (model::padded_vocab); 0: V
  ModelSpec::Activation activation = ModelSpec::GELU;
  ModelSpec::Normalization normalization = ModelSpec::LAYERNORM;
  ModelSpec::AttentionKernel attention = ModelSpec::UNFUSED;
  ModelSpec::PositionEmbedding positions = ModelSpec::LEARNED;
  bool bias = true;  // biases on the linear layers
  bool tied = true;  // tied input and output embeddings
  bool dropout = true;  // dropout (and its masks) on the embedding, residual branches and attention
  Layout::SelectivePolicy selective_policy = Layout::CORE_ATTENTION;
  // FP8 training (model.precision FP8): the linears' GEMMs in FP8 with Transformer Engine's casts;
  // e stays 2 (BF16 activations).
  bool fp8 = false;
  bool fp8_current = false;  // Float8CurrentScaling: an amax pass before each cast
  bool fp8_params = false;   // weights kept only in FP8 (no BF16 copy)
  // Context-parallel degree: each cp rank holds s / c tokens of every sequence (local_tokens).
  std::int64_t c = 1;
  // model.elementwise_kernels EAGER: the elementwise ops as PyTorch eager runs them (layer.cpp).
  bool eager = false;
  // Mixture of Experts (model.num_experts > 0): experts, top-k, one expert's FFN size, shared
  // experts, the leading dense layers, the routing skew, and the expert-parallel and expert
  // tensor-parallel degrees (folded into t x c x d, Megatron's expert grid).
  std::int64_t experts = 0, top_k = 0, moe_f = 0, shared = 0, dense_layers = 0;
  double skew = 1.0;
  double capacity = 0;  // moe_capacity_factor; 0: dropless
  bool pad_to_capacity = false;  // moe_pad_to_capacity: every expert computes exactly its capacity
  std::int64_t ep = 1, etp = 1;
  bool allgather_dispatcher = false;  // layout.moe_dispatcher ALLGATHER
  std::int64_t mtp = 0;  // model.mtp_layers: multi-token prediction modules on the last stage
  // Multi-head latent attention (kv_lora > 0): the latent ranks and the head dimensions.
  std::int64_t q_lora = 0, kv_lora = 0, qk_nope = 0, qk_rope = 0, v_hd = 0;
  // Sliding-window attention: window in tokens (0: none) and its layer pattern; attention sinks.
  std::int64_t window = 0, window_pattern = 0;
  bool sinks = false;
};
// model.mtp_layers: at most this many multi-token prediction modules.
inline constexpr std::int64_t kMaxMtpLayers = 8;
// Whether layer `layer` (0-based) attends through the sliding window.
inline bool is_windowed_layer(const Dims& d, std::int64_t layer) {
  return d.window > 0 && (d.window_pattern <= 1 || layer % d.window_pattern != d.window_pattern - 1);
}
// Whether layer `layer` (0-based) is a MoE layer.
inline bool is_moe_layer(const Dims& d, std::int64_t layer) { return d.experts > 0 && layer >= d.dense_layers; }
// Tokens of one micro-batch held by one rank: b * s / c (context parallelism splits the sequence).
inline std::int64_t local_tokens(const Dims& d) { return d.b * d.s / (d.c > 0 ? d.c : 1); }
inline std::int64_t local_seq(const Dims& d) { return d.s / (d.c > 0 ? d.c : 1); }
// The ranks that hold the same weights: gradients are reduced, and ZeRO shards, over dp x cp.
inline std::int64_t dp_cp(const Dims& d) { return d.d * (d.c > 0 ? d.c : 1); }
// Fills the fields above from the model (and tp, for the vocabulary padding).
void set_layer_shape(Dims& d, const ModelSpec& model, const Layout& layout);
Dims dims(const Scenario& scenario);

// Bytes of one activation, weight or gradient element: 2 for FP8 training (Transformer Engine keeps
// them in BF16 and casts to FP8 for the linears' GEMMs).
int bytes_per_element(Precision precision);
double peak_flops(const GpuSpec& gpu, Precision precision);  // FLOP/s
// The peak MFU is counted against: the model precision's, and the BF16 peak for FP8 training (only its
// linears run in FP8), so a BF16 run and its FP8 twin compare on one scale.
double mfu_peak_flops(const GpuSpec& gpu, Precision precision);
std::string precision_name(Precision precision);

}  // namespace parallax::model
