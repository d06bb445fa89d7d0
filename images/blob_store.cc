#include "images/blob_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>

#include "common/files.h"
#include "common/ids.h"

namespace fpgahost::images {
namespace fs = std::filesystem;

namespace {

Status FsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(fmt::format("cannot open {}", dir.string()), errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(fmt::format("cannot fsync {}", dir.string()), err);
  return Status::Ok();
}

}  // namespace

BlobWriter::~BlobWriter() { Discard(); }

Status BlobWriter::Append(std::string_view data) {
  if (done_) return FailedPreconditionError("blob writer already finished");
  sha_.Update(data);
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(fmt::format("cannot write {}", temp_path_.string()), errno);
    data.remove_prefix(static_cast<size_t>(n));
    size_ += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

StatusOr<std::string> BlobWriter::Commit() {
  if (done_) return FailedPreconditionError("blob writer already finished");
  if (::fsync(fd_) != 0) {
    return ErrnoError(fmt::format("cannot fsync {}", temp_path_.string()), errno);
  }
  std::string digest = sha_.FinishHex();
  fs::path target = store_.PathOf(digest);
  RETURN_IF_ERROR(EnsureWritableDir(target.parent_path()));
  if (::rename(temp_path_.c_str(), target.c_str()) != 0) {
    return ErrnoError(fmt::format("cannot move {} to {}", temp_path_.string(), target.string()),
                      errno);
  }
  ::close(fd_);
  done_ = true;
  RETURN_IF_ERROR(FsyncDir(target.parent_path()));
  return digest;
}

void BlobWriter::Discard() {
  if (done_) return;
  done_ = true;
  ::close(fd_);
  ::unlink(temp_path_.c_str());
}

Status BlobStore::Init() {
  RETURN_IF_ERROR(EnsureWritableDir(root_ / "sha256", 0700));
  RETURN_IF_ERROR(EnsureWritableDir(root_ / "tmp", 0700));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ / "tmp", ec)) {
    fs::remove(entry.path(), ec);
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<BlobWriter>> BlobStore::NewWriter() const {
  fs::path temp = root_ / "tmp" / ("upload-" + RandomHex(8));
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(fmt::format("cannot create {}", temp.string()), errno);
  return std::unique_ptr<BlobWriter>(new BlobWriter(*this, std::move(temp), fd));
}

fs::path BlobStore::PathOf(std::string_view sha256_hex) const {
  std::string hex(sha256_hex);
  return root_ / "sha256" / hex.substr(0, 2) / hex;
}

bool BlobStore::Contains(std::string_view sha256_hex) const {
  std::error_code ec;
  return fs::is_regular_file(PathOf(sha256_hex), ec);
}

Status BlobStore::Remove(std::string_view sha256_hex) const {
  fs::path p = PathOf(sha256_hex);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(fmt::format("cannot remove {}", p.string()), errno);
  }
  return Status::Ok();
}

size_t BlobStore::TempFileCount() const {
  size_t n = 0;
  std::error_code ec;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root_ / "tmp", ec)) ++n;
  return n;
}

}  // namespace fpgahost::images
