#include "parallax/traces/chrome_trace.h"

#include "parallax/traces/io.h"
#include "parallax/traces/json_writer.h"
#include "parallax/traces/lanes.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace parallax::traces {
namespace {

constexpr std::uint64_t kPidsPerTimeline = 1'000'000;

std::uint64_t pid_of(std::size_t k, std::uint32_t rank) {
  return (static_cast<std::uint64_t>(k) + 1) * kPidsPerTimeline + rank;
}

// tid = the event's lane (parallax/traces/lanes.h). A timeline that carries its graph (an imported
// trace) says which tasks are CPU-side ops.
class ThreadOf {
 public:
  explicit ThreadOf(const Timeline& timeline) {
    for (const auto& t : timeline.graph().tasks())
      if (t.on_host()) on_host_.insert(t.id());
  }
  std::uint32_t operator()(const TimelineEvent& e) const {
    return static_cast<std::uint32_t>(lane_of(e, on_host_.contains(e.task_id())));
  }

 private:
  std::unordered_set<std::uint32_t> on_host_;
};

std::string kind_name(TaskKind kind) {
  std::string s = TaskKind_Name(kind);
  if (s.empty()) return "kind " + std::to_string(static_cast<int>(kind));
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string source_name(Timeline::Source source) {
  return source == Timeline::MEASURED ? "measured" : "predicted";
}

double us(double seconds) { return seconds * 1e6; }

struct Slice {
  std::uint64_t pid;
  std::uint32_t tid;
  double start_s, end_s;
  std::uint32_t task_id;
  const TimelineEvent* event;
};

struct ProcessInfo {
  std::string label;
  std::uint32_t multiplicity = 1;
  std::set<std::uint32_t> tids;
};

std::string render(const std::vector<const Timeline*>& timelines) {
  std::vector<std::string> metadata, slices_out, flows_out;
  std::vector<Slice> slices;
  std::vector<std::string> scenarios;
  std::uint64_t flow_id = 0;

  const std::size_t present =
      static_cast<std::size_t>(std::count_if(timelines.begin(), timelines.end(), [](auto* t) { return t; }));

  for (std::size_t k = 0; k < timelines.size(); ++k) {
    const Timeline* tl = timelines[k];
    if (!tl) continue;
    if (!tl->scenario_name().empty() &&
        std::find(scenarios.begin(), scenarios.end(), tl->scenario_name()) == scenarios.end())
      scenarios.push_back(tl->scenario_name());

    std::map<std::uint32_t, ProcessInfo> processes;
    for (const auto& r : tl->ranks()) {
      auto& p = processes[r.rank()];
      p.label = r.label();
      p.multiplicity = r.has_multiplicity() ? r.multiplicity() : 1;
    }

    const ThreadOf tid_of(*tl);
    std::unordered_map<std::uint32_t, const TimelineEvent*> by_task;
    by_task.reserve(static_cast<std::size_t>(tl->events_size()));
    for (const auto& e : tl->events()) {
      if (!std::isfinite(e.start_s()) || !std::isfinite(e.end_s())) continue;  // not drawable
      const std::uint32_t tid = tid_of(e);
      processes[e.rank()].tids.insert(tid);
      slices.push_back({pid_of(k, e.rank()), tid, e.start_s(), e.end_s(), e.task_id(), &e});
      by_task.emplace(e.task_id(), &e);
    }

    for (const auto& [rank, p] : processes) {
      const std::uint64_t pid = pid_of(k, rank);
      std::string name = p.label.empty() ? "rank " + std::to_string(rank) : p.label;
      if (p.multiplicity > 1) name += " (stands for " + std::to_string(p.multiplicity) + " ranks)";
      if (present > 1) name += " [" + source_name(tl->source()) + "]";
      JsonWriter w(0);
      w.begin_object().field("ph", "M").field("name", "process_name").field("pid", pid);
      w.key("args").begin_object().field("name", name).end_object().end_object();
      metadata.push_back(w.str());
      JsonWriter s(0);
      s.begin_object().field("ph", "M").field("name", "process_sort_index").field("pid", pid);
      s.key("args").begin_object().field("sort_index", rank).end_object().end_object();
      metadata.push_back(s.str());
      for (const std::uint32_t tid : p.tids) {
        JsonWriter t(0);
        t.begin_object().field("ph", "M").field("name", "thread_name").field("pid", pid).field("tid", tid);
        t.key("args").begin_object().field("name", lane_name(static_cast<LaneId>(tid))).end_object().end_object();
        metadata.push_back(t.str());
      }
    }

    for (const auto& f : tl->flows()) {
      const auto from = by_task.find(f.from_task());
      const auto to = by_task.find(f.to_task());
      if (from == by_task.end() || to == by_task.end()) continue;
      const TimelineEvent& a = *from->second;
      const TimelineEvent& b = *to->second;
      // See the header: each flow event sits inside the slice it binds to, the "f" not before the "s".
      const double s_ts = a.start_s() + std::max(0.0, a.end_s() - a.start_s()) / 2;
      const double lo = std::max(b.start_s(), s_ts);
      const double f_ts = lo <= b.end_s() ? lo + (b.end_s() - lo) / 2 : b.start_s();
      const auto flow = [&](const char* ph, const TimelineEvent& e, double ts) {
        JsonWriter w(0);
        w.begin_object().field("ph", ph).field("id", flow_id).field("cat", "pp").field("name", "send->recv");
        w.field("pid", pid_of(k, e.rank())).field("tid", tid_of(e)).field("ts", us(ts));
        if (ph[0] == 'f') w.field("bp", "e");
        w.end_object();
        flows_out.push_back(w.str());
      };
      flow("s", a, s_ts);
      flow("f", b, f_ts);
      ++flow_id;
    }
  }

  std::sort(slices.begin(), slices.end(), [](const Slice& x, const Slice& y) {
    // Parents before children: at equal starts, the longer slice first.
    return std::make_tuple(x.pid, x.tid, x.start_s, -(x.end_s - x.start_s), x.task_id) <
           std::make_tuple(y.pid, y.tid, y.start_s, -(y.end_s - y.start_s), y.task_id);
  });
  slices_out.reserve(slices.size());
  for (const Slice& s : slices) {
    const TimelineEvent& e = *s.event;
    JsonWriter w(0);
    w.begin_object().field("ph", "X");
    w.field("name", e.name().empty() ? "task " + std::to_string(e.task_id()) : e.name());
    if (e.has_kind()) w.field("cat", kind_name(e.kind()));
    w.field("pid", s.pid).field("tid", s.tid);
    w.field("ts", us(s.start_s)).field("dur", us(std::max(0.0, s.end_s - s.start_s)));
    w.key("args").begin_object().field("task_id", e.task_id()).end_object();
    w.end_object();
    slices_out.push_back(w.str());
  }

  std::string scenario;
  for (const auto& name : scenarios) scenario += (scenario.empty() ? "" : " / ") + name;
  JsonWriter other(0);
  other.begin_object().field("scenario", scenario).end_object();

  std::size_t size = 64 + other.str().size();
  for (const auto* lines : {&metadata, &slices_out, &flows_out})
    for (const auto& l : *lines) size += l.size() + 2;
  std::string out;
  out.reserve(size);
  out += "{\"traceEvents\":[";
  bool first = true;
  for (const auto* lines : {&metadata, &slices_out, &flows_out})
    for (const auto& l : *lines) {
      out += first ? "\n" : ",\n";
      out += l;
      first = false;
    }
  out += "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":";
  out += other.str();
  out += "}\n";
  return out;
}

}  // namespace

std::string to_chrome_trace(const std::vector<const Timeline*>& timelines) { return render(timelines); }

std::string to_chrome_trace(const Timeline& timeline) { return render({&timeline}); }

void write_chrome_trace(const std::filesystem::path& path, const std::vector<const Timeline*>& timelines) {
  write_file_atomically(path, render(timelines));
}

}  // namespace parallax::traces
