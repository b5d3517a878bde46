// safetensors: round trips through the writer and the mmap reader, sharded checkpoints, every malformed
// header the parser must refuse (each as a crafted file whose error names the file and the tensor), and the
// reference checkpoints under DSV3_TESTDATA.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>

#include "core/error.h"

namespace dsv3::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dsv3_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  static std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string u64le(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(v >> (8 * i)));
    return s;
  }
  // A file: the 8-byte length of `header`, the header, then `data_bytes` bytes of data.
  std::string craft(const std::string& name, const std::string& header, size_t data_bytes) {
    std::string p = path(name);
    write_bytes(p, u64le(header.size()) + header + std::string(data_bytes, '\x5a'));
    return p;
  }

  std::string dir_;
};

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Expects SafetensorsFile::open(p, mode) to throw a dsv3::Error whose message contains every one of `parts`.
void expect_open_error(const std::string& p, std::initializer_list<std::string> parts, LoadMode mode = LoadMode::Mmap) {
  try {
    SafetensorsFile::open(p, mode);
    ADD_FAILURE() << p << ": expected a dsv3::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
}

void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected a dsv3::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
}

struct Owned {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<Owned> sample_tensors() {
  std::mt19937 rng(7);
  auto make = [&](std::string name, DType t, std::vector<int64_t> shape) {
    int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
    Owned o{std::move(name), t, std::move(shape), std::vector<uint8_t>(size_t(n) * dtype_size(t))};
    for (auto& b : o.bytes) b = uint8_t(rng());
    return o;
  };
  return {
      make("model.embed_tokens.weight", DType::BF16, {7, 5}),
      make("model.norm.weight", DType::F32, {5}),
      make("half", DType::F16, {3, 1}),
      make("layers.0.q.weight", DType::F8_E4M3, {13, 3}),  // odd byte count, placed last by the writer
      make("layers.0.q.weight_scale_inv", DType::F32, {1, 1}),
      make("positions", DType::I64, {2, 3}),
      make("scalar", DType::F32, {}),
      make("empty", DType::BF16, {0, 4}),
  };
}

std::vector<TensorToWrite> to_write(const std::vector<Owned>& ts) {
  std::vector<TensorToWrite> out;
  for (const auto& t : ts) out.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  return out;
}

void expect_same(const TensorView& v, const Owned& o) {
  EXPECT_EQ(v.dtype, o.dtype) << o.name;
  EXPECT_EQ(v.shape, o.shape) << o.name;
  ASSERT_EQ(v.nbytes(), o.bytes.size()) << o.name;
  if (!o.bytes.empty()) {
    EXPECT_EQ(std::memcmp(v.data, o.bytes.data(), o.bytes.size()), 0) << o.name;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Round trips

TEST_F(SafetensorsTest, RoundTripAllDtypes) {
  auto ts = sample_tensors();
  std::string p = path("model.safetensors");
  write_safetensors(p, to_write(ts), {{"format", "pt"}, {"note", "round trip"}});

  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->path(), p);
  ASSERT_EQ(f->tensors().size(), ts.size());
  for (const auto& o : ts) {
    const TensorView* v = f->find(o.name);
    ASSERT_NE(v, nullptr) << o.name;
    expect_same(*v, o);
  }
  EXPECT_EQ(f->find("absent"), nullptr);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "round trip");

  // Header padded to a multiple of 8 with spaces; every tensor aligned to its element size.
  std::string raw = read_bytes(p);
  auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), p);
  EXPECT_EQ(h.data_offset % 8, 0u);
  EXPECT_EQ(raw[h.data_offset - 1] == ' ' || raw[h.data_offset - 1] == '}', true);
  for (const auto& e : h.tensors) EXPECT_EQ(e.begin % dtype_size(e.dtype), 0u) << e.name;
  for (size_t i = 1; i < h.tensors.size(); ++i) EXPECT_LE(h.tensors[i - 1].begin, h.tensors[i].begin);

  // No temporary file left behind.
  for (const auto& de : fs::directory_iterator(dir_))
    EXPECT_EQ(de.path().filename().string().find(".tmp."), std::string::npos) << de.path();
}

