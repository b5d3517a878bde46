#include "train/checkpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "dist/world.h"
#include "io/safetensors.h"
#include "train/param_io.h"

namespace dsv3::train {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end()) fail("{}: missing key '{}'", label, key);
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: key '{}' has the wrong type ({})", label, key, it->dump());
  }
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {
      {"step", step},
      {"total_steps", total_steps},
      {"tokens_seen", tokens_seen},
      {"data", {{"epoch", data.epoch}, {"index", data.index}}},
      {"seed", seed},
      {"elapsed_s", elapsed_s},
      {"tokenizer_sha256", tokenizer_sha256},
      {"train_tokens", train_tokens},
      {"layout", pp > 1 ? nlohmann::json{{"pp", pp}, {"dp", dp}, {"ep", ep}} : nlohmann::json{{"dp", dp}, {"ep", ep}}}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& label) {
  TrainerState s;
  s.step = field<int64_t>(j, "step", label);
  s.total_steps = field<int64_t>(j, "total_steps", label);
  s.tokens_seen = field<int64_t>(j, "tokens_seen", label);
  const auto& d = j.contains("data") ? j["data"] : nlohmann::json();
  s.data.epoch = field<int64_t>(d, "epoch", label + ": data");
  s.data.index = field<int64_t>(d, "index", label + ": data");
  s.seed = field<uint64_t>(j, "seed", label);
  s.elapsed_s = field<double>(j, "elapsed_s", label);
  s.tokenizer_sha256 = field<std::string>(j, "tokenizer_sha256", label);
  s.train_tokens = field<int64_t>(j, "train_tokens", label);
  if (j.contains("layout")) {  // absent in checkpoints of single-process runs before data parallelism
    s.dp = field<int>(j["layout"], "dp", label + ": layout");
    s.ep = field<int>(j["layout"], "ep", label + ": layout");
    if (j["layout"].contains("pp")) s.pp = field<int>(j["layout"], "pp", label + ": layout");
  }
  if (s.step < 0 || s.total_steps <= 0 || s.step > s.total_steps)
    fail("{}: step {} / total_steps {} are inconsistent", label, s.step, s.total_steps);
  return s;
}

namespace {

// The moments opt holds (of the tensors `writes` marks, when given).
std::vector<io::TensorToWrite> moments_of(const Params& params, const AdamW& opt, uint64_t* bytes,
                                          const std::vector<char>* writes = nullptr) {
  std::vector<io::TensorToWrite> m;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!opt.holds(i) || (writes && !(*writes)[i])) continue;
    const WeightSpec& s = params.specs()[i];
    m.push_back({s.name + ".exp_avg", DType::F32, s.shape, opt.exp_avg(i).data()});
    m.push_back({s.name + ".exp_avg_sq", DType::F32, s.shape, opt.exp_avg_sq(i).data()});
    if (bytes) *bytes += 2 * uint64_t(opt.exp_avg(i).size()) * sizeof(float);
  }
  return m;
}

// DSV3_TEST_KILL_IN_SAVE=R[:K]: whether world rank `rank` dies in this (its `nth`) save.
bool kill_requested(int rank, int nth) {
  const char* v = std::getenv("DSV3_TEST_KILL_IN_SAVE");
  if (!v || !*v) return false;
  int r = -1, k = 1;
  if (std::sscanf(v, "%d:%d", &r, &k) < 1) return false;
  return r == rank && k == nth;
}

// A torn optimizer shard, then SIGKILL: what a rank killed while writing leaves behind.
[[noreturn]] void die_mid_write(const std::string& path, const std::vector<io::TensorToWrite>& moments) {
  io::write_safetensors(path, moments, {});
  std::error_code ec;
  fs::resize_file(path, fs::file_size(path, ec) / 2, ec);
  std::fprintf(stderr, "DSV3_TEST_KILL_IN_SAVE: rank %d kills itself in the middle of its checkpoint shard\n",
               dist::world().rank());
  std::fflush(stderr);
  ::kill(::getpid(), SIGKILL);
  std::abort();
}

void swap_in(const std::string& run_dir) {
  const std::string tmp = run_dir + "/checkpoint.tmp", dst = run_dir + "/checkpoint", old = run_dir + "/checkpoint.old";
  std::error_code ec;
  // Swap: old checkpoint aside, new one in, old one gone.
  fs::remove_all(old, ec);
  if (fs::exists(dst)) {
    fs::rename(dst, old, ec);
    if (ec) fail("cannot rename {} to {}: {}", dst, old, ec.message());
  }
  fs::rename(tmp, dst, ec);
  if (ec) fail("cannot rename {} to {}: {}", tmp, dst, ec.message());
  fs::remove_all(old, ec);
}

void fresh_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create {}: {}", dir, ec.message());
}

void write_common(const std::string& dir, const nlohmann::json& train_config, const CheckpointFiles& files) {
  io::write_file_atomic(dir + "/train_config.json", train_config.dump(2) + "\n");
  for (const auto& [name, content] : files.extra) io::write_file_atomic(dir + "/" + name, content);
}

}  // namespace

