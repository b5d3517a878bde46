// JSON Schema → Grammar (Grammar::json_schema). The grammar generates compact JSON (no whitespace) that
// validates against the schema; where exactness would cost an unbounded grammar, it generates a documented
// subset of the valid documents (never an invalid one). Supported (drafts 7 and 2020-12 spellings):
//   type (a name or a list), enum, const (values written compactly as nlohmann::json dumps them)
//   object: properties (emitted in the order of `properties`; required ones always, optional ones may be
//     skipped), required (each must be in properties), additionalProperties false / true / a schema: extra
//     keys are [A-Za-z0-9_-]{1,32} names other than the declared ones, after the declared properties.
//     additionalProperties absent: no extra keys when `properties` is given, any members when not.
//   array: items (a schema, false, or a draft-7 tuple array = prefixItems with no further items),
//     prefixItems, minItems, maxItems (uniqueItems: false only). With prefixItems and no items, no items
//     beyond the prefix (beyond minItems) are generated.
//   string: minLength / maxLength (in code points, as ajv counts), pattern (pattern.h), format: date,
//     time, date-time, uuid, email, ipv4 (json_text.h; format together with length or pattern is refused)
//   integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, not draft-4 booleans)
//   number: minimum 0 (non-negative) only; other bounds on non-integers are refused
//   boolean, null
//   anyOf; oneOf compiled as anyOf (a document may match several branches: write disjoint branches)
//   allOf: one branch, or object branches with disjoint properties and no additionalProperties (merged)
//   $ref to "#" or a JSON pointer in this document ($defs, definitions, anything); recursion works
//   annotations ignored: title, description, default, examples, $schema, $id, $comment, deprecated,
//     readOnly, writeOnly, $defs / definitions (as containers)
// Any other keyword is refused: "json_schema: unsupported keyword 'K' at /json/pointer".
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"
#include "io/grammar/grammar.h"
#include "io/grammar/json_text.h"
#include "io/grammar/pattern.h"

namespace dsv3::grammar {
namespace {

using json = nlohmann::ordered_json;  // keeps the order of `properties`
using Alt = Builder::Alt;
Element ref(int32_t r) { return Builder::ref(r); }

const std::set<std::string> kAnnotations = {"title", "description", "default",    "examples", "$schema",
                                            "$id",   "$comment",    "deprecated", "readOnly", "writeOnly",
                                            "$defs", "definitions", "$anchor"};
const std::set<std::string> kKnown = {"type",
                                      "enum",
                                      "const",
                                      "properties",
                                      "required",
                                      "additionalProperties",
                                      "items",
                                      "prefixItems",
                                      "minItems",
                                      "maxItems",
                                      "uniqueItems",
                                      "minLength",
                                      "maxLength",
                                      "pattern",
                                      "format",
                                      "minimum",
                                      "maximum",
                                      "exclusiveMinimum",
                                      "exclusiveMaximum",
                                      "anyOf",
                                      "oneOf",
                                      "allOf",
                                      "$ref"};
const std::set<std::string> kTypes = {"object", "array", "string", "number", "integer", "boolean", "null"};

std::string esc_pointer(const std::string& k) {
  std::string out;
  for (char c : k) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string where(const std::string& path) { return path.empty() ? "/" : path; }

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const json& root) : root_(root), j_(b_) {}

  Grammar run() {
    const int32_t placeholder = b_.new_rule();
    refs_["#"] = placeholder;
    const int32_t r = compile(root_, "");
    b_.set_rule(placeholder, {{ref(r)}});
    return b_.finish(placeholder);
  }

 private:
  [[noreturn]] static void unsupported(const std::string& kw, const std::string& path) {
    fail("json_schema: unsupported keyword '{}' at {}", kw, where(path));
  }

