// The content-addressed store of image files: each file is kept once, under its SHA-256,
// in <root>/sha256/<first two hex>/<hex>. New content arrives through a BlobWriter that
// writes a temporary file in <root>/tmp, hashing on the way; Commit fsyncs it and renames it
// into place, so a reader never sees a partial blob and identical bytes end up as one file.
//
// Which blobs are still referenced is the registry's business (it calls Remove); the store
// only keeps bytes. Thread-safe: distinct writers may run concurrently; committing the same
// content twice is harmless (the second rename replaces an identical file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/digest.h"
#include "common/status.h"

namespace fpgahost::images {

class BlobWriter {
 public:
  ~BlobWriter();  // discards the temporary file unless committed
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  Status Append(std::string_view data);
  uint64_t size() const { return size_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

  // fsyncs, names the content by its SHA-256 and moves it into the store. Returns the hex
  // digest. The writer is spent afterwards.
  StatusOr<std::string> Commit();
  // Removes the temporary file now. Idempotent.
  void Discard();

 private:
  friend class BlobStore;
  BlobWriter(const class BlobStore& store, std::filesystem::path temp_path, int fd)
      : store_(store), temp_path_(std::move(temp_path)), fd_(fd) {}
  const class BlobStore& store_;
  std::filesystem::path temp_path_;
  int fd_;
  uint64_t size_ = 0;
  Sha256 sha_;
  bool done_ = false;
};

class BlobStore {
 public:
  explicit BlobStore(std::filesystem::path root) : root_(std::move(root)) {}

  // Creates the directories and removes temporary files a crash left behind.
  Status Init();

  StatusOr<std::unique_ptr<BlobWriter>> NewWriter() const;

  std::filesystem::path PathOf(std::string_view sha256_hex) const;
  bool Contains(std::string_view sha256_hex) const;
  // Removes the blob; removing one that is absent is not an error.
  Status Remove(std::string_view sha256_hex) const;
  // Number of temporary files present (uploads in flight or leaked): for tests and metrics.
  size_t TempFileCount() const;

 private:
  friend class BlobWriter;
  std::filesystem::path root_;
};

}  // namespace fpgahost::images
