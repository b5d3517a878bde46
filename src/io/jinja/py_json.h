// Python's json.dumps, byte for byte: what chat templates' tojson filter (Hugging Face's: json.dumps with
// ensure_ascii=False) and DeepSeek-V3.2's Python prompt encoder write into prompts. nlohmann's dump differs
// (separators, escaping of non-ASCII and of control characters, float repr), so prompts need this one.
// It lives in the Jinja room because the tojson filter is its first user; io/dsv32_encoding uses it too.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dsv3::io::jinja {

struct PyJsonOptions {
  int indent = -1;            // < 0: None (one line); >= 0: newline + that many spaces per level
  bool ensure_ascii = false;  // true: non-ASCII as \uXXXX (non-BMP as a surrogate pair)
  bool sort_keys = false;
  // None: Python's defaults — (", ", ": ") without indent, (",", ": ") with indent.
  const char* item_separator = nullptr;
  const char* key_separator = nullptr;
};

// Floats print as Python's repr (shortest round-trip: 1.0, 0.1, 1e-05, 1e+16, inf → Infinity, nan → NaN).
std::string py_json_dumps(const nlohmann::ordered_json& value, const PyJsonOptions& options = {});

}  // namespace dsv3::io::jinja
