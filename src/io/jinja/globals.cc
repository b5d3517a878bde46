// The template globals: jinja2's range (the sandbox's: at most 100000 items, as Hugging Face's
// ImmutableSandboxedEnvironment allows), namespace, dict, joiner and cycler, and Hugging Face's
// raise_exception(message) and strftime_now(format) (datetime.now().strftime, local time).
#include <algorithm>
#include <cmath>
#include <ctime>

#include "io/jinja/interpreter.h"

namespace dsv3::io::jinja::detail {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value range(Interpreter&, Args& args) {
  if (!args.kwargs.empty()) render_fail("range() takes no keyword arguments");
  for (const Value& v : args.positional) {
    if (!v.is_integral()) render_fail("'{}' object cannot be interpreted as an integer", type_name(v));
  }
  int64_t start = 0, stop = 0, step = 1;
  const size_t n = args.positional.size();
  if (n == 1) {
    stop = args.positional[0].as_int();
  } else if (n == 2 || n == 3) {
    start = args.positional[0].as_int();
    stop = args.positional[1].as_int();
    if (n == 3) step = args.positional[2].as_int();
  } else {
    render_fail("range expected 1 to 3 arguments, got {}", n);
  }
  if (step == 0) render_fail("range() arg 3 must not be zero");
  const double count =
      step > 0 ? std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / step)
               : std::ceil((static_cast<double>(start) - static_cast<double>(stop)) / -static_cast<double>(step));
  if (count > kMaxRange) {
    render_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
  }
  List items;
  for (int64_t k = 0; k < static_cast<int64_t>(std::max(count, 0.0)); ++k)
    items.push_back(Value::integer(start + k * step));
  return Value::new_list(std::move(items));
}

// dict(*args, **kwargs) as Python's: a mapping or an iterable of pairs, then the keywords.
void fill_dict(Dict& d, Args& args, const char* fn) {
  if (args.positional.size() > 1) render_fail("{} expected at most 1 argument, got {}", fn, args.positional.size());
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.kind == Kind::kDict) {
      for (const auto& kv : src.dict->items) d.set(kv.first, kv.second);
    } else {
      for (const Value& pair : iterate(src)) {
        const List kv = iterate(pair);
        if (kv.size() != 2) render_fail("{}: a sequence element has length {}; 2 is required", fn, kv.size());
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.kwargs) d.set(Value::string(k), v);
}

}  // namespace

void add_globals(std::unordered_map<std::string, Value>& g) {
  g["range"] = Value::callable("range", range);
  g["namespace"] = Value::callable("namespace", [](Interpreter&, Args& args) {
    Value ns = Value::object("Namespace", true);
    fill_dict(ns.obj->attrs, args, "namespace");
    return ns;
  });
  g["dict"] = Value::callable("dict", [](Interpreter&, Args& args) {
    Value d = Value::new_dict();
    fill_dict(*d.dict, args, "dict");
    return d;
  });
  g["raise_exception"] = Value::callable("raise_exception", [](Interpreter&, Args& args) -> Value {
    const auto a = bind("raise_exception", args, {"message"});
    render_fail("raise_exception: {}", a[0] ? to_str(*a[0]) : "");
  });
  g["strftime_now"] = Value::callable("strftime_now", [](Interpreter&, Args& args) {
    const auto a = bind("strftime_now", args, {"format"});
    if (!a[0] || !a[0]->is_string()) render_fail("strftime_now() needs a format string");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[512];
    const size_t n = std::strftime(buf, sizeof buf, a[0]->s.c_str(), &tm);
    if (n == 0 && !a[0]->s.empty()) render_fail("strftime_now(): the formatted date is empty or too long");
    return Value::string(std::string(buf, n));
  });
  g["joiner"] = Value::callable("joiner", [](Interpreter&, Args& args) {
    const auto a = bind("joiner", args, {"sep"});
    const std::string sep = a[0] ? to_str(*a[0]) : ", ";
    auto used = std::make_shared<bool>(false);
    return Value::callable("joiner", [sep, used](Interpreter&, Args&) {
      if (!*used) {
        *used = true;
        return Value::string("");
      }
      return Value::string(sep);
    });
  });
  g["cycler"] = Value::callable("cycler", [](Interpreter&, Args& args) {
    if (args.positional.empty()) render_fail("cycler() needs at least one item");
    auto items = std::make_shared<List>(args.positional);
    auto pos = std::make_shared<size_t>(0);
    Value c = Value::object("Cycler", false);
    std::weak_ptr<Object> self = c.obj;
    c.obj->attrs.set(Value::string("current"), (*items)[0]);
    c.obj->attrs.set(Value::string("next"), Value::callable("next", [items, pos, self](Interpreter&, Args&) {
                       Value v = (*items)[*pos];
                       *pos = (*pos + 1) % items->size();
                       if (auto o = self.lock()) o->attrs.set(Value::string("current"), (*items)[*pos]);
                       return v;
                     }));
    c.obj->attrs.set(Value::string("reset"), Value::callable("reset", [items, pos, self](Interpreter&, Args&) {
                       *pos = 0;
                       if (auto o = self.lock()) o->attrs.set(Value::string("current"), (*items)[0]);
                       return Value::none();
                     }));
    return c;
  });
}

}  // namespace dsv3::io::jinja::detail
