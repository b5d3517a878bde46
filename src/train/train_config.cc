// TRAIN.json's "training" object: one table per object (training_fields, fp8_fields, balance_fields) lists
// every key once, with its member, type, range and any special reading; parse_training and
// TrainOptions::to_json both walk it, so a key added to the table is parsed, validated and written back.
// Per object: every key is read (type errors), unknown keys are refused, every key's range is checked, then
// the rules that span keys.
#include "train/train_config.h"

#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace dsv3::train {

namespace {

using nlohmann::json;

// Reads the keys of one object of TRAIN.json ("training", "training.fp8", ...). `label` is the file's (as
// range errors print it), `path` the object's dotted name; type and unknown-key errors print `where`.
class Reader {
 public:
  Reader(const json& j, std::string where, std::string label, std::string path)
      : j_(j), where_(std::move(where)), label_(std::move(label)), path_(std::move(path)) {}

  template <typename T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    if constexpr (std::is_same_v<T, double>) {
      if (!it->is_number()) bad(key, "a number", *it);
      out = it->get<double>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer() &&
          !(it->is_number_float() && it->get<double>() == double(int64_t(it->get<double>()))))
        bad(key, "an integer", *it);
      if constexpr (std::is_unsigned_v<T>) {
        if (it->is_number_integer() && !it->is_number_unsigned() && it->get<int64_t>() < 0)
          bad(key, "a non-negative integer", *it);
      }
      out = T(it->is_number_float() ? int64_t(it->get<double>()) : it->get<int64_t>());
    } else {
      if (!it->is_string()) bad(key, "a string", *it);
      out = it->get<std::string>();
    }
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  const json* object(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    if (!it->is_object()) bad(key, "an object", *it);
    return &*it;
  }
  void reject_unknown() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail("{}: unknown key '{}'", where_, it.key());
  }
  [[noreturn]] void bad(const char* key, const char* want, const json& v) const {
    fail("{}: key '{}' must be {}, got {}", where_, key, want, v.dump());
  }
  const std::string& label() const { return label_; }
  std::string path(const char* key) const { return path_ + "." + key; }  // "training.fp8.scale"

 private:
  const json& j_;
  std::string where_, label_, path_;
  std::set<std::string> seen_;
};

void positive(const std::string& label, const std::string& key, double v) {
  if (!(v > 0)) fail("{}: '{}' must be positive, got {}", label, key, v);
}
void non_negative(const std::string& label, const std::string& key, double v) {
  if (!(v >= 0)) fail("{}: '{}' must not be negative, got {}", label, key, v);
}
void fraction(const std::string& label, const std::string& key, double v) {
  if (!(v >= 0 && v <= 1)) fail("{}: '{}' must lie in [0, 1], got {}", label, key, v);
}

template <class T>
bool negative(T v) {
  if constexpr (std::is_unsigned_v<T>)
    return false;
  else
    return v < 0;
}

// The range of a value, checked once its object is read (unknown keys refused first).
struct Range {
  enum Kind { Any, AtLeast, Positive, NonNegative, Fraction, BelowOne } kind = Any;
  int64_t min = 0;              // AtLeast
  bool unset_negative = false;  // a negative value means "not set": not checked, not written
};
constexpr Range kPositive{Range::Positive}, kNonNegative{Range::NonNegative}, kFraction{Range::Fraction};
constexpr Range kBelowOne{Range::BelowOne};  // [0, 1)
constexpr Range kUnset{Range::Any, 0, true}, kFractionOrUnset{Range::Fraction, 0, true};
constexpr Range at_least(int64_t n) { return {Range::AtLeast, n}; }

template <class T>
void check_range(const std::string& label, const std::string& path, Range r, T v) {
  if (r.unset_negative && negative(v)) return;
  switch (r.kind) {
    case Range::Any:
      return;
    case Range::AtLeast:
      if (int64_t(v) < r.min) fail("{}: '{}' must be at least {}, got {}", label, path, r.min, v);
      return;
    case Range::Positive:
      return positive(label, path, double(v));
    case Range::NonNegative:
      return non_negative(label, path, double(v));
    case Range::Fraction:
      return fraction(label, path, double(v));
    case Range::BelowOne:
      if (!(double(v) >= 0 && double(v) < 1)) fail("{}: '{}' must lie in [0, 1), got {}", label, path, v);
      return;
  }
}

