#include "fpga/sysfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace fpgahost::fpga {
namespace {

// Sysfs attributes are at most a page; anything longer is not an attribute we understand,
// and the bound keeps a hostile or broken file from costing memory.
constexpr size_t kMaxAttributeBytes = 64 * 1024;

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(kSpace);
  return s.substr(begin, end - begin + 1);
}

Status PathError(const std::string& what, const std::filesystem::path& rel, int err) {
  if (err == ENOENT || err == ENOTDIR) {
    return NotFoundError(what + " " + rel.string() + ": no such file", kReasonSysfsNotFound);
  }
  return ErrnoError(what + " " + rel.string(), err);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string LinkBasename(std::string_view target) {
  while (!target.empty() && target.back() == '/') target.remove_suffix(1);
  size_t slash = target.rfind('/');
  return std::string(slash == std::string_view::npos ? target : target.substr(slash + 1));
}

StatusOr<std::filesystem::path> CheckSysfsPath(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) {
    return InvalidArgumentError("sysfs path is empty", kReasonSysfsPathEscapes);
  }
  std::filesystem::path rel(path);
  for (const auto& part : rel) {
    if (part == "..") {
      return InvalidArgumentError("sysfs path " + std::string(path) + " leaves the sysfs root",
                                  kReasonSysfsPathEscapes);
    }
  }
  return rel;
}

StatusOr<std::string> RealSysfs::ReadAttribute(std::string_view path) const {
  ASSIGN_OR_RETURN(std::filesystem::path rel, CheckSysfsPath(path));
  Fd fd(::open((root_ / rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return PathError("reading", rel, errno);
  std::string text(4096, '\0');
  size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() >= kMaxAttributeBytes) {
        return InvalidArgumentError("reading " + rel.string() + ": attribute is too long");
      }
      text.resize(text.size() * 2);
    }
    ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PathError("reading", rel, errno);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  return std::string(Trim(std::string_view(text).substr(0, used)));
}

Status RealSysfs::WriteAttribute(std::string_view path, std::string_view value) {
  ASSIGN_OR_RETURN(std::filesystem::path rel, CheckSysfsPath(path));
  // No O_CREAT: writing never creates a sysfs attribute. O_TRUNC is ignored by sysfs and makes
  // a plain file (an emulated tree) hold exactly the last value written.
  Fd fd(::open((root_ / rel).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (fd.get() < 0) return PathError("writing", rel, errno);
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return PathError("writing", rel, errno);
  if (static_cast<size_t>(n) != value.size()) {
    return InternalError("writing " + rel.string() + ": short write", "IO_ERROR");
  }
  return Status::Ok();
}

StatusOr<std::vector<std::string>> RealSysfs::ListDirectory(std::string_view path) const {
  ASSIGN_OR_RETURN(std::filesystem::path rel, CheckSysfsPath(path));
  DIR* dir = ::opendir((root_ / rel).c_str());
  if (dir == nullptr) return PathError("listing", rel, errno);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return PathError("listing", rel, err);
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::string> RealSysfs::ReadLink(std::string_view path) const {
  ASSIGN_OR_RETURN(std::filesystem::path rel, CheckSysfsPath(path));
  std::string target(4096, '\0');
  ssize_t n = ::readlink((root_ / rel).c_str(), target.data(), target.size());
  if (n < 0) return PathError("reading link", rel, errno);
  target.resize(static_cast<size_t>(n));
  return target;
}

bool RealSysfs::Exists(std::string_view path) const {
  StatusOr<std::filesystem::path> rel = CheckSysfsPath(path);
  if (!rel.ok()) return false;
  struct stat st;
  return ::lstat((root_ / *rel).c_str(), &st) == 0;
}

}  // namespace fpgahost::fpga
