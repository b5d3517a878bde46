#include "io/grammar/grammar.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace dsv3::grammar {

struct Grammar::Data {
  std::vector<Element> elements;
  std::vector<ByteSet> sets;
  std::vector<int32_t> alt_starts;  // all rules' alternative start positions, rule by rule
  std::vector<int32_t> rule_first;  // rule r's alternatives: alt_starts[rule_first[r] .. rule_first[r+1])
  int32_t root = 0;
};

namespace {
// A grammar larger than this is refused (a schema with huge bounds, e.g. maxLength 10^7, would need rules
// in proportion): the matcher's tables and the flat form stay small.
constexpr size_t kMaxElements = size_t(4) << 20;
}  // namespace

const std::vector<Element>& Grammar::elements() const { return d_->elements; }
const std::vector<ByteSet>& Grammar::byte_sets() const { return d_->sets; }
std::span<const int32_t> Grammar::alternatives(int32_t rule) const {
  return std::span<const int32_t>(d_->alt_starts)
      .subspan(size_t(d_->rule_first[size_t(rule)]),
               size_t(d_->rule_first[size_t(rule) + 1] - d_->rule_first[size_t(rule)]));
}
int32_t Grammar::root() const { return d_->root; }
int64_t Grammar::rule_count() const { return int64_t(d_->rule_first.size()) - 1; }

namespace {
std::string set_text(const ByteSet& s) {
  auto ch = [](int b) {
    if (b >= 0x21 && b < 0x7f && b != '\\' && b != ']' && b != '-' && b != '^') return std::string(1, char(b));
    return fmt::format("\\x{:02x}", b);
  };
  if (s.count() == 1) {
    for (int b = 0; b < 256; ++b)
      if (s[size_t(b)]) return "'" + ch(b) + "'";
  }
  std::string out = "[";
  for (int b = 0; b < 256;) {
    if (!s[size_t(b)]) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && s[size_t(e + 1)]) ++e;
    out += ch(b);
    if (e > b) out += "-" + ch(e);
    b = e + 1;
  }
  return out + "]";
}
}  // namespace

std::string Grammar::to_string() const {
  std::string out;
  for (int64_t r = 0; r < rule_count(); ++r) {
    out += fmt::format("r{}{} ::=", r, r == root() ? " (root)" : "");
    bool first = true;
    for (int32_t p : alternatives(int32_t(r))) {
      out += first ? " " : " | ";
      first = false;
      bool any = false;
      for (int32_t i = p; d_->elements[size_t(i)].kind != Element::Kind::End; ++i) {
        const Element& e = d_->elements[size_t(i)];
        out += any ? " " : "";
        any = true;
        out += e.kind == Element::Kind::Rule ? fmt::format("r{}", e.index) : set_text(d_->sets[size_t(e.index)]);
      }
      if (!any) out += "ε";
    }
    out += "\n";
  }
  return out;
}

// ---- Builder ------------------------------------------------------------------------------------------

int32_t Builder::new_rule() {
  rules_.emplace_back();
  defined_.push_back(false);
  return int32_t(rules_.size() - 1);
}

void Builder::set_rule(int32_t rule, std::vector<Alt> alts) {
  rules_[size_t(rule)] = std::move(alts);
  defined_[size_t(rule)] = true;
}

int32_t Builder::add_rule(std::vector<Alt> alts) {
  const int32_t r = new_rule();
  set_rule(r, std::move(alts));
  return r;
}

Element Builder::set(const ByteSet& s, bool literal) {
  if (s.none()) fail("grammar: an empty byte class matches nothing");
  auto [it, fresh] = set_index_.try_emplace(s, int32_t(sets_.size()));
  if (fresh) sets_.push_back(s);
  return Element{Element::Kind::Bytes, literal, it->second};
}

Element Builder::byte(uint8_t b, bool literal) {
  ByteSet s;
  s.set(b);
  return set(s, literal);
}

Element Builder::range(uint8_t lo, uint8_t hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(size_t(b));
  return set(s);
}

Builder::Alt Builder::text(std::string_view bytes, bool literal) {
  Alt a;
  for (char c : bytes) a.push_back(byte(uint8_t(c), literal));
  return a;
}

int32_t Builder::literal_rule(std::string_view bytes, bool literal) { return add_rule({text(bytes, literal)}); }

int32_t Builder::empty_rule() { return add_rule({Alt{}}); }

int32_t Builder::import(const Grammar& g) {
  const int32_t base = int32_t(rules_.size());
  std::vector<int32_t> set_map(g.byte_sets().size());
  for (size_t i = 0; i < set_map.size(); ++i) set_map[i] = set(g.byte_sets()[i]).index;
  for (int64_t r = 0; r < g.rule_count(); ++r) {
    std::vector<Alt> alts;
    for (int32_t p : g.alternatives(int32_t(r))) {
      Alt a;
      for (int32_t i = p; g.elements()[size_t(i)].kind != Element::Kind::End; ++i) {
        Element e = g.elements()[size_t(i)];
        e.index = e.kind == Element::Kind::Rule ? e.index + base : set_map[size_t(e.index)];
        a.push_back(e);
      }
      alts.push_back(std::move(a));
    }
    add_rule(std::move(alts));
  }
  return base + g.root();
}