// One key of a TRAIN.json object: read (type), written, then checked (range; messages name `path`).
template <class S>
struct Field {
  const char* key;
  std::function<void(Reader&, S&)> read;
  std::function<std::optional<json>(const S&)> write;  // nullopt: left out
  std::function<void(const std::string& label, const std::string& path, const S&)> check = {};
};

// Rows for plain values: a member, or a member of a member (lr.min_lr).
template <class S, class Get>
Field<S> value_at(const char* key, Get get, Range r) {
  return {
      key, [key, get](Reader& rd, S& s) { rd.get(key, get(s)); },
      [get, r](const S& s) -> std::optional<json> {
        if (r.unset_negative && negative(get(s))) return std::nullopt;
        return json(get(s));
      },
      [get, r](const std::string& label, const std::string& path, const S& s) { check_range(label, path, r, get(s)); }};
}
template <class S, class T>
Field<S> value(const char* key, T S::*m, Range r = {}) {
  return value_at<S>(
      key, [m](auto& s) -> auto& { return s.*m; }, r);
}
template <class S, class M, class T>
Field<S> value(const char* key, M S::*outer, T M::*inner, Range r = {}) {
  return value_at<S>(
      key, [ outer, inner ](auto& s) -> auto& { return (s.*outer).*inner; }, r);
}

// A string naming one of the n enumerators E(0) .. E(n - 1) (bool: false, true), spelled by `name`.
template <class S, class E>
Field<S> enumerated(const char* key, E S::*m, int n, const char* (*name)(E)) {
  return {key,
          [key, m, n, name](Reader& r, S& s) {
            std::string given = name(s.*m);
            r.get(key, given);
            std::string supported;
            for (int i = 0; i < n; ++i) {
              if (given == name(E(i))) {
                s.*m = E(i);
                return;
              }
              supported += (i ? ", " : "") + std::string(name(E(i)));
            }
            fail("{}: {} is '{}'; supported: {}", r.label(), r.path(key), given, supported);
          },
          [m, name](const S& s) -> std::optional<json> { return json(name(s.*m)); }};
}

// A row with its read replaced (keeping write and check), or with `then` run after its read.
template <class S>
Field<S> reading(Field<S> f, std::type_identity_t<std::function<void(Reader&, S&)>> read) {
  f.read = std::move(read);
  return f;
}
template <class S>
Field<S> then(Field<S> f, std::type_identity_t<std::function<void(S&)>> after) {
  f.read = [read = f.read, after](Reader& r, S& s) {
    read(r, s);
    after(s);
  };
  return f;
}
template <class S>
Field<S> checking(Field<S> f,
                  std::type_identity_t<std::function<void(const std::string&, const std::string&, const S&)>> check) {
  f.check = std::move(check);
  return f;
}

// Reads every row of an object, refuses unknown keys, then checks every row's range.
template <class S>
void read_fields(const std::vector<Field<S>>& fields, Reader& r, S& s) {
  for (const Field<S>& f : fields) f.read(r, s);
  r.reject_unknown();
  for (const Field<S>& f : fields)
    if (f.check) f.check(r.label(), r.path(f.key), s);
}

template <class S>
json write_fields(const std::vector<Field<S>>& fields, const S& s) {
  json j = json::object();
  for (const Field<S>& f : fields)
    if (std::optional<json> v = f.write(s)) j[f.key] = std::move(*v);
  return j;
}

const char* dgrad_quant_name(bool block) { return block ? "128x128" : "1x128"; }

// "training.fp8": only with "precision": "fp8".
const std::vector<Field<Fp8Recipe>>& fp8_fields() {
  using F = Fp8Recipe;
  static const std::vector<Field<F>> table = {
      enumerated("scale", &F::scale, 2, fp8_scale_format_name),
      // Checked as read, before it is narrowed to the int member.
      reading(value("accum_bits", &F::accum_bits),
              [](Reader& r, F& f) {
                int64_t bits = f.accum_bits;
                r.get("accum_bits", bits);
                if (bits < 1 || bits > 23)
                  fail("{}: {} must lie in [1, 23] (23 = float32), got {}", r.label(), r.path("accum_bits"), bits);
                f.accum_bits = int(bits);
              }),
      checking(value("promote_every", &F::promote_every),
               [](const std::string& label, const std::string& path, const F& f) {
                 if (f.promote_every < 1 || 128 % f.promote_every != 0)
                   fail("{}: {} must divide 128 (the scale tile along K), got {}", label, path, f.promote_every);
               }),
      enumerated("dgrad_quant", &F::dgrad_block_quant, 2, dgrad_quant_name),
  };
  return table;
}

