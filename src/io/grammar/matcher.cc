#include "io/grammar/matcher.h"

namespace dsv3::grammar {

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : Matcher(std::make_shared<StateSpace>(std::move(grammar))) {}

Matcher::Matcher(std::shared_ptr<StateSpace> space) : space_(std::move(space)), state_(space_->start()) {}

bool Matcher::accept(uint8_t byte) {
  const StateId t = space_->next(state_, byte);
  if (t == kDead) return false;
  state_ = t;
  return true;
}

bool Matcher::accept(std::string_view bytes) {
  const StateId t = space_->feed(state_, bytes);
  if (t == kDead) return false;
  state_ = t;
  return true;
}

bool matches(const Grammar& grammar, std::string_view text) {
  StateSpace s(std::make_shared<const Grammar>(grammar));
  const StateId t = s.feed(s.start(), text);
  return t != kDead && s.can_finish(t);
}

}  // namespace dsv3::grammar
