#include "io/grammar/vocabulary.h"

#include <algorithm>

#include "core/error.h"

namespace dsv3::grammar {

TokenVocabulary::TokenVocabulary(std::vector<std::string> bytes, std::vector<Kind> kinds)
    : bytes_(std::move(bytes)), kinds_(std::move(kinds)) {
  if (bytes_.size() != kinds_.size())
    fail("token vocabulary: {} byte strings but {} kinds", bytes_.size(), kinds_.size());
  std::vector<int32_t> text, special;
  for (size_t i = 0; i < bytes_.size(); ++i) {
    if (bytes_[i].empty() || bytes_[i].size() > 60000) kinds_[i] = Kind::Excluded;
    if (kinds_[i] == Kind::Text) text.push_back(int32_t(i));
    if (kinds_[i] == Kind::Special) special.push_back(int32_t(i));
  }
  build(text, text_);
  build(special, special_);
}

// Sorting the tokens by bytes makes the depth-first layout a single pass: each token shares with its
// predecessor the nodes of their common prefix.
void TokenVocabulary::build(const std::vector<int32_t>& ids_in, std::vector<Node>& out) {
  std::vector<int32_t> ids = ids_in;
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return bytes_[size_t(a)] < bytes_[size_t(b)]; });
  std::vector<int32_t> path;  // node index per depth of the current token
  std::string prev;
  for (int32_t id : ids) {
    const std::string& s = bytes_[size_t(id)];
    size_t common = 0;
    while (common < prev.size() && common < s.size() && prev[common] == s[common]) ++common;
    // Close the nodes deeper than the common prefix.
    for (size_t d = path.size(); d > common; --d) out[size_t(path[d - 1])].skip = int32_t(out.size());
    path.resize(common);
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(int32_t(out.size()));
      out.push_back(Node{uint8_t(s[d]), uint16_t(d + 1), -1, 0, 0});
    }
    max_depth_ = std::max(max_depth_, int(s.size()));
    Node& end = out[size_t(path.back())];
    // Tokens with equal bytes are adjacent in the sort: they share the end node.
    if (end.tokens_begin == end.tokens_end) end.tokens_begin = end.tokens_end = int32_t(tokens_.size());
    tokens_.push_back(id);
    end.tokens_end = int32_t(tokens_.size());
    prev = s;
  }
  for (size_t d = path.size(); d > 0; --d) out[size_t(path[d - 1])].skip = int32_t(out.size());
}

}  // namespace dsv3::grammar