// "training.balance": members of TrainOptions itself.
const std::vector<Field<TrainOptions>>& balance_fields() {
  using O = TrainOptions;
  static const std::vector<Field<O>> table = {
      // The mode also sets the defaults of alpha and gamma, read after it: aux_loss 0.01 / 0, none 0 / 0.
      then(enumerated("mode", &O::balance, 3, balance_mode_name),
           [](O& o) {
             if (o.balance == BalanceMode::AuxFree) return;
             o.balance_alpha = o.balance == BalanceMode::AuxLoss ? 0.01 : 0;
             o.gamma = 0;
           }),
      value("alpha", &O::balance_alpha, kNonNegative),
      value("gamma", &O::gamma, kNonNegative),
      value("gamma_off_frac", &O::gamma_off_frac, kFraction),
  };
  return table;
}

// "training.dsa": DeepSeek-V3.2's indexer training, members of TrainOptions itself.
const std::vector<Field<TrainOptions>>& dsa_fields() {
  using O = TrainOptions;
  static const std::vector<Field<O>> table = {
      {"stage",
       [](Reader& r, O& o) {
         std::string given = dsa_stage_name(o.dsa.stage);
         r.get("stage", given);
         for (DsaStage st : {DsaStage::DenseWarmup, DsaStage::Sparse})
           if (given == dsa_stage_name(st)) {
             o.dsa.stage = st;
             return;
           }
         fail("{}: training.dsa.stage is '{}'; supported: dense_warmup, sparse", r.label(), given);
       },
       [](const O& o) -> std::optional<json> { return json(dsa_stage_name(o.dsa.stage)); }},
      value("indexer_lr", &O::indexer_lr, {Range::Positive, 0, true}),
      value("kl_weight", &O::dsa, &DsaOptions::kl_weight, kPositive),
  };
  return table;
}

// "training": every key of TrainOptions, in the order they are read.
const std::vector<Field<TrainOptions>>& training_fields() {
  using O = TrainOptions;
  using L = LrScheduleSpec;
  using Step = StepFunction;
  static const std::vector<Field<O>> table = {
      value("seq_len", &O::seq_len, at_least(2)),
      value("batch_seqs", &O::batch_seqs, at_least(1)),
      value("batch_seqs_start", &O::batch_seqs_start),  // in [0, batch_seqs]: check_training
      value("batch_ramp_tokens", &O::batch_ramp_tokens, kNonNegative),
      value("grad_accum", &O::grad_accum, at_least(1)),
      value("steps", &O::steps, kNonNegative),
      value("time_budget_minutes", &O::time_budget_minutes, kNonNegative),
      value("lr", &O::lr, &L::lr, kPositive),
      value("min_lr", &O::lr, &L::min_lr, kNonNegative),
      value("warmup_steps", &O::lr, &L::warmup_steps, kNonNegative),
      value("constant_steps", &O::lr, &L::constant_steps, kUnset),
      value("decay_steps", &O::lr, &L::decay_steps, kUnset),
      value("constant_frac", &O::lr, &L::constant_frac, kFractionOrUnset),
      value("decay_frac", &O::lr, &L::decay_frac, kFractionOrUnset),
      value("weight_decay", &O::weight_decay, kNonNegative),
      value("beta1", &O::beta1, kBelowOne),
      value("beta2", &O::beta2, kBelowOne),
      value("eps", &O::eps, kPositive),
      value("clip", &O::clip, kNonNegative),
      value("seed", &O::seed),
      value("init_std", &O::init_std, kNonNegative),
      // λ: mtp_lambda_final defaults to mtp_lambda when that is given, else to the paper's 0.3 → 0.1.
      reading(value("mtp_lambda", &O::mtp_lambda, &Step::before, kNonNegative),
              [](Reader& r, O& o) {
                r.get("mtp_lambda", o.mtp_lambda.before);
                if (r.has("mtp_lambda")) o.mtp_lambda.after = o.mtp_lambda.before;
              }),
      value("mtp_lambda_final", &O::mtp_lambda, &Step::after, kNonNegative),
      value("mtp_lambda_switch_frac", &O::mtp_lambda, &Step::switch_frac, kFraction),
      value("eval_every", &O::eval_every, kNonNegative),
      value("eval_batches", &O::eval_batches, at_least(1)),
      value("ckpt_every", &O::ckpt_every, kNonNegative),
      value("log_every", &O::log_every, at_least(1)),
      {"precision",
       [](Reader& r, O& o) {
         std::string precision = precision_name(o.precision);
         r.get("precision", precision);
         o.precision = parse_precision(precision, r.label() + ": 'training.precision'");
       },
       [](const O& o) -> std::optional<json> { return precision_name(o.precision); }},
      {"fp8",
       [](Reader& r, O& o) {
         const json* f = r.object("fp8");
         if (!f) return;
         if (o.precision != Precision::FP8)
           fail("{}: 'training.fp8' configures precision fp8, but 'training.precision' is {}", r.label(),
                precision_name(o.precision));
         Reader fr(*f, r.label() + ": training.fp8", r.label(), "training.fp8");
         read_fields(fp8_fields(), fr, o.fp8);
       },
       [](const O& o) -> std::optional<json> {
         if (o.precision != Precision::FP8) return std::nullopt;
         return write_fields(fp8_fields(), o.fp8);
       }},
      {"balance",
       [](Reader& r, O& o) {
         const json* b = r.object("balance");
         if (!b) return;
         Reader br(*b, r.label() + ": training.balance", r.label(), "training.balance");
         read_fields(balance_fields(), br, o);
         if (o.balance != BalanceMode::AuxFree && o.gamma != 0)
           fail("{}: training.balance.gamma applies to mode aux_free only (mode is {})", r.label(),
                balance_mode_name(o.balance));
         if (o.balance == BalanceMode::None && o.balance_alpha != 0)
           fail("{}: training.balance.alpha must be 0 with mode none", r.label());
       },
       [](const O& o) -> std::optional<json> { return write_fields(balance_fields(), o); }},
      {"dsa",
       [](Reader& r, O& o) {
         const json* d = r.object("dsa");
         if (!d) return;
         Reader dr(*d, r.label() + ": training.dsa", r.label(), "training.dsa");
         read_fields(dsa_fields(), dr, o);
       },
       [](const O& o) -> std::optional<json> {
         if (!o.indexer_model) return std::nullopt;
         return write_fields(dsa_fields(), o);
       }},
  };
  return table;
}

