// safetensors reader (mmap, zero-copy), sharded checkpoints, atomic writer.
//
// Follows the format as huggingface/safetensors defines it (u64 LE header length, JSON header, data section)
// with two deliberate differences from the Rust reference's validation:
//   * gaps between tensors and trailing bytes after the last tensor are allowed (the reference requires
//     the tensors to tile the data section exactly); overlapping non-empty tensors are still an error;
//   * duplicate tensor names in one header are an error (JSON parsers disagree on which one wins).
// The writer lays tensors out by decreasing element size and pads the header with spaces to a multiple of
// 8 bytes, as the reference writer does, so every tensor is naturally aligned inside the file.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace dsv3::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the reference implementation (100 MB)
constexpr int kMaxJsonDepth = 16;                  // a valid header nests 3 deep

const char* json_type(const json& v) { return v.type_name(); }

// Reads a non-negative integer from a JSON number; nullopt when not an integer or negative.
std::optional<uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i >= 0) return uint64_t(i);
  }
  return std::nullopt;
}

HeaderEntry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& label) {
  if (!v.is_object()) fail("{}: tensor '{}': header entry must be a JSON object, got {}", label, name, json_type(v));
  HeaderEntry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) fail("{}: tensor '{}': missing 'dtype'", label, name);
  if (!dt->is_string()) fail("{}: tensor '{}': 'dtype' must be a string, got {}", label, name, json_type(*dt));
  auto parsed = parse_dtype(dt->get_ref<const std::string&>());
  if (!parsed) fail("{}: tensor '{}': unknown dtype '{}'", label, name, dt->get_ref<const std::string&>());
  e.dtype = *parsed;

  auto sh = v.find("shape");
  if (sh == v.end()) fail("{}: tensor '{}': missing 'shape'", label, name);
  if (!sh->is_array()) fail("{}: tensor '{}': 'shape' must be an array, got {}", label, name, json_type(*sh));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *sh) {
    if (!d.is_number_integer())
      fail("{}: tensor '{}': shape entries must be integers, got {}", label, name, json_type(d));
    if (d.is_number_unsigned() ? d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                               : d.get<int64_t>() < 0)
      fail("{}: tensor '{}': negative or oversized dimension {} in shape", label, name, d.dump());
    int64_t dim = d.get<int64_t>();
    e.shape.push_back(dim);
    if (__builtin_mul_overflow(numel, uint64_t(dim), &numel)) overflow = true;
  }
  // numel must fit int64 (TensorView::numel) and numel * dtype size must fit the address space.
  uint64_t nbytes = 0;
  if (overflow || numel > uint64_t(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes))
    fail("{}: tensor '{}': element count of shape {} overflows", label, name, shape_str(e.shape));

  auto off = v.find("data_offsets");
  if (off == v.end()) fail("{}: tensor '{}': missing 'data_offsets'", label, name);
  if (!off->is_array() || off->size() != 2)
    fail("{}: tensor '{}': 'data_offsets' must be an array [begin, end], got {}", label, name,
         off->is_array() ? fmt::format("{} elements", off->size()) : std::string(json_type(*off)));
  auto b = as_u64((*off)[0]), en = as_u64((*off)[1]);
  if (!b || !en) fail("{}: tensor '{}': 'data_offsets' must be non-negative integers", label, name);
  e.begin = *b;
  e.end = *en;
  if (e.begin > e.end) fail("{}: tensor '{}': data_offsets begin {} > end {}", label, name, e.begin, e.end);
  if (e.end > data_size)
    fail("{}: tensor '{}': data_offsets [{}, {}] past the end of the data section ({} bytes; truncated file?)", label,
         name, e.begin, e.end, data_size);
  if (e.end - e.begin != nbytes)
    fail("{}: tensor '{}': {} bytes in data_offsets but {} {} needs {} bytes", label, name, e.end - e.begin,
         dtype_name(e.dtype), shape_str(e.shape), nbytes);
  return e;
}

std::string errno_str() { return std::strerror(errno); }

// Writes all n bytes, retrying on short writes and EINTR.
void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    size_t chunk = std::min<size_t>(n, size_t(1) << 30);
    ssize_t w = ::write(fd, c, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path, errno_str());
    }
    c += w;
    n -= size_t(w);
  }
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open directory to fsync: {}", dir.string(), errno_str());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems do not support fsync on directories (EINVAL); the rename is then as durable as it gets.
  if (rc != 0 && err != EINVAL) fail("{}: fsync of directory failed: {}", dir.string(), std::strerror(err));
}

