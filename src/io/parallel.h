// A minimal fork-join helper for the tokenizer and trainer: run job(i) for i in [0, n) on a few threads.
// Workers are persistent (a process-wide pool grown on demand), so their thread-local BPE word caches stay
// warm across calls; a call made while the pool is busy (another thread's batch) runs inline instead.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv3::io {

// threads <= 0: hardware concurrency; never more threads than jobs.
inline int resolve_threads(int threads, size_t jobs) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::min<size_t>(threads, std::max<size_t>(jobs, 1)));
}

class WorkerPool {
 public:
  // The process-wide pool; never destroyed (its idle workers block until process exit).
  static WorkerPool& instance() {
    static WorkerPool* pool = new WorkerPool();
    return *pool;
  }

  // Runs job(i) for i in [0, n) on the caller plus up to threads - 1 workers; returns when all are done.
  // The first exception thrown by a job is rethrown. Returns false (running nothing) if the pool is busy.
  bool try_run(size_t n, int threads, const std::function<void(size_t)>& job) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(workers_.size()) < threads - 1) workers_.emplace_back([this] { work(); }).detach();
      job_ = &job;
      n_ = n;
      next_.store(0);
      error_ = nullptr;
      wanted_ = threads - 1;
      active_ = 0;
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return wanted_ == 0 && active_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  WorkerPool() = default;

  void drain() {
    for (size_t i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void work() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return generation_ != seen && wanted_ > 0; });
      seen = generation_;
      --wanted_;
      ++active_;
      lock.unlock();
      drain();
      lock.lock();
      --active_;
      if (wanted_ == 0 && active_ == 0) done_cv_.notify_all();
    }
  }

  std::mutex run_mu_;  // one batch at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;
  int wanted_ = 0, active_ = 0;
  uint64_t generation_ = 0;
};

// Runs job(i) for every i in [0, n) on `threads` threads (the caller is one of them).
template <typename F>
void parallel_for(size_t n, int threads, const F& job) {
  if (threads > 1 && n > 1) {
    std::function<void(size_t)> fn = [&job](size_t i) { job(i); };
    if (WorkerPool::instance().try_run(n, threads, fn)) return;
  }
  for (size_t i = 0; i < n; ++i) job(i);
}

}  // namespace dsv3::io
