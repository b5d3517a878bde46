// Decoding a token allocates nothing once buffers are warm: every scratch buffer, the batch description
// and the KV cache are reused. Counted by replacing the global operator new for this test binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "model/transformer.h"
#include "testdata.h"

namespace {
std::atomic<long> g_allocs{0};
}

// The replacement operator new below allocates with malloc, so free is the matching release; GCC cannot see
// the pairing through the replacement and warns at every inlined new/delete site.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Every plain form is replaced, so that each allocation and its release go through the same pair (malloc /
// free) whichever form the library picks — e.g. std::stable_sort's buffer uses the nothrow form, released by a
// sized delete; under ASan a half-replaced set is an alloc-dealloc mismatch.
void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace dsv3 {
namespace {

void decode_steps_allocate_nothing(const std::string& name, bool mtp) {
  auto model = Model::load(testing::testdata_dir() + "/" + name);
  const int64_t V = model->config().vocab_size, D = model->config().hidden_size;
  std::vector<KvCache> caches;
  caches.push_back(model->new_cache(64));
  caches.push_back(model->new_cache(64));
  KvCache mcache = model->new_mtp_cache(64);
  std::vector<float> logits(2 * size_t(V)), hidden(2 * size_t(D));
  std::vector<int32_t> prompt{3, 5, 7, 11, 13, 17, 19, 23}, step{29, 31};
  std::vector<SeqChunk> chunks{{&caches[0], 8}};
  model->forward(prompt, chunks, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
  chunks = {{&caches[0], 1}, {&caches[1], 1}};
  SeqChunk mch{&mcache, 1};
  // Warm-up steps size every buffer for this batch shape.
  for (int i = 0; i < 3; ++i) {
    model->forward(step, chunks, hidden.data(), logits.data(), {.logits = LogitRows::LastOfEachChunk});
    if (mtp)
      model->mtp_forward(0, std::span<const int32_t>(step).first(1), hidden.data(), {&mch, 1}, nullptr, logits.data());
  }
  // The measured steps feed other tokens, so routing sends rows to experts the warm-up never used.
  const long before = g_allocs.load();
  for (int i = 0; i < 5; ++i) {
    step = {int32_t((101 * i + 7) % V), int32_t((53 * i + 1) % V)};
    model->forward(step, chunks, hidden.data(), logits.data(), {.logits = LogitRows::LastOfEachChunk});
    if (mtp)
      model->mtp_forward(0, std::span<const int32_t>(step).first(1), hidden.data(), {&mch, 1}, nullptr, logits.data());
  }
  EXPECT_EQ(g_allocs.load() - before, 0) << name << ": heap allocations during 5 decode steps";
}

TEST(NoAllocation, DecodeStepsOnV3) {
  DSV3_REQUIRE_CASE("v3_mtp");
  decode_steps_allocate_nothing("v3_mtp", true);
}

TEST(NoAllocation, DecodeStepsOnFp8) {
  DSV3_REQUIRE_CASE("v3_fp8");
  decode_steps_allocate_nothing("v3_fp8", false);
}

}  // namespace
}  // namespace dsv3
