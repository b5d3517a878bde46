#include "plan/bubble.h"

#include <algorithm>

namespace dsv3::plan {

double bubble_seconds(Schedule s, int pp, const ChunkTimes& t) {
  double b = 0;
  switch (s) {
    case Schedule::OneFOneB:
      b = (pp - 1) * (t.F + t.B);
      break;
    case Schedule::ZB1P:
      b = (pp - 1) * (t.F + t.B - 2 * t.W);
      break;
    case Schedule::DualPipe:
      b = (pp / 2.0 - 1) * (t.FB + t.B - 3 * t.W);
      break;
    case Schedule::DualPipeV:
      b = (pp - 1) * (t.FB + t.B - 3 * t.W);
      break;
  }
  return std::max(0.0, b);
}

}  // namespace dsv3::plan
