#include "train/train_config.h"

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace dsv3::train {

namespace {

class Reader {
 public:
  Reader(const nlohmann::json& j, std::string label) : j_(j), label_(std::move(label)) {}

  template <typename T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    if constexpr (std::is_same_v<T, double>) {
      if (!it->is_number()) bad(key, "a number", *it);
      out = it->get<double>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer() && !(it->is_number_float() && it->get<double>() == double(int64_t(it->get<double>()))))
        bad(key, "an integer", *it);
      if constexpr (std::is_unsigned_v<T>) {
        if (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() < 0) bad(key, "a non-negative integer", *it);
      }
      out = T(it->is_number_float() ? int64_t(it->get<double>()) : it->get<int64_t>());
    } else {
      if (!it->is_string()) bad(key, "a string", *it);
      out = it->get<std::string>();
    }
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  const nlohmann::json* object(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    if (!it->is_object()) bad(key, "an object", *it);
    return &*it;
  }
  void reject_unknown() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail("{}: unknown key '{}'", label_, it.key());
  }
  [[noreturn]] void bad(const char* key, const char* want, const nlohmann::json& v) const {
    fail("{}: key '{}' must be {}, got {}", label_, key, want, v.dump());
  }
  const std::string& label() const { return label_; }

 private:
  const nlohmann::json& j_;
  std::string label_;
  std::set<std::string> seen_;
};

void positive(const std::string& label, const char* key, double v) {
  if (!(v > 0)) fail("{}: '{}' must be positive, got {}", label, key, v);
}
void non_negative(const std::string& label, const char* key, double v) {
  if (!(v >= 0)) fail("{}: '{}' must not be negative, got {}", label, key, v);
}
void fraction(const std::string& label, const char* key, double v) {
  if (!(v >= 0 && v <= 1)) fail("{}: '{}' must lie in [0, 1], got {}", label, key, v);
}

