// Chrome Trace Event export: a golden file of a small hand-written timeline, and the properties
// Perfetto and chrome://tracing rely on, checked on the parsed output.
#include "parallax/traces/chrome_trace.h"
#include "parallax/traces/io.h"
#include "parallax/traces/lanes.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace parallax {
namespace {

namespace fs = std::filesystem;

// ---- a small, strict JSON parser (RFC 8259), enough to check the export's structure ----

struct Json {
  enum Type { Null, Bool, Number, String, Array, Object } type = Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> items;        // Array elements, or Object values
  std::vector<std::string> keys;  // Object keys, parallel to items

  const Json* get(std::string_view key) const {
    if (type != Object) return nullptr;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
  double num(std::string_view key) const {
    const Json* v = get(key);
    return v && v->type == Number ? v->number : NAN;
  }
  std::string str(std::string_view key) const {
    const Json* v = get(key);
    return v && v->type == String ? v->string : std::string();
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  // The document, or an error message in `error`.
  Json parse(std::string& error) {
    Json v;
    try {
      v = value(0);
      ws();
      if (i_ != s_.size()) fail("trailing characters");
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) fail("bad literal");
    i_ += word.size();
  }

  Json value(int depth) {
    if (depth > 64) fail("nesting too deep");
    ws();
    Json v;
    switch (peek()) {
      case '{': {
        v.type = Json::Object;
        ++i_;
        ws();
        if (peek() == '}') {
          ++i_;
          return v;
        }
        for (;;) {
          ws();
          if (peek() != '"') fail("expected a key");
          std::string key = string();
          for (const auto& k : v.keys)
            if (k == key) fail("duplicate key \"" + key + "\"");
          ws();
          expect(':');
          v.keys.push_back(std::move(key));
          v.items.push_back(value(depth + 1));
          ws();
          if (peek() == ',') {
            ++i_;
            continue;
          }
          expect('}');
          return v;
        }
      }
      case '[': {
        v.type = Json::Array;
        ++i_;
        ws();
        if (peek() == ']') {
          ++i_;
          return v;
        }
        for (;;) {
          v.items.push_back(value(depth + 1));
          ws();
          if (peek() == ',') {
            ++i_;
            continue;
          }
          expect(']');
          return v;
        }
      }
      case '"':
        v.type = Json::String;
        v.string = string();
        return v;
      case 't':
        literal("true");
        v.type = Json::Bool;
        v.boolean = true;
        return v;
      case 'f':
        literal("false");
        v.type = Json::Bool;
        return v;
      case 'n':
        literal("null");
        return v;
      default:
        v.type = Json::Number;
        v.number = number();
        return v;
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  double number() {
    const std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (digit(peek())) {
      while (digit(peek())) ++i_;
    } else {
      fail("bad value");
    }
    if (peek() == '.') {
      ++i_;
      if (!digit(peek())) fail("digit expected after '.'");
      while (digit(peek())) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digit(peek())) fail("digit expected in exponent");
      while (digit(peek())) ++i_;
    }
    return std::strtod(std::string(s_.substr(start, i_ - start)).c_str(), nullptr);
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          unsigned code = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            code *= 16;
            if (digit(h)) code += static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') code += static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code += static_cast<unsigned>(h - 'A' + 10);
            else fail("bad \\u escape");
          }
          if (code < 0x80) out += static_cast<char>(code);
          else out += '?';  // the export only escapes control characters
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

Json parse_json(const std::string& text) {
  std::string error;
  Json doc = JsonParser(text).parse(error);
  EXPECT_EQ(error, "") << "not valid JSON";
  return doc;
}

TEST(JsonParser, AcceptsValidAndRejectsInvalid) {
  std::string error;
  const Json doc = JsonParser(R"( {"a": [1, -2.5e3, true, false, null, "x\"\u0041"], "b": {}} )").parse(error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(doc.type, Json::Object);
  ASSERT_EQ(doc.get("a")->items.size(), 6u);
  EXPECT_EQ(doc.get("a")->items[1].number, -2500);
  EXPECT_EQ(doc.get("a")->items[5].string, "x\"A");
  for (const char* bad : {"{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", "\"\n\"", "[1] x", "{\"a\":1,\"a\":2}",
                          "nul", "'a'", ""}) {
    error.clear();
    JsonParser(bad).parse(error);
    EXPECT_NE(error, "") << bad;
  }
}

// ---- the timeline under test ----

TimelineEvent* add_event(Timeline& tl, std::uint32_t id, std::uint32_t rank, Stream stream, TaskKind kind,
                         double start, double end, const std::string& name) {
  auto* e = tl.add_events();
  e->set_task_id(id);
  e->set_rank(rank);
  e->set_stream(stream);
  e->set_kind(kind);
  e->set_start_s(start);
  e->set_end_s(end);
  if (!name.empty()) e->set_name(name);
  return e;
}

// Two pipeline stages; stage 0's rank stands for its 4 TP x DP peers. Events are added out of order
// on purpose: the export sorts them.
Timeline small_timeline() {
  Timeline tl;
  tl.set_source(Timeline::PREDICTED);
  tl.set_scenario_name("tiny");
  auto* r0 = tl.add_ranks();
  r0->set_rank(0);
  r0->set_label("rank 0 (dp0 tp0 pp0)");
  r0->set_multiplicity(4);
  auto* r1 = tl.add_ranks();
  r1->set_rank(4);
  r1->set_label("rank 4 (dp0 tp0 pp1)");
  r1->set_multiplicity(1);
  // The receive is posted at 0.1 ms, long before the send starts: it overlaps the PP stream.
  add_event(tl, 4, 4, PP_COMM, RECV, 0.0001, 0.0031, "fwd mb0 pp_recv");
  add_event(tl, 0, 0, COMPUTE, GEMM, 0.0, 0.0015, "fwd mb0 L0 qkv");
  add_event(tl, 2, 0, TP_COMM, COLLECTIVE, 0.002, 0.0026, "fwd mb0 L0 tp_all_reduce");
  add_event(tl, 1, 0, COMPUTE, MEMORY_BOUND, 0.0015, 0.002, "fwd mb0 L0 softmax");
  add_event(tl, 3, 0, PP_COMM, SEND, 0.0026, 0.0031, "fwd mb0 pp_send");
  add_event(tl, 5, 4, COMPUTE, GEMM, 0.0031, 0.0045, "");  // unnamed: "task 5"
  auto* f = tl.add_flows();
  f->set_from_task(3);
  f->set_to_task(4);
  return tl;
}

std::vector<const Json*> events_of(const Json& doc, const std::string& ph) {
  std::vector<const Json*> out;
  const Json* events = doc.get("traceEvents");
  if (!events) return out;
  for (const auto& e : events->items)
    if (e.str("ph") == ph) out.push_back(&e);
  return out;
}

std::map<double, std::string> process_names(const Json& doc) {
  std::map<double, std::string> names;
  for (const Json* m : events_of(doc, "M"))
    if (m->str("name") == "process_name") names[m->num("pid")] = m->get("args")->str("name");
  return names;
}

TEST(ChromeTrace, MatchesGoldenFile) {
  const std::string out = traces::to_chrome_trace(small_timeline());
  testing::expect_golden(testing::source_dir() / "tests" / "traces" / "golden" / "small.chrome.json", out);
}

TEST(ChromeTrace, IsValidJsonWithTheDocumentedShape) {
  const std::string out = traces::to_chrome_trace(small_timeline());
  // One event per line.
  EXPECT_EQ(out.rfind("{\"traceEvents\":[\n", 0), 0u);
  const Json doc = parse_json(out);
  ASSERT_EQ(doc.type, Json::Object);
  ASSERT_NE(doc.get("traceEvents"), nullptr);
  ASSERT_EQ(doc.get("traceEvents")->type, Json::Array);
  EXPECT_EQ(doc.str("displayTimeUnit"), "ms");
  ASSERT_NE(doc.get("otherData"), nullptr);
  EXPECT_EQ(doc.get("otherData")->str("scenario"), "tiny");
  std::size_t lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_EQ(lines, doc.get("traceEvents")->items.size() + 4);

  for (const auto& e : doc.get("traceEvents")->items) {
    const std::string ph = e.str("ph");
    EXPECT_TRUE(ph == "X" || ph == "M" || ph == "s" || ph == "f") << ph;
    EXPECT_GT(e.num("pid"), 0) << "pid 0 is the idle process to Perfetto";
  }
}

TEST(ChromeTrace, SlicesCarryTimesKindsAndStreams) {
  const Json doc = parse_json(traces::to_chrome_trace(small_timeline()));
  const auto slices = events_of(doc, "X");
  ASSERT_EQ(slices.size(), 6u);
  std::map<int, const Json*> by_task;
  for (const Json* x : slices) {
    EXPECT_GE(x->num("dur"), 0);
    ASSERT_NE(x->get("args"), nullptr);
    by_task[static_cast<int>(x->get("args")->num("task_id"))] = x;
  }
  ASSERT_EQ(by_task.size(), 6u);
  EXPECT_EQ(by_task[0]->str("name"), "fwd mb0 L0 qkv");
  EXPECT_EQ(by_task[0]->str("cat"), "gemm");
  EXPECT_EQ(by_task[0]->num("ts"), 0);
  EXPECT_EQ(by_task[0]->num("dur"), 1500);
  EXPECT_EQ(by_task[1]->str("cat"), "memory_bound");
  EXPECT_EQ(by_task[2]->str("cat"), "collective");
  EXPECT_EQ(by_task[2]->num("tid"), 1);
  EXPECT_EQ(by_task[3]->str("cat"), "send");
  EXPECT_EQ(by_task[3]->num("tid"), 3);
  EXPECT_EQ(by_task[4]->str("cat"), "recv");
  EXPECT_EQ(by_task[4]->num("tid"), 4) << "receives get their own thread";
  EXPECT_NEAR(by_task[4]->num("ts"), 100, 1e-9);
  EXPECT_NEAR(by_task[4]->num("dur"), 3000, 1e-9);
  EXPECT_EQ(by_task[5]->str("name"), "task 5");
  EXPECT_EQ(by_task[0]->num("pid"), by_task[3]->num("pid"));
  EXPECT_NE(by_task[0]->num("pid"), by_task[4]->num("pid"));

  // Sorted by (pid, tid, ts), and slices of one thread nest.
  for (std::size_t i = 1; i < slices.size(); ++i) {
    const Json& a = *slices[i - 1];
    const Json& b = *slices[i];
    const auto key = [](const Json& e) { return std::make_tuple(e.num("pid"), e.num("tid"), e.num("ts")); };
    EXPECT_LE(key(a), key(b));
    if (a.num("pid") == b.num("pid") && a.num("tid") == b.num("tid")) {
      const bool disjoint = a.num("ts") + a.num("dur") <= b.num("ts") + 1e-9;
      const bool nested = b.num("ts") + b.num("dur") <= a.num("ts") + a.num("dur") + 1e-9;
      EXPECT_TRUE(disjoint || nested) << "task " << a.get("args")->num("task_id") << " and "
                                      << b.get("args")->num("task_id") << " overlap on one thread";
    }
  }
}

TEST(ChromeTrace, MetadataNamesProcessesAndThreads) {
  const Json doc = parse_json(traces::to_chrome_trace(small_timeline()));
  const auto names = process_names(doc);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names.begin()->second, "rank 0 (dp0 tp0 pp0) (stands for 4 ranks)");
  EXPECT_EQ(names.rbegin()->second, "rank 4 (dp0 tp0 pp1)");

  std::set<std::pair<double, double>> used, named;
  std::map<double, double> sort_index;
  for (const Json* x : events_of(doc, "X")) used.insert({x->num("pid"), x->num("tid")});
  for (const Json* m : events_of(doc, "M")) {
    if (m->str("name") == "thread_name") {
      named.insert({m->num("pid"), m->num("tid")});
      const std::string expected[] = {"compute", "tp comm", "dp comm", "pp send", "pp recv"};
      EXPECT_EQ(m->get("args")->str("name"), expected[static_cast<int>(m->num("tid"))]);
    }
    if (m->str("name") == "process_sort_index") sort_index[m->num("pid")] = m->get("args")->num("sort_index");
  }
  EXPECT_EQ(used, named) << "every used thread, and only those, is named";
  ASSERT_EQ(sort_index.size(), 2u);
  EXPECT_EQ(sort_index.begin()->second, 0);
  EXPECT_EQ(sort_index.rbegin()->second, 4);
}

// The lane table (parallax/traces/lanes.h) is the export's thread table: tid = lane id, named by
// lane_name; a recorded lane wins over the stream, and a timeline carrying its imported graph puts
// CPU-side ops on the host lane.
TEST(ChromeTrace, ThreadsAreTheLaneTable) {
  EXPECT_EQ(traces::lane_of(COMPUTE, GEMM), LANE_COMPUTE);
  EXPECT_EQ(traces::lane_of(COMPUTE, MEMORY_BOUND, true), LANE_HOST);
  EXPECT_EQ(traces::lane_of(TP_COMM, COLLECTIVE), LANE_TP_COMM);
  EXPECT_EQ(traces::lane_of(DP_COMM, COLLECTIVE), LANE_DP_COMM);
  EXPECT_EQ(traces::lane_of(COMPUTE, COLLECTIVE), LANE_COMPUTE);
  EXPECT_EQ(traces::lane_of(PP_COMM, SEND), LANE_PP_SEND);
  EXPECT_EQ(traces::lane_of(PP_COMM, RECV), LANE_PP_RECV);
  EXPECT_EQ(traces::lane_of(PP_COMM, RECV, true), LANE_PP_RECV) << "only compute ops run on the host";

  Timeline tl = small_timeline();
  add_event(tl, 6, 4, COMPUTE, MEMORY_BOUND, 0.0045, 0.005, "cpu op")->set_lane(LANE_HOST);
  // Imported: task 7 is a CPU-side op by its graph, the event recording no lane.
  add_event(tl, 7, 4, COMPUTE, GEMM, 0.005, 0.006, "traced op");
  auto* task = tl.mutable_graph()->add_tasks();
  task->set_id(7);
  task->set_on_host(true);
  const Json doc = parse_json(traces::to_chrome_trace(tl));
  std::map<int, int> tid_of_task;
  for (const Json* x : events_of(doc, "X"))
    tid_of_task[static_cast<int>(x->get("args")->num("task_id"))] = static_cast<int>(x->num("tid"));
  ASSERT_EQ(tid_of_task.size(), 8u);
  for (const auto& e : tl.events())
    EXPECT_EQ(tid_of_task.at(static_cast<int>(e.task_id())),
              static_cast<int>(traces::lane_of(e, e.task_id() == 7)))
        << "task " << e.task_id();
  EXPECT_EQ(tid_of_task.at(6), static_cast<int>(LANE_HOST));
  EXPECT_EQ(tid_of_task.at(7), static_cast<int>(LANE_HOST));
  std::set<double> host_named;
  for (const Json* m : events_of(doc, "M"))
    if (m->str("name") == "thread_name") {
      EXPECT_EQ(m->get("args")->str("name"),
                traces::lane_name(static_cast<LaneId>(static_cast<int>(m->num("tid")))));
      if (static_cast<int>(m->num("tid")) == LANE_HOST) host_named.insert(m->num("pid"));
    }
  EXPECT_EQ(host_named.size(), 1u) << "rank 4's host lane is named once";
}

TEST(ChromeTrace, FlowsComeInPairsInsideTheirSlices) {
  Timeline tl = small_timeline();
  // A second transfer, and flows naming tasks the timeline lacks (skipped).
  add_event(tl, 6, 4, PP_COMM, SEND, 0.0045, 0.005, "bwd mb0 pp_send");
  add_event(tl, 7, 0, PP_COMM, RECV, 0.0046, 0.0051, "bwd mb0 pp_recv");
  auto* f = tl.add_flows();
  f->set_from_task(6);
  f->set_to_task(7);
  f = tl.add_flows();
  f->set_from_task(3);
  f->set_to_task(99);
  f = tl.add_flows();
  f->set_from_task(98);
  f->set_to_task(4);

  const Json doc = parse_json(traces::to_chrome_trace(tl));
  const auto starts = events_of(doc, "s");
  const auto finishes = events_of(doc, "f");
  ASSERT_EQ(starts.size(), 2u);
  ASSERT_EQ(finishes.size(), 2u);
  std::map<double, const Json*> start_by_id, finish_by_id;
  for (const Json* s : starts) start_by_id[s->num("id")] = s;
  for (const Json* f : finishes) finish_by_id[f->num("id")] = f;
  ASSERT_EQ(start_by_id.size(), 2u) << "flow ids are unique";
  ASSERT_EQ(finish_by_id.size(), 2u);

  const auto slices = events_of(doc, "X");
  // The slice a flow event binds to: the one on its thread whose span holds its timestamp.
  const auto enclosing = [&](const Json& flow) -> std::vector<int> {
    std::vector<int> tasks;
    for (const Json* x : slices)
      if (x->num("pid") == flow.num("pid") && x->num("tid") == flow.num("tid") && x->num("ts") <= flow.num("ts") &&
          flow.num("ts") <= x->num("ts") + x->num("dur"))
        tasks.push_back(static_cast<int>(x->get("args")->num("task_id")));
    return tasks;
  };
  const std::map<double, std::pair<int, int>> expected = {{0, {3, 4}}, {1, {6, 7}}};
  for (const auto& [id, s] : start_by_id) {
    ASSERT_TRUE(finish_by_id.count(id)) << "flow " << id << " has no finish";
    const Json& fin = *finish_by_id[id];
    EXPECT_EQ(s->str("cat"), "pp");
    EXPECT_EQ(s->str("name"), "send->recv");
    EXPECT_EQ(fin.str("cat"), s->str("cat")) << "Perfetto matches flows by id, cat and name";
    EXPECT_EQ(fin.str("name"), s->str("name"));
    EXPECT_EQ(fin.str("bp"), "e");
    EXPECT_EQ(s->get("bp"), nullptr);
    EXPECT_LE(s->num("ts"), fin.num("ts")) << "Perfetto drops a finish it reaches before its start";
    EXPECT_EQ(enclosing(*s), std::vector<int>{expected.at(id).first});
    EXPECT_EQ(enclosing(fin), std::vector<int>{expected.at(id).second});
  }
  // Each finish follows its start in the file (Perfetto keeps file order at equal timestamps).
  const auto& all = doc.get("traceEvents")->items;
  std::map<double, std::size_t> start_pos;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].str("ph") == "s") start_pos[all[i].num("id")] = i;
    if (all[i].str("ph") == "f") {
      ASSERT_TRUE(start_pos.count(all[i].num("id")));
    }
  }
}

