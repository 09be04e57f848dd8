#include "parallax/model/presets.h"

#include "parallax/model/scenario.h"

#include <algorithm>

namespace parallax::model {
namespace {

namespace fs = std::filesystem;

// The folder of a kind's presets, its name in messages, and the message type of its files.
struct KindNames {
  const char* folder;
  const char* noun;
  const char* message;
};

KindNames names_of(PresetKind kind) {
  switch (kind) {
    case PresetKind::Cluster: return {"clusters", "cluster", "ClusterSpec"};
    case PresetKind::Gpu: return {"gpus", "GPU", "GpuSpec"};
    case PresetKind::Model: return {"models", "model", "ModelSpec"};
  }
  return {"", "", ""};
}

const char* folder_of(PresetKind kind) { return names_of(kind).folder; }

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// A name as it can be shown in a message: control bytes escaped (\x19), and cut after 120 bytes,
// since a fuzzed or corrupted file can hold a name of any length.
std::string shown(const std::string& name) {
  constexpr std::size_t kMax = 120;
  std::string out;
  for (std::size_t i = 0; i < name.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > kMax) out += "... (" + std::to_string(name.size()) + " bytes)";
  return out;
}

std::string missing_detail(PresetKind kind, const std::vector<fs::path>& searched) {
  std::vector<std::string> files;
  for (const auto& f : searched) files.push_back(shown(f.string()));
  const std::string looked = searched.empty() ? "(a name with a control character names no file)"
                                              : "(looked for " + joined(files) + ")";
  return looked + "; bundled presets: " + joined(bundled_presets(kind)) +
         "; give one of those names or the path of a " + names_of(kind).message + " file (.pbtxt or .json)";
}

bool has_control_byte(const std::string& name) {
  return std::any_of(name.begin(), name.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

bool is_path(const std::string& name) {
  const std::string ext = fs::path(name).extension().string();
  return name.find('/') != std::string::npos || ext == ".pbtxt" || ext == ".json";
}

// Why `name` may not name a preset, or "" when it may. A preset name is looked up only in the
// preset folders, and a relative path only below the folder of the file that names it: a name that
// climbs out ("..") or starts at the root would let a scenario (or a command line built from one)
// read any file on the machine, and the parse error would echo its first words. The command line
// has no such folder: it names presets, and gives a file with an option of its own (--cluster-file
// PATH).
std::string why_not_a_name(PresetKind kind, const std::string& name, const fs::path& base_dir) {
  const fs::path path(name);
  std::string problem;
  if (path.has_root_path()) {
    problem = "is an absolute path";
  } else if (std::any_of(path.begin(), path.end(),
                         [](const fs::path& part) { return part.string() == ".."; })) {
    problem = "has a \"..\" component";
  } else if (base_dir.empty() && is_path(name)) {
    problem = "is a path, and a preset given on the command line is a name";
  } else {
    return "";
  }
  const std::string folder = names_of(kind).folder;
  std::string fix =
      "(it " + problem + "; presets are looked up by name in " + folder +
      "/ beside the scenario, in its parent folder and in the bundled scenarios/" + folder +
      "/); bundled presets: " + joined(bundled_presets(kind)) +
      "; give one of those names, or a file below the scenario's folder by its relative path";
  if (kind == PresetKind::Cluster)
    fix += ", or on the command line a ClusterSpec file with --cluster-file PATH";
  if (kind == PresetKind::Model) fix += ", or on the command line the ModelSpec file's path itself";
  return fix;
}

template <typename Message>
Message read_file(const fs::path& file) {
  Message message;
  traces::read_text_or_json(file, message);
  return message;
}

}  // namespace

PresetNotFound::PresetNotFound(PresetKind kind, const std::string& name, const std::vector<fs::path>& searched)
    : InputError(std::string("no ") + names_of(kind).noun + " preset or file \"" + shown(name) + "\" " +
                 missing_detail(kind, searched)),
      kind_(kind),
      name_(name),
      shown_name_(shown(name)),
      detail_(missing_detail(kind, searched)) {}

PresetNotFound::PresetNotFound(PresetKind kind, const std::string& name, std::string detail)
    : InputError(std::string("no ") + names_of(kind).noun + " preset \"" + shown(name) + "\" " +
                 detail),
      kind_(kind),
      name_(name),
      shown_name_(shown(name)),
      detail_(std::move(detail)) {}

std::vector<std::string> bundled_presets(PresetKind kind) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(data_dir() / folder_of(kind), ec))
    if (entry.path().extension() == ".pbtxt") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

fs::path find_preset(PresetKind kind, const std::string& name, const fs::path& base_dir) {
  std::vector<fs::path> candidates;
  // No file name holds a control byte (a NUL would even cut the name short in the system call).
  if (has_control_byte(name)) throw PresetNotFound(kind, name, candidates);
  if (std::string why = why_not_a_name(kind, name, base_dir); !why.empty())
    throw PresetNotFound(kind, name, std::move(why));
  if (is_path(name)) {
    candidates.push_back(base_dir / name);
  } else {
    const std::string file = name + ".pbtxt";
    if (!base_dir.empty()) {
      candidates.push_back(base_dir / folder_of(kind) / file);
      candidates.push_back(base_dir.parent_path() / folder_of(kind) / file);
    }
    candidates.push_back(data_dir() / folder_of(kind) / file);
    // "my.cluster": a file after all (beside the scenario; the command line names presets only).
    if (fs::path(name).has_extension() && !base_dir.empty()) candidates.push_back(base_dir / name);
  }
  // The error_code form: a name too long for the file system (ENAMETOOLONG) or a path through a
  // file that is not a folder is a file that is not there, not an exception.
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
  }
  throw PresetNotFound(kind, name, candidates);
}

ClusterSpec read_cluster_file(const fs::path& file) { return read_file<ClusterSpec>(file); }
GpuSpec read_gpu_file(const fs::path& file) { return read_file<GpuSpec>(file); }

GpuSpec load_gpu(const std::string& name, const fs::path& base_dir) {
  return read_gpu_file(find_preset(PresetKind::Gpu, name, base_dir));
}

ModelSpec load_model(const std::string& name, const fs::path& base_dir) {
  const fs::path file = find_preset(PresetKind::Model, name, base_dir);
  ModelSpec model = read_file<ModelSpec>(file);
  if (!model.has_name()) model.set_name(file.stem().string());
  return model;
}

GpuSpec merge_gpu(const GpuSpec& base, const GpuSpec& overlay) {
  GpuSpec out = base;
  out.MergeFrom(overlay);
  if (overlay.has_gemm_efficiency()) *out.mutable_gemm_efficiency() = overlay.gemm_efficiency();
  return out;
}

ClusterSpec merge_cluster(const ClusterSpec& base, const ClusterSpec& overlay) {
  ClusterSpec out = base;
  out.MergeFrom(overlay);
  *out.mutable_gpu() = merge_gpu(base.gpu(), overlay.gpu());
  return out;
}

ResolvedCluster merge_cluster_presets(const ClusterSpec& spec, const fs::path& base_dir) {
  ResolvedCluster r;
  if (spec.has_preset()) {
    r.cluster_file = find_preset(PresetKind::Cluster, spec.preset(), base_dir);
    r.cluster = read_cluster_file(r.cluster_file);
  }
  r.cluster = merge_cluster(r.cluster, spec);
  // The GPU: the preset named by `spec`, else by the cluster preset; the cluster's GPU fields on top.
  if (const std::string gpu = r.cluster.gpu().preset(); !gpu.empty()) {
    r.gpu_file = find_preset(PresetKind::Gpu, gpu, r.cluster_file.empty() ? base_dir : r.cluster_file.parent_path());
    *r.cluster.mutable_gpu() = merge_gpu(read_gpu_file(r.gpu_file), r.cluster.gpu());
  }
  return r;
}

namespace {

// The file as written (no `preset` field added), its GPU preset looked up next to it.
ResolvedCluster read_cluster_at(const fs::path& file) {
  ResolvedCluster r = merge_cluster_presets(read_cluster_file(file), file.parent_path());
  r.cluster_file = file;
  return r;
}

ResolvedCluster read_cluster_preset(const std::string& name, const fs::path& base_dir) {
  return read_cluster_at(find_preset(PresetKind::Cluster, name, base_dir));
}

// Resized to `gpus` GPUs when gpus > 0, and validated; `name` stands for it in messages.
ClusterSpec resized_and_validated(ResolvedCluster r, int gpus, const std::string& name) {
  if (gpus > 0) {
    // A preset without a node size is one GPU per node.
    if (r.cluster.gpus_per_node() <= 0) r.cluster.set_gpus_per_node(1);
    r.cluster = resize_cluster(r.cluster, gpus);
  }
  validate_cluster(r, name);
  return r.cluster;
}

}  // namespace

ClusterSpec load_cluster(const std::string& name, const fs::path& base_dir) {
  return read_cluster_preset(name, base_dir).cluster;
}

ClusterSpec resolve_cluster(const std::string& preset, int gpus) {
  return resized_and_validated(read_cluster_preset(preset, {}), gpus, "cluster preset " + preset);
}

ClusterSpec resolve_cluster_file(const fs::path& file, int gpus) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw InputError(file.string() + ": no such ClusterSpec file (a regular .pbtxt or .json file)");
  return resized_and_validated(read_cluster_at(file), gpus, file.string());
}