// The rules that span keys, after every key's own range.
void check_training(const TrainOptions& o, const std::string& L) {
  if (o.grad_accum > o.batch_seqs)
    fail("{}: 'training.grad_accum' ({}) exceeds 'training.batch_seqs' ({})", L, o.grad_accum, o.batch_seqs);
  if (o.batch_seqs_start < 0 || o.batch_seqs_start > o.batch_seqs)
    fail("{}: 'training.batch_seqs_start' must lie in [0, batch_seqs = {}], got {}", L, o.batch_seqs,
         o.batch_seqs_start);
  if (o.lr.min_lr > o.lr.lr) fail("{}: 'training.min_lr' ({}) exceeds 'training.lr' ({})", L, o.lr.min_lr, o.lr.lr);
}

TrainOptions parse_training(const json& t, const std::string& label) {
  TrainOptions o;
  Reader r(t, label, label, "training");
  read_fields(training_fields(), r, o);
  check_training(o, label);
  return o;
}

}  // namespace

const char* dsa_stage_name(DsaStage s) { return s == DsaStage::DenseWarmup ? "dense_warmup" : "sparse"; }

const char* balance_mode_name(BalanceMode m) {
  switch (m) {
    case BalanceMode::AuxFree:
      return "aux_free";
    case BalanceMode::AuxLoss:
      return "aux_loss";
    case BalanceMode::None:
      return "none";
  }
  return "?";
}

json TrainOptions::to_json() const { return write_fields(training_fields(), *this); }

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
      fail(
          "{}: 'vocab_size' ({}) is smaller than the tokenizer's vocabulary ({}); leave it out to take the "
          "tokenizer's",
          label, model["vocab_size"].dump(), tok->vocab_size);
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
    fail(
        "{}: balance mode aux_free moves e_score_correction_bias, which needs 'topk_method': 'noaux_tc' (got a "
        "model without the bias); use mode aux_loss or none",
        label);
  if (training.contains("dsa") && !s.model.has_indexer())
    fail("{}: 'training.dsa' trains DeepSeek-V3.2's lightning indexer, but model_type {} has none", label,
         model.value("model_type", std::string("?")));
  if (!s.model.index_shared.empty())
    fail(
        "{}: key 'indexer_types' has \"shared\" layers (GLM-5.x's IndexShare): dsv3 trains only models whose every "
        "layer has its own indexer (\"full\"); shared layers run for inference only",
        label);
  s.train.indexer_model = s.model.has_indexer();
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