TEST_F(SafetensorsTest, ReadModeGivesTheSameTensors) {
  // LoadMode::Read (`--no-mmap`): the file read into anonymous memory; the same views, and the same
  // refusals of a truncated file.
  auto ts = sample_tensors();
  std::string p = path("model.safetensors");
  write_safetensors(p, to_write(ts), {{"format", "pt"}});
  auto f = SafetensorsFile::open(p, LoadMode::Read);
  for (const auto& o : ts) {
    const TensorView* v = f->find(o.name);
    ASSERT_NE(v, nullptr) << o.name;
    expect_same(*v, o);
  }
  EXPECT_EQ(f->metadata().at("format"), "pt");
  std::string raw = read_bytes(p);
  write_bytes(path("trunc.safetensors"), raw.substr(0, raw.size() - 3));
  expect_open_error(path("trunc.safetensors"), {"trunc.safetensors", "truncated"}, LoadMode::Read);
  expect_open_error(path("does_not_exist.safetensors"), {"does_not_exist.safetensors"}, LoadMode::Read);
  // A checkpoint opened in Read mode: its files read too, the same tensors.
  Checkpoint c = Checkpoint::open(dir_, LoadMode::Read);
  for (const auto& o : ts) {
    const TensorView* v = c.find(o.name);
    ASSERT_NE(v, nullptr) << o.name;
    expect_same(*v, o);
  }
}

TEST_F(SafetensorsTest, ZeroTensors) {
  std::string p = path("nothing.safetensors");
  write_safetensors(p, {});
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
}

TEST_F(SafetensorsTest, OverwriteIsAtomicReplace) {
  auto ts = sample_tensors();
  std::string p = path("x.safetensors");
  write_safetensors(p, to_write(ts));
  auto old = SafetensorsFile::open(p);  // the old mapping survives the rename
  std::vector<uint8_t> one(4, 1);
  write_safetensors(p, {{"only", DType::F32, {1}, one.data()}});
  EXPECT_EQ(SafetensorsFile::open(p)->tensors().size(), 1u);
  expect_same(*old->find("model.norm.weight"), ts[1]);
}

TEST_F(SafetensorsTest, WriterRefusesBadInput) {
  std::vector<uint8_t> b(8);
  expect_error(
      [&] {
        write_safetensors(path("d.safetensors"), {{"a", DType::F32, {2}, b.data()}, {"a", DType::F32, {2}, b.data()}});
      },
      {"d.safetensors", "'a'"});
  expect_error(
      [&] {
        write_safetensors(path("n.safetensors"), {{"neg", DType::F32, {-2}, b.data()}});
      },
      {"n.safetensors", "neg"});
  expect_error(
      [&] {
        write_safetensors(path("m.safetensors"), {{"__metadata__", DType::F32, {2}, b.data()}});
      },
      {"m.safetensors", "__metadata__"});
  expect_error(
      [&] {
        write_safetensors(path("z.safetensors"), {{"null", DType::F32, {2}, nullptr}});
      },
      {"z.safetensors", "null"});
  expect_error([&] { write_safetensors(path("nodir/x.safetensors"), {}); }, {"nodir/x.safetensors"});
  expect_error(
      [&] {
        write_safetensors(path("utf8.safetensors"), {{"bad\xff", DType::U8, {1}, b.data()}});
      },
      {"utf8.safetensors"});
  expect_error(
      [&] {
        write_checkpoint_tensors(dir_, {{"w", DType::U8, {1}, b.data()}, {"w", DType::U8, {1}, b.data()}}, 1);
      },
      {dir_, "'w'"});
  expect_error([&] { write_checkpoint_tensors(path("ck"), {{"w", DType::U8, {-1}, b.data()}}); }, {"ck", "'w'"});
  for (const auto& de : fs::directory_iterator(dir_))  // nothing half-written left behind
    EXPECT_EQ(de.path().filename().string().find(".tmp."), std::string::npos) << de.path();
}

