// Data preparation and the sequence loader on a tiny corpus with a byte-level stand-in tokenizer.
#include "io/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace dsv3::io {
namespace {

namespace fs = std::filesystem;

// Bytes → ids 8..263; specials: 0 bos, 1 eos, 3/4/5 fim begin/hole/end.
TokenizerInfo byte_tokenizer() {
  TokenizerInfo t;
  t.encode = [](std::string_view s) {
    std::vector<int32_t> v;
    for (unsigned char ch : s) v.push_back(int32_t(ch) + 8);
    return v;
  };
  t.bos = 0, t.eos = 1, t.fim_begin = 3, t.fim_hole = 4, t.fim_end = 5;
  t.vocab_size = 264;
  return t;
}

std::string decode(const int32_t* ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    s += id >= 8   ? std::string(1, char(id - 8))
         : id == 0 ? "<B>"
         : id == 1 ? "<E>"
         : id == 3 ? "<FB>"
         : id == 4 ? "<FH>"
         : id == 5 ? "<FE>"
                   : "<?>";
  }
  return s;
}

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dsv3_dataset_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

TEST(Dataset, SplitBlankLines) {
  const std::string text = "Genesis 1\n\nIn the beginning.\nAnd God said.\n\n\n  \nGenesis 2\nThus the heavens.\n";
  auto d = split_documents(text, {});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "Genesis 1");
  EXPECT_EQ(d[1], "In the beginning.\nAnd God said.");
  EXPECT_EQ(d[2], "Genesis 2\nThus the heavens.");
}

TEST(Dataset, SplitPerLineFileRegex) {
  const std::string text = "a b\n\nc\n  d  \n";
  EXPECT_EQ(split_documents(text, {.mode = DocSplit::PerLine}), (std::vector<std::string>{"a b", "c", "d"}));
  EXPECT_EQ(split_documents(text, {.mode = DocSplit::PerFile}), (std::vector<std::string>{"a b\n\nc\n  d"}));
  // Lookahead separator: split before every "Book N" header line, keeping it.
  const std::string kjv = "Genesis 1\nverse one\nverse two\nGenesis 2\nverse three\n";
  auto d = split_documents(kjv, {.mode = DocSplit::Regex, .regex = "^(?=[A-Z][a-z]+ [0-9]+$)"});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "Genesis 1\nverse one\nverse two");
  EXPECT_EQ(d[1], "Genesis 2\nverse three");
  EXPECT_EQ(split_documents("x--y----z", {.mode = DocSplit::Regex, .regex = "-+"}),
            (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_THROW(split_documents("x", {.mode = DocSplit::Regex, .regex = "("}), Error);
}

TEST(Dataset, Sha256) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Dataset, FimSplitRespectsUtf8AndReassembles) {
  const std::string doc = "héllo wörld ✓";
  for (uint64_t s = 0; s < 200; ++s) {
    FimSplit f = fim_split(doc, s);
    EXPECT_EQ(f.prefix + f.middle + f.suffix, doc);
    for (const std::string* p : {&f.middle, &f.suffix}) {
      if (p->empty()) continue;
      EXPECT_NE(static_cast<unsigned char>((*p)[0]) & 0xC0, 0x80) << "cut inside a character";
    }
  }
}

