// MtpPending: row p pairs h[p] with t[p+1]; rows wait until both halves are known and leave in order; every
// misuse (a gap or a repeat, a token before its hidden state, rows fed to a cache of another length) throws a
// dsv3::Error naming the positions. The expected batches below are written out by hand.
#include "runtime/mtp_pending.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace dsv3::runtime {
namespace {

// Expects `f` to throw dsv3::Error with `part` in its message.
template <typename F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning \"" << part << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(MtpPending, PairsEachHiddenRowWithTheTokenAfterIt) {
  MtpPending mp(2, 0);
  EXPECT_TRUE(mp.empty());
  mp.append_hidden(0, std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f});  // h[0], h[1], h[2]
  EXPECT_EQ(mp.rows(), 3);
  EXPECT_EQ(mp.complete(), 0);
  mp.append_next(0, std::vector<int32_t>{11, 12});  // t[1], t[2]: rows 0 and 1 complete, row 2 waits
  EXPECT_EQ(mp.complete(), 2);

  std::vector<int32_t> next = {99};  // a batch that already holds another sequence's row
  std::vector<float> hidden = {-1.0f, -2.0f};
  mp.take(2, 0, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{99, 11, 12}));
  EXPECT_EQ(hidden, (std::vector<float>{-1.0f, -2.0f, 0.5f, 1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(mp.start(), 2);
  EXPECT_EQ(mp.rows(), 1);
  EXPECT_EQ(mp.complete(), 0);

  mp.append_next(2, 13);  // t[3] completes row 2
  mp.append_hidden(3, std::vector<float>{6.5f, 7.5f});
  mp.append_next(3, 14);
  next.clear();
  hidden.clear();
  mp.take(2, 2, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{13, 14}));
  EXPECT_EQ(hidden, (std::vector<float>{4.5f, 5.5f, 6.5f, 7.5f}));
  EXPECT_EQ(mp.start(), 4);
  EXPECT_TRUE(mp.empty());
}

// The engine's life cycle for a 4-token prompt t0..t3 prefilled in chunks of 3 and 1, then two verify steps.
TEST(MtpPending, FollowsPrefillAndVerifySteps) {
  MtpPending mp(1, 0);
  std::vector<int32_t> next;
  std::vector<float> hidden;
  // Chunk 1 (positions 0..2): h[0..2], next tokens t1..t3 all in the prompt; all three rows go to the cache.
  mp.append_hidden(0, std::vector<float>{10, 11, 12});
  mp.append_next(0, std::vector<int32_t>{101, 102, 103});
  mp.take(mp.complete(), 0, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{101, 102, 103}));
  EXPECT_EQ(hidden, (std::vector<float>{10, 11, 12}));
  // Chunk 2 (position 3): h[3]; t4 is not in the prompt, so the row is partial until the token is sampled.
  mp.append_hidden(3, std::vector<float>{13});
  mp.append_next(3, std::span<const int32_t>());  // no prompt token left for it
  EXPECT_EQ(mp.rows(), 1);
  EXPECT_EQ(mp.complete(), 0);
  mp.append_next(3, 104);  // the sampled t4
  EXPECT_EQ(mp.complete(), 1);
  // The first draft step consumes it.
  next.clear();
  hidden.clear();
  mp.take(mp.complete(), 3, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{104}));
  EXPECT_EQ(hidden, (std::vector<float>{13}));
  // Verify of [t4, d1, d2] with d1 accepted and v.next = 106: rows 4, 5 = (h[4], d1 = 105), (h[5], 106).
  mp.append_hidden(4, std::vector<float>{14, 15});
  mp.append_next(4, std::vector<int32_t>{105});
  mp.append_next(5, 106);
  next.clear();
  hidden.clear();
  mp.take(2, 4, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{105, 106}));
  EXPECT_EQ(hidden, (std::vector<float>{14, 15}));
  EXPECT_EQ(mp.start(), 6);
}

