// The executor's watchdog on its own (no mpirun: before MPI_Init it ends the process with exit code
// 4, which is what a stalled start-up needs): it names the phase it caught, a NaN limit cannot
// switch it off, and a rank that keeps making progress is left alone.
#include "parallax/exec/execute.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

namespace parallax::exec {
namespace {

using namespace std::chrono_literals;

class WatchdogDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(WatchdogDeathTest, NamesThePhaseAndSaysHowToChangeTheLimit) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.3);
        watchdog.set_rank(2);
        watchdog.enter(Watchdog::Phase::kBarrier, 3, 5);
        std::this_thread::sleep_for(10s);
      },
      ::testing::ExitedWithCode(4),
      "rank 2 made no progress for 0.3 s at the barrier before iteration 3 of 5: .*aborting the "
      "job "
      "\\(--watchdog S sets this limit, default 120 s: lower it to catch a hang sooner");
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.3);
        watchdog.set_rank(1);
        std::this_thread::sleep_for(10s);
      },
      ::testing::ExitedWithCode(4), "rank 1 made no progress for 0.3 s during start-up \\(in MPI_Init, which waits for every rank");
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.3);
        watchdog.set_rank(0);
        watchdog.enter(Watchdog::Phase::kGather);
        std::this_thread::sleep_for(10s);
      },
      ::testing::ExitedWithCode(4), "rank 0 made no progress for 0.3 s at the final gather");
}

TEST_F(WatchdogDeathTest, ANanLimitDoesNotSwitchItOff) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(std::nan(""));
        watchdog.set_rank(0);
        std::this_thread::sleep_for(10s);
      },
      ::testing::ExitedWithCode(4), "made no progress");
}

TEST(Watchdog, ProgressAndNewPhasesKeepItQuiet) {
  Watchdog watchdog(0.5);
  watchdog.set_rank(0);
  for (int i = 0; i < 10; ++i) {  // 1.5 s, three times the limit
    std::this_thread::sleep_for(150ms);
    if (i % 2)
      ++watchdog.progress();
    else
      watchdog.enter(Watchdog::Phase::kIteration, i + 1, 10);
  }
  watchdog.stop();
  std::this_thread::sleep_for(700ms);  // stopped: no longer watching
  SUCCEED();
}

}  // namespace
}  // namespace parallax::exec
