// Training schedules, all pure functions of the step (or of the tokens seen), so a resumed run recomputes
// exactly what the uninterrupted one used. Shapes follow DeepSeek-V3 §4.2 (Hyper-Parameters):
//  - learning rate: linear warmup over the first 2K steps, constant 2.2e-4, cosine decay to 2.2e-5, then a
//    floor. (The paper's very last 500B tokens drop once more, to 7.3e-6; here the floor is min_lr.)
//  - batch size: ramped from 3072 to 15360 sequences over the first 469B tokens, then constant.
//  - MTP loss weight λ: 0.3 for the first 10T tokens, 0.1 for the remaining 4.8T.
//  - bias update speed γ: 0.001 for the first 14.3T tokens, 0 for the last 500B.
// Step-count phases may be given as absolute counts or as fractions of the total (resolve()).
#pragma once

#include <cstdint>

namespace dsv3::train {

struct LrSchedule {
  double lr = 3e-4;      // peak
  double min_lr = 3e-5;  // the floor reached at the end of the decay
  int64_t warmup_steps = 0;
  int64_t constant_steps = 0;
  int64_t decay_steps = 0;  // cosine from lr to min_lr; steps after it stay at min_lr

  // Learning rate of optimizer step `step` (0-based):
  //   step < W:            lr · (step + 1) / W
  //   W ≤ step < W+C:      lr
  //   W+C ≤ step < W+C+D:  min_lr + (lr − min_lr) · ½(1 + cos(π · (step − W − C) / D))
  //   afterwards:          min_lr
  double at(int64_t step) const;
};

// Phases as fractions of the total step count (a negative value means "use the absolute count").
struct LrScheduleSpec {
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 0, constant_steps = -1, decay_steps = -1;
  double constant_frac = -1, decay_frac = -1;
  // Absolute counts win over fractions; missing phases default to: constant 0, decay = the rest.
  LrSchedule resolve(int64_t total_steps) const;
};

// Sequences per optimizer step, rising linearly from `start` to `end` while the tokens seen grow from 0 to
// `ramp_tokens` (DeepSeek-V3: 3072 → 15360 over 469B tokens); `end` afterwards, or always when ramp_tokens ≤ 0.
struct BatchRamp {
  int64_t start = 0, end = 1;
  int64_t ramp_tokens = 0;
  int64_t at(int64_t tokens_seen) const;
};

// A value `before` for the first `switch_frac` of the steps, `after` for the rest (MTP λ 0.3 → 0.1 at 10/14.8;
// bias γ 0.001 → 0 for the last 500B/14.8T tokens).
struct StepFunction {
  double before = 0, after = 0;
  double switch_frac = 1.0;
  double at(int64_t step, int64_t total_steps) const;
};

}  // namespace dsv3::train
