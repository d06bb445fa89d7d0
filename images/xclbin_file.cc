#include "images/xclbin_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/digest.h"
#include "common/files.h"

namespace fpgahost::images {

namespace {

StatusOr<std::string> HashFile(const std::filesystem::path& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(fmt::format("cannot open {}", path.string()), errno);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(1 << 20);
  Sha256 sha;
  *size = 0;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError(fmt::format("cannot read {}", path.string()), err);
    }
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    *size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return sha.FinishHex();
}

}  // namespace

StatusOr<XclbinFileResult> ValidateXclbinFile(const std::filesystem::path& path,
                                              const XclbinValidationOptions& options) {
  XclbinFileResult result;
  ASSIGN_OR_RETURN(result.sha256, HashFile(path, &result.size));
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  result.validated = ValidateXclbin(file.bytes(), options);
  return result;
}

}  // namespace fpgahost::images