TEST(MtpPending, StartsAtAReusedPrefix) {
  MtpPending mp(3, 5);  // the MTP cache kept rows 0..4 of a previous sequence
  EXPECT_EQ(mp.start(), 5);
  expect_error([&] { mp.append_hidden(0, std::vector<float>{1, 2, 3}); }, "next row is position 5");
  mp.append_hidden(5, std::vector<float>{1, 2, 3});
  mp.append_next(5, 7);
  std::vector<int32_t> next;
  std::vector<float> hidden;
  expect_error([&] { mp.take(1, 0, next, hidden); }, "first pending row is position 5");
  mp.take(1, 5, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{7}));
  EXPECT_EQ(hidden, (std::vector<float>{1, 2, 3}));
}

TEST(MtpPending, RefusesRowsOutOfOrder) {
  MtpPending mp(2, 0);
  expect_error([] { MtpPending(0, 0); }, "width must be >= 1");
  expect_error([] { MtpPending(2, -1); }, "first position must be >= 0");
  expect_error([&] { mp.append_hidden(0, std::vector<float>{1, 2, 3}); }, "3 values are not whole rows");
  mp.append_hidden(0, std::vector<float>{1, 2});
  expect_error(
      [&] {
        mp.append_hidden(0, std::vector<float>{1, 2});
      },
      "appended at position 0, but the next row is position 1");
  expect_error(
      [&] {
        mp.append_hidden(2, std::vector<float>{1, 2});
      },
      "appended at position 2, but the next row is position 1");
  EXPECT_EQ(mp.rows(), 1);  // nothing was added by the failed calls
  MtpPending none;
  expect_error([&] { none.append_hidden(0, std::vector<float>{1}); }, "without a hidden width");
}

TEST(MtpPending, RefusesATokenWithoutItsRow) {
  MtpPending mp(2, 0);
  // A token before its hidden state: the row would pair with the next hidden row appended.
  expect_error([&] { mp.append_next(0, 5); }, "next token came before its hidden state");
  mp.append_hidden(0, std::vector<float>{1, 2, 3, 4});  // rows 0, 1
  expect_error(
      [&] {
        mp.append_next(0, std::vector<int32_t>{5, 6, 7});
      },
      "rows 0..2, but only 2 rows from position 0 have their hidden state");
  expect_error([&] { mp.append_next(1, 6); }, "first row without one is position 0");  // skips row 0
  mp.append_next(0, 5);
  expect_error([&] { mp.append_next(0, 5); }, "first row without one is position 1");  // row 0 twice
  EXPECT_EQ(mp.complete(), 1);
}

TEST(MtpPending, TakesOnlyCompleteRows) {
  MtpPending mp(1, 0);
  mp.append_hidden(0, std::vector<float>{1, 2});
  mp.append_next(0, 9);
  std::vector<int32_t> next;
  std::vector<float> hidden;
  expect_error([&] { mp.take(2, 0, next, hidden); }, "2 rows taken, but 1 of the 2 pending rows");
  expect_error([&] { mp.take(-1, 0, next, hidden); }, "-1 rows taken");
  EXPECT_TRUE(next.empty());
  EXPECT_TRUE(hidden.empty());
  mp.take(0, 0, next, hidden);  // nothing: still at position 0
  EXPECT_EQ(mp.start(), 0);
  EXPECT_EQ(mp.rows(), 2);
  EXPECT_TRUE(next.empty());
}

TEST(MtpPending, ClearDropsRowsAndKeepsThePosition) {
  MtpPending mp(1, 3);
  mp.append_hidden(3, std::vector<float>{1, 2});
  mp.append_next(3, 8);
  mp.clear();
  EXPECT_TRUE(mp.empty());
  EXPECT_EQ(mp.complete(), 0);
  EXPECT_EQ(mp.start(), 3);
  mp.append_hidden(3, std::vector<float>{4});  // the row the MTP cache still lacks
  mp.append_next(3, 9);
  std::vector<int32_t> next;
  std::vector<float> hidden;
  mp.take(1, 3, next, hidden);
  EXPECT_EQ(next, (std::vector<int32_t>{9}));
  EXPECT_EQ(hidden, (std::vector<float>{4}));
}

}  // namespace
}  // namespace dsv3::runtime
