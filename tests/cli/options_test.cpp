// The option parser (cli/include/parallax/cli/options.h): values, the messages for bad input, and
// that every subcommand, parallax-exec and parallax-gui --screenshot go through it.
#include "parallax/cli/options.h"

#include "parallax/traces/io.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace parallax {
namespace {

using cli::Options;

// What parse() throws, or "" when it does not.
template <typename F>
std::string error_of(F&& parse) {
  try {
    parse();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

struct Parsed {
  bool json = false, strict = false;
  std::string out, input;
  int top = 10;
  double seconds = 0, pct = 0;
  std::vector<std::string> algorithms;

  Options options() {
    Options o("parallax compare", "usage: parallax compare ...\n");
    o.flag("--json", json)
        .flag("--strict", strict)
        .text({"-o", "--output"}, out, "a file name, e.g. -o out.pb")
        .whole("--top", top, 0, "a number of tasks, e.g. --top 20")
        .number("--max-step-time", seconds, Options::Sign::kPositive, "a number of seconds",
                "seconds")
        .number("--max-mape", pct, Options::Sign::kNonNegative, "a percentage, e.g. --max-mape 10")
        .value(
            "--algorithm", [this](const std::string& v) { algorithms.push_back(v); },
            "auto, ring, tree or hierarchical")
        .positional(input, "scenario", "no scenario given; usage: parallax compare A B");
    return o;
  }
  bool parse(const std::vector<std::string>& args) { return options().parse(args); }
  std::string error(const std::vector<std::string>& args) {
    return error_of([&] { parse(args); });
  }
};

TEST(CliOptions, ReadsFlagsValuesAndThePositionalInAnyOrder) {
  Parsed p;
  ASSERT_TRUE(p.parse({"--top", "3", "a.pbtxt", "--json", "-o", "x.pb", "--max-step-time", "2.5",
                       "--max-mape", "0", "--algorithm", "ring"}));
  EXPECT_TRUE(p.json);
  EXPECT_FALSE(p.strict);
  EXPECT_EQ(p.top, 3);
  EXPECT_EQ(p.input, "a.pbtxt");
  EXPECT_EQ(p.out, "x.pb");
  EXPECT_DOUBLE_EQ(p.seconds, 2.5);
  EXPECT_DOUBLE_EQ(p.pct, 0);
  EXPECT_EQ(p.algorithms, std::vector<std::string>{"ring"});
}

TEST(CliOptions, DefaultsStayWhenAnOptionIsNotGiven) {
  Parsed p;
  ASSERT_TRUE(p.parse({"a.pbtxt"}));
  EXPECT_FALSE(p.json);
  EXPECT_EQ(p.top, 10);
  EXPECT_EQ(p.out, "");
  EXPECT_DOUBLE_EQ(p.seconds, 0);
}

TEST(CliOptions, NameEqualsValue) {
  Parsed p;
  ASSERT_TRUE(p.parse({"--top=7", "--output=a=b.pb", "--max-step-time=1e-3", "s"}));
  EXPECT_EQ(p.top, 7);
  EXPECT_EQ(p.out, "a=b.pb");  // only the first '=' splits
  EXPECT_DOUBLE_EQ(p.seconds, 1e-3);
  Parsed empty;
  ASSERT_TRUE(empty.parse({"--output=", "s"}));
  EXPECT_EQ(empty.out, "");
  EXPECT_EQ(Parsed().error({"--json=yes", "s"}), "--json takes no value (got \"yes\")");
  EXPECT_EQ(Parsed().error({"--frob=1", "s"}),
            "unknown option \"--frob\"; see `parallax compare --help`");
}

TEST(CliOptions, UnknownOption) {
  EXPECT_EQ(Parsed().error({"s", "--foo"}),
            "unknown option \"--foo\"; see `parallax compare --help`");
  EXPECT_EQ(Parsed().error({"-x"}), "unknown option \"-x\"; see `parallax compare --help`");
  EXPECT_EQ(Parsed().error({"-"}), "unknown option \"-\"; see `parallax compare --help`");
  // The command named is the parser's own.
  std::string s;
  const auto other = [&] {
    Options("parallax export-chakra", "").positional(s, "scenario").parse({"--json"});
  };
  EXPECT_EQ(error_of(other), "unknown option \"--json\"; see `parallax export-chakra --help`");
}

TEST(CliOptions, MissingValueSaysWhatIsNeededUnderTheNameAsTyped) {
  EXPECT_EQ(Parsed().error({"s", "-o"}), "-o needs a file name, e.g. -o out.pb");
  EXPECT_EQ(Parsed().error({"s", "--output"}), "--output needs a file name, e.g. -o out.pb");
  EXPECT_EQ(Parsed().error({"s", "--top"}), "--top needs a number of tasks, e.g. --top 20");
  EXPECT_EQ(Parsed().error({"s", "--max-step-time"}), "--max-step-time needs a number of seconds");
}

TEST(CliOptions, AValueIsTheNextArgumentWhateverItIs) {
  Parsed p;
  ASSERT_TRUE(p.parse({"-o", "--json", "s"}));
  EXPECT_EQ(p.out, "--json");
  EXPECT_FALSE(p.json);
}

TEST(CliOptions, BadWholeNumber) {
  for (const char* bad : {"x", "-1", "3.5", "12abc", "", "99999999999999999999"})
    EXPECT_EQ(Parsed().error({"s", "--top", bad}),
              std::string("--top needs a non-negative whole number (got \"") + bad + "\")");
  EXPECT_EQ(Parsed().error({"s", "--top", "2000000000"}),
            "--top needs a non-negative whole number up to 1073741824 (got \"2000000000\")");
  Parsed zero;
  ASSERT_TRUE(zero.parse({"s", "--top", "0"}));
  EXPECT_EQ(zero.top, 0);

  int gpus = 0;
  const auto positive = [&](const char* v) {
    return error_of([&] {
      Options("parallax plan", "").whole("--gpus", gpus, 1, "a GPU count").parse({"--gpus", v});
    });
  };
  EXPECT_EQ(positive("0"), "--gpus needs a positive whole number (got \"0\")");
  EXPECT_EQ(positive("64"), "");
  EXPECT_EQ(gpus, 64);
}

TEST(CliOptions, BadNumber) {
  for (const char* bad : {"0", "-2", "abc", "1s", "nan", "inf"})
    EXPECT_EQ(
        Parsed().error({"s", "--max-step-time", bad}),
        std::string("--max-step-time needs a positive number of seconds (got \"") + bad + "\")");
  EXPECT_EQ(Parsed().error({"s", "--max-mape", "-1"}),
            "--max-mape needs a non-negative number (got \"-1\")");
  EXPECT_EQ(Parsed().error({"s", "--max-mape", "ten"}),
            "--max-mape needs a non-negative number (got \"ten\")");
}

TEST(CliOptions, RepeatedOptionsTheLastCounts) {
  Parsed p;
  ASSERT_TRUE(p.parse({"--top", "3", "s", "--top", "5", "--json", "--json", "--algorithm", "ring",
                       "--algorithm", "tree"}));
  EXPECT_EQ(p.top, 5);
  EXPECT_TRUE(p.json);
  EXPECT_EQ(p.algorithms, (std::vector<std::string>{"ring", "tree"}));  // applied in order
}

TEST(CliOptions, PositionalCount) {
  EXPECT_EQ(Parsed().error({"a.pbtxt", "--json", "b.pbtxt"}),
            "more than one scenario given (\"a.pbtxt\", \"b.pbtxt\")");
  EXPECT_EQ(Parsed().error({"--json"}), "no scenario given; usage: parallax compare A B");
  EXPECT_EQ(Parsed().error({}), "no scenario given; usage: parallax compare A B");

  // Optional positional: none is fine.
  std::string input = "unchanged";
  EXPECT_EQ(error_of([&] { Options("parallax simulate", "").positional(input, "scenario").parse({}); }), "");
  EXPECT_EQ(input, "unchanged");
  // An empty argument is a positional, and counts.
  EXPECT_EQ(error_of([&] {
              Options("parallax simulate", "").positional(input, "scenario").parse({"", "b"});
            }),
            "more than one scenario given (\"\", \"b\")");

  // All positionals, however many; the command checks the count.
  std::vector<std::string> files;
  bool json = false;
  ASSERT_TRUE(Options("parallax compare", "")
                  .flag("--json", json)
                  .positionals(files)
                  .parse({"a", "--json", "b", "c"}));
  EXPECT_EQ(files, (std::vector<std::string>{"a", "b", "c"}));

  // None declared.
  EXPECT_EQ(error_of([&] { Options("parallax calibrate", "").flag("--json", json).parse({"x"}); }),
            "unexpected argument \"x\"; see `parallax calibrate --help`");
}

TEST(CliOptions, HelpPrintsAndStopsInOrder) {
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  Parsed p;
  bool parsed = true;
  std::string error;
  try {
    parsed = p.parse({"--json", "--help", "--top", "x"});
    error = p.error({"--top", "x", "-h"});  // a bad option before the help is reported
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  int calls = 0;
  const bool lazy = Options("parallax plan", [&] {
                      ++calls;
                      return std::string("built\n");
                    }).parse({"-h"});
  std::cout.rdbuf(old);
  EXPECT_FALSE(parsed);
  EXPECT_TRUE(p.json);
  EXPECT_EQ(p.top, 10);  // not read after --help
  EXPECT_EQ(error, "--top needs a non-negative whole number (got \"x\")");
  EXPECT_FALSE(lazy);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(captured.str(), "usage: parallax compare ...\nbuilt\n");
  EXPECT_EQ(Parsed().error({"--help=1"}), "--help takes no value (got \"1\")");
}

// Every subcommand parses through it: the same message shapes from the real binary.
TEST(CliOptions, EverySubcommandUsesIt) {
  const std::string cli = PARALLAX_CLI;
  for (const char* command :
       {"inspect", "simulate", "validate", "compare", "calibrate", "plan", "export-chakra"}) {
    auto r = testing::run_command(cli + " " + command + " --frobnicate");
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find(std::string("unknown option \"--frobnicate\"; see `parallax ") + command +
                         " --help`"),
              std::string::npos)
        << r.err;
    r = testing::run_command(cli + " " + command + " --help");
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("usage: parallax " + std::string(command)), std::string::npos) << r.out;
  }
  struct Case {
    const char* args;
    const char* message;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"compare --top x", "--top needs a non-negative whole number (got \"x\")"},
           {"compare a.pb b.pb --top", "--top needs a number of tasks, e.g. --top 20"},
           {"simulate --timeline", "--timeline needs a file name, e.g. --timeline predicted.pb"},
           {"simulate --max-step-time 0",
            "--max-step-time needs a positive number of seconds (got \"0\")"},
           {"validate --max-mape ten", "--max-mape needs a non-negative number (got \"ten\")"},
           {"validate a.tsv b.tsv", "more than one table given (\"a.tsv\", \"b.tsv\")"},
           {"plan --gpus 0", "--gpus needs a positive whole number (got \"0\")"},
           {"plan -j", "-j needs a number of concurrent simulations, e.g. --jobs 4"},
           {"inspect a b", "more than one scenario given (\"a\", \"b\")"},
           {"inspect --output", "--output needs a file name, e.g. -o plan.pb"},
           {"calibrate",
            "no timeline given; usage: parallax calibrate MEASURED.pb -o calibration.pbtxt"},
           {"export-chakra -o", "-o needs a file prefix, e.g. -o traces/job"},
           {"simulate --json=1", "--json takes no value (got \"1\")"},
       }) {
    const auto r = testing::run_command(cli + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(CliOptions, WholeNumbersOfBytesGoPastTwoGiB) {
  std::uint64_t bytes = 0;
  const auto parse = [&](const char* v) {
    return error_of([&] {
      Options("parallax exec", "").whole("--bytes-cap", bytes, 1, "a number of bytes").parse({"--bytes-cap", v});
    });
  };
  EXPECT_EQ(parse("4294967296"), "");
  EXPECT_EQ(bytes, 4294967296ull);
  EXPECT_EQ(parse("0"), "--bytes-cap needs a positive whole number (got \"0\")");
  EXPECT_EQ(parse("-1"), "--bytes-cap needs a positive whole number (got \"-1\")");
  EXPECT_EQ(parse("1e9"), "--bytes-cap needs a positive whole number (got \"1e9\")");
}

// parallax-exec (alone, as shipped to GPU nodes, and through `parallax exec`) parses through it:
// a bad number is bad input (exit 2) naming the option, never an internal error (70) and never a
// watchdog silently switched off by "nan". All of these fail before MPI starts.
TEST(CliOptions, ExecRejectsBadNumbersNamingTheOption) {
  const std::string tiny = (testing::scenarios_dir() / "tiny-gpt-cpu.pbtxt").string();
  struct Case {
    const char* args;
    const char* message;
  };
  const std::string exec = PARALLAX_EXEC;
  {
    for (const Case& c : std::initializer_list<Case>{
             {"--watchdog abc", "--watchdog needs a positive number of seconds (got \"abc\")"},
             {"--watchdog nan", "--watchdog needs a positive number of seconds (got \"nan\")"},
             {"--watchdog inf", "--watchdog needs a positive number of seconds (got \"inf\")"},
             {"--watchdog 0", "--watchdog needs a positive number of seconds (got \"0\")"},
             {"--watchdog -5", "--watchdog needs a positive number of seconds (got \"-5\")"},
             {"--iterations 0", "--iterations needs a positive whole number (got \"0\")"},
             {"--warmup -1", "--warmup needs a non-negative whole number (got \"-1\")"},
             {"--warmup two", "--warmup needs a non-negative whole number (got \"two\")"},
             {"--gemm-cap 0", "--gemm-cap needs a positive whole number (got \"0\")"},
             {"--bytes-cap 0", "--bytes-cap needs a positive whole number (got \"0\")"},
             {"--watchdog", "--watchdog needs a number of seconds, e.g. --watchdog 120"},
             {"--frobnicate", "unknown option \"--frobnicate\"; see `parallax exec --help`"},
             // Parsed as 64 bits: 4 GiB is a valid cap (refused only because it needs --chakra).
             {"--bytes-cap 4294967296",
              "--comm-groups, --strict, --gemm-cap, --bytes-cap and --cluster apply to --chakra PREFIX only"},
         }) {
      const auto r = testing::run_command(exec + " " + tiny + " -o unused.pb " + c.args);
      EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
      EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
    }
  }
  // `parallax exec` hands over to parallax-exec: the same message, exit 2 (was 70 "internal error").
  const auto via_cli = testing::run_command(std::string(PARALLAX_CLI) + " exec " + tiny + " -o unused.pb --watchdog abc");
  EXPECT_EQ(via_cli.exit_code, 2) << via_cli.err;
  EXPECT_NE(via_cli.err.find("--watchdog needs a positive number of seconds (got \"abc\")"), std::string::npos)
      << via_cli.err;
  const auto help = testing::run_command(exec + " --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--watchdog S"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace parallax