TrainOptions parse_training(const nlohmann::json& t, const std::string& label) {
  TrainOptions o;
  Reader r(t, label);
  r.get("seq_len", o.seq_len);
  r.get("batch_seqs", o.batch_seqs);
  r.get("batch_seqs_start", o.batch_seqs_start);
  r.get("batch_ramp_tokens", o.batch_ramp_tokens);
  r.get("grad_accum", o.grad_accum);
  r.get("steps", o.steps);
  r.get("time_budget_minutes", o.time_budget_minutes);
  r.get("lr", o.lr.lr);
  r.get("min_lr", o.lr.min_lr);
  r.get("warmup_steps", o.lr.warmup_steps);
  r.get("constant_steps", o.lr.constant_steps);
  r.get("decay_steps", o.lr.decay_steps);
  r.get("constant_frac", o.lr.constant_frac);
  r.get("decay_frac", o.lr.decay_frac);
  r.get("weight_decay", o.weight_decay);
  r.get("beta1", o.beta1);
  r.get("beta2", o.beta2);
  r.get("eps", o.eps);
  r.get("clip", o.clip);
  r.get("seed", o.seed);
  r.get("init_std", o.init_std);
  r.get("mtp_lambda", o.mtp_lambda.before);
  o.mtp_lambda.after = o.mtp_lambda.before;  // unless given
  r.get("mtp_lambda_final", o.mtp_lambda.after);
  r.get("mtp_lambda_switch_frac", o.mtp_lambda.switch_frac);
  if (!r.has("mtp_lambda") && !r.has("mtp_lambda_final")) o.mtp_lambda.after = 0.1;  // the paper's 0.3 → 0.1
  r.get("eval_every", o.eval_every);
  r.get("eval_batches", o.eval_batches);
  r.get("ckpt_every", o.ckpt_every);
  r.get("log_every", o.log_every);
  std::string precision = "fp32";
  r.get("precision", precision);
  o.precision = parse_precision(precision, label + ": 'training.precision'");
  if (const nlohmann::json* f = r.object("fp8")) {
    if (o.precision != Precision::FP8)
      fail("{}: 'training.fp8' configures precision fp8, but 'training.precision' is {}", label, precision);
    Reader fr(*f, label + ": training.fp8");
    std::string scale = "fp32", dgrad = "1x128";
    int64_t bits = o.fp8.accum_bits;
    fr.get("scale", scale);
    fr.get("accum_bits", bits);
    fr.get("promote_every", o.fp8.promote_every);
    fr.get("dgrad_quant", dgrad);
    fr.reject_unknown();
    if (scale == "fp32") {
      o.fp8.scale = Fp8ScaleFormat::F32;
    } else if (scale == "ue8m0") {
      o.fp8.scale = Fp8ScaleFormat::UE8M0;
    } else {
      fail("{}: training.fp8.scale is '{}'; supported: fp32, ue8m0", label, scale);
    }
    if (bits < 1 || bits > 23) fail("{}: training.fp8.accum_bits must lie in [1, 23] (23 = float32), got {}", label, bits);
    o.fp8.accum_bits = int(bits);
    if (o.fp8.promote_every < 1 || 128 % o.fp8.promote_every != 0)
      fail("{}: training.fp8.promote_every must divide 128 (the scale tile along K), got {}", label,
           o.fp8.promote_every);
    if (dgrad == "1x128") {
      o.fp8.dgrad_block_quant = false;
    } else if (dgrad == "128x128") {
      o.fp8.dgrad_block_quant = true;
    } else {
      fail("{}: training.fp8.dgrad_quant is '{}'; supported: 1x128, 128x128", label, dgrad);
    }
  }
  if (const nlohmann::json* b = r.object("balance")) {
    Reader br(*b, label + ": training.balance");
    std::string mode = "aux_free";
    br.get("mode", mode);
    if (mode == "aux_free") {
      o.balance = BalanceMode::AuxFree;
    } else if (mode == "aux_loss") {
      o.balance = BalanceMode::AuxLoss, o.balance_alpha = 0.01, o.gamma = 0;
    } else if (mode == "none") {
      o.balance = BalanceMode::None, o.balance_alpha = 0, o.gamma = 0;
    } else {
      fail("{}: training.balance.mode is '{}'; supported: aux_free, aux_loss, none", label, mode);
    }
    br.get("alpha", o.balance_alpha);
    br.get("gamma", o.gamma);
    br.get("gamma_off_frac", o.gamma_off_frac);
    br.reject_unknown();
    if (o.balance != BalanceMode::AuxFree && o.gamma != 0)
      fail("{}: training.balance.gamma applies to mode aux_free only (mode is {})", label, mode);
    if (o.balance == BalanceMode::None && o.balance_alpha != 0)
      fail("{}: training.balance.alpha must be 0 with mode none", label);
  }
  r.reject_unknown();

  const std::string& L = label;
  if (o.seq_len < 2) fail("{}: 'training.seq_len' must be at least 2, got {}", L, o.seq_len);
  if (o.batch_seqs < 1) fail("{}: 'training.batch_seqs' must be at least 1, got {}", L, o.batch_seqs);
  if (o.grad_accum < 1) fail("{}: 'training.grad_accum' must be at least 1, got {}", L, o.grad_accum);
  if (o.grad_accum > o.batch_seqs)
    fail("{}: 'training.grad_accum' ({}) exceeds 'training.batch_seqs' ({})", L, o.grad_accum, o.batch_seqs);
  if (o.batch_seqs_start < 0 || o.batch_seqs_start > o.batch_seqs)
    fail("{}: 'training.batch_seqs_start' must lie in [0, batch_seqs = {}], got {}", L, o.batch_seqs, o.batch_seqs_start);
  non_negative(L, "training.batch_ramp_tokens", double(o.batch_ramp_tokens));
  non_negative(L, "training.steps", double(o.steps));
  non_negative(L, "training.time_budget_minutes", o.time_budget_minutes);
  positive(L, "training.lr", o.lr.lr);
  non_negative(L, "training.min_lr", o.lr.min_lr);
  if (o.lr.min_lr > o.lr.lr) fail("{}: 'training.min_lr' ({}) exceeds 'training.lr' ({})", L, o.lr.min_lr, o.lr.lr);
  non_negative(L, "training.warmup_steps", double(o.lr.warmup_steps));
  if (o.lr.constant_frac > 1) fraction(L, "training.constant_frac", o.lr.constant_frac);
  if (o.lr.decay_frac > 1) fraction(L, "training.decay_frac", o.lr.decay_frac);
  non_negative(L, "training.weight_decay", o.weight_decay);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail("{}: 'training.beta1' must lie in [0, 1), got {}", L, o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail("{}: 'training.beta2' must lie in [0, 1), got {}", L, o.beta2);
  positive(L, "training.eps", o.eps);
  non_negative(L, "training.clip", o.clip);
  non_negative(L, "training.init_std", o.init_std);
  non_negative(L, "training.mtp_lambda", o.mtp_lambda.before);
  non_negative(L, "training.mtp_lambda_final", o.mtp_lambda.after);
  fraction(L, "training.mtp_lambda_switch_frac", o.mtp_lambda.switch_frac);
  non_negative(L, "training.balance.alpha", o.balance_alpha);
  non_negative(L, "training.balance.gamma", o.gamma);
  fraction(L, "training.balance.gamma_off_frac", o.gamma_off_frac);
  non_negative(L, "training.eval_every", double(o.eval_every));
  non_negative(L, "training.ckpt_every", double(o.ckpt_every));
  if (o.eval_batches < 1) fail("{}: 'training.eval_batches' must be at least 1, got {}", L, o.eval_batches);
  if (o.log_every < 1) fail("{}: 'training.log_every' must be at least 1, got {}", L, o.log_every);
  return o;
}

}  // namespace