// Writes `path` atomically: `<path>.tmp.<pid>` in the same directory, fsync, rename, fsync the directory.
void atomic_write(const std::string& path, const std::function<void(int fd, const std::string& tmp)>& body) {
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create temporary file {}: {}", path, tmp, errno_str());
  try {
    body(fd, tmp);
    if (::fsync(fd) != 0) fail("{}: fsync failed: {}", tmp, errno_str());
    if (::close(fd) != 0) {
      fd = -1;
      fail("{}: close failed: {}", tmp, errno_str());
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("{}: rename from {} failed: {}", path, tmp, errno_str());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_dir(dir);
}

uint64_t tensor_bytes(const TensorToWrite& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) fail("tensor '{}': negative dimension in shape {}", t.name, shape_str(t.shape));
    if (__builtin_mul_overflow(n, uint64_t(d), &n)) fail("tensor '{}': shape {} overflows", t.name, shape_str(t.shape));
  }
  if (__builtin_mul_overflow(n, uint64_t(dtype_size(t.dtype)), &n))
    fail("tensor '{}': shape {} overflows", t.name, shape_str(t.shape));
  return n;
}

bool is_safe_file_name(const std::string& f) {
  return !f.empty() && f.find('/') == std::string::npos && f.find('\\') == std::string::npos &&
         f.find("..") == std::string::npos && f.find('\0') == std::string::npos;
}

std::string read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, errno_str());
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail("{}: read failed: {}", path, std::strerror(err));
    }
    if (r == 0) break;
    s.append(buf, size_t(r));
    if (s.size() > kMaxHeaderBytes) {
      ::close(fd);
      fail("{}: larger than {} bytes, not an index", path, kMaxHeaderBytes);
    }
  }
  ::close(fd);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Header parsing