TEST(ChromeTrace, FlowEventsAvoidSliceBoundaries) {
  // Back-to-back sends and receives: a flow event at a slice boundary would be ambiguous.
  Timeline tl;
  add_event(tl, 0, 0, PP_COMM, SEND, 0.0, 1.0, "send a");
  add_event(tl, 1, 0, PP_COMM, SEND, 1.0, 2.0, "send b");
  add_event(tl, 2, 1, PP_COMM, RECV, 0.0, 1.0, "recv a");
  add_event(tl, 3, 1, PP_COMM, RECV, 1.0, 2.0, "recv b");
  add_event(tl, 4, 1, COMPUTE, GEMM, 0.5, 0.5, "zero");
  for (std::uint32_t i = 0; i < 2; ++i) {
    auto* f = tl.add_flows();
    f->set_from_task(i);
    f->set_to_task(i + 2);
  }
  const Json doc = parse_json(traces::to_chrome_trace(tl));
  for (const Json* flow : events_of(doc, "s")) {
    const double ts = flow->num("ts");
    EXPECT_NE(std::fmod(ts, 1e6), 0) << "flow start on a slice boundary at " << ts;
  }
  for (const Json* flow : events_of(doc, "f")) {
    const double ts = flow->num("ts");
    EXPECT_NE(std::fmod(ts, 1e6), 0) << "flow finish on a slice boundary at " << ts;
  }
  for (const Json* x : events_of(doc, "X")) EXPECT_GE(x->num("dur"), 0);
}

