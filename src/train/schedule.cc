#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsv3::train {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  step -= warmup_steps;
  if (step < constant_steps) return lr;
  step -= constant_steps;
  if (step < decay_steps)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * double(step) / double(decay_steps)));
  return min_lr;
}

LrSchedule LrScheduleSpec::resolve(int64_t total) const {
  if (total <= 0) fail("schedule: total steps must be positive, got {}", total);
  if (!(lr > 0)) fail("schedule: lr must be positive, got {}", lr);
  if (min_lr < 0 || min_lr > lr) fail("schedule: min_lr ({}) must lie in [0, lr = {}]", min_lr, lr);
  if (warmup_steps < 0) fail("schedule: warmup_steps must not be negative, got {}", warmup_steps);
  auto frac = [&](double f, const char* what) {
    if (f > 1) fail("schedule: {} must lie in [0, 1], got {}", what, f);
    return int64_t(std::llround(f * double(total)));
  };
  LrSchedule s{.lr = lr, .min_lr = min_lr, .warmup_steps = std::min(warmup_steps, total)};
  const int64_t rest = total - s.warmup_steps;
  s.constant_steps = constant_steps >= 0  ? constant_steps
                     : constant_frac >= 0 ? frac(constant_frac, "constant_frac")
                                          : 0;
  s.constant_steps = std::min(s.constant_steps, rest);
  s.decay_steps = decay_steps >= 0  ? decay_steps
                  : decay_frac >= 0 ? frac(decay_frac, "decay_frac")
                                    : rest - s.constant_steps;
  s.decay_steps = std::min(s.decay_steps, rest - s.constant_steps);
  return s;
}

int64_t BatchRamp::at(int64_t tokens_seen) const {
  if (ramp_tokens <= 0 || tokens_seen >= ramp_tokens) return end;
  // Integer arithmetic: the same value on every machine.
  const __int128 num = __int128(end - start) * tokens_seen;
  return std::max<int64_t>(1, start + int64_t(num / ramp_tokens));
}

double StepFunction::at(int64_t step, int64_t total) const {
  // `before` while step < switch_frac · total.
  const double boundary = switch_frac * double(total);
  return double(step) < boundary ? before : after;
}

}  // namespace dsv3::train