ClusterSpec resize_cluster(ClusterSpec cluster, int gpus) {
  const int per_node = cluster.gpus_per_node();
  if (gpus < 1) throw InputError("--gpus must be at least 1 (got " + std::to_string(gpus) + ")");
  if (per_node < 1) throw InputError("the cluster has no gpus_per_node");
  if (gpus % per_node == 0) {
    cluster.set_num_nodes(gpus / per_node);
  } else if (gpus < per_node && per_node % gpus == 0) {
    // Part of one node.
    cluster.set_num_nodes(1);
    cluster.set_gpus_per_node(gpus);
    if (cluster.nics_per_node() > 0)
      cluster.set_nics_per_node(std::max(1, cluster.nics_per_node() * gpus / per_node));
  } else {
    std::vector<std::string> near;
    const int below = gpus / per_node * per_node;
    if (below > 0) near.push_back(std::to_string(below));
    near.push_back(std::to_string(below + per_node));
    throw InputError("--gpus " + std::to_string(gpus) + " is not a whole number of " +
                     (cluster.name().empty() ? std::string("cluster") : cluster.name()) + " nodes of " +
                     std::to_string(per_node) + " GPUs; use a multiple of " + std::to_string(per_node) + " (e.g. " +
                     joined(near) + ") or a divisor of " + std::to_string(per_node) + " (part of one node)");
  }
  return cluster;
}

}  // namespace parallax::model
