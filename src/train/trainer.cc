#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "dist/layout.h"
#include "dist/world.h"
#include "io/dataset.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "tools/init.h"
#include "train/adamw.h"
#include "train/balance.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/dsa_stage.h"
#include "train/expert_parallel.h"
#include "train/init_from.h"
#include "train/params.h"
#include "train/pipeline.h"
#include "train/schedule.h"
#include "train/stage_cost.h"
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

// V3.2: one micro-batch's indexer statistics added with weight w (KL weighted like the losses; recall as the
// selected mass summed over rows, divided by the rows once the step's batch is complete).
void accumulate_indexer(std::vector<IndexerStats>& sum, const std::vector<IndexerStats>& r, double w) {
  if (sum.empty())
    for (const IndexerStats& x : r) sum.push_back({.layer = x.layer});
  for (size_t l = 0; l < r.size(); ++l) {
    sum[l].kl += r[l].kl * w;
    sum[l].recall += r[l].recall * double(r[l].recall_rows);
    sum[l].recall_rows += r[l].recall_rows;
  }
}

// The metrics line's indexer fields: per layer, and the recall's mean over the layers.
void indexer_metrics(nlohmann::json& j, const std::vector<IndexerStats>& v) {
  nlohmann::json layers = nlohmann::json::array(), kl = nlohmann::json::array(), rec = nlohmann::json::array();
  double mean = 0.0;
  for (const IndexerStats& x : v) {
    layers.push_back(x.layer), kl.push_back(x.kl), rec.push_back(x.recall);
    mean += x.recall / double(v.size());
  }
  j["indexer_layers"] = layers;
  j["indexer_kl"] = kl;
  j["index_recall"] = rec;
  j["index_recall_mean"] = mean;
}

struct EvalResult {
  double loss = 0, main_ce = 0, mtp_ce = 0;
  int64_t sequences = 0;
};

class Trainer {
 public:
  explicit Trainer(const RunOptions& o) : o_(o), world_(dist::world()), lead_(world_.rank() == 0) {}
  TrainSummary run();

 private:
  void setup();
  void setup_layout();
  void fit_steps_to_budget(double budget_s);
  EvalResult eval(int64_t step);
  LossOptions loss_options(int64_t step) const;
  void log(const nlohmann::json& j);
  void checkpoint();
  void show_progress(bool force, double loss, double main_ce);
  const ExpertParallel* ep() const { return ep_ ? &*ep_ : nullptr; }
  int pp_micro() const {
    if (o_.micro > 0) return o_.micro;
    return parse_schedule_kind(o_.schedule, "--schedule") == ScheduleKind::OneFOneB ? o_.pp : 2 * o_.pp;
  }
  // The lanes that split a batch's sequences: the dp × ep ranks of a pipeline stage (the world without --pp);
  // this rank's lane (its world rank without --pp). Every pipeline rank of a lane runs the lane's sequences.
  int64_t lanes() const { return groups_.layout.stage_ranks(); }
  int64_t lane() const { return groups_.lane(); }
  // This rank's (lane's) contiguous share [first, first + count) of a global batch of B sequences.
  std::pair<int64_t, int64_t> share(int64_t B) const {
    const int64_t N = lanes(), r = lane();
    return {B * r / N, B * (r + 1) / N - B * r / N};
  }
  // A forward + backward of this rank's share of a step (b sequences), pipelined with --pp.
  StepResult step_share(const int32_t* tokens, int64_t b, const LossOptions& lo, float scale);