int32_t Builder::repeat(int32_t item, int64_t min, int64_t max, int32_t sep) {
  if (min < 0) fail("grammar: repeat with min {} < 0", min);
  if (max >= 0 && max < min) fail("grammar: repeat with max {} < min {}", max, min);
  if (std::max(min, max) > int64_t(kMaxElements)) fail("grammar: repeat bound {} is too large", std::max(min, max));
  auto sep_then = [&](int32_t next) {
    Alt a;
    if (sep >= 0) a.push_back(ref(sep));
    a.push_back(ref(item));
    if (next >= 0) a.push_back(ref(next));
    return a;
  };
  // tail: what may follow once at least one item was emitted and `min` are done.
  int32_t tail;
  if (max < 0) {
    tail = new_rule();  // T := sep item T | ε
    set_rule(tail, {sep_then(tail), Alt{}});
  } else {
    tail = empty_rule();  // chain of max - min optional further items
    for (int64_t k = std::max<int64_t>(min, 1); k < max; ++k) tail = add_rule({sep_then(tail), Alt{}});
  }
  // After the first item: min - 1 mandatory (sep item), then the tail.
  int32_t rest = tail;
  for (int64_t k = 1; k < min; ++k) rest = add_rule({sep_then(rest)});
  Alt first{ref(item), ref(rest)};
  if (min == 0) return max == 0 ? empty_rule() : add_rule({first, Alt{}});
  return add_rule({first});
}

Grammar Builder::finish(int32_t root) const {
  const size_t R = rules_.size();
  for (size_t r = 0; r < R; ++r)
    if (!defined_[r]) fail("grammar: rule {} is referenced but never defined", r);
  // Nullable rules (fixed point), then the "may begin with" graph; a cycle in it is left recursion.
  std::vector<char> nullable(R, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < R; ++r) {
      if (nullable[r]) continue;
      for (const Alt& a : rules_[r]) {
        bool all = true;
        for (const Element& e : a)
          if (e.kind == Element::Kind::Bytes || !nullable[size_t(e.index)]) {
            all = false;
            break;
          }
        if (all) {
          nullable[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  std::vector<std::vector<int32_t>> begins(R);
  for (size_t r = 0; r < R; ++r)
    for (const Alt& a : rules_[r])
      for (const Element& e : a) {
        if (e.kind == Element::Kind::Bytes) break;
        begins[r].push_back(e.index);
        if (!nullable[size_t(e.index)]) break;
      }
  std::vector<char> color(R, 0);  // 0 new, 1 on the stack, 2 done
  for (size_t s = 0; s < R; ++s) {
    if (color[s]) continue;
    std::vector<std::pair<int32_t, size_t>> stack{{int32_t(s), 0}};
    color[s] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i == begins[size_t(r)].size()) {
        color[size_t(r)] = 2;
        stack.pop_back();
        continue;
      }
      const int32_t n = begins[size_t(r)][i++];
      if (color[size_t(n)] == 1)
        fail(
            "grammar: left recursion through rule {} (it can reach itself without consuming a byte; an unbounded "
            "repetition of something that can be empty?)",
            n);
      if (color[size_t(n)] == 0) {
        color[size_t(n)] = 1;
        stack.push_back({n, 0});
      }
    }
  }
  auto d = std::make_shared<Grammar::Data>();
  d->sets = sets_;
  d->root = root;
  d->rule_first.push_back(0);
  for (size_t r = 0; r < R; ++r) {
    for (const Alt& a : rules_[r]) {
      d->alt_starts.push_back(int32_t(d->elements.size()));
      d->elements.insert(d->elements.end(), a.begin(), a.end());
      d->elements.push_back(Element{});
    }
    d->rule_first.push_back(int32_t(d->alt_starts.size()));
    if (d->elements.size() > kMaxElements)
      fail("grammar: more than {} elements (bounds too large for a grammar)", kMaxElements);
  }
  return Grammar(std::move(d));
}

// ---- composition ----------------------------------------------------------------------------------------

Grammar Grammar::literal(std::string bytes) {
  Builder b;
  return b.finish(b.literal_rule(bytes, /*literal=*/true));
}

Grammar Grammar::bytes(const ByteSet& set) {
  Builder b;
  return b.finish(b.add_rule({{b.set(set)}}));
}

Grammar Grammar::sequence(std::vector<Grammar> parts) {
  Builder b;
  Builder::Alt a;
  for (const Grammar& g : parts) a.push_back(Builder::ref(b.import(g)));
  return b.finish(b.add_rule({a}));
}

Grammar Grammar::choice(std::vector<Grammar> alternatives) {
  if (alternatives.empty()) fail("grammar: choice of no alternatives");
  Builder b;
  std::vector<Builder::Alt> alts;
  for (const Grammar& g : alternatives) alts.push_back({Builder::ref(b.import(g))});
  return b.finish(b.add_rule(std::move(alts)));
}

Grammar Grammar::repeat(Grammar item, int64_t min, int64_t max, Grammar separator) {
  Builder b;
  const int32_t i = b.import(item), s = b.import(separator);
  return b.finish(b.repeat(i, min, max, s));
}

}  // namespace dsv3::grammar