TEST_F(SafetensorsTest, WriteFileAtomic) {
  std::string p = path("config.json");
  write_file_atomic(p, "{\"a\": 1}\n");
  EXPECT_EQ(read_bytes(p), "{\"a\": 1}\n");
  write_file_atomic(p, "");
  EXPECT_EQ(read_bytes(p), "");
  expect_error([&] { write_file_atomic(path("missing/dir/config.json"), "x"); }, {"missing/dir/config.json"});
}

TEST_F(SafetensorsTest, ShardedRoundTrip) {
  auto ts = sample_tensors();
  size_t total = 0;
  for (const auto& t : ts) total += t.bytes.size();
  write_checkpoint_tensors(dir_, to_write(ts), /*max_shard_bytes=*/64);

  // HF naming and index.
  json idx = json::parse(read_bytes(path("model.safetensors.index.json")));
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), total);
  std::set<std::string> files;
  for (auto& [name, file] : idx["weight_map"].items()) files.insert(file.get<std::string>());
  ASSERT_GT(files.size(), 1u);
  const size_t n = files.size();
  for (size_t i = 1; i <= n; ++i) {
    std::string f = fmt::format("model-{:05d}-of-{:05d}.safetensors", i, n);
    EXPECT_TRUE(files.count(f)) << f;
    EXPECT_TRUE(fs::exists(path(f))) << f;
    EXPECT_EQ(SafetensorsFile::open(path(f))->metadata().at("format"), "pt");
  }
  EXPECT_FALSE(fs::exists(path("model.safetensors")));

  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.dir(), dir_);
  const std::vector<std::string> names = c.names();
  ASSERT_EQ(names.size(), ts.size());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(c.total_bytes(), total);
  for (const auto& o : ts) {
    expect_same(c.get(o.name), o);
    EXPECT_EQ(fs::path(c.file_of(o.name)).filename().string(), idx["weight_map"][o.name].get<std::string>());
  }
  EXPECT_EQ(c.find("absent"), nullptr);
  expect_error([&] { c.get("absent.weight"); }, {"absent.weight", dir_});
  expect_error([&] { c.file_of("absent.weight"); }, {"absent.weight"});

  // Saving again under the limit replaces the shards with a single file (no stale shards left to shadow it).
  write_checkpoint_tensors(dir_, to_write(ts));
  EXPECT_TRUE(fs::exists(path("model.safetensors")));
  EXPECT_FALSE(fs::exists(path("model.safetensors.index.json")));
  for (const auto& f : files) EXPECT_FALSE(fs::exists(path(f))) << f;
  Checkpoint single = Checkpoint::open(dir_);
  for (const auto& o : ts) expect_same(single.get(o.name), o);
}

TEST_F(SafetensorsTest, ShardOfOneOversizedTensor) {
  std::vector<uint8_t> big(1000), small(4);
  write_checkpoint_tensors(dir_, {{"big", DType::U8, {1000}, big.data()}, {"small", DType::F32, {1}, small.data()}},
                           100);
  EXPECT_TRUE(fs::exists(path("model-00001-of-00002.safetensors")));
  EXPECT_TRUE(fs::exists(path("model-00002-of-00002.safetensors")));
  EXPECT_EQ(Checkpoint::open(dir_).names().size(), 2u);
}

// ---------------------------------------------------------------------------------------------------------
// Malformed files: each error names the file and, where there is one, the tensor.

TEST_F(SafetensorsTest, EmptyFile) {
  std::string p = craft("empty.safetensors", "", 0);
  write_bytes(p, "");
  expect_open_error(p, {"empty.safetensors", "empty"});
}