  RunOptions o_;
  dist::Comm& world_;
  const bool lead_;  // world rank 0: metrics, summary, progress, the run directory's files
  Clock::time_point t0_ = Clock::now();
  TrainSpec spec_;
  io::DatasetManifest data_;
  std::unique_ptr<io::TokenStream> train_stream_, val_stream_;
  std::unique_ptr<io::SequenceLoader> loader_, val_loader_;
  dist::Groups groups_;
  std::optional<ExpertParallel> ep_;  // --ep > 1
  PipeSchedule pp_sched_;             // --pp > 1
  StageSplit pp_split_;
  PipeRecord pp_record_;  // the last step's
  std::unique_ptr<Params> params_, grads_;
  std::vector<char> writes_;  // per tensor of params_: this rank writes it to a distributed checkpoint
  std::unique_ptr<DataParallel> dp_;
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

// The rank layout (--pp × --dp × --ep over the job's ranks, dist/layout.h), its communicators, and what the
// batch must satisfy to be split over the lanes by sequences (and, with --pp, into equal micro-batches).
void Trainer::setup_layout() {
  const ModelConfig& c = spec_.model;
  const TrainOptions& t = spec_.train;
  if (o_.pp < 1) fail("--pp {}: need at least 1 pipeline rank", o_.pp);
  if (o_.pp > 1 && c.has_indexer())
    fail("--pp {}: DeepSeek-V3.2's indexer training runs without pipeline parallelism (use --dp / --ep or one process)",
         o_.pp);
  const dist::Layout layout = dist::make_layout(world_.size(), o_.dp, o_.ep, c.n_routed_experts, o_.pp);
  groups_ = dist::make_groups(world_, layout);
  if (layout.ep > 1) {
    ep_ = ExpertParallel::make(c, *groups_.ep);
    ep_->overlap = o_.overlap;
  }
  const int64_t N = lanes();
  const std::string flags = layout.pp > 1 ? fmt::format("--pp {} × --dp {} × --ep {}", layout.pp, layout.dp, layout.ep)
                                          : fmt::format("--dp {} × --ep {}", layout.dp, layout.ep);
  if (o_.pp > 1) {
    const ScheduleKind kind = parse_schedule_kind(o_.schedule, "--schedule");
    if (o_.overlap && layout.ep == 1)
      fail("--overlap on with --pp: it overlaps the EP all-to-alls inside DualPipe's F&B pairs; give --ep > 1");
    if (o_.overlap && kind == ScheduleKind::OneFOneB)
      fail("--overlap on: --schedule 1f1b has no F&B pairs to overlap (use dualpipe or dualpipev)");
    const int m = pp_micro();
    if (t.batch_seqs_start > 0 && t.batch_ramp_tokens > 0)
      fail(
          "--pp: a batch-size ramp is not supported with pipeline parallelism (every step's batch must split into "
          "the same micro-batches)");
    if (t.batch_seqs % N != 0)
      fail(
          "training.batch_seqs {} does not split over the {} lanes (--dp {} × --ep {}) of {}: each lane runs an equal "
          "share of the batch's sequences through the pipeline (give a multiple of {}, or other --dp / --ep)",
          t.batch_seqs, N, layout.dp, layout.ep, flags, N);
    if ((t.batch_seqs / N) % m != 0)
      fail(
          "--micro {}: a lane's {} sequences (training.batch_seqs {} over {} lanes) must split into {} equal "
          "micro-batches",
          m, t.batch_seqs / N, t.batch_seqs, N, m);
    pp_sched_ = make_schedule(kind, o_.pp, m);
    // The split: by the FLOP estimate, or (--split measured) by each layer's forward + backward timed here over
    // one micro-batch of the step's first loss options (all ranks agree: the slowest rank's times).
    LossOptions lo;
    lo.mtp_lambda = c.num_nextn_predict_layers > 0 ? t.mtp_lambda.before : 0.0;
    lo.balance_alpha = t.balance_alpha;
    lo.mode = t.balance;
    lo.linear = t.linear_precision();
    pp_split_ = choose_split(o_.split, c, pp_sched_.stages, t.batch_seqs / N / m, t.seq_len, lo, world_);
    if (lead_ && o_.split == "measured") {
      std::string st;
      for (size_t i = 0; i < pp_split_.stages.size(); ++i)
        st += fmt::format("{}[{}, {}) {:.4f} s", i ? ", " : "", pp_split_.stages[i].layer_begin,
                          pp_split_.stages[i].layer_end, pp_split_.cost[i]);
      std::fprintf(stderr, "pipeline: --split measured: stages (layers, measured forward + backward) %s\n", st.c_str());
    }
  }
  if (N == 1 && o_.pp == 1) return;
  if (t.batch_seqs % N != 0)
    fail(
        "training.batch_seqs {} does not split over the {} ranks of {}: each rank runs an equal share of the "
        "batch's sequences (give a multiple of {}, or other --dp / --ep)",
        t.batch_seqs, N, flags, N);
  if (t.batch_seqs_start > 0 && t.batch_seqs_start < N)
    fail("training.batch_seqs_start {} is fewer sequences than the {} ranks of {}: every rank needs at least one",
         t.batch_seqs_start, N, flags);
  if (o_.bucket_mb <= 0) fail("--bucket-mb {}: must be positive", o_.bucket_mb);
}

StepResult Trainer::step_share(const int32_t* tokens, int64_t b, const LossOptions& lo, float scale) {
  if (o_.pp == 1)
    return forward_backward(spec_.model, *params_, tokens, b, spec_.train.seq_len, lo, *grads_, scale, ep());
  PipelineStepResult pr = pipeline_forward_backward(spec_.model, *params_, tokens, b, spec_.train.seq_len, lo, *grads_,
                                                    scale, *groups_.pp, pp_sched_, pp_split_, ep());
  pp_record_ = std::move(pr.record);
  return std::move(pr.step);
}

// A model directory that starts a run (--init-from) and has a tokenizer.json must have the dataset's: the same
// ids under another tokenizer are other text, and the run would learn the wrong embedding rows without a sign.
void check_init_tokenizer(const std::string& init_from, const io::DatasetManifest& data) {
  const std::string own = init_from + "/tokenizer.json";
  if (data.tokenizer_sha256.empty() || !fs::exists(own)) return;
  const std::string got = io::sha256_hex(read_text(own));
  if (got != data.tokenizer_sha256)
    fail(
        "--init-from {}: its tokenizer.json (sha256 {}) is not the one {} was tokenized with ({}); prepare the "
        "data with it (dsv3 data prepare --tokenizer {})",
        init_from, got.substr(0, 16), data.dir, data.tokenizer_sha256.substr(0, 16), own);
}

void Trainer::setup() {
  if (o_.out.empty()) fail("no --out run directory");
  if (o_.data.empty()) fail("no --data directory");
  data_ = io::read_manifest(o_.data);
  const TokenizerFacts tf{data_.vocab_size, data_.bos_id, data_.eos_id};
  const std::string metrics_path = o_.out + "/metrics.jsonl";

  std::string ckpt;
  // A run killed before its first checkpoint left metrics (and maybe a partial checkpoint.tmp) but nothing
  // to resume: --resume (given --config) and a plain start both begin it again from scratch.
  const bool saved_any = fs::exists(o_.out + "/checkpoint/trainer_state.json") ||
                         fs::exists(o_.out + "/checkpoint.old/trainer_state.json");
  if (o_.resume && !saved_any && !o_.config.empty()) {
    if (lead_) std::fprintf(stderr, "%s has no checkpoint yet: starting the run from scratch\n", o_.out.c_str());
    o_.resume = false;
  }
  if (o_.resume) {
    if (!saved_any)
      fail("--resume: {} has no checkpoint yet; give --config TRAIN.json to start the run from scratch", o_.out);
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
    if (saved_any) fail("{} already holds a run; continue it with --resume, or give a new --out", o_.out);
    if (lead_ && fs::exists(metrics_path)) truncate_metrics(metrics_path, 0);  // of a run that never saved
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
  setup_layout();
  // Every rank has checked the run directory before rank 0 writes into it.
  world_.barrier();

  // Data: every rank reads the same stream in the same order (the single-process one) and takes its share.
  train_stream_ = std::make_unique<io::TokenStream>(io::TokenStream::open(data_, "train"));
  loader_ = std::make_unique<io::SequenceLoader>(*train_stream_, t.seq_len, t.seed, true);
  if (data_.val_tokens >= 2 * t.seq_len) {
    val_stream_ = std::make_unique<io::TokenStream>(io::TokenStream::open(data_, "val"));
    val_loader_ = std::make_unique<io::SequenceLoader>(*val_stream_, t.seq_len, t.seed, false);
  } else if (lead_) {
    std::fprintf(stderr, "note: %s has %lld validation tokens, fewer than two sequences of %lld: no validation\n",
                 o_.data.c_str(), (long long)data_.val_tokens, (long long)t.seq_len);
  }
  files_ = tokenizer_files(data_, spec_.model.max_position_embeddings);

  // Model, optimizer, state: this rank's tensors (its EP rank's routed experts of its pipeline stages' layers),
  // its ZeRO-1 moments (over its stage group).
  const ModelConfig& c = spec_.model;
  SchemaScope scope = ep_ ? ep_->scope : SchemaScope{};
  if (o_.pp > 1) {
    SchemaScope stages = pipeline_scope(c, pp_sched_, pp_split_, groups_.pp_rank);
    stages.expert_begin = scope.expert_begin, stages.expert_end = scope.expert_end;
    scope = stages;
  }
  params_ = std::make_unique<Params>(c, scope);
  grads_ = std::make_unique<Params>(c, scope);
  DataParallelOptions dpo;
  dpo.bucket_bytes = size_t(o_.bucket_mb * double(1 << 20));
  std::vector<char> lowest(params_->size(), 1);
  if (o_.pp > 1) {
    lowest = lowest_pipeline_holder(c, *params_, pp_sched_, pp_split_, groups_.pp_rank);
    dpo.pipeline = {.pp = groups_.pp.get(), .counted = lowest};
  }
  dp_ = std::make_unique<DataParallel>(c, o_.pp > 1 ? *groups_.stage : world_, groups_, *params_, *grads_, dpo);
  // A tensor held by several pipeline ranks is written by its lowest holder's ZeRO-1 owner.
  writes_ = dp_->owned();
  for (size_t i = 0; i < writes_.size(); ++i) writes_[i] = writes_[i] && lowest[i];
  opt_ = std::make_unique<AdamW>(*params_,
                                 AdamWOptions{.beta1 = t.beta1,
                                              .beta2 = t.beta2,
                                              .eps = t.eps,
                                              .weight_decay = t.weight_decay,
                                              .bf16_moments = t.precision != Precision::FP32},
                                 dp_->owned());
  if (c.has_indexer()) opt_->set_lr_scale(dsa_lr_scale(*params_, t.dsa.stage, t.lr.lr, t.indexer_lr));
  ramp_ = {.start = t.batch_seqs_start > 0 ? t.batch_seqs_start : t.batch_seqs,
           .end = t.batch_seqs,
           .ramp_tokens = t.batch_seqs_start > 0 ? t.batch_ramp_tokens : 0};
  if (lead_) fs::create_directories(o_.out);
  if (o_.resume) {
    st_ = load_checkpoint(ckpt, c, *params_, *opt_);
    if (st_.tokenizer_sha256 != data_.tokenizer_sha256 || st_.train_tokens != data_.train_tokens)
      fail("--resume: {} is not the dataset the run was trained on (tokenizer hash or token count differ)", o_.data);
    if (o_.steps > 0 && o_.steps != st_.total_steps)
      fail("--resume: --steps {} differs from the run's schedule of {} steps", o_.steps, st_.total_steps);
    loader_->seek(st_.data);
    if (lead_) truncate_metrics(metrics_path, st_.step);
    elapsed_at_start_ = st_.elapsed_s;
    if (lead_)
      std::fprintf(stderr, "resuming %s at step %lld/%lld%s\n", ckpt.c_str(), (long long)st_.step,
                   (long long)st_.total_steps,
                   st_.dp != groups_.layout.dp || st_.ep != groups_.layout.ep || st_.pp != groups_.layout.pp
                       ? fmt::format(" (written by {}dp {} × ep {})",
                                     st_.pp > 1 ? fmt::format("pp {} × ", st_.pp) : std::string(), st_.dp, st_.ep)
                             .c_str()
                       : "");
  } else {
    const auto init = init_weights_f32(c, {.seed = t.seed, .std = t.init_std, .dtype = InitDType::F32});
    size_t copied = 0;
    for (const auto& [spec, values] : init) {
      if (spec.optional || !params_->has(spec.name)) continue;
      std::vector<float>& dst = params_->value(params_->index(spec.name));
      if (dst.size() != values.size())
        fail("internal: init of {} has {} values for {}", spec.name, values.size(), dst.size());
      std::copy(values.begin(), values.end(), dst.begin());
      ++copied;
    }
    if (copied != params_->size())
      fail("internal: init produced {} of this rank's {} tensors", copied, params_->size());
    if (!o_.init_from.empty()) {
      check_init_tokenizer(o_.init_from, data_);
      const InitFromResult r = init_from_model_dir(o_.init_from, *params_);
      if (lead_)
        std::fprintf(stderr, "initialised %zu tensors from %s; %zu keep their random init%s%s\n", r.copied,
                     o_.init_from.c_str(), r.kept.size(), r.kept.empty() ? "" : ", e.g. ",
                     r.kept.empty() ? "" : r.kept.front().c_str());
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
    if (lead_) io::write_file_atomic(o_.out + "/train_config.json", spec_.raw.dump(2) + "\n");
  }
  st_.dp = groups_.layout.dp;
  st_.ep = groups_.layout.ep;
  st_.pp = groups_.layout.pp;
  lr_ = t.lr.resolve(st_.total_steps);
  if (lead_) {
    metrics_.open(metrics_path, std::ios::app);
    if (!metrics_) fail("{}: cannot open for writing", metrics_path);
    const ParamCounts pc = count_params(c);
    std::fprintf(stderr,
                 "model: %.2fM parameters (%.2fM activated per token, MTP %.2fM); %lld steps of %lld×%lld tokens "
                 "(%s balance, %s linear layers), lr %.2g→%.2g\n",
                 pc.total_main / 1e6, pc.activated / 1e6, pc.mtp / 1e6, (long long)st_.total_steps,
                 (long long)t.batch_seqs, (long long)t.seq_len, balance_mode_name(t.balance),
                 precision_name(t.precision), lr_.lr, lr_.min_lr);
  }
  if (world_.size() > 1) {
    // The layout and each rank's share, printed by rank 0 in rank order.
    int64_t unsharded = 0;
    for (size_t i = 0; i < params_->size(); ++i)
      if (trainable(params_->specs()[i].role)) unsharded += 2 * int64_t(params_->value(i).size() * sizeof(float));
    const std::string line = dist::describe(groups_, world_, c.n_routed_experts) + "; " +
                             dp_->describe_partition(opt_->state_bytes(), unsharded) +
                             fmt::format("; {} sequences per step", share(t.batch_seqs).second);
    const std::vector<std::string> lines = dist::allgather_bytes(world_, line);
    if (lead_)
      for (const std::string& l : lines) std::fprintf(stderr, "%s\n", l.c_str());
  }
}

void Trainer::fit_steps_to_budget(double budget_s) {
  // Time a few full micro-batches on a separate loader (the run's data position is untouched), then take
  // the most steps whose estimated cost — training tokens plus validation passes (forward only, ~⅓ of a
  // training token) — fits 95% of the budget. Several ranks: each times its own micro-batch (collectively
  // under EP), the slowest rank's time counts, and rank 0 decides (its clock) for everyone.
  // With --pp the probe is a whole pipelined step over a lane's share (the pipeline's cost is the schedule's,
  // not one micro-batch's).
  const TrainOptions& t = spec_.train;
  const int64_t N = lanes();
  io::SequenceLoader probe(*train_stream_, t.seq_len, t.seed ^ 0x5eed, true);
  const int64_t per_rank = share(t.batch_seqs).second;
  const int64_t K = std::min(t.grad_accum, t.batch_seqs / N);
  const int64_t mb = o_.pp > 1 ? per_rank : N == 1 ? t.micro_batch() : (per_rank + K - 1) / K;
  std::vector<int32_t> buf(size_t(mb * t.seq_len));
  double secs = 0;
  for (int k = 0; k < 3; ++k) {
    probe.next(mb, buf.data());
    const auto t1 = Clock::now();
    step_share(buf.data(), mb, loss_options(0), 1.0f);
    if (k > 0) secs += seconds_since(t1);
  }
  zero(*grads_);
  if (world_.size() > 1) secs = world_.allreduce_one(secs, dist::ReduceOp::Max);
  const double spt = secs / double(2 * mb * t.seq_len) * 1.08;  // + optimizer, clip, bookkeeping
  const double avail = budget_s * 0.95 - seconds_since(t0_);
  const int64_t eval_tokens = val_loader_ ? (t.eval_batches * mb * t.seq_len) : 0;  // per rank
  double cost = 0;
  int64_t tokens = 0, n = 0;
  for (;;) {
    const int64_t B = ramp_.at(tokens);
    const double step_cost = double((B + N - 1) / N * t.seq_len) * spt;
    const int64_t evals_after = t.eval_every > 0 ? (n + 1) / t.eval_every + 1 : 1;
    if (cost + step_cost + double(evals_after * eval_tokens) * spt * 0.4 > avail) break;
    cost += step_cost;
    tokens += B * t.seq_len;
    ++n;
  }
  if (world_.size() > 1) world_.bcast(&n, 1, dist::DType::I64, 0);
  if (n < 1)
    fail("the time budget ({:.1f} min) does not fit a single step ({:.1f} s per step)", budget_s / 60,
         double((t.batch_seqs + N - 1) / N * t.seq_len) * spt);
  st_.total_steps = n;
  if (lead_)
    std::fprintf(stderr, "fitted the schedule to the %.1f-minute budget: %lld steps (%.0f tokens/s measured)\n",
                 budget_s / 60, (long long)n, double(N) / spt);
}

LossOptions Trainer::loss_options(int64_t step) const {
  const TrainOptions& t = spec_.train;
  LossOptions lo;
  lo.mtp_lambda =
      spec_.model.num_nextn_predict_layers > 0 ? t.mtp_lambda.at(step, std::max<int64_t>(1, st_.total_steps)) : 0.0;
  lo.balance_alpha = t.balance_alpha;
  lo.mode = t.balance;
  lo.linear = t.linear_precision();
  lo.dsa = t.dsa;
  return lo;
}

EvalResult Trainer::eval(int64_t step) {
  // The validation windows in calls of up to micro_batch sequences per rank: each call's windows are split
  // over the ranks like a training batch. Under EP every rank must join every call's exchanges, so a rank
  // whose share of a short last call is empty evaluates one window with weight 0.
  EvalResult r;
  if (!val_loader_) return r;
  const TrainOptions& t = spec_.train;
  const int64_t mb = t.micro_batch(), N = lanes();
  const int64_t n = std::min(t.eval_batches * mb, val_loader_->windows_in_epoch());
  val_loader_->seek({0, 0});
  std::vector<int32_t> buf(size_t(mb * N * t.seq_len));
  const LossOptions lo = loss_options(step);
  std::vector<double> sums(3, 0.0);
  for (int64_t done = 0; done < n;) {
    const int64_t G = std::min(mb * N, n - done);
    val_loader_->next(G, buf.data());
    const auto [first, b] = share(G);
    if (b > 0 || ep_) {
      const int32_t* tokens = buf.data() + (b > 0 ? first : 0) * t.seq_len;
      const int64_t rows = std::max<int64_t>(b, 1);
      // With --pp the lane's pipeline ranks run its windows stage after stage (losses on every one of them).
      const StepResult s = o_.pp > 1 ? pipeline_evaluate(spec_.model, *params_, tokens, rows, t.seq_len, lo,
                                                         *groups_.pp, pp_sched_, pp_split_, ep())
                                     : evaluate(spec_.model, *params_, tokens, rows, t.seq_len, lo, ep());
      sums[0] += s.loss * double(b);
      sums[1] += s.main_ce * double(b);
      sums[2] += s.mtp_ce * double(b);
    }
    done += G;
  }
  sums = dp_->sum(sums);
  r.sequences = n;
  r.loss = sums[0] / double(n), r.main_ce = sums[1] / double(n), r.mtp_ce = sums[2] / double(n);
  return r;
}

void Trainer::log(const nlohmann::json& j) {
  if (!lead_) return;
  metrics_ << j.dump() << "\n";
  metrics_.flush();
}

void Trainer::checkpoint() {
  st_.data = loader_->position();
  st_.elapsed_s = elapsed_at_start_ + seconds_since(t0_);
  CheckpointRanks ranks;
  if (world_.size() > 1) ranks = {.world = &world_, .writes = writes_};
  save_checkpoint(o_.out, spec_.model, spec_.raw, *params_, *opt_, st_, files_, ranks);
}

void Trainer::show_progress(bool force, double loss, double main_ce) {
  if (!o_.progress || !lead_) return;
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
  const int64_t T = t.seq_len, N = lanes();
  std::vector<int32_t> buf;
  // The MoE layers whose expert bias this rank holds (with --pp, its stages').
  std::vector<int64_t> bias_layers;
  for (const WeightSpec& sp : params_->specs())
    if (sp.role == WeightRole::Bias) bias_layers.push_back(sp.layer);
  const StepFunction gamma_sched{.before = t.gamma, .after = 0.0, .switch_frac = 1.0 - t.gamma_off_frac};
  // The dense warm-up freezes the main model, its routing biases included.
  const bool aux_free = t.balance == BalanceMode::AuxFree && !(c.has_indexer() && t.dsa.stage == DsaStage::DenseWarmup);
  bool stopped_early = false;
  double loss = 0;

  while (st_.step < st_.total_steps) {
    const int64_t s = st_.step;
    const auto ts = Clock::now();
    const int64_t B = ramp_.at(st_.tokens_seen);
    if (B < N) fail("step {}: a batch of {} sequences for {} ranks (every rank needs one)", s + 1, B, N);
    const LossOptions lo = loss_options(s);
    zero(*grads_);
    dp_->begin_step();
    // The global batch as one process reads it; this rank runs its contiguous share in K micro-batches
    // (the same K on every rank: under EP the ranks exchange rows in every call).
    buf.resize(size_t(B * T));
    loader_->next(B, buf.data());
    const auto [first, mine] = share(B);
    const std::vector<int64_t> micro = micro_sizes(mine, std::min(t.grad_accum, B / N));
    StepResult sum;  // sum.seconds, sum.comm: this rank's forward_backward calls
    int64_t overlapped_calls = 0;
    std::vector<double> balance;
    int64_t at = first;
    if (o_.pp > 1) {
      // One pipelined step over the lane's share: its losses and loads come back whole on every pipeline rank
      // of the lane. The gradient: summed over the stage group (dp × ep replicas of the stage), then over the
      // pipeline ranks holding the same tensor (DualPipe's mirrored copies, the embedding's two ends).
      const double w = double(mine) / double(B);
      sum = step_share(buf.data() + first * T, mine, lo, float(w));
      dp_->finish_grads();
      reduce_pipeline_grads(c, *grads_, *groups_.pp, pp_sched_, pp_split_);
      sum.loss *= w, sum.main_ce *= w, sum.mtp_ce *= w;
      for (const LayerRouting& r : sum.routing) balance.push_back(r.balance_loss * w);
    }
    for (size_t k = 0; k < (o_.pp > 1 ? 0 : micro.size()); ++k) {
      const int64_t b = micro[k];
      const double w = double(b) / double(B);
      const StepHooks hooks = N > 1 && k + 1 == micro.size() ? dp_->hooks() : StepHooks{};
      StepResult r = forward_backward(c, *params_, buf.data() + at * T, b, T, lo, *grads_, float(w), ep(), hooks);
      at += b;
      sum.loss += r.loss * w;
      sum.main_ce += r.main_ce * w;
      sum.mtp_ce += r.mtp_ce * w;
      sum.tokens += r.tokens;
      sum.seconds += r.seconds;
      sum.comm += r.comm;
      overlapped_calls += r.overlapped ? 1 : 0;
      accumulate_routing(sum.routing, r.routing);
      balance.resize(r.routing.size(), 0.0);
      for (size_t l = 0; l < r.routing.size(); ++l) balance[l] += r.routing[l].balance_loss * w;
      accumulate_indexer(sum.indexer, r.indexer, w);
    }
    if (o_.pp == 1) dp_->finish_grads();
    {
      // The whole batch's losses and expert loads (every rank gets the same).
      std::vector<double> v{sum.loss, sum.main_ce, sum.mtp_ce};
      v.insert(v.end(), balance.begin(), balance.end());
      for (const IndexerStats& x : sum.indexer) v.insert(v.end(), {x.kl, x.recall, double(x.recall_rows)});
      v = dp_->sum(v);
      for (size_t l = 0, at = 3 + balance.size(); l < sum.indexer.size(); ++l, at += 3) {
        IndexerStats& x = sum.indexer[l];
        x.kl = v[at], x.recall = v[at + 2] > 0 ? v[at + 1] / v[at + 2] : 0.0, x.recall_rows = int64_t(v[at + 2]);
      }
      sum.loss = v[0], sum.main_ce = v[1], sum.mtp_ce = v[2];
      std::vector<int64_t> loads;
      for (const LayerRouting& r : sum.routing) loads.insert(loads.end(), r.load.begin(), r.load.end());
      dp_->sum_exact(loads);
      size_t j = 0;
      for (size_t l = 0; l < sum.routing.size(); ++l) {
        sum.routing[l].balance_loss = v[3 + l];
        for (int64_t& x : sum.routing[l].load) x = loads[j++];
      }
    }
    if (!std::isfinite(sum.loss))
      fail("step {}: the loss is {} (lr {:.3g}); lower training.lr or check the data", s + 1, sum.loss, lr_.at(s));
    const double gnorm = dp_->clip(*grads_, t.clip);
    if (!std::isfinite(gnorm)) fail("step {}: the gradient norm is {}; lower training.lr", s + 1, gnorm);
    const double lr = lr_.at(s);
    opt_->step(*params_, *grads_, lr);
    dp_->sync_params(*params_);
    const double gamma = aux_free ? gamma_sched.at(s, st_.total_steps) : 0.0;
    if (aux_free) {
      std::vector<LayerRouting> held;  // the layers whose bias is here (every rank has every layer's loads)
      for (const LayerRouting& r : sum.routing)
        if (std::find(bias_layers.begin(), bias_layers.end(), r.layer) != bias_layers.end()) held.push_back(r);
      update_expert_bias(*params_, held, gamma);
    }
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
    bool over_time = budget_s_ > 0 && seconds_since(t0_) >= budget_s_;
    if (N > 1 && budget_s_ > 0) {  // rank 0's clock decides for every rank
      int32_t f = over_time;
      world_.bcast(&f, 1, dist::DType::I32, 0);
      over_time = f != 0;
    }
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
      if (!sum.indexer.empty()) indexer_metrics(j, sum.indexer);
      if (N > 1) j["buckets_overlapped"] = {dp_->buckets_overlapped(), dp_->buckets_total()};
      if (ep_ && o_.pp == 1) {  // rank 0's forward + backward time, split (train/step.h StepResult::comm)
        nlohmann::json et;
        et["forward_backward_s"] = sum.seconds;
        et["compute_s"] = sum.seconds - sum.comm.post_s - sum.comm.wait_s;
        et["post_s"] = sum.comm.post_s;
        et["wait_s"] = sum.comm.wait_s;
        et["in_flight_s"] = sum.comm.in_flight_s;
        et["overlapped_calls"] = {overlapped_calls, int64_t(micro.size())};
        j["ep_time"] = et;
      }
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
      if (lead_) {
        if (o_.progress) std::fprintf(stderr, "\n");
        std::fprintf(stderr, "%s at step %lld/%lld; continue with --resume\n",
                     stop_here ? "stopped (--stop-at)" : "time budget reached", (long long)st_.step,
                     (long long)st_.total_steps);
      }
      break;
    }
  }
  if (o_.progress && !stopped_early && lead_) std::fprintf(stderr, "\n");
  if (o_.pp > 1 && !o_.trace.empty()) {  // the last step's timeline (collective over the pipeline ranks)
    const PipeTimeline tl = gather_timeline(pp_record_, *groups_.pp);  // lane 0's is written
    if (lead_) {
      io::write_file_atomic(o_.trace, chrome_trace(tl, schedule_kind_name(pp_sched_.kind)));
      std::fprintf(stderr, "%s", bubble_report(pp_sched_, tl).c_str());
    }
  }

  TrainSummary sm;
  sm.step = st_.step;
  sm.total_steps = st_.total_steps;
  for (double l : recent_loss_) sm.train_loss += l / double(recent_loss_.size());
  sm.val_loss = last_val_;
  sm.tokens_per_s = train_s_ > 0 ? double(train_tokens_) / train_s_ : 0;
  sm.seconds = seconds_since(t0_);
  sm.finished = st_.step == st_.total_steps;
  if (lead_)
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
