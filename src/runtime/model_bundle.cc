#include "runtime/model_bundle.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace dsv3::runtime {

ModelBundle ModelBundle::load(const std::string& dir, const ModelOptions& options,
                              const std::string& chat_template_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail("{}: {} (expected a model directory: config.json, safetensors, tokenizer.json)", dir,
         fs::exists(dir, ec) ? "not a directory" : "no such directory");
  ModelBundle b;
  b.dir = dir;
  b.model = Model::load(dir, options);
  const fs::path d(dir);
  if (fs::exists(d / "tokenizer.json", ec)) b.tokenizer = io::Tokenizer::load(dir);
  if (b.tokenizer) b.chat_prompt = io::ChatPrompt::load(dir, b.model->config().model_type, chat_template_file);
  for (int64_t id : b.model->config().eos_token_ids) b.eos_ids.push_back(int32_t(id));
  if (b.tokenizer && b.tokenizer->eos_id()) b.eos_ids.push_back(*b.tokenizer->eos_id());
  std::sort(b.eos_ids.begin(), b.eos_ids.end());
  b.eos_ids.erase(std::unique(b.eos_ids.begin(), b.eos_ids.end()), b.eos_ids.end());
  return b;
}

}  // namespace dsv3::runtime
