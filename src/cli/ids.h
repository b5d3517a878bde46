// Parsing of "I1 I2 ..." token-id lists given on the command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::cli {

// Whitespace- or comma-separated non-negative integers; throws dsv3::Error naming the bad item.
std::vector<int32_t> parse_ids(const std::string& text);

}  // namespace dsv3::cli
