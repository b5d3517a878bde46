#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/dataset.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "tools/init.h"
#include "train/adamw.h"
#include "train/balance.h"
#include "train/checkpoint.h"
#include "train/params.h"
#include "train/schedule.h"
#include "train/step.h"
#include "train/train_config.h"

namespace dsv3::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Splits a step's B sequences into `accum` micro-batches of nearly equal size (the first B % accum get one more).
std::vector<int64_t> micro_sizes(int64_t B, int64_t accum) {
  accum = std::min(accum, B);
  std::vector<int64_t> v(size_t(accum), B / accum);
  for (int64_t i = 0; i < B % accum; ++i) ++v[size_t(i)];
  return v;
}

void zero(Params& g) {
  for (size_t i = 0; i < g.size(); ++i) std::fill(g.value(i).begin(), g.value(i).end(), 0.0f);
}

// Files copied into every checkpoint so it is a complete HF model directory: tokenizer.json and a
// tokenizer_config.json (the dataset's, or one naming bos/eos and whether documents start with bos).
CheckpointFiles tokenizer_files(const io::DatasetManifest& m, int64_t max_pos) {
  CheckpointFiles f;
  if (m.tokenizer_file.empty()) return f;
  const std::string tok_path = m.dir + "/" + m.tokenizer_file;
  if (!fs::exists(tok_path)) return f;
  f.extra.emplace_back("tokenizer.json", read_text(tok_path));
  if (fs::exists(m.dir + "/tokenizer_config.json")) {
    f.extra.emplace_back("tokenizer_config.json", read_text(m.dir + "/tokenizer_config.json"));
  } else {
    const io::Tokenizer tok = io::Tokenizer::load(tok_path);
    nlohmann::json tc;
    tc["add_bos_token"] = m.raw.value("bos_per_document", false);
    tc["add_eos_token"] = false;
    if (m.bos_id >= 0) tc["bos_token"] = tok.token_piece(int32_t(m.bos_id));
    if (m.eos_id >= 0) tc["eos_token"] = tok.token_piece(int32_t(m.eos_id));
    if (auto pad = tok.pad_id()) tc["pad_token"] = tok.token_piece(*pad);
    tc["model_max_length"] = max_pos;
    tc["tokenizer_class"] = "LlamaTokenizerFast";
    f.extra.emplace_back("tokenizer_config.json", tc.dump(2) + "\n");
  }
  return f;
}

// Keeps the metrics lines of steps ≤ `step` (after a resume the file continues exactly where the checkpoint
// was taken; lines written after it by the interrupted run are dropped).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      break;  // a torn last line
    }
  }
  io::write_file_atomic(path, kept);
}

struct EvalResult {
  double loss = 0, main_ce = 0, mtp_ce = 0;
  int64_t sequences = 0;
};

class Trainer {
 public:
  explicit Trainer(const RunOptions& o) : o_(o) {}
  TrainSummary run();

 private:
  void setup();
  void fit_steps_to_budget(double budget_s);
  EvalResult eval(int64_t step);
  LossOptions loss_options(int64_t step) const;
  void log(const nlohmann::json& j);
  void checkpoint();
  void show_progress(bool force, double loss, double main_ce);

  RunOptions o_;
  Clock::time_point t0_ = Clock::now();
  TrainSpec spec_;
  io::DatasetManifest data_;
  std::unique_ptr<io::TokenStream> train_stream_, val_stream_;
  std::unique_ptr<io::SequenceLoader> loader_, val_loader_;
  std::unique_ptr<Params> params_, grads_;
  std::unique_ptr<AdamW> opt_;
  TrainerState st_;
  LrSchedule lr_;
  BatchRamp ramp_;
  CheckpointFiles files_;
  std::ofstream metrics_;
  double budget_s_ = 0;
  // This invocation's throughput.
  double train_s_ = 0;
  int64_t train_tokens_ = 0;
  double elapsed_at_start_ = 0;
  Clock::time_point last_progress_ = Clock::now();
  std::vector<double> recent_loss_;
  double last_val_ = -1;
};

