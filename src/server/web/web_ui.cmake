# The web chat page of `dsv3 serve` (src/server/web_ui.h): our page (index.html, app.js, app.css, icon.svg)
# and the libraries it uses, taken from Debian packages (scripts/setup.sh installs them), embedded into the
# binary as byte arrays at build time. Nothing is fetched from the network when the page runs.
# Each library file is a cache variable, so another system can point at its own copy of the same version.
set(DSV3_WEB_MARKED_JS /usr/share/javascript/marked/marked.min.js CACHE FILEPATH
    "marked 4 (UMD build), Debian package libjs-marked")
set(DSV3_WEB_DOMPURIFY_JS /usr/share/nodejs/dompurify/dist/purify.min.js CACHE FILEPATH
    "DOMPurify 2 (browser build), Debian package node-dompurify")
set(DSV3_WEB_HIGHLIGHT_JS /usr/share/javascript/highlight.js/highlight.min.js CACHE FILEPATH
    "highlight.js 9.18 (all languages), Debian package libjs-highlight.js")
set(DSV3_WEB_HIGHLIGHT_LIGHT_CSS /usr/share/javascript/highlight.js/styles/github.css CACHE FILEPATH
    "highlight.js light theme, Debian package libjs-highlight.js")
set(DSV3_WEB_HIGHLIGHT_DARK_CSS /usr/share/javascript/highlight.js/styles/atom-one-dark.css CACHE FILEPATH
    "highlight.js dark theme, Debian package libjs-highlight.js")

set(web_dir ${CMAKE_CURRENT_SOURCE_DIR}/src/server/web)
# name served under /web/ = file
set(web_files
  "index.html=${web_dir}/index.html"
  "app.js=${web_dir}/app.js"
  "app.css=${web_dir}/app.css"
  "icon.svg=${web_dir}/icon.svg")
foreach(lib IN ITEMS "marked.min.js|DSV3_WEB_MARKED_JS|libjs-marked"
                     "purify.min.js|DSV3_WEB_DOMPURIFY_JS|node-dompurify"
                     "highlight.min.js|DSV3_WEB_HIGHLIGHT_JS|libjs-highlight.js"
                     "hljs-light.css|DSV3_WEB_HIGHLIGHT_LIGHT_CSS|libjs-highlight.js"
                     "hljs-dark.css|DSV3_WEB_HIGHLIGHT_DARK_CSS|libjs-highlight.js")
  string(REPLACE "|" ";" lib "${lib}")
  list(GET lib 0 name)
  list(GET lib 1 var)
  list(GET lib 2 pkg)
  if(NOT EXISTS "${${var}}")
    message(FATAL_ERROR "The web chat page needs ${${var}} (${var}): install the Debian package ${pkg} "
                        "(scripts/setup.sh does), or set ${var} to that file of another install.")
  endif()
  list(APPEND web_files "${name}=${${var}}")
endforeach()

set(web_out ${CMAKE_CURRENT_BINARY_DIR}/generated/web_assets.cc)
set(web_deps "")
foreach(entry IN LISTS web_files)
  string(REGEX REPLACE "^[^=]*=" "" path "${entry}")
  list(APPEND web_deps "${path}")
endforeach()
string(REPLACE ";" "|" web_arg "${web_files}")
add_custom_command(
  OUTPUT ${web_out}
  COMMAND ${CMAKE_COMMAND} "-DOUT=${web_out}" "-DFILES=${web_arg}" -P ${web_dir}/embed.cmake
  DEPENDS ${web_deps} ${web_dir}/embed.cmake
  COMMENT "Embedding the web chat page (src/server/web) into web_assets.cc"
  VERBATIM)
target_sources(dsv3_server PRIVATE ${web_out})
