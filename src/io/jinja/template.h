// A Jinja2 template engine for the chat templates models publish (tokenizer_config.json "chat_template" or
// chat_template.jinja), with the semantics of Python's jinja2 as Hugging Face's apply_chat_template runs it:
// Environment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols extension, the globals
// raise_exception(msg) and strftime_now(fmt), and a tojson filter that does not escape non-ASCII.
// No C++ Jinja library is packaged for Debian, so this room is ours; it is tested differentially against
// @huggingface/jinja and minijinja-js (tests/io/jinja/).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dsv3::io::jinja {

struct Options {
  bool trim_blocks = true;    // the first newline after a block tag is removed
  bool lstrip_blocks = true;  // spaces and tabs before a block tag, from the line's start, are removed
};

namespace detail {
struct Program;  // the parsed template (ast.h)
}

class Template {
 public:
  // Parses `source`. A syntax error is a dsv3::Error "NAME:LINE:COL: message".
  explicit Template(std::string_view source, std::string name = "chat_template", Options options = {});
  ~Template();
  Template(const Template&);
  Template& operator=(const Template&);
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with `context`'s keys as variables (a JSON object; JSON null is Python's None). Objects keep
  // their key order, as Python dicts parsed from JSON do (items(), tojson and loops see the client's order):
  // hence ordered_json (a nlohmann::json converts implicitly, with its keys sorted). A runtime error
  // (raise_exception, a type error, an unknown filter) is a dsv3::Error "NAME:LINE: message".
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& name() const;

 private:
  std::shared_ptr<const detail::Program> program_;
};

}  // namespace dsv3::io::jinja