TEST_F(SafetensorsTest, ShorterThanLengthField) {
  std::string p = path("five.safetensors");
  write_bytes(p, "abcde");
  expect_open_error(p, {"five.safetensors"});
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  std::string p = path("long.safetensors");
  write_bytes(p, u64le(1000) + "{}");
  expect_open_error(p, {"long.safetensors", "1000"});
}

TEST_F(SafetensorsTest, HeaderLengthAbsurd) {
  std::string p = path("absurd.safetensors");
  write_bytes(p, u64le(uint64_t(200) << 20) + "{}");
  expect_open_error(p, {"absurd.safetensors", "100 MB"});
  write_bytes(p, u64le(~uint64_t(0)) + "{}");
  expect_open_error(p, {"absurd.safetensors"});
}

TEST_F(SafetensorsTest, InvalidJson) {
  expect_open_error(craft("badjson.safetensors", "{\"a\": {\"dtype\": ", 0), {"badjson.safetensors", "JSON"});
  expect_open_error(craft("utf8.safetensors", "{\"\xff\xfe\": 1}", 0), {"utf8.safetensors", "JSON"});
  expect_open_error(craft("deep.safetensors", std::string(1000, '[') + std::string(1000, ']'), 0),
                    {"deep.safetensors"});
}

TEST_F(SafetensorsTest, JsonNotObject) {
  expect_open_error(craft("array.safetensors", "[1, 2, 3]", 0), {"array.safetensors", "object"});
  expect_open_error(craft("string.safetensors", "\"hello\"", 0), {"string.safetensors", "object"});
}

TEST_F(SafetensorsTest, EntryNotObject) {
  expect_open_error(craft("entry.safetensors", R"({"w": [1, 2]})", 0), {"entry.safetensors", "'w'", "object"});
}

TEST_F(SafetensorsTest, MissingOrMistypedFields) {
  struct Case {
    const char* file;
    const char* header;
    const char* what;
  } cases[] = {
      {"no_dtype.safetensors", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", "dtype"},
      {"int_dtype.safetensors", R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", "dtype"},
      {"no_shape.safetensors", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", "shape"},
      {"str_shape.safetensors", R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", "shape"},
      {"float_dim.safetensors", R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", "shape"},
      {"null_dim.safetensors", R"({"w": {"dtype": "F32", "shape": [null], "data_offsets": [0, 4]}})", "shape"},
      {"no_offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [1]}})", "data_offsets"},
      {"one_offset.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4]}})", "data_offsets"},
      {"str_offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}})",
       "data_offsets"},
      {"neg_offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", "data_offsets"},
      {"float_offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}})",
       "data_offsets"},
      {"obj_offsets.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": {"a": 0}}})", "data_offsets"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    expect_open_error(craft(c.file, c.header, 16), {c.file, "'w'", c.what});
  }
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expect_open_error(craft("dtype.safetensors", R"({"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}})", 1),
                    {"dtype.safetensors", "'w'", "F7"});
  expect_open_error(craft("lower.safetensors", R"({"w": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4),
                    {"lower.safetensors", "'w'", "f32"});
}

TEST_F(SafetensorsTest, NegativeDimension) {
  expect_open_error(
      craft("neg.safetensors", R"({"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}})", 16),
      {"neg.safetensors", "'w'", "negative"});
  expect_open_error(craft("huge_dim.safetensors",
                          R"({"w": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", 4),
                    {"huge_dim.safetensors", "'w'"});
}

TEST_F(SafetensorsTest, NumelOverflow) {
  expect_open_error(
      craft("overflow.safetensors",
            R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 0]}})", 0),
      {"overflow.safetensors", "'w'", "overflow"});
  // numel fits but numel * 8 bytes does not.
  expect_open_error(craft("bytes_overflow.safetensors",
                          R"({"w": {"dtype": "I64", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0),
                    {"bytes_overflow.safetensors", "'w'", "overflow"});
  // A zero dimension after a huge one: numel 0, not an overflow.
  auto p = craft("zero.safetensors", R"({"w": {"dtype": "F32", "shape": [4294967296, 0], "data_offsets": [0, 0]}})", 0);
  EXPECT_EQ(SafetensorsFile::open(p)->find("w")->numel(), 0);
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  expect_open_error(craft("range.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 12),
                    {"range.safetensors", "'w'", "past the end"});
  expect_open_error(
      craft("far.safetensors",
            R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551615]}})",
            8),
      {"far.safetensors", "'w'"});
}

