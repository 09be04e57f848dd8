// Reading inputs and writing outputs under careless or hostile use: special files, directories and
// huge files as inputs; interrupted and failing writes; an output that names an input; names that
// are not UTF-8 in JSON and Chakra outputs.
#include "parallax/traces/io.h"
#include "parallax/cli/options.h"
#include "parallax/interop/chakra.h"
#include "parallax/model/validation_table.h"
#include "parallax/traces/chakra.h"
#include "parallax/traces/json_writer.h"
#include "test_support.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace parallax {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

std::string cli() {
  return PARALLAX_CLI;
}
std::string tiny() {
  return (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string();
}
// Every command runs under `timeout`: a reader that blocks or reads forever fails the test, fast.
testing::CommandResult run(const std::string& args) {
  return run_command("timeout 60 " + cli() + " " + args);
}


bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Valid UTF-8 that protobuf's JSON parser accepts as a JSON value.
void expect_valid_json(const std::string& text, const std::string& what) {
  EXPECT_EQ(traces::valid_utf8(text), text) << what << ": not UTF-8";
  google::protobuf::Value value;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &value);
  EXPECT_TRUE(status.ok()) << what << ": " << status.message();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(InputFiles, SpecialFilesAndDirectoriesAreRefusedByName) {
  const testing::TempDir dir;
  const fs::path fifo = dir / "pipe.pbtxt";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A FIFO without a writer: opening it must not wait for one.
  EXPECT_TRUE(has(testing::input_error([&] { traces::read_file(fifo, 1024, "scenario file"); }),
                  fifo.string() + ": is a FIFO (named pipe), not a scenario file"));
  EXPECT_TRUE(has(testing::input_error([&] { traces::read_file("/dev/zero", 1024, "scenario file"); }),
                  "/dev/zero: is a device, not a scenario file"));
  EXPECT_EQ(testing::input_error([&] { traces::read_file(dir.path(), 1024, "scenario file"); }),
            dir.path().string() + ": is a directory, not a scenario file");
  EXPECT_TRUE(has(testing::input_error([&] { traces::read_file(dir / "none.pbtxt", 1024, "scenario file"); }),
                  "none.pbtxt: cannot open file: it does not exist"));

  const auto start = std::chrono::steady_clock::now();
  for (const std::string& args : std::vector<std::string>{
           "inspect /dev/zero", "simulate /dev/zero", "calibrate /dev/zero",
           "compare /dev/zero /dev/zero", "simulate " + tiny() + " --calibration /dev/zero",
           "inspect " + fifo.string(), "calibrate " + fifo.string()}) {
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_TRUE(has(r.err, "not a regular file") || has(r.err, ", not a ")) << args << "\n"
                                                                            << r.err;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));

  // A directory is named as one, not blamed for missing content.
  auto r = run("inspect " + dir.path().string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, dir.path().string() + ": is a directory, not a scenario file")) << r.err;
  r = run("calibrate " + dir.path().string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, ": is a directory, not a timeline file")) << r.err;
  r = run("simulate " + tiny() + " --calibration " + dir.path().string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.err, ": is a directory, not a calibration overlay")) << r.err;
}

TEST(InputFiles, OverSizeFilesAreRefusedWithSizeAndLimit) {
  const testing::TempDir dir;
  // Sparse: 65 MiB of file without 65 MiB of disk.
  const fs::path big = dir / "big.pbtxt";
  std::ofstream(big) << "name: \"x\"\n";
  ASSERT_EQ(::truncate(big.c_str(), (65 << 20)), 0);
  EXPECT_TRUE(has(
      testing::input_error([&] { traces::read_file(big, traces::kMaxTextFileBytes, "scenario file"); }),
      big.string() +
          ": is 65.0 MiB (68157440 bytes), more than a scenario file may be (at most 64.0 MiB"));
  const auto r = run("inspect " + big.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "65.0 MiB")) << r.err;
  const auto t = run("validate " + big.string());
  EXPECT_EQ(t.exit_code, 2);
  EXPECT_TRUE(has(t.err, "65.0 MiB")) << t.err;
}

TEST(InputFiles, ValidationTableLinesAreCapped) {
  const testing::TempDir dir;
  const fs::path table = dir / "long.tsv";
  std::ofstream(table) << "# a comment\n" << std::string(100 * 1024, 'x') << "\n";
  const std::string e = testing::input_error([&] { model::read_validation_table(table); });
  EXPECT_TRUE(has(e, table.string() + ":2: the line is 102400 bytes long, more than 65536")) << e;
}

