// A byte-level matcher of a Grammar: feed bytes one at a time, ask whether the input may end here or must.
// The state is one StateId of a StateSpace (state_space.h), so save() / rollback() copy an int. A partial
// UTF-8 sequence is simply a state like any other (grammars of JSON strings are written over bytes).
//
//   grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::json_value()));
//   m.accept("{\"a\":");  // true
//   auto cp = m.save();  m.accept('1');  m.accept('}');  m.can_finish();  // true
//   m.rollback(cp);
//
// Not thread-safe (the state space grows as it is explored).
#pragma once

#include <memory>
#include <string_view>

#include "io/grammar/state_space.h"

namespace dsv3::grammar {

class Matcher {
 public:
  using Checkpoint = StateId;
  explicit Matcher(std::shared_ptr<const Grammar> grammar);
  explicit Matcher(std::shared_ptr<StateSpace> space);

  // Consumes the byte when the grammar allows it (true); otherwise the state is unchanged (false).
  bool accept(uint8_t byte);
  // All bytes or none: on rejection the state is unchanged.
  bool accept(std::string_view bytes);
  bool can_finish() const { return space_->can_finish(state_); }
  bool finished_only() const { return space_->finished_only(state_); }
  ByteSet allowed_bytes() const { return space_->allowed_bytes(state_); }
  Checkpoint save() const { return state_; }
  void rollback(Checkpoint c) { state_ = c; }
  void reset() { state_ = space_->start(); }
  StateId state() const { return state_; }
  StateSpace& space() { return *space_; }

 private:
  std::shared_ptr<StateSpace> space_;
  StateId state_;
};

// Whether the whole text is in the grammar's language.
bool matches(const Grammar& grammar, std::string_view text);

}  // namespace dsv3::grammar