ParsedHeader parse_safetensors_header(const uint8_t* bytes, size_t size, const std::string& label) {
  if (size == 0) fail("{}: empty file (not a safetensors file)", label);
  if (size < 8) fail("{}: {} bytes is too small for a safetensors file (8-byte header length missing)", label, size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes) fail("{}: header length {} exceeds the 100 MB limit (not a safetensors file?)", label, n);
  if (n > size - 8)
    fail("{}: header length {} exceeds the {} bytes after the length field (truncated file?)", label, n, size - 8);
  if (n < 2) fail("{}: header length {} is too small for a JSON object", label, n);

  ParsedHeader out;
  out.data_offset = 8 + n;
  const uint64_t data_size = size - out.data_offset;
  const char* hb = reinterpret_cast<const char*>(bytes + 8);

  // Depth-limit the JSON and detect duplicate top-level keys while parsing.
  std::set<std::string> seen;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth > kMaxJsonDepth) fail("{}: header JSON nested deeper than {}", label, kMaxJsonDepth);
    if (ev == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second) fail("{}: tensor '{}' appears twice in the header", label, k);
    }
    return true;
  };
  json h;
  try {
    h = json::parse(hb, hb + n, cb);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", label, e.what());
  }
  if (!h.is_object()) fail("{}: header must be a JSON object, got {}", label, json_type(h));

  out.tensors.reserve(h.size());
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      const json& m = it.value();
      if (m.is_null()) continue;
      if (!m.is_object()) fail("{}: __metadata__ must be an object of strings, got {}", label, json_type(m));
      for (auto mi = m.begin(); mi != m.end(); ++mi) {
        if (!mi.value().is_string())
          fail("{}: __metadata__ value for key '{}' must be a string, got {}", label, mi.key(), json_type(mi.value()));
        out.metadata[mi.key()] = mi.value().get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(name, it.value(), data_size, label));
  }

  std::sort(out.tensors.begin(), out.tensors.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  // Overlap: a non-empty tensor starting before the furthest end seen so far. Empty tensors occupy no bytes.
  const HeaderEntry* furthest = nullptr;
  for (const HeaderEntry& e : out.tensors) {
    if (e.begin == e.end) continue;
    if (furthest && e.begin < furthest->end)
      fail("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", label, furthest->name, furthest->begin, furthest->end,
           e.name, e.begin, e.end);
    if (!furthest || e.end > furthest->end) furthest = &e;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// SafetensorsFile

namespace {

// The file's bytes in fresh anonymous memory (read-only once filled); closes fd.
void* read_whole(int fd, const std::string& path, size_t size) {
  void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    int err = errno;
    ::close(fd);
    fail("{}: cannot allocate {} bytes to read it into: {}", path, size, std::strerror(err));
  }
  size_t off = 0;
  while (off < size) {
    const ssize_t r = ::pread(fd, static_cast<char*>(m) + off, size - off, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : 0;
      ::close(fd);
      ::munmap(m, size);
      fail("{}: read failed at byte {} of {}: {}", path, off, size,
           r < 0 ? std::strerror(err) : "unexpected end of file");
    }
    off += size_t(r);
  }
  ::close(fd);
  ::mprotect(m, size, PROT_READ);
  return m;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, LoadMode mode) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, errno_str());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    parse_safetensors_header(nullptr, size, path);  // throws the "empty" / "too small" message
  }
  void* m = nullptr;
  if (mode == LoadMode::Mmap) {
    m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (m == MAP_FAILED) fail("{}: mmap of {} bytes failed: {}", path, size, std::strerror(err));
  } else {
    m = read_whole(fd, path, size);
  }
  f->map_ = m;
  f->map_size_ = size;

  const auto* base = static_cast<const uint8_t*>(m);
  ParsedHeader h = parse_safetensors_header(base, size, path);
  f->metadata_ = std::move(h.metadata);
  for (HeaderEntry& e : h.tensors) {
    TensorView v;
    v.dtype = e.dtype;
    v.shape = std::move(e.shape);
    v.data = reinterpret_cast<const std::byte*>(base + h.data_offset + e.begin);
    f->tensors_.emplace(std::move(e.name), std::move(v));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoint

Checkpoint Checkpoint::open(const std::string& dir, LoadMode mode) {
  Checkpoint c;
  c.dir_ = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory (expected a model directory)", dir);
  const fs::path d(dir);

  auto add_file = [&](const std::string& path) {
    auto f = SafetensorsFile::open(path, mode);
    size_t idx = c.files_.size();
    c.files_.push_back(f);
    for (const auto& [name, view] : f->tensors()) {
      auto [it, inserted] = c.index_.emplace(name, std::make_pair(&view, idx));
      if (!inserted) fail("{}: tensor '{}' is in both {} and {}", dir, name, c.files_[it->second.second]->path(), path);
    }
  };

  const fs::path single = d / "model.safetensors";
  const fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(single, ec)) {
    add_file(single.string());
  } else if (fs::exists(index, ec)) {
    const std::string ipath = index.string();
    json j;
    try {
      j = json::parse(read_text_file(ipath));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", ipath, e.what());
    }
    if (!j.is_object()) fail("{}: must be a JSON object", ipath);
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) fail("{}: missing or non-object 'weight_map'", ipath);
    // shard file -> one tensor that lives in it (for error messages), in first-seen order of file names.
    std::map<std::string, std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        fail("{}: weight_map['{}'] must be a file name string, got {}", ipath, it.key(), json_type(it.value()));
      const std::string& file = it.value().get_ref<const std::string&>();
      if (!is_safe_file_name(file))
        fail("{}: weight_map['{}'] = '{}' is not a plain file name in the model directory", ipath, it.key(), file);
      shards.emplace(file, it.key());
    }
    if (shards.empty()) fail("{}: weight_map is empty", ipath);
    std::map<std::string, size_t> file_idx;
    for (const auto& [file, some_tensor] : shards) {
      fs::path sp = d / file;
      if (!fs::exists(sp, ec)) fail("{}: shard {} (holding '{}') is missing from {}", ipath, file, some_tensor, dir);
      file_idx[file] = c.files_.size();
      add_file(sp.string());
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const std::string& file = it.value().get_ref<const std::string&>();
      auto found = c.index_.find(it.key());
      if (found == c.index_.end() || found->second.second != file_idx[file])
        fail("{}: tensor '{}' is listed in weight_map for {} but absent from that shard", ipath, it.key(), file);
    }
  } else {
    std::vector<std::string> all;
    for (const auto& de : fs::directory_iterator(d, ec))
      if (de.path().extension() == ".safetensors" && de.is_regular_file(ec)) all.push_back(de.path().string());
    if (ec) fail("{}: cannot list directory: {}", dir, ec.message());
    if (all.empty()) fail("{}: no model.safetensors, model.safetensors.index.json or *.safetensors", dir);
    std::sort(all.begin(), all.end());
    for (const auto& p : all) add_file(p);
  }
  return c;
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.first;
}