TEST(OutputFiles, WriteReplacesAtomicallyAndKeepsPermissions) {
  const testing::TempDir dir;
  const fs::path out = dir / "out.bin";
  traces::write_file_atomically(out, "old");
  ASSERT_EQ(::chmod(out.c_str(), 0640), 0);
  traces::write_file_atomically(out, "new content");
  EXPECT_EQ(testing::file_text(out), "new content");
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.bin"});  // no temporary file left

  // Through a symbolic link: the file it points to changes, the link stays.
  const fs::path link = dir / "link.bin";
  fs::create_symlink(out, link);
  traces::write_file_atomically(link, "via link");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(testing::file_text(out), "via link");

  EXPECT_TRUE(
      has(testing::input_error([&] { traces::write_file_atomically(dir / "no" / "x.pb", "x"); }),
          "x.pb: cannot write file: the directory " + (dir / "no").string() + " does not exist"));
  EXPECT_TRUE(
      has(testing::input_error([&] { traces::write_file_atomically(dir.path(), "x"); }), "it is a directory"));
  EXPECT_EQ(testing::input_error([&] { traces::write_file_atomically("/dev/full", "x"); }),
            "writing /dev/full failed: no space left on device");
  traces::write_file_atomically("/dev/null", "x");  // written directly
}

// A write cut short (here by a file size limit, as by a full disk or quota) leaves the old file.
TEST(OutputFiles, InterruptedWriteKeepsTheOldFile) {
  const testing::TempDir dir;
  const fs::path out = dir / "keep.pb";
  traces::write_file_atomically(out, "the good old content");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing the process
    const rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const std::string e =
        testing::input_error([&] { traces::write_file_atomically(out, std::string(1 << 20, 'x')); });
    ::_exit(has(e, "writing " + out.string() + " failed: file too large") ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(testing::file_text(out), "the good old content");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"keep.pb"});

  // The same through the command: a good timeline survives a run that cannot finish writing.
  const fs::path timeline = dir / "keep.pb";
  ASSERT_EQ(run("simulate " + tiny() + " --timeline " + timeline.string()).exit_code, 0);
  const std::string good = testing::file_text(timeline);
  const auto r = run_command("ulimit -f 8; trap '' XFSZ; " + cli() + " simulate " + tiny() +
                             " --timeline " + timeline.string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(has(r.err, "failed: file too large")) << r.err;
  EXPECT_EQ(testing::file_text(timeline), good);
}

TEST(OutputFiles, FullDiskIsExitTwoWithTheReason) {
  const testing::TempDir dir;
  const std::string predicted = (dir / "p.pb").string();
  ASSERT_EQ(run("simulate " + tiny() + " --timeline " + predicted).exit_code, 0);
  for (const std::string& args : std::vector<std::string>{
           "simulate " + tiny() + " --chrome /dev/full",
           "simulate " + tiny() + " --timeline /dev/full", "inspect " + tiny() + " -o /dev/full",
           "calibrate " + predicted + " -o /dev/full",
           "compare " + predicted + " " + predicted + " --chrome /dev/full",
           "plan " + tiny() + " --top 1 --csv /dev/full"}) {
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_TRUE(has(r.err, "writing /dev/full failed: no space left on device")) << args << "\n"
                                                                                 << r.err;
  }
}

TEST(OutputFiles, EmptyOutputNamesAreErrors) {
  for (const std::string& args : std::vector<std::string>{
           "inspect " + tiny() + " -o ''", "simulate " + tiny() + " --timeline ''",
           "simulate " + tiny() + " --chrome=", "export-chakra " + tiny() + " -o ''"}) {
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_TRUE(has(r.err, "(got an empty value)")) << args << "\n" << r.err;
  }
}

TEST(OutputFiles, OutputThatNamesAnInputIsRefused) {
  const testing::TempDir dir;
  const fs::path s = dir / "s.pbtxt";
  fs::copy_file(tiny(), s);
  const std::string scenario_text = testing::file_text(s);
  const std::string p = (dir / "p.pb").string(), m = (dir / "m.pb").string();
  ASSERT_EQ(run("simulate " + s.string() + " --timeline " + p).exit_code, 0);
  fs::copy_file(p, m);
  const std::string measured = testing::file_text(m);
  fs::create_symlink(s, dir / "alias.pbtxt");
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"inspect " + s.string() + " -o " + s.string(),
            "-o \"" + s.string() + "\" is the scenario"},
           {"inspect " + s.string() + " -o " + (dir / "alias.pbtxt").string(), "is the scenario"},
           {"inspect " + s.string() + " -o " + dir.path().string() + "/./s.pbtxt",
            "is the scenario"},
           {"simulate " + s.string() + " --chrome " + s.string(),
            "--chrome \"" + s.string() + "\" is the scenario"},
           {"calibrate " + m + " -o " + m, "-o \"" + m + "\" is the timeline"},
           {"compare " + p + " " + m + " --chrome " + m, "is the measured timeline"},
           {"simulate " + s.string() + " --timeline " + (dir / "same").string() + " --chrome " +
                (dir / "same").string(),
            "name the same file"},
       }) {
    const auto r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_TRUE(has(r.err, c.message)) << c.args << "\n" << r.err;
  }
  EXPECT_EQ(testing::file_text(s), scenario_text);
  EXPECT_EQ(testing::file_text(m), measured);
  EXPECT_FALSE(fs::exists(dir / "same"));
  // Writing both to /dev/null is fine: nothing is lost there.
  EXPECT_EQ(run("simulate " + s.string() + " --timeline /dev/null --chrome /dev/null").exit_code,
            0);
}