void Trainer::setup() {
  if (o_.out.empty()) fail("no --out run directory");
  if (o_.data.empty()) fail("no --data directory");
  data_ = io::read_manifest(o_.data);
  const TokenizerFacts tf{data_.vocab_size, data_.bos_id, data_.eos_id};
  const std::string metrics_path = o_.out + "/metrics.jsonl";

  std::string ckpt;
  if (o_.resume) {
    ckpt = checkpoint_dir(o_.out);
    const nlohmann::json saved = read_checkpoint_train_config(ckpt);
    spec_ = parse_train_config(saved, tf, ckpt + "/train_config.json");
    if (!o_.config.empty()) {
      const TrainSpec given = load_train_config(o_.config, tf);
      nlohmann::json a = given.raw, b = spec_.raw;
      for (auto* j : {&a, &b}) (*j)["training"].erase("time_budget_minutes"), (*j)["training"].erase("steps");
      if (a != b)
        fail(
            "--resume: {} differs from the configuration the run was started with ({}); resume without "
            "--config, or start a new run",
            o_.config, ckpt + "/train_config.json");
    }
  } else {
    if (o_.config.empty()) fail("no --config TRAIN.json");
    if (fs::exists(o_.out + "/checkpoint") || fs::exists(o_.out + "/checkpoint.old") || fs::exists(metrics_path))
      fail("{} already holds a run; continue it with --resume, or give a new --out", o_.out);
    spec_ = load_train_config(o_.config, tf);
  }
  TrainOptions& t = spec_.train;
  if (!o_.precision.empty()) {
    const Precision p = parse_precision(o_.precision, "--precision");
    if (o_.resume && p != t.precision)
      fail("--resume: --precision {} differs from the run's precision {}", o_.precision, precision_name(t.precision));
    t.precision = p;
    spec_.raw["training"] = t.to_json();
  }
  if (o_.max_minutes >= 0) t.time_budget_minutes = o_.max_minutes;
  budget_s_ = t.time_budget_minutes * 60.0;

  // Data.
  train_stream_ = std::make_unique<io::TokenStream>(io::TokenStream::open(data_, "train"));
  loader_ = std::make_unique<io::SequenceLoader>(*train_stream_, t.seq_len, t.seed, true);
  if (data_.val_tokens >= 2 * t.seq_len) {
    val_stream_ = std::make_unique<io::TokenStream>(io::TokenStream::open(data_, "val"));
    val_loader_ = std::make_unique<io::SequenceLoader>(*val_stream_, t.seq_len, t.seed, false);
  } else {
    std::fprintf(stderr, "note: %s has %lld validation tokens, fewer than two sequences of %lld: no validation\n",
                 o_.data.c_str(), (long long)data_.val_tokens, (long long)t.seq_len);
  }
  files_ = tokenizer_files(data_, spec_.model.max_position_embeddings);

  // Model, optimizer, state.
  const ModelConfig& c = spec_.model;
  params_ = std::make_unique<Params>(c);
  grads_ = std::make_unique<Params>(c);
  opt_ = std::make_unique<AdamW>(*params_, AdamWOptions{.beta1 = t.beta1,
                                                        .beta2 = t.beta2,
                                                        .eps = t.eps,
                                                        .weight_decay = t.weight_decay,
                                                        .bf16_moments = t.precision != Precision::FP32});
  ramp_ = {.start = t.batch_seqs_start > 0 ? t.batch_seqs_start : t.batch_seqs,
           .end = t.batch_seqs,
           .ramp_tokens = t.batch_seqs_start > 0 ? t.batch_ramp_tokens : 0};
  fs::create_directories(o_.out);
  if (o_.resume) {
    st_ = load_checkpoint(ckpt, c, *params_, *opt_);
    if (st_.tokenizer_sha256 != data_.tokenizer_sha256 || st_.train_tokens != data_.train_tokens)
      fail("--resume: {} is not the dataset the run was trained on (tokenizer hash or token count differ)", o_.data);
    if (o_.steps > 0 && o_.steps != st_.total_steps)
      fail("--resume: --steps {} differs from the run's schedule of {} steps", o_.steps, st_.total_steps);
    loader_->seek(st_.data);
    truncate_metrics(metrics_path, st_.step);
    elapsed_at_start_ = st_.elapsed_s;
    std::fprintf(stderr, "resuming %s at step %lld/%lld\n", ckpt.c_str(), (long long)st_.step,
                 (long long)st_.total_steps);
  } else {
    const auto init = init_weights_f32(c, {.seed = t.seed, .std = t.init_std, .dtype = InitDType::F32});
    if (init.size() != params_->size())
      fail("internal: init produced {} tensors for {} params", init.size(), params_->size());
    for (size_t i = 0; i < init.size(); ++i) {
      if (init[i].first.name != params_->specs()[i].name)
        fail("internal: init order differs at {}", init[i].first.name);
      std::copy(init[i].second.begin(), init[i].second.end(), params_->value(i).begin());
    }
    st_.seed = t.seed;
    st_.tokenizer_sha256 = data_.tokenizer_sha256;
    st_.train_tokens = data_.train_tokens;
    st_.total_steps = o_.steps >= 0 ? o_.steps : t.steps;
    if (st_.total_steps == 0) {
      if (budget_s_ <= 0)
        fail(
            "{}: give training.steps (or --steps N), or a time budget (training.time_budget_minutes or "
            "--max-minutes) to fit the schedule to",
            o_.config);
      fit_steps_to_budget(budget_s_);
    }
    io::write_file_atomic(o_.out + "/train_config.json", spec_.raw.dump(2) + "\n");
  }
  lr_ = t.lr.resolve(st_.total_steps);
  metrics_.open(metrics_path, std::ios::app);
  if (!metrics_) fail("{}: cannot open for writing", metrics_path);
  const ParamCounts pc = count_params(c);
  std::fprintf(stderr,
               "model: %.2fM parameters (%.2fM activated per token, MTP %.2fM); %lld steps of %lld×%lld tokens "
               "(%s balance, %s linear layers), lr %.2g→%.2g\n",
               pc.total_main / 1e6, pc.activated / 1e6, pc.mtp / 1e6, (long long)st_.total_steps,
               (long long)t.batch_seqs, (long long)t.seq_len, balance_mode_name(t.balance), precision_name(t.precision),
               lr_.lr, lr_.min_lr);
}