TEST(Dataset, PrepareWritesShardsManifestAndSplit) {
  std::vector<std::string> docs;
  for (int i = 0; i < 20; ++i) docs.push_back("document number " + std::to_string(i) + " says hello");
  const std::string dir = temp_dir("prepare");
  PrepareOptions o{.val_frac = 0.1, .fim_rate = 0.5, .seed = 7, .shard_tokens = 100};
  DatasetManifest m = prepare_dataset_from_docs(docs, o, byte_tokenizer(), dir);
  EXPECT_EQ(m.val_docs, 2);
  EXPECT_EQ(m.train_docs, 18);
  EXPECT_GT(m.fim_docs, 3);
  EXPECT_LT(m.fim_docs, 15);
  EXPECT_GT(m.train_shards.size(), 1u);  // 100-token shards
  EXPECT_EQ(m.vocab_size, 264);

  // Every document appears once: plain in val, plain or PSM in train, each [bos] ... [eos].
  TokenStream train = TokenStream::open(m, "train"), val = TokenStream::open(m, "val");
  EXPECT_EQ(train.size() + val.size(), m.train_tokens + m.val_tokens);
  const std::string all = decode(train.data(), size_t(train.size()));
  const std::string v = decode(val.data(), size_t(val.size()));
  EXPECT_EQ(v.find("<FB>"), std::string::npos);
  int fim = 0, docs_seen = 0;
  size_t at = 0;
  while ((at = all.find("<B>", at)) != std::string::npos) {
    const size_t end = all.find("<E>", at);
    std::string d = all.substr(at + 3, end - at - 3);
    ++docs_seen;
    if (d.rfind("<FB>", 0) == 0) {
      ++fim;
      const size_t h = d.find("<FH>"), e = d.find("<FE>");
      ASSERT_NE(h, std::string::npos);
      ASSERT_NE(e, std::string::npos);
      d = d.substr(4, h - 4) + d.substr(e + 4) + d.substr(h + 4, e - h - 4);  // prefix + middle + suffix
    }
    EXPECT_NE(std::find(docs.begin(), docs.end(), d), docs.end()) << d;
    at = end;
  }
  EXPECT_EQ(docs_seen, 18);
  EXPECT_EQ(fim, m.fim_docs);

  // Deterministic: the same seed gives the same bytes; another seed another split.
  const std::string dir2 = temp_dir("prepare2");
  DatasetManifest m2 = prepare_dataset_from_docs(docs, o, byte_tokenizer(), dir2);
  TokenStream train2 = TokenStream::open(m2, "train");
  ASSERT_EQ(train2.size(), train.size());
  EXPECT_TRUE(std::equal(train.data(), train.data() + train.size(), train2.data()));
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(Dataset, BadInputsFailClearly) {
  const std::string dir = temp_dir("bad");
  EXPECT_THROW(read_manifest(dir), Error);
  TokenizerInfo t = byte_tokenizer();
  EXPECT_THROW(prepare_dataset({.inputs = {dir + "/missing.txt"}}, t, dir), Error);
  t.fim_begin = -1;
  EXPECT_THROW(prepare_dataset_from_docs({"a"}, {.fim_rate = 0.1}, t, dir), Error);
  // A truncated shard is caught at open.
  DatasetManifest m = prepare_dataset_from_docs({"abc", "def", "ghi"}, {.val_frac = 0.34}, byte_tokenizer(), dir);
  fs::resize_file(dir + "/" + m.train_shards[0].file, 4);
  try {
    read_manifest(dir);
    FAIL() << "truncated shard not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-00000.bin"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Dataset, LoaderShufflesDeterministicallyAndResumes) {
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) docs.push_back("doc " + std::to_string(i) + std::string(size_t(i % 7), 'x'));
  const std::string dir = temp_dir("loader");
  DatasetManifest m = prepare_dataset_from_docs(docs, {.val_frac = 0.0}, byte_tokenizer(), dir);
  TokenStream s = TokenStream::open(m, "train");
  const int64_t T = 16;
  SequenceLoader a(s, T, 3, true), b(s, T, 3, true), c(s, T, 4, true);
  const int64_t per_epoch = a.windows_in_epoch();
  ASSERT_GT(per_epoch, 10);
  // An epoch visits distinct windows; a different seed gives a different order.
  std::vector<int32_t> ea(size_t(per_epoch * T)), eb(ea.size()), ec(ea.size());
  a.next(per_epoch, ea.data());
  b.next(per_epoch, eb.data());
  c.next(per_epoch, ec.data());
  EXPECT_EQ(ea, eb);
  EXPECT_NE(ea, ec);
  std::set<std::vector<int32_t>> seen;
  for (int64_t w = 0; w < per_epoch; ++w)
    seen.insert(std::vector<int32_t>(ea.begin() + w * T, ea.begin() + (w + 1) * T));
  EXPECT_EQ(int64_t(seen.size()), per_epoch);
  // Crossing into epoch 1, then resuming from a saved position reproduces the stream.
  std::vector<int32_t> x(size_t(5 * T)), y(x.size());
  a.next(3, x.data());
  EXPECT_EQ(a.position().epoch, 1);
  const LoaderPosition p = a.position();
  a.next(5, x.data());
  SequenceLoader r(s, T, 3, true);
  r.seek(p);
  r.next(5, y.data());
  EXPECT_EQ(x, y);
  // Validation order: stream order from offset 0.
  SequenceLoader v(s, T, 3, false);
  std::vector<int32_t> first(static_cast<size_t>(T));
  v.next(1, first.data());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), s.data()));
  EXPECT_THROW(SequenceLoader(s, s.size(), 0, true), Error);
  fs::remove_all(dir);
}

// tokens * 4 wrapped: 2^62 tokens "is" 0 bytes, so an empty shard passed the size check (issue 19).
TEST(Dataset, AChangedTokenizerFileIsRefused) {
  // The tokenizer is copied beside the shards with its SHA-256; the manifest is read again on every run
  // (fresh or resumed), so a file replaced in between is caught before a step trains on mismatched ids.
  const std::string dir = temp_dir("tokhash");
  const std::string src = dir + "_tokenizer.json";
  std::ofstream(src) << R"({"model": {"type": "BPE", "vocab": {}}, "note": "original"})";
  TokenizerInfo t = byte_tokenizer();
  t.file = src;
  DatasetManifest m = prepare_dataset_from_docs({"abc", "def", "ghi"}, {.val_frac = 0.34}, t, dir);
  ASSERT_FALSE(m.tokenizer_file.empty());
  EXPECT_EQ(read_manifest(dir).tokenizer_sha256, m.tokenizer_sha256);
  std::ofstream(dir + "/" + m.tokenizer_file) << R"({"model": {"type": "BPE", "vocab": {}}, "note": "changed"})";
  try {
    read_manifest(dir);
    FAIL() << "changed tokenizer not detected";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find(m.tokenizer_file), std::string::npos) << w;
    EXPECT_NE(w.find(m.tokenizer_sha256), std::string::npos) << w;
  }
  fs::remove(dir + "/" + m.tokenizer_file);
  EXPECT_THROW(read_manifest(dir), Error);  // and a missing one
  fs::remove_all(dir);
  fs::remove(src);
}

TEST(Dataset, HugeTokenCountIsNotWrappedOntoTheShardSize) {
  const std::string dir = temp_dir("huge_tokens");
  DatasetManifest m = prepare_dataset_from_docs({"abc", "def", "ghi"}, {.val_frac = 0.34}, byte_tokenizer(), dir);
  fs::resize_file(dir + "/" + m.val_shards[0].file, 0);
  for (const char* huge : {"4611686018427387904", "4611686018427387905", "18446744073709551615", "-1"}) {
    nlohmann::json j = m.raw;
    j["splits"]["val"]["shards"][0]["tokens"] = nlohmann::json::parse(huge);
    std::ofstream(dir + "/manifest.json") << j.dump();
    try {
      read_manifest(dir);
      ADD_FAILURE() << "tokens " << huge << " accepted for an empty shard";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("manifest.json: splits.val.shards[0]"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokens"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::io