const char* balance_mode_name(BalanceMode m) {
  switch (m) {
    case BalanceMode::AuxFree: return "aux_free";
    case BalanceMode::AuxLoss: return "aux_loss";
    case BalanceMode::None: return "none";
  }
  return "?";
}

nlohmann::json TrainOptions::to_json() const {
  nlohmann::json t;
  t["seq_len"] = seq_len;
  t["batch_seqs"] = batch_seqs;
  t["batch_seqs_start"] = batch_seqs_start;
  t["batch_ramp_tokens"] = batch_ramp_tokens;
  t["grad_accum"] = grad_accum;
  t["steps"] = steps;
  t["time_budget_minutes"] = time_budget_minutes;
  t["lr"] = lr.lr;
  t["min_lr"] = lr.min_lr;
  t["warmup_steps"] = lr.warmup_steps;
  if (lr.constant_steps >= 0) t["constant_steps"] = lr.constant_steps;
  if (lr.decay_steps >= 0) t["decay_steps"] = lr.decay_steps;
  if (lr.constant_frac >= 0) t["constant_frac"] = lr.constant_frac;
  if (lr.decay_frac >= 0) t["decay_frac"] = lr.decay_frac;
  t["weight_decay"] = weight_decay;
  t["beta1"] = beta1;
  t["beta2"] = beta2;
  t["eps"] = eps;
  t["clip"] = clip;
  t["seed"] = seed;
  t["init_std"] = init_std;
  t["mtp_lambda"] = mtp_lambda.before;
  t["mtp_lambda_final"] = mtp_lambda.after;
  t["mtp_lambda_switch_frac"] = mtp_lambda.switch_frac;
  t["balance"] = {{"mode", balance_mode_name(balance)}, {"alpha", balance_alpha}, {"gamma", gamma},
                  {"gamma_off_frac", gamma_off_frac}};
  t["eval_every"] = eval_every;
  t["eval_batches"] = eval_batches;
  t["ckpt_every"] = ckpt_every;
  t["log_every"] = log_every;
  t["precision"] = precision_name(precision);
  if (precision == Precision::FP8)
    t["fp8"] = {{"scale", fp8_scale_format_name(fp8.scale)},
                {"accum_bits", fp8.accum_bits},
                {"promote_every", fp8.promote_every},
                {"dgrad_quant", fp8.dgrad_block_quant ? "128x128" : "1x128"}};
  return t;
}

TrainSpec parse_train_config(const nlohmann::json& j, const std::optional<TokenizerFacts>& tok,
                             const std::string& label) {
  if (!j.is_object()) fail("{}: must be a JSON object, got {}", label, j.type_name());
  TrainSpec s;
  nlohmann::json model = j;
  nlohmann::json training = nlohmann::json::object();
  if (model.contains("training")) {
    training = model["training"];
    model.erase("training");
    if (!training.is_object()) fail("{}: key 'training' must be an object, got {}", label, training.dump());
  }
  if (tok) {
    if (!model.contains("vocab_size") || model["vocab_size"].is_null()) {
      model["vocab_size"] = tok->vocab_size;
    } else if (!model["vocab_size"].is_number_integer() || model["vocab_size"].get<int64_t>() < tok->vocab_size) {
      fail("{}: 'vocab_size' ({}) is smaller than the tokenizer's vocabulary ({}); leave it out to take the "
           "tokenizer's", label, model["vocab_size"].dump(), tok->vocab_size);
    }
    if ((!model.contains("bos_token_id") || model["bos_token_id"].is_null()) && tok->bos_id >= 0)
      model["bos_token_id"] = tok->bos_id;
    if ((!model.contains("eos_token_id") || model["eos_token_id"].is_null()) && tok->eos_id >= 0)
      model["eos_token_id"] = tok->eos_id;
  }
  s.model = parse_config(model, label);
  s.train = parse_training(training, label + ": training");
  const TrainOptions& t = s.train;
  if (t.seq_len > s.model.max_position_embeddings)
    fail("{}: 'training.seq_len' ({}) exceeds 'max_position_embeddings' ({})", label, t.seq_len,
         s.model.max_position_embeddings);
  const bool has_bias = s.model.n_routed_experts > 0 && s.model.topk_method == TopkMethod::NoauxTc;
  if (t.balance == BalanceMode::AuxFree && s.model.n_routed_experts > 0 && !has_bias && t.gamma > 0)
    fail("{}: balance mode aux_free moves e_score_correction_bias, which needs 'topk_method': 'noaux_tc' (got a "
         "model without the bias); use mode aux_loss or none",
         label);
  s.model_json = s.model.raw_json();
  s.raw = model;
  s.raw["training"] = t.to_json();
  return s;
}

TrainSpec load_train_config(const std::string& path, const std::optional<TokenizerFacts>& tok) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open training config: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  return parse_train_config(j, tok, path);
}

}  // namespace dsv3::train
