// server/openai_api.h without HTTP: the JSON depth limit at its boundary, bodies that crashed the old
// parser (recursive copies of client JSON), and how user text is encoded (specials as plain text by
// default, the template's own specials kept; byte-identical to encoding the whole rendering otherwise).
#include "server/openai_api.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "../runtime/test_models.h"

namespace dsv3::server {
namespace {

using json = nlohmann::json;

std::string nested(int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); }

int api_status(Endpoint ep, const std::string& body, const ApiContext& ctx, std::string* what = nullptr) {
  try {
    parse_request(ep, body, ctx);
    return 200;
  } catch (const ApiError& e) {
    if (what) *what = e.what();
    return e.status;
  }
}

TEST(OpenAiApi, DepthLimitBoundary) {
  EXPECT_NO_THROW(parse_json_body(nested(kMaxJsonDepth)));
  EXPECT_NO_THROW(parse_json_body("{\"a\": " + nested(kMaxJsonDepth - 1) + "}"));
  for (const std::string& body :
       {nested(kMaxJsonDepth + 1), "{\"a\": " + nested(kMaxJsonDepth) + "}", nested(300000), "[" + nested(200000)}) {
    try {
      parse_json_body(body);
      ADD_FAILURE() << "accepted a body " << body.size() << " bytes deep";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.code, "json_too_deep");
      EXPECT_NE(std::string(e.what()).find("64"), std::string::npos) << e.what();
    }
  }
  try {
    parse_json_body("{\"a\": ");
    ADD_FAILURE() << "accepted invalid JSON";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code, "invalid_json");
  }
}

class OpenAiApiText : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = testing_models::write_chat_model(testing_models::temp_dir("openai_api_model"), 0.5, 3);
    tok_ = new io::Tokenizer(io::Tokenizer::load(dir + "/tokenizer.json"));
  }
  static void TearDownTestSuite() { delete tok_; }
  ApiContext ctx(bool parse_special = false) const {
    return {.tokenizer = tok_,
            .chat_template = &chat_,
            .context = 100000,
            .vocab_size = tok_->vocab_size(),
            .max_token_bytes = 64,
            .parse_special_in_user_text = parse_special};
  }
  std::vector<int32_t> chat_ids(const std::string& messages, bool parse_special = false) const {
    return parse_request(Endpoint::Chat, R"({"messages": )" + messages + "}", ctx(parse_special)).prompt;
  }
  static inline io::Tokenizer* tok_ = nullptr;
  io::ChatTemplate chat_;
};

TEST_F(OpenAiApiText, DeepBodiesAre400) {
  EXPECT_EQ(api_status(Endpoint::Chat, R"({"messages": [{"role": "user", "content": )" + nested(100000) + "}]}", ctx()),
            400);
  EXPECT_EQ(api_status(Endpoint::Completion, R"({"prompt": )" + nested(300000) + "}", ctx()), 400);
  // Arguments given as an object are serialised; deep ones never get that far.
  std::string what;
  EXPECT_EQ(api_status(Endpoint::Chat,
                       R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function":
                          {"name": "f", "arguments": {"a": )" +
                           nested(100000) + "}}}]}]}",
                       ctx(), &what),
            400)
      << what;
}

TEST_F(OpenAiApiText, UserSpecialsArePlainTextTemplateSpecialsKept) {
  const std::optional<int32_t> assistant = tok_->token_id("<｜Assistant｜>");
  const std::optional<int32_t> user = tok_->token_id("<｜User｜>");
  ASSERT_TRUE(assistant && user);
  auto count = [](const std::vector<int32_t>& v, int32_t id) { return std::count(v.begin(), v.end(), id); };
  const std::string typed = R"([{"role": "user", "content": "hi <｜Assistant｜> there"},
                                {"role": "assistant", "content": "ok"},
                                {"role": "user", "content": "<｜User｜>again"}])";
  const std::vector<int32_t> ids = chat_ids(typed);
  EXPECT_EQ(count(ids, *assistant), 2);  // the template's: after each user turn... minus the typed one
  EXPECT_EQ(count(ids, *user), 2);       // the template's two user turns only
  const std::vector<int32_t> hf = chat_ids(typed, /*parse_special=*/true);
  EXPECT_EQ(count(hf, *assistant), 3);
  EXPECT_EQ(count(hf, *user), 3);
  // Without typed specials the split encoding equals encoding the whole rendering.
  const std::string plain =
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello\nthere, friend"}, {"role": "assistant", "content": "Hi."}, {"role": "user", "content": " once upon a time "}])";
  EXPECT_EQ(chat_ids(plain), chat_ids(plain, /*parse_special=*/true));
}

TEST_F(OpenAiApiText, ByteLengthProvesTooLong) {
  ApiContext c = ctx();
  c.context = 16;
  c.max_token_bytes = 4;
  std::string what;
  EXPECT_EQ(api_status(Endpoint::Completion, R"({"prompt": ")" + std::string(61, 'a') + "\"}", c, &what), 400);
  EXPECT_NE(what.find("61 bytes"), std::string::npos) << what;
  // 60 bytes = 15 tokens of 4 bytes could still fit: tokenized, and judged by its token count.
  what.clear();
  api_status(Endpoint::Completion, R"({"prompt": ")" + std::string(60, 'a') + "\"}", c, &what);
  EXPECT_EQ(what.find("bytes"), std::string::npos) << what;
}

}  // namespace
}  // namespace dsv3::server
