#include "runtime/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace dsv3::runtime {

// ---- Job ----------------------------------------------------------------------------------------------------

bool Job::poll(JobUpdate& out, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return news_; })) return false;
  out = std::move(pending_);
  pending_ = JobUpdate{};
  pending_.done = out.done;  // a finished job stays finished
  pending_.finish = out.finish;
  news_ = false;
  return true;
}

void Job::cancel() {
  cancelled_ = true;
  seq_->cancelled = true;
}

bool Job::on_token(int32_t token, const TokenLogprobs* lp) {
  std::string piece = text_ ? text_->push(token) : std::string();
  {
    std::lock_guard lk(mu_);
    pending_.text += piece;
    pending_.tokens.push_back(token);
    if (lp) pending_.logprobs.push_back(*lp);
    news_ = true;
  }
  cv_.notify_all();
  return !(text_ && text_->stopped()) && !cancelled_;
}

void Job::complete(const std::string& error) {
  std::string tail;
  if (text_ && error.empty() && seq_->finish != FinishReason::Cancelled) tail = text_->finish();
  {
    std::lock_guard lk(mu_);
    pending_.text += tail;
    pending_.done = true;
    pending_.finish = seq_->finish;
    pending_.error = error;
    pending_.stats = seq_->stats;
    if (text_) pending_.matched_stop = text_->matched_stop();
    news_ = true;
  }
  cv_.notify_all();
  // Free the caches now; the client may hold the job a little longer.
  seq_->cache = KvCache();
  seq_->mtp_cache = KvCache();
}

// ---- Scheduler ------------------------------------------------------------------------------------------------

Scheduler::Scheduler(Engine& engine, const io::Tokenizer* tokenizer, SchedulerOptions options)
    : engine_(engine), tokenizer_(tokenizer), options_(options) {
  if (options_.parallel < 1) fail("--parallel must be >= 1, got {}", options_.parallel);
  if (options_.max_queue < 0) fail("the queue limit must be >= 0, got {}", options_.max_queue);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Job> Scheduler::submit(GenerationRequest request, std::vector<std::string> stop, bool skip_special) {
  auto job = std::make_shared<Job>();
  Job* raw = job.get();
  const int64_t n = int64_t(request.prompt.size());
  // Validation (and the cache allocation) happen here, on the caller's thread: errors reach the client.
  job->seq_ =
      engine_.start(std::move(request), [raw](int32_t t, const TokenLogprobs* lp) { return raw->on_token(t, lp); });
  if (tokenizer_) job->text_.emplace(*tokenizer_, std::move(stop), skip_special);
  job->prompt_tokens_ = n;
  {
    std::lock_guard lk(mu_);
    if (stopping_ || int64_t(waiting_.size()) >= options_.max_queue) {
      ++metrics_.rejected;
      return nullptr;
    }
    waiting_.push_back(job);
    ++metrics_.submitted;
    metrics_.queued = int64_t(waiting_.size());
  }
  cv_.notify_all();
  return job;
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard lk(mu_);
  return metrics_;
}

void Scheduler::loop() {
  std::vector<std::shared_ptr<Job>> active;
  std::vector<Sequence*> seqs;
  for (;;) {
    std::vector<std::shared_ptr<Job>> dropped;  // cancelled while waiting
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !waiting_.empty() || !active.empty(); });
      if (stopping_) {
        for (auto& j : waiting_) active.push_back(j);
        waiting_.clear();
        break;
      }
      for (auto it = waiting_.begin(); it != waiting_.end();)
        if ((*it)->cancelled_) {
          dropped.push_back(*it);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      while (!waiting_.empty() && int64_t(active.size()) < options_.parallel) {
        active.push_back(waiting_.front());
        waiting_.pop_front();
      }
      metrics_.queued = int64_t(waiting_.size());
      metrics_.active = int64_t(active.size());
    }
    for (auto& j : dropped) {
      j->seq_->finish = FinishReason::Cancelled;
      j->complete();
    }
    {
      std::lock_guard lk(mu_);
      metrics_.cancelled += int64_t(dropped.size());
    }
    if (active.empty()) continue;
    seqs.clear();
    for (auto& j : active) seqs.push_back(j->seq_.get());
    std::string error;
    try {
      engine_.step(seqs);
    } catch (const std::exception& e) {  // a model failure fails the jobs in flight, not the server
      error = e.what();
    }
    int64_t completed = 0, cancelled = 0, failed = 0, prompt = 0, generated = 0;
    for (auto it = active.begin(); it != active.end();) {
      Job& j = **it;
      if (!error.empty() || j.seq_->done()) {
        if (!error.empty() && !j.seq_->done()) j.seq_->finish = FinishReason::Cancelled;
        j.complete(error);
        (error.empty() ? (j.cancelled_ || j.seq_->finish == FinishReason::Cancelled ? cancelled : completed)
                       : failed) += 1;
        prompt += j.seq_->stats.prompt_tokens;
        generated += j.seq_->stats.generated;
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    std::lock_guard lk(mu_);
    metrics_.completed += completed;
    metrics_.cancelled += cancelled;
    metrics_.failed += failed;
    metrics_.prompt_tokens += prompt;
    metrics_.generated_tokens += generated;
    metrics_.active = int64_t(active.size());
    metrics_.engine = engine_.stats();
  }
  for (auto& j : active) {  // shutting down
    if (!j->seq_->done()) j->seq_->finish = FinishReason::Cancelled;
    j->complete();
  }
}

}  // namespace dsv3::runtime
