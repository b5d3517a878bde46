// Template (template.h): parse once, render many times; each render runs its own Interpreter.
#include "io/jinja/template.h"

#include "io/jinja/interpreter.h"
#include "io/jinja/parser.h"

namespace dsv3::io::jinja {

Template::Template(std::string_view source, std::string name, Options options)
    : program_(detail::parse(source, name, options)) {}
Template::~Template() = default;
Template::Template(const Template&) = default;
Template& Template::operator=(const Template&) = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context) const {
  detail::Interpreter interpreter(*program_, context);
  return interpreter.run();
}

const std::string& Template::name() const { return program_->name; }

}  // namespace dsv3::io::jinja
