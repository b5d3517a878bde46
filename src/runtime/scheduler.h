// Continuous batching for the server: one engine thread owns the Engine (and so the model) and loops:
// admit waiting requests into free slots (at most `parallel` sequences in flight), run one Engine::step
// over all of them (new ones prefill, the others decode together in one batched forward), hand each job
// its new tokens and text, retire finished and cancelled sequences (their slots are free for the next
// step). Clients run on other threads: they submit a Job and poll it for updates; cancelling a Job (a
// client that went away) finishes its sequence at the next step.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/generator.h"
#include "runtime/text_stream.h"

namespace dsv3::runtime {

// What happened to a job since the previous poll (several tokens may be coalesced).
struct JobUpdate {
  std::string text;                     // new text (stop strings applied; complete UTF-8)
  std::vector<int32_t> tokens;          // new token ids
  std::vector<TokenLogprobs> logprobs;  // one per new token when logprobs were requested
  bool done = false;
  FinishReason finish = FinishReason::None;
  std::string error;         // set when the engine failed (done is then true)
  SequenceStats stats;       // final counts when done
  std::string matched_stop;  // when done: the stop string that ended the text (empty: none)
};

class Job {
 public:
  // Waits up to `timeout` for news and moves it into `out` (cleared first). Returns false on timeout.
  bool poll(JobUpdate& out, std::chrono::milliseconds timeout);
  // The client went away or gave up: the sequence is finished at the engine's next step.
  void cancel();
  int64_t prompt_tokens() const { return prompt_tokens_; }

 private:
  friend class Scheduler;
  bool on_token(int32_t token, const TokenLogprobs* lp);  // engine thread
  void complete(const std::string& error = {});           // engine thread

  std::unique_ptr<Sequence> seq_;
  std::optional<TextStream> text_;
  int64_t prompt_tokens_ = 0;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  JobUpdate pending_;
  bool news_ = false;
};

struct SchedulerOptions {
  int64_t parallel = 4;    // sequences decoded together
  int64_t max_queue = 64;  // requests waiting for a slot; more are refused (overload)
};

struct SchedulerMetrics {
  int64_t queued = 0, active = 0;
  int64_t submitted = 0, completed = 0, cancelled = 0, rejected = 0, failed = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  EngineStats engine;
};

class Scheduler {
 public:
  // `tokenizer` may be null (jobs then report token ids only). Starts the engine thread.
  Scheduler(Engine& engine, const io::Tokenizer* tokenizer, SchedulerOptions options);
  ~Scheduler();  // stops the thread; unfinished jobs complete as cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Throws dsv3::Error when the request is invalid (Engine::start's checks); returns
  // nullptr when the queue is full.
  // skip_special false: special tokens' text is kept in the job's text (chat output parsing).
  std::shared_ptr<Job> submit(GenerationRequest request, std::vector<std::string> stop, bool skip_special = true);
  SchedulerMetrics metrics() const;
  const Engine& engine() const { return engine_; }
  void stop();

 private:
  void loop();

  Engine& engine_;
  const io::Tokenizer* tokenizer_;
  SchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> waiting_;
  bool stopping_ = false;
  SchedulerMetrics metrics_;
  std::thread thread_;
};

}  // namespace dsv3::runtime
