// The prefix cache's radix tree (insert, lookup, split, LRU eviction under the byte bound, blocks in use
// outliving eviction), its block copies (main, index-key and MTP rows land where a prefill would write them),
// and --cache-mem parsing.
#include "runtime/prefix_cache.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::runtime {
namespace {

// Blocks of 2 tokens holding 2 floats: tag * 100 + block index, so a test sees whose rows it got.
constexpr int64_t kB = 2;
constexpr size_t kBlockBytes = 2 * sizeof(float);

PrefixLayout tiny() { return {.block_tokens = kB, .layers = 1, .width = 1}; }

struct Maker {
  int tag = 0;
  std::vector<int64_t> made;  // block indices make() was called for
  std::function<PrefixBlock(int64_t)> fn() {
    return [this](int64_t j) {
      made.push_back(j);
      PrefixBlock b;
      b.rows = {float(tag * 100 + j), float(tag * 100 + j)};
      return b;
    };
  }
};

std::vector<float> tags(const std::vector<BlockRef>& blocks) {
  std::vector<float> out;
  for (const BlockRef& b : blocks) out.push_back(b->rows[0]);
  return out;
}

TEST(PrefixCacheTree, InsertThenLookupWholeBlocks) {
  PrefixCache pc(tiny(), 1 << 20);
  Maker m{.tag = 1};
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9};  // 4 whole blocks, token 9 left over
  pc.insert(a, 100, m.fn());
  EXPECT_EQ(m.made, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(pc.stats().blocks, 4);
  EXPECT_EQ(pc.bytes(), 4 * kBlockBytes);
  EXPECT_EQ(tags(pc.lookup(a, 100)), (std::vector<float>{100, 101, 102, 103}));
  EXPECT_EQ(tags(pc.lookup(a, 2)), (std::vector<float>{100, 101}));  // max_blocks
  EXPECT_EQ(tags(pc.lookup(std::vector<int32_t>{1, 2, 3, 4, 7, 7}, 9)), (std::vector<float>{100, 101}));
  EXPECT_EQ(tags(pc.lookup(std::vector<int32_t>{1, 2, 3}, 9)), (std::vector<float>{100}));     // partial block
  EXPECT_EQ(tags(pc.lookup(std::vector<int32_t>{1, 2, 3, 5}, 9)), (std::vector<float>{100}));  // differs inside
  EXPECT_TRUE(pc.lookup(std::vector<int32_t>{2, 1, 3, 4}, 9).empty());
  EXPECT_EQ(pc.stats().lookups, 6);
  EXPECT_EQ(pc.stats().hits, 5);
  EXPECT_EQ(pc.stats().hit_tokens, (4 + 2 + 2 + 1 + 1) * kB);
  // A path already there (whole or a prefix of an edge) builds nothing.
  pc.insert(std::vector<int32_t>{1, 2, 3, 4}, 100, m.fn());
  pc.insert(a, 100, m.fn());
  EXPECT_EQ(m.made.size(), 4u);
  // max_blocks limits an insert too.
  Maker m2{.tag = 2};
  pc.insert(std::vector<int32_t>{9, 9, 8, 8, 7, 7}, 1, m2.fn());
  EXPECT_EQ(m2.made, (std::vector<int64_t>{0}));
}

TEST(PrefixCacheTree, DivergingInsertSplitsTheEdge) {
  PrefixCache pc(tiny(), 1 << 20);
  Maker ma{.tag = 1}, mb{.tag = 2}, mc{.tag = 3};
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8}, b = {1, 2, 3, 4, 9, 9, 9, 9}, c = {1, 2, 3, 4, 5, 6, 0, 0};
  pc.insert(a, 100, ma.fn());
  pc.insert(b, 100, mb.fn());  // splits a's edge after 2 blocks
  EXPECT_EQ(mb.made, (std::vector<int64_t>{2, 3}));
  pc.insert(c, 100, mc.fn());  // splits the tail [5 6 | 7 8] after 1 block
  EXPECT_EQ(mc.made, (std::vector<int64_t>{3}));
  EXPECT_EQ(pc.stats().blocks, 4 + 2 + 1);
  EXPECT_EQ(tags(pc.lookup(a, 100)), (std::vector<float>{100, 101, 102, 103}));
  EXPECT_EQ(tags(pc.lookup(b, 100)), (std::vector<float>{100, 101, 202, 203}));
  EXPECT_EQ(tags(pc.lookup(c, 100)), (std::vector<float>{100, 101, 102, 303}));
  // A longer path continues below a split point.
  Maker md{.tag = 4};
  const std::vector<int32_t> d = {1, 2, 3, 4, 5, 6, 7, 8, 6, 6};
  pc.insert(d, 100, md.fn());
  EXPECT_EQ(md.made, (std::vector<int64_t>{4}));
  EXPECT_EQ(tags(pc.lookup(d, 100)), (std::vector<float>{100, 101, 102, 103, 404}));
}

