#include "server/web_ui.h"

#include <httplib.h>

#include <string>
#include <vector>

namespace dsv3::server {

namespace {

std::string_view content_type_of(std::string_view name) {
  const auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

// Built once from the generated table; the strings point into it (static storage).
const std::vector<WebAsset>& table() {
  static const std::vector<WebAsset> assets = [] {
    static std::vector<std::string> etags;  // owns the quoted ETags
    etags.reserve(web_embedded::kFileCount);
    std::vector<WebAsset> v;
    for (size_t i = 0; i < web_embedded::kFileCount; ++i) {
      const web_embedded::EmbeddedFile& f = web_embedded::kFiles[i];
      etags.push_back("\"" + std::string(f.sha256_16) + "\"");
      v.push_back({.name = f.name,
                   .content_type = content_type_of(f.name),
                   .etag = etags.back(),
                   .body = std::string_view(reinterpret_cast<const char*>(f.data), f.size)});
    }
    return v;
  }();
  return assets;
}

// Scripts, styles, images and API calls from this origin only, nothing inline, no frames: a reply that
// slipped a <script> or an inline handler past the sanitizer would still not run.
constexpr const char* kPagePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void serve(const WebAsset& a, const httplib::Request& req, httplib::Response& res) {
  res.set_header("ETag", std::string(a.etag));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (a.content_type.starts_with("text/html")) {
    res.set_header("Content-Security-Policy", kPagePolicy);
    res.set_header("Referrer-Policy", "no-referrer");
  }
  // If-None-Match holds one ETag, a list, or "*".
  const std::string inm = req.get_header_value("If-None-Match");
  if (!inm.empty() && (inm == "*" || inm.find(a.etag) != std::string::npos)) {
    res.status = 304;
    return;
  }
  res.set_content(a.body.data(), a.body.size(), std::string(a.content_type));
}

}  // namespace

std::span<const WebAsset> web_assets() { return table(); }

const WebAsset* find_web_asset(std::string_view name) {
  for (const WebAsset& a : table())
    if (a.name == name) return &a;
  return nullptr;
}

void install_web_ui(httplib::Server& svr) {
  svr.Get("/", [](const httplib::Request& req, httplib::Response& res) {
    if (const WebAsset* a = find_web_asset("index.html"))
      serve(*a, req, res);
    else
      res.status = 404;
  });
  svr.Get(R"(/web/([^/]+))", [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* a = find_web_asset(req.matches[1].str());
    if (!a) {
      res.status = 404;  // the server's error handler writes the body
      return;
    }
    serve(*a, req, res);
  });
}

}  // namespace dsv3::server
