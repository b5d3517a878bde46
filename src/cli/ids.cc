#include "cli/ids.h"

#include <charconv>

#include "core/error.h"

namespace dsv3::cli {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() &&
           !(text[j] == ' ' || text[j] == ',' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
      ++j;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    if (ec != std::errc() || p != text.data() + j || v < 0 || v > INT32_MAX)
      fail("--ids: '{}' is not a token id", text.substr(i, j - i));
    ids.push_back(int32_t(v));
    i = j;
  }
  if (ids.empty()) fail("--ids: no token ids given");
  return ids;
}

}  // namespace dsv3::cli