TEST(PrefixCacheTree, EvictsLeastRecentlyUsedLeavesToTheByteBound) {
  PrefixCache pc(tiny(), 5 * kBlockBytes);
  Maker ma{.tag = 1}, mc{.tag = 2}, md{.tag = 3};
  const std::vector<int32_t> a = {1, 1, 2, 2, 3, 3}, c = {7, 7, 8, 8}, d = {5, 5};
  pc.insert(a, 100, ma.fn());
  pc.insert(c, 100, mc.fn());
  EXPECT_EQ(pc.bytes(), 5 * kBlockBytes);
  pc.lookup(a, 100);           // a is now more recent than c
  pc.insert(d, 100, md.fn());  // one block over: c's last block goes
  EXPECT_EQ(pc.bytes(), 5 * kBlockBytes);
  EXPECT_EQ(pc.stats().evicted_blocks, 1);
  EXPECT_EQ(tags(pc.lookup(c, 100)), (std::vector<float>{200}));
  EXPECT_EQ(tags(pc.lookup(a, 100)), (std::vector<float>{100, 101, 102}));
  EXPECT_EQ(tags(pc.lookup(d, 100)), (std::vector<float>{300}));
  // A path larger than the whole cache keeps what fits: its own last blocks go once the others are gone.
  Maker me{.tag = 4};
  std::vector<int32_t> e;
  for (int i = 0; i < 16; ++i) e.push_back(40 + i);
  pc.insert(e, 100, me.fn());
  EXPECT_LE(pc.bytes(), 5 * kBlockBytes);
  EXPECT_EQ(tags(pc.lookup(e, 100)), (std::vector<float>{400, 401, 402, 403, 404}));
  EXPECT_TRUE(pc.lookup(a, 100).empty());
  EXPECT_EQ(pc.stats().blocks, 5);
  EXPECT_EQ(pc.stats().bytes, int64_t(pc.bytes()));
}

TEST(PrefixCacheTree, BlocksInUseOutliveEviction) {
  PrefixCache pc(tiny(), 3 * kBlockBytes);
  Maker ma{.tag = 1}, mb{.tag = 2};
  const std::vector<int32_t> a = {1, 1, 2, 2, 3, 3}, b = {4, 4, 5, 5, 6, 6};
  pc.insert(a, 100, ma.fn());
  const std::vector<BlockRef> held = pc.lookup(a, 100);  // a sequence copying from these
  pc.insert(b, 100, mb.fn());                            // evicts all of a from the tree
  EXPECT_TRUE(pc.lookup(a, 100).empty());
  EXPECT_EQ(pc.bytes(), 3 * kBlockBytes);
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(tags(held), (std::vector<float>{100, 101, 102}));  // still readable
  for (const BlockRef& r : held) EXPECT_EQ(r.use_count(), 1);  // and only ours now
  pc.clear();
  EXPECT_EQ(pc.bytes(), 0u);
  EXPECT_TRUE(pc.lookup(b, 100).empty());
}

TEST(PrefixCacheTree, ByteBoundHoldsUnderManyDistinctPrefixes) {
  const size_t limit = 37 * kBlockBytes;
  PrefixCache pc(tiny(), int64_t(limit));
  std::mt19937 rng(3);
  Maker m;
  for (int r = 0; r < 2000; ++r) {
    std::vector<int32_t> t(size_t(2 + rng() % 40));
    for (auto& x : t) x = int32_t(rng() % 4);  // few symbols: shared prefixes, splits and deep paths
    if (rng() % 2) pc.lookup(t, 100);
    m.tag = r;
    pc.insert(t, 100, m.fn());
    ASSERT_LE(pc.bytes(), limit);
    ASSERT_EQ(size_t(pc.stats().blocks) * kBlockBytes, pc.bytes());
    // Whatever is found is the path's own content: every block's tokens were checked on the way down.
    const auto found = pc.lookup(t, 100);
    ASSERT_LE(found.size() * kB, t.size());
  }
  EXPECT_GT(pc.stats().evicted_blocks, 0);
  EXPECT_EQ(pc.stats().inserted_blocks - pc.stats().evicted_blocks, pc.stats().blocks);
}

// Rows written by position: value = (layer · 1000 + pos) · 10 + channel (index keys: mod 256).
void fill(KvCache& c, int64_t n, float base) {
  c.ensure(n);
  for (int64_t l = 0; l < c.layers(); ++l)
    for (int64_t p = 0; p < n; ++p)
      for (int64_t k = 0; k < c.width(); ++k) c.row(l, p)[k] = base + float((l * 1000 + p) * 10 + k);
  for (int64_t l = 0; l < c.index_layers(); ++l)
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t k = 0; k < c.index_dim(); ++k) c.index_key(l, p)[k] = uint8_t((l * 31 + p * 7 + k) & 255);
      *c.index_scale(l, p) = base + float(l * 1000 + p) + 0.5f;
    }
  c.advance(n);
}