TEST_F(SafetensorsTest, BeginAfterEnd) {
  expect_open_error(craft("reversed.safetensors", R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [8, 4]}})", 8),
                    {"reversed.safetensors", "'w'", "begin"});
}

TEST_F(SafetensorsTest, Overlap) {
  expect_open_error(craft("overlap.safetensors",
                          R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          12),
                    {"overlap.safetensors", "'a'", "'b'", "overlap"});
  // Containment in an earlier, longer tensor (listed in any order).
  expect_open_error(craft("inside.safetensors",
                          R"({"z": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
                              "y": {"dtype": "U8", "shape": [3], "data_offsets": [6, 9]},
                              "a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})",
                          16),
                    {"inside.safetensors", "'a'", "overlap"});
  // Same range twice.
  expect_open_error(craft("twice.safetensors",
                          R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                              "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                          4),
                    {"twice.safetensors", "overlap"});
}

TEST_F(SafetensorsTest, ByteCountMismatch) {
  expect_open_error(craft("count.safetensors", R"({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}})", 8),
                    {"count.safetensors", "'w'", "BF16", "[3]"});
}

TEST_F(SafetensorsTest, DuplicateName) {
  expect_open_error(craft("dup.safetensors",
                          R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                              "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                          2),
                    {"dup.safetensors", "'w'", "twice"});
}

TEST_F(SafetensorsTest, GapsUnsortedEmptyAndScalarAreFine) {
  auto p = craft("gaps.safetensors",
                 R"({"late": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]},
                     "early": {"dtype": "U8", "shape": [2, 1], "data_offsets": [3, 5]},
                     "nothing": {"dtype": "F64", "shape": [0], "data_offsets": [4, 4]},
                     "scalar": {"dtype": "BOOL", "shape": [], "data_offsets": [8, 9]}})",
                 32);
  auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->find("scalar")->numel(), 1);
  EXPECT_EQ(f->find("nothing")->nbytes(), 0u);
  std::string raw = read_bytes(p);
  auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), p);
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors.front().name, "early");  // sorted by begin
  EXPECT_EQ(h.tensors.back().name, "late");
  EXPECT_EQ(f->find("late")->data - f->find("early")->data, 17);
}

TEST_F(SafetensorsTest, Metadata) {
  expect_open_error(craft("meta_int.safetensors", R"({"__metadata__": {"format": 1}})", 0),
                    {"meta_int.safetensors", "__metadata__", "format"});
  expect_open_error(craft("meta_arr.safetensors", R"({"__metadata__": ["pt"]})", 0),
                    {"meta_arr.safetensors", "__metadata__"});
  expect_open_error(craft("meta_nested.safetensors", R"({"__metadata__": {"a": {"b": "c"}}})", 0),
                    {"meta_nested.safetensors", "__metadata__", "'a'"});
  auto f = SafetensorsFile::open(craft("meta_ok.safetensors", R"({"__metadata__": {"format": "pt", "x": ""}})", 0));
  EXPECT_EQ(f->metadata().size(), 2u);
  EXPECT_TRUE(
      SafetensorsFile::open(craft("meta_null.safetensors", R"({"__metadata__": null})", 0))->metadata().empty());
}

TEST_F(SafetensorsTest, TruncatedFile) {
  auto ts = sample_tensors();
  std::string p = path("trunc.safetensors");
  write_safetensors(p, to_write(ts));
  std::string raw = read_bytes(p);
  // The last tensor in the layout is the 1-byte-element F8 one (largest dtype sizes first).
  write_bytes(p, raw.substr(0, raw.size() - 3));
  expect_open_error(p, {"trunc.safetensors", "layers.0.q.weight", "truncated"});
  // Cut inside the header.
  write_bytes(p, raw.substr(0, 20));
  expect_open_error(p, {"trunc.safetensors", "truncated"});
}

