// libFuzzer target for the safetensors header parser: any byte string must either parse into a header whose
// every tensor lies inside the input, sorted and non-overlapping, or throw dsv3::Error. Anything else (a
// crash, a sanitizer report, another exception type, a broken invariant) is a bug.
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsv3::io::ParsedHeader h;
  try {
    h = dsv3::io::parse_safetensors_header(data, size, "fuzz.safetensors");
  } catch (const dsv3::Error&) {
    return 0;
  }
  if (h.data_offset < 8 || h.data_offset > size) std::abort();
  const uint64_t data_size = size - h.data_offset;
  uint64_t prev_begin = 0, max_end = 0;
  for (const auto& e : h.tensors) {
    if (e.begin > e.end || e.end > data_size || e.begin < prev_begin) std::abort();
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0) std::abort();
      numel *= uint64_t(d);
    }
    if (numel * dsv3::dtype_size(e.dtype) != e.end - e.begin) std::abort();
    if (e.begin != e.end) {
      if (e.begin < max_end) std::abort();
      max_end = e.end;
    }
    prev_begin = e.begin;
  }
  return 0;
}
