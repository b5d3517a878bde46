// Pipeline bubbles, DeepSeek-V3 technical report Table 2 (and deepseek-ai/DualPipe's README):
//   1F1B      (PP − 1)(F + B)
//   ZB1P      (PP − 1)(F + B − 2W)
//   DualPipe  (PP/2 − 1)(F&B + B − 3W)
// F: a forward chunk, B: a full backward chunk (input + weight gradient), W: its weight-gradient part, F&B: a
// forward and a backward chunk run overlapped. DualPipeV (DualPipe "cut in half", from the DualPipe repository)
// runs DualPipe's schedule for 2·PP chunks on PP devices: (2·PP/2 − 1)(F&B + B − 3W) with F, B, W of a chunk.
#pragma once

#include "plan/cluster.h"

namespace dsv3::plan {

struct ChunkTimes {
  double F = 0, B = 0, W = 0;  // seconds per micro-batch and chunk
  double FB = 0;               // F&B; F + B when the overlap hides all communication
};

double bubble_seconds(Schedule s, int pp, const ChunkTimes& t);

}  // namespace dsv3::plan