void save_checkpoint(const std::string& run_dir, const ModelConfig& c, const nlohmann::json& train_config,
                     const Params& params, const AdamW& opt, const TrainerState& st, const CheckpointFiles& files,
                     const CheckpointRanks& ranks) {
  static int saves = 0;
  ++saves;
  const std::string tmp = run_dir + "/checkpoint.tmp";
  dist::Comm* world = ranks.world;
  if (!world || world->size() == 1) {
    fresh_dir(tmp);
    save_params(tmp, c, params, InitDType::F32);
    const std::vector<io::TensorToWrite> moments = moments_of(params, opt, nullptr);
    if (kill_requested(0, saves)) die_mid_write(tmp + "/optimizer.safetensors", moments);
    io::write_safetensors(tmp + "/optimizer.safetensors", moments, {{"step", std::to_string(opt.steps())}});
    io::write_file_atomic(tmp + "/trainer_state.json", st.to_json().dump(2) + "\n");
    write_common(tmp, train_config, files);
    swap_in(run_dir);
    return;
  }

  const int rank = world->rank(), N = world->size();
  if (ranks.writes.size() != params.size())
    fail("checkpoint: rank {} has {} write flags for {} tensors", rank, ranks.writes.size(), params.size());
  if (rank == 0) fresh_dir(tmp);
  world->barrier();

  // This rank's shards.
  const std::string model_file = fmt::format("model-{:05d}-of-{:05d}.safetensors", rank + 1, N);
  const std::string opt_file = fmt::format("optimizer-{:05d}-of-{:05d}.safetensors", rank + 1, N);
  nlohmann::json mine{{"model", nlohmann::json::array()}, {"optimizer", nlohmann::json::array()}};
  uint64_t model_bytes = 0, opt_bytes = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (ranks.writes[i]) mine["model"].push_back(params.specs()[i].name);
    if (ranks.writes[i] && trainable(params.specs()[i].role) && !opt.holds(i))
      fail("checkpoint: rank {} writes {} but does not hold its moments", rank, params.specs()[i].name);
  }
  if (!mine["model"].empty()) model_bytes = save_params_file(tmp + "/" + model_file, params, ranks.writes);
  // The moments of the tensors it writes (a pipeline rank may hold more: a copy another rank also updates).
  const std::vector<io::TensorToWrite> moments = moments_of(params, opt, &opt_bytes, &ranks.writes);
  for (const auto& m : moments) mine["optimizer"].push_back(m.name);
  if (kill_requested(rank, saves)) die_mid_write(tmp + "/" + opt_file, moments);
  if (!moments.empty()) io::write_safetensors(tmp + "/" + opt_file, moments, {{"step", std::to_string(opt.steps())}});
  mine["model_bytes"] = model_bytes;
  mine["optimizer_bytes"] = opt_bytes;

  // Every rank is done with its shards once this collective returns; rank 0 writes the indexes and the
  // state last, then swaps the directory in.
  const std::vector<std::string> all = dist::allgather_bytes(*world, mine.dump());
  if (rank == 0) {
    nlohmann::json model_map = nlohmann::json::object(), opt_map = nlohmann::json::object();
    uint64_t model_total = 0, opt_total = 0;
    for (int r = 0; r < N; ++r) {
      const nlohmann::json j = nlohmann::json::parse(all[size_t(r)]);
      const std::string mf = fmt::format("model-{:05d}-of-{:05d}.safetensors", r + 1, N);
      const std::string of = fmt::format("optimizer-{:05d}-of-{:05d}.safetensors", r + 1, N);
      for (const auto& n : j["model"]) {
        if (model_map.contains(n.get<std::string>()))
          fail("checkpoint: {} is written by two ranks ({} and rank {})", n.get<std::string>(),
               model_map[n.get<std::string>()].get<std::string>(), r);
        model_map[n.get<std::string>()] = mf;
      }
      for (const auto& n : j["optimizer"]) opt_map[n.get<std::string>()] = of;
      model_total += j["model_bytes"].get<uint64_t>();
      opt_total += j["optimizer_bytes"].get<uint64_t>();
    }
    for (const WeightSpec& s : enumerate_weights(c))
      if (!s.optional && !model_map.contains(s.name)) fail("checkpoint: no rank wrote {}", s.name);
    io::write_file_atomic(
        tmp + "/model.safetensors.index.json",
        nlohmann::json{{"metadata", {{"total_size", model_total}}}, {"weight_map", model_map}}.dump(2) + "\n");
    io::write_file_atomic(
        tmp + "/optimizer.safetensors.index.json",
        nlohmann::json{{"metadata", {{"total_size", opt_total}, {"step", std::to_string(opt.steps())}}},
                       {"weight_map", opt_map}}
                .dump(2) +
            "\n");
    save_config_json(tmp, c);
    write_common(tmp, train_config, files);
    io::write_file_atomic(tmp + "/trainer_state.json", st.to_json().dump(2) + "\n");
    swap_in(run_dir);
  }
  world->barrier();
}