const TensorView& Checkpoint::get(const std::string& name) const {
  const TensorView* v = find(name);
  if (!v) fail("{}: tensor '{}' not found in the checkpoint", dir_, name);
  return *v;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;  // std::map order: sorted
}

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: tensor '{}' not found in the checkpoint", dir_, name);
  return files_[it->second.second]->path();
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& kv : index_) n += kv.second.first->nbytes();
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Writer

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Layout: larger element sizes first (then by name) so each tensor starts aligned to its element size.
  std::vector<const TensorToWrite*> order;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") fail("{}: '__metadata__' cannot be a tensor name", path);
    if (!names.insert(t.name).second) fail("{}: tensor '{}' given twice", path, t.name);
    order.push_back(&t);
  }
  std::stable_sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  uint64_t off = 0;
  for (const TensorToWrite* t : order) {
    uint64_t nb;
    try {
      nb = tensor_bytes(*t);
    } catch (const Error& e) {
      fail("{}: {}", path, e.what());
    }
    if (nb > 0 && t->data == nullptr) fail("{}: tensor '{}' has no data", path, t->name);
    h[t->name] = {{"dtype", std::string(dtype_name(t->dtype))}, {"shape", t->shape}, {"data_offsets", {off, off + nb}}};
    sizes.push_back(nb);
    off += nb;
  }
  std::string header;
  try {
    header = h.dump();
  } catch (const json::exception& e) {  // a name or metadata string that is not valid UTF-8
    fail("{}: cannot encode the header: {}", path, e.what());
  }
  header.append((8 - header.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));

  atomic_write(path, [&](int fd, const std::string& tmp) {
    write_all(fd, len, 8, tmp);
    write_all(fd, header.data(), header.size(), tmp);
    for (size_t i = 0; i < order.size(); ++i)
      if (sizes[i]) write_all(fd, order[i]->data, sizes[i], tmp);
  });
}

void write_checkpoint_tensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                              uint64_t max_shard_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create directory: {}", dir, ec.message());
  const fs::path d(dir);

  uint64_t total = 0;
  std::vector<uint64_t> sizes;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) fail("{}: tensor '{}' given twice", dir, t.name);
    uint64_t nb;
    try {
      nb = tensor_bytes(t);
    } catch (const Error& e) {
      fail("{}: {}", dir, e.what());
    }
    sizes.push_back(nb);
    total += nb;
  }
  // transformers refuses safetensors files whose metadata lacks format=pt.
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  std::set<std::string> keep;

  if (total <= max_shard_bytes) {
    write_safetensors((d / "model.safetensors").string(), tensors, meta);
    keep.insert("model.safetensors");
  } else {
    // Greedy in the given order; a tensor larger than the limit gets a shard of its own.
    std::vector<std::vector<size_t>> shards(1);
    uint64_t cur = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!shards.back().empty() && cur + sizes[i] > max_shard_bytes) {
        shards.emplace_back();
        cur = 0;
      }
      shards.back().push_back(i);
      cur += sizes[i];
    }
    const size_t n = shards.size();
    json weight_map = json::object();
    for (size_t s = 0; s < n; ++s) {
      std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n);
      std::vector<TensorToWrite> part;
      for (size_t i : shards[s]) {
        part.push_back(tensors[i]);
        weight_map[tensors[i].name] = file;
      }
      write_safetensors((d / file).string(), part, meta);
      keep.insert(file);
    }
    json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::string text;
    try {
      text = idx.dump(2) + "\n";
    } catch (const json::exception& e) {
      fail("{}: cannot encode the index: {}", dir, e.what());
    }
    write_file_atomic((d / "model.safetensors.index.json").string(), text);
    keep.insert("model.safetensors.index.json");
  }

  // Remove what a previous save left behind that would shadow or contradict this one (as transformers'
  // save_pretrained does): a stale single file, index, or shards of another count.
  static const std::regex shard_re(R"(model-\d{5}-of-\d{5}\.safetensors)");
  std::vector<fs::path> stale;
  for (const auto& de : fs::directory_iterator(d, ec)) {
    std::string f = de.path().filename().string();
    bool ours = f == "model.safetensors" || f == "model.safetensors.index.json" || std::regex_match(f, shard_re);
    if (ours && !keep.count(f)) stale.push_back(de.path());
  }
  for (const auto& p : stale)
    if (!fs::remove(p, ec) && ec) fail("{}: cannot remove stale {}: {}", dir, p.string(), ec.message());
  if (!stale.empty()) fsync_dir(d);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  atomic_write(path, [&](int fd, const std::string& tmp) { write_all(fd, content.data(), content.size(), tmp); });
}

}  // namespace dsv3::io
