// Presets: the bundled (or user-written) cluster, GPU and model files a scenario or a command line
// names, how a name is found, and how a preset and the fields given on top of it merge. Every front
// end (scenario loading, Chakra import, the planner, calibration) resolves presets here.
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/traces/io.h"  // InputError

#include <filesystem>
#include <string>
#include <vector>

namespace parallax::model {

enum class PresetKind { Cluster, Gpu, Model };

// No file for a preset name or path. what() names the kind, the name, every file looked for, the
// bundled presets and the fix; detail() is the part from "(looked for" on, for callers that put the
// name in their own words (a scenario field).
class PresetNotFound : public InputError {
 public:
  PresetNotFound(PresetKind kind, const std::string& name, const std::vector<std::filesystem::path>& searched);
  // A name that may not name a preset (an absolute path, a ".." component): `detail` says why and
  // how to give the file instead.
  PresetNotFound(PresetKind kind, const std::string& name, std::string detail);
  PresetKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // The name as a message shows it: control bytes escaped, a very long name cut.
  const std::string& shown_name() const { return shown_name_; }
  const std::string& detail() const { return detail_; }

 private:
  PresetKind kind_;
  std::string name_, shown_name_, detail_;
};

// The bundled presets of a kind (data_dir()/clusters, gpus or models), sorted by name.
std::vector<std::string> bundled_presets(PresetKind kind);

// The file of a preset. A name is NAME.pbtxt in the kind's folder (clusters/, gpus/, models/) under
// `base_dir` and its parent (when given), then under data_dir(); with a `base_dir` (the folder of
// the file that names it), a name with a dot ("my.cluster") is finally tried as a file there, and a
// name with a slash or a .pbtxt/.json extension is a path relative to it. Never a file elsewhere:
// an absolute path, a ".." component, or a path with no `base_dir` (the command line, which gives
// files with options of their own, e.g. --cluster-file) throws PresetNotFound saying how to give
// the file. Throws PresetNotFound when nothing is found.
std::filesystem::path find_preset(PresetKind kind, const std::string& name_or_path,
                                  const std::filesystem::path& base_dir = {});

// A preset file read as it is written (InputError naming the file and line on a syntax error).
ClusterSpec read_cluster_file(const std::filesystem::path& file);
GpuSpec read_gpu_file(const std::filesystem::path& file);

// A GPU preset. A model preset, named after its file when it has no name of its own.
GpuSpec load_gpu(const std::string& name_or_path, const std::filesystem::path& base_dir = {});
ModelSpec load_model(const std::string& name_or_path, const std::filesystem::path& base_dir = {});

// `overlay` on top of `base`: the fields overlay sets win. Protobuf's MergeFrom appends repeated
// fields, which would mix two GEMM efficiency tables into an invalid one; a table in the overlay
// replaces the base's instead.
GpuSpec merge_gpu(const GpuSpec& base, const GpuSpec& overlay);
ClusterSpec merge_cluster(const ClusterSpec& base, const ClusterSpec& overlay);

// A cluster with its presets merged, and the files its fields came from (empty when none), so that
// messages about a field can point at the preset line that set it.
struct ResolvedCluster {
  ClusterSpec cluster;
  std::filesystem::path cluster_file, gpu_file;
};
// `spec` on top of its `preset` (when set), then the GPU preset the result names (looked up next to
// the cluster preset, else from `base_dir`) under its `gpu` fields. Not validated.
ResolvedCluster merge_cluster_presets(const ClusterSpec& spec, const std::filesystem::path& base_dir);

// A cluster preset by name or path, its GPU preset merged (not validated).
ClusterSpec load_cluster(const std::string& name_or_path, const std::filesystem::path& base_dir = {});

// A cluster preset by name (find_preset with no base folder), its GPU preset merged, resized to
// `gpus` GPUs when gpus > 0 (resize_cluster), and validated as a scenario's cluster block is (for
// BF16). Throws InputError naming the file, the line, the field and the fix.
ClusterSpec resolve_cluster(const std::string& preset, int gpus = 0);
// The same for a ClusterSpec file given explicitly (--cluster-file PATH): any path, its GPU preset
// looked up by name beside it.
ClusterSpec resolve_cluster_file(const std::filesystem::path& file, int gpus = 0);

// A resolved cluster resized to `gpus` GPUs: gpus / gpus_per_node nodes, or one node of `gpus` GPUs
// when that is fewer than a node holds (its NICs scaled down). Throws InputError when gpus is not a
// whole number of nodes, suggesting GPU counts that are.
ClusterSpec resize_cluster(ClusterSpec cluster, int gpus);

}  // namespace parallax::model
