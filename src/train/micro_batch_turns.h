// Two micro-batches of one training step that take turns on the rank (DeepSeek-V3 §3.2.2 / §3.3's
// two-micro-batch overlap; docs/scale-out-training-ep.md has the schedule). Each micro-batch runs the
// ordinary step code on a thread of its own, but exactly one of them runs at any time: a micro-batch hands
// the turn over right after posting a non-blocking exchange (train/expert_parallel.cc), so the other one
// computes — attention, router, experts, or its backward — while those rows are in flight, and gets it back
// when the other posts its own exchange (or finishes). Everything a micro-batch does between two hand-overs
// is a fixed function of the step, so every rank starts its collectives in the same order, and because the
// two never run at once they may accumulate into the same gradients and call MPI one after the other
// (MPI_THREAD_SERIALIZED, dist/mpi_comm.cc).
//
// The threads are a way to keep the step's code straight-line (a coroutine without rewriting every module
// as one); they add no parallelism — OpenMP threads inside a micro-batch do that, as before.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>

namespace dsv3::train {

class MicroBatchTurns {
 public:
  // Runs first() on the calling thread and second() on a helper thread, first() from the start and second()
  // from first's first hand-over; returns when both returned. An exception in either ends the other at its
  // next hand-over (or before it starts) and is rethrown here.
  static void run(const std::function<void(MicroBatchTurns&, int me)>& body);

  // Called by micro-batch `me` (0: first, 1: second) while it holds the turn: lets the other one run until
  // it hands over or finishes, then returns. Returns at once when the other has finished.
  void hand_over(int me);

 private:
  MicroBatchTurns() = default;
  void wait_for(std::unique_lock<std::mutex>& lock, int me);
  void finish(int me, std::exception_ptr error);

  std::mutex mu_;
  std::condition_variable cv_;
  int turn_ = 0;  // who may run
  bool done_[2] = {false, false};
  std::exception_ptr error_;  // the first failure (the other micro-batch stops at its next hand-over)
};

// One micro-batch's handle (train/step_context.h): hand_over() while its exchange is in flight.
struct Turn {
  MicroBatchTurns* turns = nullptr;
  int me = 0;
  void hand_over() const { turns->hand_over(me); }
};

}  // namespace dsv3::train
