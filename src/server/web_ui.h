// The web chat page of `dsv3 serve` (docs/serving.md, "Web chat page"): GET / is the page, GET /web/NAME its
// files. The files are embedded into the binary at build time (src/server/web/web_ui.cmake turns
// src/server/web/ and the Debian packages' marked, DOMPurify and highlight.js into a generated
// web_assets.cc), so the page works offline and never loads anything from another origin.
//
// The page holds no data: it is served without the API key; the API calls it makes carry the key the user
// types into it (`Authorization: Bearer`), checked by the server as for any other client.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace httplib {
class Server;
}

namespace dsv3::server {

struct WebAsset {
  std::string_view name;          // as served under /web/ ("app.js")
  std::string_view content_type;  // from the name's extension
  std::string_view etag;          // "\"<16 hex digits of the SHA-256>\"", quotes included
  std::string_view body;
};

// Every embedded file, in the order web_ui.cmake lists them.
std::span<const WebAsset> web_assets();
// The file served as /web/NAME; nullptr when there is none (NAME is compared as is, never as a path).
const WebAsset* find_web_asset(std::string_view name);

// Registers GET / and GET /web/NAME (HEAD too, by cpp-httplib). Each answer has an ETag and
// `Cache-Control: no-cache` (the browser revalidates; If-None-Match → 304); the page has a
// Content-Security-Policy that allows scripts, styles and connections to this origin only. Unknown names
// get 404 from the server's error handler.
void install_web_ui(httplib::Server& svr);

namespace web_embedded {
// The generated table (web_assets.cc).
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  size_t size;
  const char* sha256_16;
};
extern const EmbeddedFile kFiles[];
extern const size_t kFileCount;
}  // namespace web_embedded

}  // namespace dsv3::server