TEST(OutputFiles, ExportChakraIsAllOrNothingAndRefusesADirectory) {
  const testing::TempDir dir;
  auto r = run("export-chakra " + tiny() + " -o " + dir.path().string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, dir.path().string() + ": is a directory; the output is a file prefix"))
      << r.err;
  // comm_groups.json cannot be written: no rank file is left behind either.
  fs::create_directory(dir / "job.comm_groups.json");
  r = run("export-chakra " + tiny() + " -o " + (dir / "job").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"job.comm_groups.json"});
}

// exec checks -o before it measures (hours on a cluster), and refuses to overwrite its input.
TEST(OutputFiles, ExecChecksItsOutputFirst) {
  const testing::TempDir dir;
  const fs::path s = dir / "s.pbtxt";
  fs::copy_file(tiny(), s);
  auto r = run_command("timeout 60 " PARALLAX_EXEC " " + s.string() + " -o " + s.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "-o \"" + s.string() + "\" is the scenario or plan")) << r.err;
  r = run_command(
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "OMPI_MCA_rmaps_base_oversubscribe=1 timeout 120 "
      "mpirun --oversubscribe -np 4 " PARALLAX_EXEC " " +
      s.string() + " --warmup 0 --iterations 1 -o " + (dir / "missing" / "m.pb").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err + r.out, "m.pb: cannot write file: the directory " +
                                     (dir / "missing").string() + " does not exist"))
      << r.err;
  EXPECT_FALSE(has(r.out, "measured iterations")) << r.out;
}

TEST(Utf8, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(traces::valid_utf8("abc"), "abc");
  EXPECT_EQ(traces::valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(traces::valid_utf8("\xff\xfe"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(traces::valid_utf8("a\xc3"), "a\xef\xbf\xbd");                // truncated
  EXPECT_EQ(traces::valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");  // overlong '/'
  EXPECT_EQ(traces::valid_utf8("\xed\xa0\x80"),
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  traces::JsonWriter w;
  w.begin_object().field("name\xff", "x\xfe\"y").end_object();
  expect_valid_json(w.str(), "JsonWriter");
}

TEST(Utf8, OutputsOfANonUtf8ScenarioNameAreValid) {
  const testing::TempDir dir;
  std::string text = testing::file_text(tiny());
  const auto at = text.find("name: \"tiny-gpt-cpu\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 20, "name: \"\\377\\376\"");
  const fs::path s = dir / "nonutf8.pbtxt";
  std::ofstream(s) << text;

  auto r = run("inspect --json " + s.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_valid_json(r.out, "inspect --json");
  const std::string p = (dir / "p.pb").string(), chrome = (dir / "t.json").string();
  r = run("simulate --json " + s.string() + " --timeline " + p + " --chrome " + chrome);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_valid_json(r.out, "simulate --json");
  expect_valid_json(testing::file_text(chrome), "simulate --chrome");
  const std::string compared = (dir / "c.json").string();
  r = run("compare " + p + " " + p + " --chrome " + compared);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_valid_json(testing::file_text(compared), "compare --chrome");

  // The exported Chakra trace reads back (protobuf string fields must be UTF-8), and no protobuf
  // log line comes before parallax's own output.
  const fs::path prefix = dir / "nu";
  r = run("export-chakra " + s.string() + " -o " + prefix.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const traces::ChakraTrace trace = traces::read_chakra_et(prefix.string() + ".0.et");
  EXPECT_TRUE(
      has(trace.metadata.DebugString(), "parallax export of \\357\\277\\275\\357\\277\\275"))
      << trace.metadata.DebugString();
  r = run("simulate --chakra " + prefix.string() + " --cluster cpu-laptop");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Utf8, ProtobufLogsNothingBeforeParallaxsMessage) {
  traces::ChakraTrace trace;
  trace.metadata.set_version("\xff");
  traces::quiet_protobuf_logging();
  const std::string bytes = traces::serialize_chakra_et(trace);
  ::testing::internal::CaptureStderr();
  const std::string e = testing::input_error([&] { traces::parse_chakra_et(bytes, "bad.et"); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_TRUE(has(e, "bad.et")) << e;
}

}  // namespace
}  // namespace parallax
