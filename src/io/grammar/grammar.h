// A context-free grammar over bytes, the language of constrained decoding (structured output).
//
// A grammar is a set of rules; a rule is a list of alternatives; an alternative is a sequence of elements,
// each either one byte out of a set (a byte class: a literal byte, a range, any set of the 256 values) or a
// reference to a rule. Repetition is expressed with rules: bounded repetition as a chain of optional rules,
// unbounded as right recursion (T := item T | ε), which the matcher runs in constant stack space
// (state_space.h: a reference in tail position does not push a return frame). Left recursion — a rule that
// can reach itself without consuming a byte, e.g. the unbounded repetition of something that can be empty —
// is refused at construction with an error, so the matcher's expansion always terminates.
//
// Grammars compose: sequence / choice / repeat copy the parts' rules into a new grammar (parts stay valid).
// A Grammar is immutable after construction and cheap to copy (shared data); share it across requests as
// std::shared_ptr<const Grammar>. Bytes that come from Grammar::literal are marked `literal`: special
// tokens of a vocabulary may match only such bytes (token_mask.h), so a marker such as
// <｜tool▁calls▁begin｜> written as a literal is matched by the special token, while free text (a JSON string)
// never admits one.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsv3::grammar {

using ByteSet = std::bitset<256>;

struct Element {
  enum class Kind : uint8_t { Bytes, Rule, End };
  Kind kind = Kind::End;
  bool literal = false;  // Bytes written by Grammar::literal (special tokens may match only these)
  int32_t index = 0;     // Bytes: index into byte_sets(); Rule: the rule
};

class Grammar {
 public:
  // Exactly these bytes (may be empty: the grammar of the empty string).
  static Grammar literal(std::string bytes);
  // One byte out of `set` (not empty).
  static Grammar bytes(const ByteSet& set);
  // JSON Schema → grammar of the compact JSON texts that validate against it (json_schema.cc lists what is
  // supported). Throws dsv3::Error naming an unsupported keyword and its JSON pointer, e.g.
  // "json_schema: unsupported keyword 'patternProperties' at /properties/a".
  // The ordered_json overload emits properties in the schema's order; nlohmann::json has sorted its keys
  // already (so properties come out sorted by name).
  static Grammar json_schema(const nlohmann::ordered_json& schema);
  static Grammar json_schema(const nlohmann::json& schema);
  static Grammar json_value();   // any JSON value (compact)
  static Grammar json_object();  // any JSON object (compact)
  static Grammar sequence(std::vector<Grammar> parts);
  static Grammar choice(std::vector<Grammar> alternatives);  // at least one
  // min..max items (max < 0: unbounded) with `separator` between consecutive items.
  static Grammar repeat(Grammar item, int64_t min, int64_t max, Grammar separator);

  // The flat form the matcher runs: all alternatives' elements back to back, each alternative ended by an
  // End element; a position is an index into elements().
  const std::vector<Element>& elements() const;
  const std::vector<ByteSet>& byte_sets() const;
  std::span<const int32_t> alternatives(int32_t rule) const;  // start positions of the rule's alternatives
  int32_t root() const;
  int64_t rule_count() const;
  // GBNF-like listing, for debugging and error messages.
  std::string to_string() const;

  struct Data;
  explicit Grammar(std::shared_ptr<const Data> d) : d_(std::move(d)) {}

 private:
  std::shared_ptr<const Data> d_;
};

// Builds grammars rule by rule (the schema compiler and the composition functions use it).
class Builder {
 public:
  using Alt = std::vector<Element>;
  int32_t new_rule();  // a rule whose alternatives are set later (forward references, recursion)
  void set_rule(int32_t rule, std::vector<Alt> alts);
  int32_t add_rule(std::vector<Alt> alts);
  Element set(const ByteSet& s, bool literal = false);
  Element byte(uint8_t b, bool literal = false);
  Element range(uint8_t lo, uint8_t hi);
  static Element ref(int32_t rule) { return Element{Element::Kind::Rule, false, rule}; }
  Alt text(std::string_view bytes, bool literal = false);  // one element per byte
  int32_t literal_rule(std::string_view bytes, bool literal = false);
  int32_t empty_rule();
  // g's rules copied in; returns the copy of its root.
  int32_t import(const Grammar& g);
  // min..max repetitions of `item` (max < 0: unbounded) with `sep` (-1: none) between items.
  int32_t repeat(int32_t item, int64_t min, int64_t max, int32_t sep);
  int64_t rule_count() const { return int64_t(rules_.size()); }
  // Validates (every rule defined, no left recursion, size limits) and flattens.
  Grammar finish(int32_t root) const;

 private:
  std::vector<std::vector<Alt>> rules_;
  std::vector<bool> defined_;
  std::vector<ByteSet> sets_;
  std::unordered_map<ByteSet, int32_t> set_index_;
};

}  // namespace dsv3::grammar