TEST(ChromeTrace, NegativeDurationsAreClampedAndUnlabelledRanksNamed) {
  Timeline tl;
  add_event(tl, 0, 2, DP_COMM, COLLECTIVE, 2.0, 1.0, "backwards");
  const Json doc = parse_json(traces::to_chrome_trace(tl));
  const auto slices = events_of(doc, "X");
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0]->num("dur"), 0);
  EXPECT_EQ(slices[0]->num("tid"), 2);
  EXPECT_EQ(process_names(doc).begin()->second, "rank 2");
  EXPECT_EQ(doc.get("otherData")->str("scenario"), "");
}

TEST(ChromeTrace, TwoTimelinesSideBySide) {
  const Timeline predicted = small_timeline();
  Timeline measured = small_timeline();
  measured.set_source(Timeline::MEASURED);
  for (auto& e : *measured.mutable_events()) {
    e.set_start_s(e.start_s() * 1.1);
    e.set_end_s(e.end_s() * 1.1);
  }
  const std::string out = traces::to_chrome_trace(std::vector<const Timeline*>{&predicted, &measured});
  const Json doc = parse_json(out);

  std::set<double> pids[2];
  for (const Json* x : events_of(doc, "X")) {
    const double pid = x->num("pid");
    pids[pid >= 2'000'000 ? 1 : 0].insert(pid);
  }
  EXPECT_EQ(pids[0], (std::set<double>{1'000'000, 1'000'004}));
  EXPECT_EQ(pids[1], (std::set<double>{2'000'000, 2'000'004}));

  const auto names = process_names(doc);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names.at(1'000'000), "rank 0 (dp0 tp0 pp0) (stands for 4 ranks) [predicted]");
  EXPECT_EQ(names.at(1'000'004), "rank 4 (dp0 tp0 pp1) [predicted]");
  EXPECT_EQ(names.at(2'000'000), "rank 0 (dp0 tp0 pp0) (stands for 4 ranks) [measured]");
  EXPECT_EQ(names.at(2'000'004), "rank 4 (dp0 tp0 pp1) [measured]");

  // The measured slices really are the stretched ones.
  for (const Json* x : events_of(doc, "X"))
    if (x->num("pid") >= 2'000'000 && x->get("args")->num("task_id") == 5) {
      EXPECT_NEAR(x->num("ts"), 3410, 1e-6);
    }

  // One flow per timeline, with distinct ids, each within its own timeline's processes.
  const auto starts = events_of(doc, "s");
  const auto finishes = events_of(doc, "f");
  ASSERT_EQ(starts.size(), 2u);
  ASSERT_EQ(finishes.size(), 2u);
  EXPECT_NE(starts[0]->num("id"), starts[1]->num("id"));
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(starts[i]->num("id"), finishes[i]->num("id"));
    EXPECT_EQ(starts[i]->num("pid") >= 2'000'000, finishes[i]->num("pid") >= 2'000'000);
  }
  EXPECT_EQ(doc.get("otherData")->str("scenario"), "tiny");

  // A single timeline gets no suffix.
  const auto single = process_names(parse_json(traces::to_chrome_trace(std::vector<const Timeline*>{&measured})));
  EXPECT_EQ(single.begin()->second, "rank 0 (dp0 tp0 pp0) (stands for 4 ranks)");
}

TEST(ChromeTrace, WritesFilesAndReportsUnwritablePaths) {
  const Timeline tl = small_timeline();
  const testing::TempDir dir;
  const fs::path path = dir / "trace.json";
  traces::write_chrome_trace(path, {&tl});
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), traces::to_chrome_trace(tl));

  try {
    traces::write_chrome_trace("/nonexistent-dir/trace.json", {&tl});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/trace.json: cannot write file"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace parallax
