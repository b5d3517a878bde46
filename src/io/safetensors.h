// safetensors: zero-copy mmap reader, sharded checkpoints (model.safetensors.index.json), atomic writer.
// Format: u64 little-endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets":
// [begin, end]}, "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
// Every malformed input is a dsv3::Error naming the file (and tensor); nothing is read out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsv3::io {

struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

struct ParsedHeader {
  std::vector<HeaderEntry> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + header length: where the data section starts in the file
};

// Parses and validates the header of a whole safetensors file image `bytes[0, size)`. `label` names the
// file in error messages. Checks: header length sane and within the file; JSON valid; each entry has a
// known dtype, a non-negative shape, offsets begin <= end inside the data section, end - begin equal to
// numel * dtype size; entries do not overlap. Pure function (the fuzz target drives it).
ParsedHeader parse_safetensors_header(const uint8_t* bytes, size_t size, const std::string& label);

// How SafetensorsFile::open brings a file into memory. Mmap (the default): the page cache, shared between
// processes, nothing read until touched. Read (`--no-mmap`): the whole file read into the process's own
// anonymous memory at open — what llama.cpp's `--no-mmap` does; on a VM whose page cache gets reclaimed
// under the process (DAMON, ballooning), the weights then stay resident instead of being re-read.
// A parameter of each open (a model's ModelOptions::load_mode), not a process-wide setting.
enum class LoadMode : uint8_t { Mmap, Read };

// One mmap'd (or read, see LoadMode) .safetensors file. Views point into the mapping and stay valid while
// the file is open.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path, LoadMode mode = LoadMode::Mmap);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A model directory: either model.safetensors, or model.safetensors.index.json with its shards, or (when
// neither exists) every *.safetensors in the directory. A tensor name present in two files is an error.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir, LoadMode mode = LoadMode::Mmap);  // every file in `mode`

  const std::string& dir() const { return dir_; }
  const TensorView* find(const std::string& name) const;  // nullptr when absent
  const TensorView& get(const std::string& name) const;   // throws naming tensor and directory
  std::vector<std::string> names() const;                 // sorted
  const std::string& file_of(const std::string& name) const;
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const TensorView*, size_t>> index_;  // name -> (view, file number)
};

// A tensor to write: data points to numel * dtype_size bytes, row-major.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes one safetensors file atomically: a temporary file in the same directory, fsync, rename.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint's tensors into `dir`: one model.safetensors when the total is at most
// max_shard_bytes, else model-0000K-of-0000N.safetensors shards plus model.safetensors.index.json
// (weight_map + metadata.total_size), each file written atomically.
void write_checkpoint_tensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                              uint64_t max_shard_bytes = uint64_t(4) << 30);

// Writes a small text file (config.json, index) atomically.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace dsv3::io
