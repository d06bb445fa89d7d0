// Sysfs: the one door fpgahost uses to read and write the kernel's /sys.
//
// Everything that looks at PCI devices, drivers and IOMMU groups (discovery, telemetry, VFIO
// binding) goes through this interface, so the daemon can hand it the real /sys
// (RealSysfs("/sys")), an emulated fleet's tree with kernel semantics (fpga/emu/sysfs_tree.h),
// or a test fake.
//
// Paths are relative to the sysfs root, in the kernel's spelling, e.g.
// "bus/pci/devices/0000:04:00.0/vendor". A leading '/' is ignored. A path with a ".."
// component, or an empty path, is refused (InvalidArgument, reason SYSFS_PATH_ESCAPES) so that
// a caller can never reach outside the root through this interface. Symbolic links inside the
// tree are followed, as the kernel's own links (driver, iommu_group, bus/pci/devices/*) are.
//
// Errors: NotFound (reason SYSFS_NOT_FOUND) when the file or link does not exist; other
// failures as ErrnoError (reason IO_ERROR). Every message names the path.
//
// Thread-safety: implementations are safe for concurrent use from several threads (a read
// racing a write sees the old or the new value, as with the kernel).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace fpgahost::fpga {

inline constexpr char kReasonSysfsPathEscapes[] = "SYSFS_PATH_ESCAPES";
inline constexpr char kReasonSysfsNotFound[] = "SYSFS_NOT_FOUND";

class Sysfs {
 public:
  virtual ~Sysfs() = default;

  // The attribute's text with leading and trailing whitespace (the kernel's '\n') removed.
  virtual StatusOr<std::string> ReadAttribute(std::string_view path) const = 0;
  // Writes `value` to the attribute as one write(2), as `echo -n value > path` would. The
  // attribute must exist: sysfs files are never created by writing.
  virtual Status WriteAttribute(std::string_view path, std::string_view value) = 0;
  // The names in a directory (without "." and ".."), sorted.
  virtual StatusOr<std::vector<std::string>> ListDirectory(std::string_view path) const = 0;
  // The target of a symbolic link as stored ("../../../bus/pci/drivers/xocl"); callers
  // usually want LinkBasename() of it.
  virtual StatusOr<std::string> ReadLink(std::string_view path) const = 0;
  // True when `path` names a file, directory or link (a dangling link counts).
  virtual bool Exists(std::string_view path) const = 0;
};

// The last component of a link target: "xocl" for "../../../bus/pci/drivers/xocl".
std::string LinkBasename(std::string_view target);

// `path` cleaned for use under a root: leading '/' dropped; InvalidArgument
// (SYSFS_PATH_ESCAPES) when empty or when a component is "..".
StatusOr<std::filesystem::path> CheckSysfsPath(std::string_view path);

// Sysfs over a directory of the local file system ("/sys" in production).
class RealSysfs : public Sysfs {
 public:
  explicit RealSysfs(std::filesystem::path root) : root_(std::move(root)) {}

  StatusOr<std::string> ReadAttribute(std::string_view path) const override;
  Status WriteAttribute(std::string_view path, std::string_view value) override;
  StatusOr<std::vector<std::string>> ListDirectory(std::string_view path) const override;
  StatusOr<std::string> ReadLink(std::string_view path) const override;
  bool Exists(std::string_view path) const override;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

}  // namespace fpgahost::fpga
