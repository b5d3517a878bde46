// A servable model directory, loaded in one place: what generate, chat, serve and bench (and the HTTP
// server) need beside the weights.
//
//   model          config.json + safetensors, with the caller's ModelOptions (bf16 activations, load mode)
//   tokenizer      tokenizer.json, when the directory has one
//   chat_prompt    how chat messages become a prompt (io/chat_prompt.h: the checkpoint's Jinja template,
//                  the V3.2 encoder, or the built-in DeepSeek-V3 renderer), when there is a tokenizer
//   eos_ids        config.json's eos_token_id (one id or a list) and the tokenizer's eos token: sorted,
//                  without duplicates — the ids that end a generation
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/chat_prompt.h"
#include "io/tokenizer.h"
#include "model/options.h"
#include "model/transformer.h"

namespace dsv3::runtime {

struct ModelBundle {
  std::string dir;
  std::unique_ptr<Model> model;
  std::optional<io::Tokenizer> tokenizer;
  std::optional<io::ChatPrompt> chat_prompt;
  std::vector<int32_t> eos_ids;

  // The ids generation may emit (GenerationRequest::emit_vocab): the tokenizer's, below the checkpoint's padded
  // embedding; 0 (all rows) without a tokenizer.
  int64_t emit_vocab() const { return tokenizer ? tokenizer->vocab_size() : 0; }

  // Throws dsv3::Error naming `dir` when it is not a directory, and the file's own error (config.json,
  // safetensors, tokenizer.json, tokenizer_config.json, the template) when one is present but unreadable or
  // invalid. `chat_template_file`: a Jinja file that replaces the directory's template (--chat-template).
  static ModelBundle load(const std::string& dir, const ModelOptions& options = {},
                          const std::string& chat_template_file = {});
};

}  // namespace dsv3::runtime
