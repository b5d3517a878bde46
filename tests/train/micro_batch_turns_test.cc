// MicroBatchTurns (train/micro_batch_turns.h): the two micro-batches alternate at every hand-over, exactly
// one runs at a time, a finished one lets the other run on, and a failure in either ends both and is
// rethrown (the other stops at its next hand-over, or before it starts).
#include "train/micro_batch_turns.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsv3::train {
namespace {

TEST(MicroBatchTurns, AlternateAtEveryHandOver) {
  std::vector<std::string> log;
  std::atomic<int> running{0};
  MicroBatchTurns::run([&](MicroBatchTurns& turns, int me) {
    const int steps = me == 0 ? 3 : 5;  // the second has more to do: it runs on alone at the end
    for (int i = 0; i < steps; ++i) {
      EXPECT_EQ(running.fetch_add(1), 0) << "both running";
      log.push_back(std::string(1, char('A' + me)) + std::to_string(i));
      running.fetch_sub(1);
      turns.hand_over(me);
    }
  });
  EXPECT_EQ(log, (std::vector<std::string>{"A0", "B0", "A1", "B1", "A2", "B2", "B3", "B4"}));
}

TEST(MicroBatchTurns, AFailureEndsBothAndIsRethrown) {
  for (const int failing : {0, 1}) {
    std::vector<std::string> log;
    try {
      MicroBatchTurns::run([&](MicroBatchTurns& turns, int me) {
        for (int i = 0; i < 4; ++i) {
          log.push_back(std::string(1, char('A' + me)) + std::to_string(i));
          if (me == failing && i == 1) throw std::runtime_error("micro-batch " + std::to_string(me));
          turns.hand_over(me);
        }
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "micro-batch " + std::to_string(failing));
    }
    const std::vector<std::string> want =
        failing == 0 ? std::vector<std::string>{"A0", "B0", "A1"} : std::vector<std::string>{"A0", "B0", "A1", "B1"};
    EXPECT_EQ(log, want) << "failing " << failing;
  }
}

TEST(MicroBatchTurns, AFailureBeforeTheFirstHandOverNeverStartsTheSecond) {
  bool second_ran = false;
  EXPECT_THROW(MicroBatchTurns::run([&](MicroBatchTurns&, int me) {
                 if (me == 1) second_ran = true;
                 throw std::runtime_error("first");
               }),
               std::runtime_error);
  EXPECT_FALSE(second_ran);
}

}  // namespace
}  // namespace dsv3::train
