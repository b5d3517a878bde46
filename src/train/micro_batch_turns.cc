#include "train/micro_batch_turns.h"

#include <thread>

namespace dsv3::train {

namespace {
// Thrown at a hand-over once the other micro-batch has failed: unwinds this one without an error of its own.
struct Stopped {};
}  // namespace

void MicroBatchTurns::run(const std::function<void(MicroBatchTurns&, int me)>& body) {
  MicroBatchTurns t;
  auto side = [&](int me) {
    std::exception_ptr error;
    try {
      if (me == 1) {  // the second starts at the first's first hand-over
        std::unique_lock lock(t.mu_);
        t.wait_for(lock, 1);
      }
      body(t, me);
    } catch (const Stopped&) {
    } catch (...) {
      error = std::current_exception();
    }
    t.finish(me, error);
  };
  std::thread second(side, 1);
  side(0);
  second.join();
  if (t.error_) std::rethrow_exception(t.error_);
}

void MicroBatchTurns::hand_over(int me) {
  std::unique_lock lock(mu_);
  if (!done_[1 - me]) {
    turn_ = 1 - me;
    cv_.notify_all();
  }
  wait_for(lock, me);
}

void MicroBatchTurns::wait_for(std::unique_lock<std::mutex>& lock, int me) {
  cv_.wait(lock, [&] { return turn_ == me || done_[1 - me]; });
  if (error_) throw Stopped{};
}

void MicroBatchTurns::finish(int me, std::exception_ptr error) {
  std::lock_guard lock(mu_);
  done_[me] = true;
  if (error && !error_) error_ = error;
  turn_ = 1 - me;
  cv_.notify_all();
}

}  // namespace dsv3::train