void Trainer::fit_steps_to_budget(double budget_s) {
  // Time a few full micro-batches on a separate loader (the run's data position is untouched), then take
  // the most steps whose estimated cost — training tokens plus validation passes (forward only, ~⅓ of a
  // training token) — fits 95% of the budget.
  const TrainOptions& t = spec_.train;
  io::SequenceLoader probe(*train_stream_, t.seq_len, t.seed ^ 0x5eed, true);
  const int64_t mb = t.micro_batch();
  std::vector<int32_t> buf(size_t(mb * t.seq_len));
  double secs = 0;
  for (int k = 0; k < 3; ++k) {
    probe.next(mb, buf.data());
    const auto t1 = Clock::now();
    forward_backward(spec_.model, *params_, buf.data(), mb, t.seq_len, loss_options(0), *grads_, 1.0f);
    if (k > 0) secs += seconds_since(t1);
  }
  zero(*grads_);
  const double spt = secs / double(2 * mb * t.seq_len) * 1.08;  // + optimizer, clip, bookkeeping
  const double avail = budget_s * 0.95 - seconds_since(t0_);
  const int64_t eval_tokens = val_loader_ ? t.eval_batches * mb * t.seq_len : 0;
  double cost = 0;
  int64_t tokens = 0, n = 0;
  for (;;) {
    const int64_t B = ramp_.at(tokens);
    const double step_cost = double(B * t.seq_len) * spt;
    const int64_t evals_after = t.eval_every > 0 ? (n + 1) / t.eval_every + 1 : 1;
    if (cost + step_cost + double(evals_after * eval_tokens) * spt * 0.4 > avail) break;
    cost += step_cost;
    tokens += B * t.seq_len;
    ++n;
  }
  if (n < 1)
    fail("the time budget ({:.1f} min) does not fit a single step ({:.1f} s per step)", budget_s / 60,
         double(t.batch_seqs * t.seq_len) * spt);
  st_.total_steps = n;
  std::fprintf(stderr, "fitted the schedule to the %.1f-minute budget: %lld steps (%.0f tokens/s measured)\n",
               budget_s / 60, (long long)n, 1.0 / spt);
}

LossOptions Trainer::loss_options(int64_t step) const {
  const TrainOptions& t = spec_.train;
  LossOptions lo;
  lo.mtp_lambda =
      spec_.model.num_nextn_predict_layers > 0 ? t.mtp_lambda.at(step, std::max<int64_t>(1, st_.total_steps)) : 0.0;
  lo.balance_alpha = t.balance_alpha;
  lo.mode = t.balance;
  lo.linear = t.linear_precision();
  return lo;
}