TEST(PrefixCacheCopy, BlocksHoldMainIndexAndShiftedMtpRows) {
  const int64_t B = 3;
  PrefixLayout L{.block_tokens = B,
                 .layers = 2,
                 .width = 5,
                 .index_dim = 4,
                 .index_layers = 1,
                 .mtp_layers = 1,
                 .mtp_index_dim = 4,
                 .mtp_index_layers = 1,
                 .hidden = 2};
  PrefixCache pc(L, 1 << 20);
  KvCache main(2, 5, 7, 4, 1), mtp(1, 5, 7, 4, 1);
  fill(main, 10, 0);    // 10 prompt tokens prefilled
  fill(mtp, 9, 0.25f);  // the MTP cache lags by one row
  std::vector<BlockRef> blocks;
  const std::vector<float> hidden = {1, 2, 3, 4, 5, 6};  // h at positions 2, 5, 8
  for (int64_t j = 0; j < 3; ++j)
    blocks.push_back(std::make_shared<const PrefixBlock>(pc.make_block(j, main, &mtp, hidden.data() + j * 2)));
  EXPECT_EQ(blocks[0]->mtp_rows.size(), size_t(1 * (B - 1) * 5));  // rows 0..1
  EXPECT_EQ(blocks[1]->mtp_rows.size(), size_t(1 * B * 5));        // rows 2..4
  EXPECT_EQ(blocks[2]->hidden, (std::vector<float>{5, 6}));
  EXPECT_THROW(pc.make_block(3, main, &mtp, hidden.data()), Error);  // needs 12 tokens

  KvCache main2(2, 5, 4, 4, 1), mtp2(1, 5, 4, 4, 1);  // smaller capacity: copy_in grows it
  pc.copy_in(blocks, main2, &mtp2);
  EXPECT_EQ(main2.length(), 9);
  EXPECT_EQ(mtp2.length(), 8);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t p = 0; p < 9; ++p)
      for (int64_t k = 0; k < 5; ++k) ASSERT_EQ(main2.row(l, p)[k], main.row(l, p)[k]) << l << " " << p;
  for (int64_t p = 0; p < 9; ++p) {
    for (int64_t k = 0; k < 4; ++k) ASSERT_EQ(main2.index_key(0, p)[k], main.index_key(0, p)[k]);
    ASSERT_EQ(*main2.index_scale(0, p), *main.index_scale(0, p));
  }
  for (int64_t p = 0; p < 8; ++p) {
    for (int64_t k = 0; k < 5; ++k) ASSERT_EQ(mtp2.row(0, p)[k], mtp.row(0, p)[k]) << p;
    for (int64_t k = 0; k < 4; ++k) ASSERT_EQ(mtp2.index_key(0, p)[k], mtp.index_key(0, p)[k]);
    ASSERT_EQ(*mtp2.index_scale(0, p), *mtp.index_scale(0, p));
  }
  EXPECT_THROW(pc.copy_in(blocks, main2, &mtp2), Error);  // not empty any more
  KvCache wrong(3, 5, 4);
  EXPECT_THROW(pc.copy_in(blocks, wrong, nullptr), Error);
}

TEST(PrefixCacheOptions, ParsesSizesAndNamesTheFlag) {
  EXPECT_EQ(parse_byte_size("2GiB", "--cache-mem"), int64_t(2) << 30);
  EXPECT_EQ(parse_byte_size("512MiB", "--cache-mem"), int64_t(512) << 20);
  EXPECT_EQ(parse_byte_size("512m", "--cache-mem"), int64_t(512) << 20);
  EXPECT_EQ(parse_byte_size("100MB", "--cache-mem"), int64_t(100000000));
  EXPECT_EQ(parse_byte_size("1.5G", "--cache-mem"), int64_t(3) << 29);
  EXPECT_EQ(parse_byte_size("4096", "--cache-mem"), 4096);
  EXPECT_EQ(parse_byte_size("0", "--cache-mem"), 0);
  for (const char* bad : {"", "abc", "2XB", "-1", "1e3", "GiB", "1.2.3G", "3 parsecs"}) {
    try {
      parse_byte_size(bad, "--cache-mem");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--cache-mem"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(PrefixCache(tiny(), 0), Error);
  EXPECT_THROW(PrefixCache(PrefixLayout{.block_tokens = 0}, 100), Error);
}

}  // namespace
}  // namespace dsv3::runtime