TEST_F(SafetensorsTest, OpenErrors) {
  expect_open_error(path("does_not_exist.safetensors"), {"does_not_exist.safetensors"});
  expect_open_error(dir_, {dir_, "regular file"});
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoint directories

TEST_F(SafetensorsTest, CheckpointErrors) {
  expect_error([&] { Checkpoint::open(path("nope")); }, {"nope"});
  expect_error([&] { Checkpoint::open(dir_); }, {dir_, "safetensors"});  // empty directory

  std::vector<uint8_t> b(8);
  write_safetensors(path("model-00001-of-00002.safetensors"), {{"a", DType::F32, {2}, b.data()}});
  auto index = [&](const json& wm) {
    write_file_atomic(path("model.safetensors.index.json"), json{{"weight_map", wm}}.dump());
  };

  index({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_); }, {"model-00002-of-00002.safetensors", "'b'", "missing"});

  index({{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00001-of-00002.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_); }, {"'c'", "model-00001-of-00002.safetensors", "absent"});

  index({{"a", "../model-00001-of-00002.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_); }, {"../model-00001-of-00002.safetensors", "'a'"});
  index({{"a", "sub/model-00001-of-00002.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_); }, {"sub/model-00001-of-00002.safetensors"});
  index({{"a", ""}});
  expect_error([&] { Checkpoint::open(dir_); }, {"model.safetensors.index.json", "'a'"});
  index({{"a", 3}});
  expect_error([&] { Checkpoint::open(dir_); }, {"model.safetensors.index.json", "'a'"});
  write_file_atomic(path("model.safetensors.index.json"), "{\"metadata\": {}}");
  expect_error([&] { Checkpoint::open(dir_); }, {"model.safetensors.index.json", "weight_map"});
  write_file_atomic(path("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_error([&] { Checkpoint::open(dir_); }, {"model.safetensors.index.json", "JSON"});

  index({{"a", "model-00001-of-00002.safetensors"}});
  EXPECT_EQ(Checkpoint::open(dir_).names(), std::vector<std::string>{"a"});

  // Without an index: every *.safetensors; a name in two files is an error.
  fs::remove(path("model.safetensors.index.json"));
  write_safetensors(path("other.safetensors"), {{"a", DType::F32, {2}, b.data()}});
  expect_error([&] { Checkpoint::open(dir_); }, {"'a'", "other.safetensors", "model-00001-of-00002.safetensors"});
  write_safetensors(path("other.safetensors"), {{"z", DType::F32, {2}, b.data()}});
  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(fs::path(c.file_of("z")).filename(), "other.safetensors");
}

// ---------------------------------------------------------------------------------------------------------
// Reference checkpoints (../shared/testdata)

class TestdataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(DSV3_TESTDATA))
      GTEST_SKIP() << "reference checkpoints not found at " << DSV3_TESTDATA << " (set -DDSV3_TESTDATA=...)";
  }
  static std::string dir(const char* name) { return (fs::path(DSV3_TESTDATA) / name).string(); }
};

TEST_F(TestdataTest, V3Tiny) {
  Checkpoint c = Checkpoint::open(dir("v3_tiny"));
  EXPECT_EQ(c.names().size(), 139u);
  EXPECT_EQ(fs::path(c.file_of("lm_head.weight")).filename(), "model.safetensors");  // not grads.safetensors
  const TensorView& e = c.get("model.embed_tokens.weight");
  EXPECT_EQ(e.dtype, DType::BF16);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{256, 64}));
  const TensorView& bias = c.get("model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(bias.dtype, DType::F32);
  EXPECT_EQ(bias.shape, std::vector<int64_t>{16});
  for (const char* n :
       {"model.norm.weight", "model.layers.0.mlp.gate_proj.weight", "model.layers.0.self_attn.q_a_proj.weight",
        "model.layers.2.mlp.experts.15.down_proj.weight", "model.layers.2.mlp.shared_experts.up_proj.weight"})
    EXPECT_NE(c.find(n), nullptr) << n;
  EXPECT_EQ(c.find("model.layers.3.input_layernorm.weight"), nullptr);
  // Values are readable: RMSNorm weights are finite.
  const TensorView& norm = c.get("model.norm.weight");
  ASSERT_EQ(norm.dtype, DType::F32);
  for (int64_t i = 0; i < norm.numel(); ++i) {
    float v;
    std::memcpy(&v, norm.data + 4 * i, 4);
    EXPECT_TRUE(std::isfinite(v));
  }
}

TEST_F(TestdataTest, V2LiteTinySharded) {
  Checkpoint c = Checkpoint::open(dir("v2lite_tiny"));
  json idx = json::parse(read_file(dir("v2lite_tiny") + "/model.safetensors.index.json"));
  EXPECT_EQ(c.names().size(), idx["weight_map"].size());
  std::set<std::string> files;
  for (const auto& name : c.names()) {
    EXPECT_EQ(fs::path(c.file_of(name)).filename().string(), idx["weight_map"][name].get<std::string>()) << name;
    files.insert(fs::path(c.file_of(name)).filename().string());
    EXPECT_EQ(c.get(name).dtype, DType::F32) << name;
  }
  EXPECT_EQ(files.size(), 2u);
  EXPECT_NE(c.find("model.layers.0.self_attn.q_proj.weight"), nullptr);  // plain q_proj
  EXPECT_EQ(c.find("model.layers.0.self_attn.q_a_proj.weight"), nullptr);
  EXPECT_EQ(c.find("model.layers.1.mlp.gate.e_score_correction_bias"), nullptr);
  EXPECT_EQ(c.get("model.layers.1.mlp.shared_experts.up_proj.weight").shape, (std::vector<int64_t>{64, 64}));
}

TEST_F(TestdataTest, V3Fp8) {
  Checkpoint c = Checkpoint::open(dir("v3_fp8"));
  int fp8 = 0;
  for (const auto& name : c.names()) {
    const TensorView& v = c.get(name);
    if (v.dtype != DType::F8_E4M3) continue;
    ++fp8;
    ASSERT_EQ(v.rank(), 2) << name;
    const TensorView* s = c.find(name + "_scale_inv");
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->dtype, DType::F32);
    EXPECT_EQ(s->shape, (std::vector<int64_t>{(v.shape[0] + 127) / 128, (v.shape[1] + 127) / 128})) << name;
  }
  EXPECT_EQ(fp8, 40);
  EXPECT_EQ(c.get("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(c.get("model.layers.1.mlp.gate.weight").dtype, DType::BF16);
}

TEST_F(TestdataTest, V3Mtp) {
  Checkpoint c = Checkpoint::open(dir("v3_mtp"));
  for (const char* n : {"model.layers.3.eh_proj.weight", "model.layers.3.enorm.weight", "model.layers.3.hnorm.weight",
                        "model.layers.3.shared_head.norm.weight", "model.layers.3.shared_head.head.weight",
                        "model.layers.3.embed_tokens.weight"})
    EXPECT_NE(c.find(n), nullptr) << n;
  EXPECT_EQ(c.get("model.layers.3.eh_proj.weight").shape, (std::vector<int64_t>{64, 128}));
}

TEST_F(TestdataTest, GradsFileOpensAlone) {
  auto f = SafetensorsFile::open(dir("v3_tiny") + "/grads.safetensors");
  EXPECT_EQ(f->tensors().size(), 137u);
  for (const auto& [name, v] : f->tensors()) EXPECT_EQ(v.dtype, DType::F32) << name;
}

}  // namespace
}  // namespace dsv3::io