EvalResult Trainer::eval(int64_t step) {
  EvalResult r;
  if (!val_loader_) return r;
  const TrainOptions& t = spec_.train;
  const int64_t mb = t.micro_batch();
  const int64_t n = std::min(t.eval_batches * mb, val_loader_->windows_in_epoch());
  val_loader_->seek({0, 0});
  std::vector<int32_t> buf(size_t(mb * t.seq_len));
  const LossOptions lo = loss_options(step);
  for (int64_t done = 0; done < n;) {
    const int64_t b = std::min(mb, n - done);
    val_loader_->next(b, buf.data());
    const StepResult s = evaluate(spec_.model, *params_, buf.data(), b, t.seq_len, lo);
    r.loss += s.loss * double(b);
    r.main_ce += s.main_ce * double(b);
    r.mtp_ce += s.mtp_ce * double(b);
    done += b;
  }
  r.sequences = n;
  r.loss /= double(n), r.main_ce /= double(n), r.mtp_ce /= double(n);
  return r;
}

void Trainer::log(const nlohmann::json& j) {
  metrics_ << j.dump() << "\n";
  metrics_.flush();
}

void Trainer::checkpoint() {
  st_.data = loader_->position();
  st_.elapsed_s = elapsed_at_start_ + seconds_since(t0_);
  save_checkpoint(o_.out, spec_.model, spec_.raw, *params_, *opt_, st_, files_);
}

void Trainer::show_progress(bool force, double loss, double main_ce) {
  if (!o_.progress) return;
  static const bool tty = isatty(2);
  if (!force && !tty && seconds_since(last_progress_) < 10.0) return;
  last_progress_ = Clock::now();
  const double tps = train_s_ > 0 ? double(train_tokens_) / train_s_ : 0;
  const int64_t remaining = (st_.total_steps - st_.step) * ramp_.at(st_.tokens_seen) * spec_.train.seq_len;
  const double eta = tps > 0 ? double(remaining) / tps : -1;
  const std::string val = last_val_ >= 0 ? fmt::format(" | val {:.4f}", last_val_) : "";
  const int width = 20;
  const int filled = int(double(width) * double(st_.step) / double(std::max<int64_t>(1, st_.total_steps)));
  const std::string bar = std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.');
  std::fprintf(stderr, "%s[%s] step %lld/%lld | loss %.4f (main CE %.4f)%s | %.0f tok/s | %s elapsed | ETA %s%s",
               tty ? "\r" : "", bar.c_str(), (long long)st_.step, (long long)st_.total_steps, loss, main_ce,
               val.c_str(), tps, hms(seconds_since(t0_)).c_str(), hms(eta).c_str(), tty ? "\x1b[K" : "\n");
  std::fflush(stderr);
}