  int32_t compile(const json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return j_.value();
      fail("json_schema: the schema false at {} matches nothing", where(path));
    }
    if (!s.is_object()) fail("json_schema: a schema must be an object or a boolean at {}", where(path));
    std::set<std::string> constraining;  // keywords present other than annotations
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (kAnnotations.count(it.key())) continue;
      if (!kKnown.count(it.key())) unsupported(it.key(), path);
      constraining.insert(it.key());
    }
    if (s.contains("uniqueItems")) {
      if (!s["uniqueItems"].is_boolean() || s["uniqueItems"].get<bool>()) unsupported("uniqueItems", path);
      constraining.erase("uniqueItems");
    }
    auto only = [&](const std::string& kw, std::set<std::string> allowed) {
      for (const std::string& k : constraining)
        if (k != kw && !allowed.count(k))
          fail("json_schema: '{}' together with '{}' at {} is not supported", kw, k, where(path));
    };
    if (s.contains("$ref")) {
      only("$ref", {});
      return resolve(s["$ref"], path);
    }
    if (s.contains("anyOf") || s.contains("oneOf")) {
      const std::string kw = s.contains("anyOf") ? "anyOf" : "oneOf";
      only(kw, {});
      const json& list = s[kw];
      if (!list.is_array() || list.empty()) fail("json_schema: '{}' at {} must be a non-empty array", kw, where(path));
      std::vector<Alt> alts;
      for (size_t i = 0; i < list.size(); ++i)
        alts.push_back({ref(compile(list[i], fmt::format("{}/{}/{}", path, kw, i)))});
      return b_.add_rule(std::move(alts));
    }
    if (s.contains("allOf")) return all_of(s, path, constraining);
    std::vector<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const json& x : t) {
          if (!x.is_string()) fail("json_schema: 'type' at {} must hold type names", where(path));
          types.push_back(x.get<std::string>());
        }
      } else {
        fail("json_schema: 'type' at {} must be a type name or a non-empty array of them", where(path));
      }
      for (const std::string& t2 : types)
        if (!kTypes.count(t2)) fail("json_schema: unknown type '{}' at {}", t2, where(path));
    }
    if (s.contains("enum") || s.contains("const")) {
      const std::string kw = s.contains("const") ? "const" : "enum";
      only(kw, {"type"});
      std::vector<json> values;
      if (kw == "const") {
        values.push_back(s["const"]);
      } else {
        if (!s["enum"].is_array() || s["enum"].empty())
          fail("json_schema: 'enum' at {} must be a non-empty array", where(path));
        for (const json& v : s["enum"]) values.push_back(v);
      }
      std::vector<Alt> alts;
      for (const json& v : values)
        if (types.empty() || has_type(v, types)) alts.push_back({ref(b_.literal_rule(v.dump()))});
      if (alts.empty()) fail("json_schema: no '{}' value at {} has the schema's type", kw, where(path));
      return b_.add_rule(std::move(alts));
    }
    if (types.empty()) types = infer_types(s, path);
    if (types.empty()) return j_.value();
    std::vector<Alt> alts;
    for (const std::string& t : types) alts.push_back({ref(typed(s, t, path))});
    return alts.size() == 1 ? alts[0][0].index : b_.add_rule(std::move(alts));
  }

  static bool has_type(const json& v, const std::vector<std::string>& types) {
    for (const std::string& t : types) {
      if ((t == "null" && v.is_null()) || (t == "boolean" && v.is_boolean()) || (t == "object" && v.is_object()) ||
          (t == "array" && v.is_array()) || (t == "string" && v.is_string()) || (t == "number" && v.is_number()) ||
          (t == "integer" && v.is_number() &&
           (v.is_number_integer() || std::floor(v.get<double>()) == v.get<double>())))
        return true;
    }
    return false;
  }

  std::vector<std::string> infer_types(const json& s, const std::string& path) {
    std::set<std::string> t;
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (k == "properties" || k == "required" || k == "additionalProperties") t.insert("object");
      if (k == "items" || k == "prefixItems" || k == "minItems" || k == "maxItems") t.insert("array");
      if (k == "minLength" || k == "maxLength" || k == "pattern" || k == "format") t.insert("string");
      if (k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") t.insert("number");
    }
    if (t.size() > 1) fail("json_schema: keywords of several types without 'type' at {}: give 'type'", where(path));
    return std::vector<std::string>(t.begin(), t.end());
  }

  int32_t resolve(const json& r, const std::string& path) {
    if (!r.is_string()) fail("json_schema: '$ref' at {} must be a string", where(path));
    const std::string target = r.get<std::string>();
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    if (target.empty() || target[0] != '#')
      fail("json_schema: '$ref' at {}: only references inside the schema (\"#...\") are supported, got \"{}\"",
           where(path), target);
    const std::string pointer = target.substr(1);
    const json* node = nullptr;
    try {
      node = &root_.at(json::json_pointer(pointer));
    } catch (const std::exception&) {
      fail("json_schema: '$ref' at {}: \"{}\" names nothing in the schema", where(path), target);
    }
    const int32_t placeholder = b_.new_rule();
    refs_[target] = placeholder;
    const int32_t r2 = compile(*node, pointer);
    b_.set_rule(placeholder, {{ref(r2)}});
    return placeholder;
  }

  const json& follow(const json& s, const std::string& path) {
    if (!s.is_object() || !s.contains("$ref")) return s;
    const std::string target = s["$ref"].is_string() ? s["$ref"].get<std::string>() : "";
    if (target.empty() || target[0] != '#') fail("json_schema: '$ref' at {} must be \"#...\"", where(path));
    try {
      return root_.at(json::json_pointer(target.substr(1)));
    } catch (const std::exception&) {
      fail("json_schema: '$ref' at {}: \"{}\" names nothing in the schema", where(path), target);
    }
  }

  int32_t all_of(const json& s, const std::string& path, const std::set<std::string>& constraining) {
    const json& list = s["allOf"];
    if (!list.is_array() || list.empty()) fail("json_schema: 'allOf' at {} must be a non-empty array", where(path));
    for (const std::string& k : constraining)
      if (k != "allOf") fail("json_schema: 'allOf' together with '{}' at {} is not supported", k, where(path));
    if (list.size() == 1) return compile(list[0], path + "/allOf/0");
    json merged = {{"type", "object"}, {"properties", json::object()}, {"required", json::array()}};
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string p = fmt::format("{}/allOf/{}", path, i);
      const json& b = follow(list[i], p);
      auto refuse = [&](const std::string& why) {
        fail(
            "json_schema: 'allOf' at {} cannot be merged: branch {} {} (only object branches with disjoint "
            "'properties' and no 'additionalProperties' are merged)",
            where(path), i, why);
      };
      if (!b.is_object()) refuse("is not an object schema");
      for (auto it = b.begin(); it != b.end(); ++it) {
        const std::string& k = it.key();
        if (kAnnotations.count(k)) continue;
        if (k == "type") {
          if (it.value() != "object") refuse("has a type other than object");
        } else if (k == "properties") {
          for (auto p2 = it.value().begin(); p2 != it.value().end(); ++p2) {
            if (merged["properties"].contains(p2.key())) refuse("repeats property '" + p2.key() + "'");
            merged["properties"][p2.key()] = p2.value();
          }
        } else if (k == "required") {
          for (const json& r : it.value()) merged["required"].push_back(r);
        } else if (k == "additionalProperties" && it.value() == true) {
        } else {
          refuse("has '" + k + "'");
        }
      }
    }
    return compile(merged, path);
  }

  int32_t typed(const json& s, const std::string& t, const std::string& path) {
    if (t == "null") return b_.literal_rule("null");
    if (t == "boolean") return b_.add_rule({b_.text("true"), b_.text("false")});
    if (t == "string") return string(s, path);
    if (t == "integer") return integer(s, path);
    if (t == "number") return number(s, path);
    if (t == "object") return object(s, path);
    return array(s, path);
  }

  int64_t count(const json& s, const char* kw, const std::string& path, int64_t dflt) {
    if (!s.contains(kw)) return dflt;
    const json& v = s[kw];
    if (!v.is_number_integer() && !(v.is_number() && std::floor(v.get<double>()) == v.get<double>()))
      fail("json_schema: '{}' at {} must be a non-negative integer", kw, where(path));
    const double d = v.get<double>();
    if (d < 0 || d > 1e6) fail("json_schema: '{}' at {} must be in [0, 1000000]", kw, where(path));
    return int64_t(d);
  }

  int32_t string(const json& s, const std::string& path) {
    const int64_t lo = count(s, "minLength", path, 0), hi = count(s, "maxLength", path, -1);
    if (hi >= 0 && hi < lo) fail("json_schema: maxLength < minLength at {}", where(path));
    const bool lengths = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail("json_schema: 'format' at {} must be a string", where(path));
      if (lengths || s.contains("pattern"))
        fail("json_schema: 'format' together with a length or 'pattern' at {} is not supported", where(path));
      const std::string f = s["format"].get<std::string>();
      auto r = j_.format(f);
      if (!r)
        fail("json_schema: unsupported format '{}' at {} (supported: date, time, date-time, uuid, email, ipv4)", f,
             where(path));
      return *r;
    }
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) fail("json_schema: 'pattern' at {} must be a string", where(path));
      if (lengths) fail("json_schema: 'pattern' together with a length at {} is not supported", where(path));
      return pattern_string(b_, j_, s["pattern"].get<std::string>(), path);
    }
    return j_.string(lo, hi);
  }

  int32_t integer(const json& s, const std::string& path) {
    std::optional<int64_t> lo, hi;
    auto bound = [&](const char* kw) -> std::optional<double> {
      if (!s.contains(kw)) return std::nullopt;
      if (!s[kw].is_number())
        fail("json_schema: '{}' at {} must be a number (draft-4 boolean exclusives are not supported)", kw,
             where(path));
      const double v = s[kw].get<double>();
      if (std::fabs(v) > 1e18) fail("json_schema: '{}' at {} is too large", kw, where(path));
      return v;
    };
    auto tighten_lo = [&](int64_t v) { lo = lo ? std::max(*lo, v) : v; };
    auto tighten_hi = [&](int64_t v) { hi = hi ? std::min(*hi, v) : v; };
    if (auto v = bound("minimum")) tighten_lo(int64_t(std::ceil(*v)));
    if (auto v = bound("exclusiveMinimum")) tighten_lo(int64_t(std::floor(*v)) + 1);
    if (auto v = bound("maximum")) tighten_hi(int64_t(std::floor(*v)));
    if (auto v = bound("exclusiveMaximum")) tighten_hi(int64_t(std::ceil(*v)) - 1);
    if (lo && hi && *lo > *hi) fail("json_schema: no integer satisfies the bounds at {}", where(path));
    return j_.integer(lo, hi);
  }

  int32_t number(const json& s, const std::string& path) {
    for (const char* kw : {"maximum", "exclusiveMinimum", "exclusiveMaximum"})
      if (s.contains(kw))
        fail(
            "json_schema: '{}' on a number at {} is not supported (bounds on integers are; on numbers only "
            "minimum 0)",
            kw, where(path));
    if (s.contains("minimum")) {
      if (!s["minimum"].is_number() || s["minimum"].get<double>() != 0)
        fail("json_schema: 'minimum' on a number at {} is not supported unless it is 0", where(path));
      return j_.number(/*nonnegative=*/true);
    }
    return j_.number();
  }

  // "key": names of extra properties, excluding the declared ones (a trie over the key alphabet).
  int32_t extra_key(const std::vector<std::string>& declared) {
    constexpr int kMaxLen = 32;
    ByteSet alpha;
    for (int c = 0; c < 128; ++c)
      if (std::isalnum(c) || c == '_' || c == '-') alpha.set(size_t(c));
    const int32_t alpha_rule = b_.add_rule({{b_.set(alpha)}});
    struct Node {
      std::map<uint8_t, int> kids;
      bool end = false;
    };
    std::vector<Node> trie(1);
    for (const std::string& k : declared) {
      bool ok = !k.empty() && int(k.size()) <= kMaxLen;
      for (char c : k) ok = ok && alpha[uint8_t(c)];
      if (!ok) continue;  // cannot collide with a generated key
      int n = 0;
      for (char c : k) {
        auto it = trie[size_t(n)].kids.find(uint8_t(c));
        if (it == trie[size_t(n)].kids.end()) {
          trie.push_back({});
          it = trie[size_t(n)].kids.emplace(uint8_t(c), int(trie.size() - 1)).first;
        }
        n = it->second;
      }
      trie[size_t(n)].end = true;
    }
    // K(n, depth): the rest of the key and the closing quote.
    std::function<int32_t(int, int)> rest = [&](int n, int depth) -> int32_t {
      std::vector<Alt> alts;
      if (depth > 0 && !trie[size_t(n)].end) alts.push_back({b_.byte('"')});
      if (depth < kMaxLen) {
        ByteSet others = alpha;
        for (auto& [c, kid] : trie[size_t(n)].kids) {
          others.reset(c);
          alts.push_back({b_.byte(c), ref(rest(kid, depth + 1))});
        }
        if (others.any()) {
          const int32_t free = b_.repeat(alpha_rule, 0, kMaxLen - depth - 1, -1);
          alts.push_back({b_.set(others), ref(free), b_.byte('"')});
        }
      }
      return b_.add_rule(std::move(alts));
    };
    return b_.add_rule({{b_.byte('"'), ref(rest(0, 0))}});
  }

  int32_t object(const json& s, const std::string& path) {
    std::vector<std::string> names;
    std::vector<int32_t> values;
    if (s.contains("properties")) {
      const json& props = s["properties"];
      if (!props.is_object()) fail("json_schema: 'properties' at {} must be an object", where(path));
      for (auto it = props.begin(); it != props.end(); ++it) {
        names.push_back(it.key());
        values.push_back(compile(it.value(), path + "/properties/" + esc_pointer(it.key())));
      }
    }
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail("json_schema: 'required' at {} must be an array", where(path));
      for (const json& r : s["required"]) {
        if (!r.is_string()) fail("json_schema: 'required' at {} must hold property names", where(path));
        if (std::find(names.begin(), names.end(), r.get<std::string>()) == names.end())
          fail("json_schema: required property '{}' at {} is not in 'properties' (not supported)", r.get<std::string>(),
               where(path));
        required.insert(r.get<std::string>());
      }
    }
    int32_t extra_value = -1;  // -1: no extra properties
    if (s.contains("additionalProperties")) {
      const json& ap = s["additionalProperties"];
      if (!(ap.is_boolean() && !ap.get<bool>())) extra_value = compile(ap, path + "/additionalProperties");
    } else if (!s.contains("properties")) {
      extra_value = j_.value();
    }
    const int32_t comma = b_.literal_rule(",");
    int32_t after, start;  // the members after index i with (after) or without (start) one emitted before
    if (extra_value >= 0) {
      const int32_t kv = b_.add_rule({{ref(extra_key(names)), b_.byte(':'), ref(extra_value)}});
      const int32_t comma_kv = b_.add_rule({{ref(comma), ref(kv)}});
      after = b_.repeat(comma_kv, 0, -1, -1);
      start = b_.add_rule({{ref(kv), ref(after)}, {}});
    } else {
      after = b_.empty_rule();
      start = after;
    }
    for (size_t i = names.size(); i-- > 0;) {
      const int32_t kv = b_.add_rule({{ref(b_.literal_rule(json(names[i]).dump() + ":")), ref(values[i])}});
      const bool req = required.count(names[i]) > 0;
      std::vector<Alt> a_alts = {{ref(comma), ref(kv), ref(after)}};
      std::vector<Alt> s_alts = {{ref(kv), ref(after)}};
      if (!req) a_alts.push_back({ref(after)}), s_alts.push_back({ref(start)});
      const int32_t new_after = b_.add_rule(std::move(a_alts));
      start = b_.add_rule(std::move(s_alts));
      after = new_after;
    }
    return b_.add_rule({{b_.byte('{'), ref(start), b_.byte('}')}});
  }

  int32_t array(const json& s, const std::string& path) {
    std::vector<int32_t> prefix;
    const json* prefix_list = s.contains("prefixItems") ? &s["prefixItems"] : nullptr;
    std::string prefix_kw = "prefixItems";
    if (!prefix_list && s.contains("items") && s["items"].is_array()) prefix_list = &s["items"], prefix_kw = "items";
    if (prefix_list) {
      if (!prefix_list->is_array()) fail("json_schema: '{}' at {} must be an array", prefix_kw, where(path));
      for (size_t i = 0; i < prefix_list->size(); ++i)
        prefix.push_back(compile((*prefix_list)[i], fmt::format("{}/{}/{}", path, prefix_kw, i)));
    }
    const int64_t P = int64_t(prefix.size());
    const int64_t lo = count(s, "minItems", path, 0);
    int64_t hi = count(s, "maxItems", path, -1);
    if (hi >= 0 && hi < lo) fail("json_schema: maxItems < minItems at {}", where(path));
    int32_t rest = -1;
    int64_t rest_hi = hi < 0 ? -1 : std::max<int64_t>(0, hi - P);
    if (s.contains("items") && !s["items"].is_array()) {
      const json& it = s["items"];
      if (!(it.is_boolean() && !it.get<bool>()))
        rest = compile(it, path + "/items");
      else
        rest_hi = 0;
    } else if (prefix_list) {  // no schema for further items: generate none beyond what minItems needs
      rest = j_.value();
      rest_hi = std::max<int64_t>(0, lo - P);
    } else {
      rest = j_.value();
    }
    const int64_t rest_lo = std::max<int64_t>(0, lo - P);
    if (rest_hi >= 0 && rest_lo > rest_hi) fail("json_schema: minItems at {} cannot be met", where(path));
    const int32_t comma = b_.literal_rule(",");
    int32_t tail;
    if (rest < 0 || rest_hi == 0) {
      tail = b_.empty_rule();
    } else if (P == 0) {
      tail = b_.repeat(rest, rest_lo, rest_hi, comma);
    } else {
      tail = b_.repeat(b_.add_rule({{ref(comma), ref(rest)}}), rest_lo, rest_hi, -1);
    }
    for (int64_t i = P; i-- > 0;) {
      if (hi >= 0 && i >= hi) {  // beyond maxItems
        tail = b_.empty_rule();
        continue;
      }
      Alt item;
      if (i > 0) item.push_back(ref(comma));
      item.push_back(ref(prefix[size_t(i)]));
      item.push_back(ref(tail));
      std::vector<Alt> alts = {item};
      if (i >= lo) alts.push_back({});
      tail = b_.add_rule(std::move(alts));
    }
    return b_.add_rule({{b_.byte('['), ref(tail), b_.byte(']')}});
  }

  const json& root_;
  Builder b_;
  JsonText j_;
  std::map<std::string, int32_t> refs_;
};

}  // namespace

Grammar Grammar::json_schema(const nlohmann::ordered_json& schema) { return SchemaCompiler(schema).run(); }

Grammar Grammar::json_schema(const nlohmann::json& schema) {
  return json_schema(nlohmann::ordered_json::parse(schema.dump()));
}

}  // namespace dsv3::grammar