std::string checkpoint_dir(const std::string& run_dir) {
  for (const char* name : {"checkpoint", "checkpoint.old"}) {
    const std::string d = run_dir + "/" + name;
    if (fs::exists(d + "/trainer_state.json")) return d;
  }
  fail("{}: no checkpoint to resume from (expected {}/checkpoint/trainer_state.json)", run_dir, run_dir);
}

nlohmann::json read_checkpoint_train_config(const std::string& ckpt_dir) {
  return read_json(ckpt_dir + "/train_config.json");
}

namespace {

// The optimizer moments of a checkpoint: optimizer.safetensors, or optimizer.safetensors.index.json and its
// shards.
class MomentFiles {
 public:
  explicit MomentFiles(const std::string& dir) {
    const std::string single = dir + "/optimizer.safetensors", index = dir + "/optimizer.safetensors.index.json";
    if (fs::exists(single)) {
      label_ = single;
      files_.push_back(io::SafetensorsFile::open(single));
      for (const auto& [name, view] : files_[0]->tensors()) where_[name] = &view;
      auto it = files_[0]->metadata().find("step");
      if (it == files_[0]->metadata().end()) fail("{}: metadata has no 'step'", single);
      step_ = it->second;
      return;
    }
    label_ = index;
    const nlohmann::json j = read_json(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: missing or non-object 'weight_map'", index);
    const auto& md = j.contains("metadata") ? j["metadata"] : nlohmann::json();
    step_ = field<std::string>(md, "step", index + ": metadata");
    std::map<std::string, size_t> opened;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail("{}: weight_map['{}'] must be a file name", index, it.key());
      const std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file == ".." || file.empty())
        fail("{}: weight_map['{}'] = '{}' is not a file of the checkpoint directory", index, it.key(), file);
      auto [o, fresh] = opened.emplace(file, files_.size());
      if (fresh) {
        if (!fs::exists(dir + "/" + file)) fail("{}: shard {} (holding '{}') is missing", index, file, it.key());
        files_.push_back(io::SafetensorsFile::open(dir + "/" + file));
      }
      const TensorView* t = files_[o->second]->find(it.key());
      if (!t) fail("{}: '{}' is listed for {} but absent from it", index, it.key(), file);
      where_[it.key()] = t;
    }
  }
  const std::string& label() const { return label_; }
  const std::string& step() const { return step_; }
  const TensorView* find(const std::string& name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : it->second;
  }

 private:
  std::string label_, step_;
  std::vector<std::shared_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> where_;
};

}  // namespace

TrainerState load_checkpoint(const std::string& ckpt_dir, const ModelConfig& c, Params& params, AdamW& opt) {
  const TrainerState st =
      TrainerState::from_json(read_json(ckpt_dir + "/trainer_state.json"), ckpt_dir + "/trainer_state.json");
  {
    const io::Checkpoint ck = io::Checkpoint::open(ckpt_dir);
    for (size_t i = 0; i < params.size(); ++i) {
      const TensorView* t = ck.find(params.specs()[i].name);
      if (t && t->dtype != DType::F32)
        fail("{}: {} is {}; resuming needs the float32 master weights", ckpt_dir, params.specs()[i].name,
             dtype_name(t->dtype));
    }
    const Params loaded = load_params(c, ck, params.scope());
    if (loaded.size() != params.size()) fail("internal: {} tensors loaded for {} held", loaded.size(), params.size());
    for (size_t i = 0; i < params.size(); ++i)
      std::copy(loaded.value(i).begin(), loaded.value(i).end(), params.value(i).begin());
  }
  const MomentFiles f(ckpt_dir);
  for (size_t i = 0; i < params.size(); ++i) {
    if (!opt.holds(i)) continue;
    const WeightSpec& s = params.specs()[i];
    for (const char* which : {".exp_avg", ".exp_avg_sq"}) {
      const std::string name = s.name + which;
      const TensorView* t = f.find(name);
      if (!t) fail("{}: missing tensor {}", f.label(), name);
      if (t->dtype != DType::F32 || t->shape != s.shape)
        fail("{}: {} is {} {}, expected F32 {}", f.label(), name, dtype_name(t->dtype), shape_str(t->shape),
             shape_str(s.shape));
      std::vector<float>& dst = std::strcmp(which, ".exp_avg") == 0 ? opt.exp_avg(i) : opt.exp_avg_sq(i);
      std::memcpy(dst.data(), t->data, dst.size() * sizeof(float));
    }
  }
  try {
    opt.set_steps(std::stoll(f.step()));
  } catch (const std::exception&) {
    fail("{}: metadata 'step' is not a number: '{}'", f.label(), f.step());
  }
  if (opt.steps() != st.step)
    fail("{}: optimizer step {} disagrees with trainer step {}", ckpt_dir, opt.steps(), st.step);
  return st;
}

}  // namespace dsv3::train