TrainSummary Trainer::run() {
  setup();
  const TrainOptions& t = spec_.train;
  const ModelConfig& c = spec_.model;
  const int64_t T = t.seq_len;
  std::vector<int32_t> buf(size_t(t.micro_batch() * T));
  const StepFunction gamma_sched{.before = t.gamma, .after = 0.0, .switch_frac = 1.0 - t.gamma_off_frac};
  const bool aux_free = t.balance == BalanceMode::AuxFree;
  bool stopped_early = false;
  double loss = 0;

  while (st_.step < st_.total_steps) {
    const int64_t s = st_.step;
    const auto ts = Clock::now();
    const int64_t B = ramp_.at(st_.tokens_seen);
    const LossOptions lo = loss_options(s);
    zero(*grads_);
    StepResult sum;
    for (int64_t b : micro_sizes(B, t.grad_accum)) {
      loader_->next(b, buf.data());
      const double w = double(b) / double(B);
      StepResult r = forward_backward(c, *params_, buf.data(), b, T, lo, *grads_, float(w));
      sum.loss += r.loss * w;
      sum.main_ce += r.main_ce * w;
      sum.mtp_ce += r.mtp_ce * w;
      sum.tokens += r.tokens;
      accumulate_routing(sum.routing, r.routing);
    }
    if (!std::isfinite(sum.loss))
      fail("step {}: the loss is {} (lr {:.3g}); lower training.lr or check the data", s + 1, sum.loss, lr_.at(s));
    const double gnorm = clip_grad_norm(*grads_, t.clip);
    if (!std::isfinite(gnorm)) fail("step {}: the gradient norm is {}; lower training.lr", s + 1, gnorm);
    const double lr = lr_.at(s);
    opt_->step(*params_, *grads_, lr);
    const double gamma = aux_free ? gamma_sched.at(s, st_.total_steps) : 0.0;
    if (aux_free) update_expert_bias(*params_, sum.routing, gamma);
    st_.step = s + 1;
    st_.tokens_seen += B * T;
    const double dt = seconds_since(ts);
    train_s_ += dt;
    train_tokens_ += B * T;
    loss = sum.loss;
    recent_loss_.push_back(loss);
    if (recent_loss_.size() > 20) recent_loss_.erase(recent_loss_.begin());

    const bool last = st_.step == st_.total_steps;
    const bool stop_here = o_.stop_at > 0 && st_.step >= o_.stop_at;
    const bool over_time = budget_s_ > 0 && seconds_since(t0_) >= budget_s_;
    const bool do_eval = last || (t.eval_every > 0 && st_.step % t.eval_every == 0) || (over_time && !stop_here);
    const bool do_ckpt = last || stop_here || over_time || (t.ckpt_every > 0 && st_.step % t.ckpt_every == 0);

    if (st_.step % t.log_every == 0 || do_eval || do_ckpt || st_.step == 1) {
      nlohmann::json j{{"type", "train"},
                       {"step", st_.step},
                       {"lr", lr},
                       {"loss", sum.loss},
                       {"main_ce", sum.main_ce},
                       {"mtp_ce", sum.mtp_ce},
                       {"mtp_lambda", lo.mtp_lambda},
                       {"gamma", gamma},
                       {"grad_norm", gnorm},
                       {"batch_seqs", B},
                       {"tokens", st_.tokens_seen},
                       {"tokens_per_s", double(B * T) / dt},
                       {"elapsed_s", elapsed_at_start_ + seconds_since(t0_)}};
      nlohmann::json layers = nlohmann::json::array(), vio = nlohmann::json::array(), load = nlohmann::json::array(),
                     bal = nlohmann::json::array();
      for (const LayerRouting& r : sum.routing) {
        layers.push_back(r.layer);
        vio.push_back(max_vio(r.load));
        load.push_back(r.load);
        bal.push_back(r.balance_loss);
      }
      j["moe_layers"] = layers;
      j["maxvio"] = vio;
      j["load"] = load;
      j["balance_loss"] = bal;
      log(j);
    }
    if (do_eval && val_loader_) {
      const EvalResult e = eval(s);
      last_val_ = e.main_ce;
      log({{"type", "val"},
           {"step", st_.step},
           {"val_loss", e.main_ce},
           {"val_mtp_ce", e.mtp_ce},
           {"val_total", e.loss},
           {"sequences", e.sequences}});
    }
    show_progress(do_eval || last, loss, sum.main_ce);
    if (do_ckpt) checkpoint();
    if (!last && (stop_here || over_time)) {
      stopped_early = true;
      if (o_.progress) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "%s at step %lld/%lld; continue with --resume\n",
                   stop_here ? "stopped (--stop-at)" : "time budget reached", (long long)st_.step,
                   (long long)st_.total_steps);
      break;
    }
  }
  if (o_.progress && !stopped_early) std::fprintf(stderr, "\n");

  TrainSummary sm;
  sm.step = st_.step;
  sm.total_steps = st_.total_steps;
  for (double l : recent_loss_) sm.train_loss += l / double(recent_loss_.size());
  sm.val_loss = last_val_;
  sm.tokens_per_s = train_s_ > 0 ? double(train_tokens_) / train_s_ : 0;
  sm.seconds = seconds_since(t0_);
  sm.finished = st_.step == st_.total_steps;
  io::write_file_atomic(o_.out + "/summary.json",
                        nlohmann::json{{"step", sm.step},
                                       {"total_steps", sm.total_steps},
                                       {"train_loss", sm.train_loss},
                                       {"val_loss", sm.val_loss},
                                       {"tokens_per_s", sm.tokens_per_s},
                                       {"seconds", sm.seconds},
                                       {"train_seconds_total", elapsed_at_start_ + sm.seconds},
                                       {"tokens_seen", st_.tokens_seen},
                                       {"finished", sm.finished}}
                                .dump(2) +
                            "\n");
  return sm;
}

}  // namespace

TrainSummary run_training(const RunOptions& o) { return Trainer(o).run(); }

}  // namespace dsv3::train
