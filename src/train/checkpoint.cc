#include "train/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
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
  return {{"step", step},
          {"total_steps", total_steps},
          {"tokens_seen", tokens_seen},
          {"data", {{"epoch", data.epoch}, {"index", data.index}}},
          {"seed", seed},
          {"elapsed_s", elapsed_s},
          {"tokenizer_sha256", tokenizer_sha256},
          {"train_tokens", train_tokens}};
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
  if (s.step < 0 || s.total_steps <= 0 || s.step > s.total_steps)
    fail("{}: step {} / total_steps {} are inconsistent", label, s.step, s.total_steps);
  return s;
}

void save_checkpoint(const std::string& run_dir, const ModelConfig& c, const nlohmann::json& train_config,
                     const Params& params, const AdamW& opt, const TrainerState& st, const CheckpointFiles& files) {
  const std::string tmp = run_dir + "/checkpoint.tmp", dst = run_dir + "/checkpoint", old = run_dir + "/checkpoint.old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("cannot create {}: {}", tmp, ec.message());

  save_params(tmp, c, params, InitDType::F32);
  std::vector<io::TensorToWrite> moments;
  for (size_t i = 0; i < params.size(); ++i) {
    if (opt.exp_avg(i).empty()) continue;
    const WeightSpec& s = params.specs()[i];
    moments.push_back({s.name + ".exp_avg", DType::F32, s.shape, opt.exp_avg(i).data()});
    moments.push_back({s.name + ".exp_avg_sq", DType::F32, s.shape, opt.exp_avg_sq(i).data()});
  }
  io::write_safetensors(tmp + "/optimizer.safetensors", moments, {{"step", std::to_string(opt.steps())}});
  io::write_file_atomic(tmp + "/trainer_state.json", st.to_json().dump(2) + "\n");
  io::write_file_atomic(tmp + "/train_config.json", train_config.dump(2) + "\n");
  for (const auto& [name, content] : files.extra) io::write_file_atomic(tmp + "/" + name, content);

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
    const Params loaded = load_params(c, ck);
    for (size_t i = 0; i < params.size(); ++i)
      std::copy(loaded.value(i).begin(), loaded.value(i).end(), params.value(i).begin());
  }
  const std::string opath = ckpt_dir + "/optimizer.safetensors";
  auto f = io::SafetensorsFile::open(opath);
  for (size_t i = 0; i < params.size(); ++i) {
    if (opt.exp_avg(i).empty()) continue;
    const WeightSpec& s = params.specs()[i];
    for (const char* which : {".exp_avg", ".exp_avg_sq"}) {
      const std::string name = s.name + which;
      const TensorView* t = f->find(name);
      if (!t) fail("{}: missing tensor {}", opath, name);
      if (t->dtype != DType::F32 || t->shape != s.shape)
        fail("{}: {} is {} {}, expected F32 {}", opath, name, dtype_name(t->dtype), shape_str(t->shape),
             shape_str(s.shape));
      std::vector<float>& dst = std::strcmp(which, ".exp_avg") == 0 ? opt.exp_avg(i) : opt.exp_avg_sq(i);
      std::memcpy(dst.data(), t->data, dst.size() * sizeof(float));
    }
  }
  auto it = f->metadata().find("step");
  if (it == f->metadata().end()) fail("{}: metadata has no 'step'", opath);
  opt.set_steps(std::stoll(it->second));
  if (opt.steps() != st.step)
    fail("{}: optimizer step {} disagrees with trainer step {}", ckpt_dir, opt.steps(), st.step);
  return st;
}

}  // namespace dsv3::train
