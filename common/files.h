// Small file-system helpers that return Status instead of throwing. Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost {

// Creates `dir` and its parents when missing, then checks that it is a directory we can
// write to. `mode` applies to directories this call creates.
Status EnsureWritableDir(const std::filesystem::path& dir, unsigned mode = 0755);

StatusOr<std::string> ReadFile(const std::filesystem::path& path);

// Reads the file front to back in pieces of at most `chunk_bytes`, handing each to
// `consume`: memory stays at one chunk whatever the file's size.
Status ReadFileInChunks(const std::filesystem::path& path, size_t chunk_bytes,
                        const std::function<void(std::string_view)>& consume);

// Writes `contents` to a temporary file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the directory: readers see the old file or the new one, never a part.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                           unsigned mode = 0644);

// A whole file mapped read-only into memory, for parsers that want one contiguous span
// without reading gigabytes into the heap. Unmapped on destruction. Move-only.
class MappedFile {
 public:
  static StatusOr<MappedFile> Open(const std::filesystem::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fpgahost
