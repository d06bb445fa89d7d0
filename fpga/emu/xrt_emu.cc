// libxrt_emu.so: the part of XRT's C API (xrt/xrt_device.h) that fpgahost calls, over the
// emulated fleet whose sysfs root is $FPGAHOST_SYSFS_ROOT (default /sys), read at every open.
//
// Signatures and conventions are XRT 2.x's (core/common/api/xrt_device.cpp):
//   xrtDeviceHandle xrtDeviceOpen(unsigned int index)            NULL, errno set, on error
//   xrtDeviceHandle xrtDeviceOpenByBDF(const char* bdf)          NULL, errno set, on error
//   int xrtDeviceClose(xrtDeviceHandle)                          0, or -1 with errno
//   int xrtDeviceLoadXclbin(xrtDeviceHandle, const struct axlf*) 0, or -1 with errno
//   int xrtDeviceLoadXclbinFile(xrtDeviceHandle, const char*)    0, or -1 with errno
//   int xrtDeviceGetXclbinUUID(xrtDeviceHandle, xuid_t out)      0, or -1 with errno
// and every error is also printed on stderr the way XRT's console messages look
// ("[XRT] ERROR: <message>"). errno values are the drivers' (fpga/emu/emulated_card.h): EINVAL
// for a bad xclbin or an interface UUID mismatch, EOPNOTSUPP for a VBNV mismatch, ENODEV for a
// device that is absent or not bound to xocl, EIO for failed or abandoned downloads, ETIMEDOUT
// for a download hung past its cap. An unknown handle is EINVAL, as in XRT.
//
// Devices are user PFs bound to xocl, as XRT sees them: xrtDeviceOpen's index counts them in
// BDF order. A root without the emulated fleet's marker has no devices (ENODEV): this library
// never touches a real /sys.
//
// Thread-safe: handles may be used from several threads; a load blocks only its caller.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/thread_annotations.h"
#include "fpga/emu/emulated_card.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/sysfs.h"
#include "images/xclbin.h"

struct axlf;
typedef void* xrtDeviceHandle;     // NOLINT(modernize-use-using): XRT's C declarations
typedef unsigned char xuid_t[16];  // NOLINT(modernize-use-using)

#define XRT_EMU_API extern "C" __attribute__((visibility("default")))

XRT_EMU_API xrtDeviceHandle xrtDeviceOpen(unsigned int index);
XRT_EMU_API xrtDeviceHandle xrtDeviceOpenByBDF(const char* bdf);
XRT_EMU_API int xrtDeviceClose(xrtDeviceHandle dhdl);
XRT_EMU_API int xrtDeviceLoadXclbin(xrtDeviceHandle dhdl, const struct axlf* xclbin);
XRT_EMU_API int xrtDeviceLoadXclbinFile(xrtDeviceHandle dhdl, const char* xclbin_fnm);
XRT_EMU_API int xrtDeviceGetXclbinUUID(xrtDeviceHandle dhdl, xuid_t out);

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

// Where m_header.m_length sits in struct axlf: after m_magic[8], m_signature_length,
// reserved[28], m_keyBlock[256] and m_uniqueId.
constexpr size_t kLengthOffset = 304;

struct Device {
  fs::path root;
  EmulatedCard card;
};

// Open handles, as XRT keeps them: a handle is valid from open to close. Never destroyed, so a
// load still running when the process exits finds it intact.
class Registry {
 public:
  xrtDeviceHandle Add(std::shared_ptr<Device> device) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    xrtDeviceHandle handle = device.get();
    devices_[handle] = std::move(device);
    return handle;
  }
  std::shared_ptr<Device> Find(xrtDeviceHandle handle) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = devices_.find(handle);
    return it == devices_.end() ? nullptr : it->second;
  }
  bool Remove(xrtDeviceHandle handle) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return devices_.erase(handle) != 0;
  }

 private:
  Mutex mu_;
  std::map<xrtDeviceHandle, std::shared_ptr<Device>> devices_ GUARDED_BY(mu_);
};

Registry& Handles() {
  static Registry* const registry = new Registry();  // NOLINT: deliberately never destroyed
  return *registry;
}

void PrintError(const std::string& message) {
  std::string line = "[XRT] ERROR: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

// Reports a failure the XRT way: the message on stderr, errno, and the return value.
int Fail(int error, const std::string& message) {
  PrintError(message);
  errno = error;
  return -1;
}
xrtDeviceHandle FailOpen(int error, const std::string& message) {
  PrintError(message);
  errno = error;
  return nullptr;
}

fs::path SysfsRoot() {
  const char* root = std::getenv("FPGAHOST_SYSFS_ROOT");  // NOLINT(concurrency-mt-unsafe)
  return (root != nullptr && *root != '\0') ? fs::path(root) : fs::path("/sys");
}

xrtDeviceHandle Open(const fs::path& root, std::string bdf) {
  std::transform(bdf.begin(), bdf.end(), bdf.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // XRT takes "BB:DD.F" as domain 0.
  if (bdf.size() == 7) bdf = "0000:" + bdf;
  if (!IsEmulatedFleet(root)) {
    return FailOpen(ENODEV, fmt::format("No such device '{}': {} is not an emulated fleet "
                                        "(libxrt_emu drives emulated cards only)",
                                        bdf, root.string()));
  }
  StatusOr<EmulatedCard> card = EmulatedCard::Find(root, bdf);
  if (!card.ok() || card->user_bdf() != bdf || !card->Bound(bdf, "xocl")) {
    return FailOpen(ENODEV, fmt::format("No such device '{}'", bdf));
  }
  return Handles().Add(std::make_shared<Device>(Device{root, std::move(*card)}));
}

int Load(xrtDeviceHandle handle, std::span<const uint8_t> bytes) {
  std::shared_ptr<Device> device = Handles().Find(handle);
  if (!device) return Fail(EINVAL, "No such device handle");
  DriverResult result = device->card.Load(bytes, LoadPath::kUserPf);
  if (!result.ok()) {
    return Fail(result.error,
                fmt::format("failed to load xclbin: {}: {}",
                            std::generic_category().message(result.error), result.message));
  }
  return 0;
}

}  // namespace
}  // namespace fpgahost::fpga::emu

namespace emu = fpgahost::fpga::emu;

xrtDeviceHandle xrtDeviceOpen(unsigned int index) {
  try {
    std::filesystem::path root = emu::SysfsRoot();
    fpgahost::fpga::RealSysfs sysfs(root);
    auto names = sysfs.ListDirectory("bus/pci/drivers/xocl");
    std::vector<std::string> bdfs;
    if (names.ok()) {
      for (const std::string& name : *names) {
        if (name.size() == 12 && name[4] == ':') bdfs.push_back(name);
      }
    }
    if (!emu::IsEmulatedFleet(root) || index >= bdfs.size()) {
      return emu::FailOpen(ENODEV, fmt::format("no device present with index {}", index));
    }
    return emu::Open(root, bdfs[index]);
  } catch (const std::exception& e) {
    return emu::FailOpen(EIO, e.what());
  }
}

xrtDeviceHandle xrtDeviceOpenByBDF(const char* bdf) {
  if (bdf == nullptr) return emu::FailOpen(EINVAL, "Invalid device string");
  try {
    return emu::Open(emu::SysfsRoot(), bdf);
  } catch (const std::exception& e) {
    return emu::FailOpen(EIO, e.what());
  }
}

int xrtDeviceClose(xrtDeviceHandle dhdl) {
  try {
    if (!emu::Handles().Remove(dhdl)) return emu::Fail(EINVAL, "No such device handle");
    return 0;
  } catch (const std::exception& e) {
    return emu::Fail(EIO, e.what());
  }
}

int xrtDeviceLoadXclbin(xrtDeviceHandle dhdl, const struct axlf* xclbin) {
  if (xclbin == nullptr) return emu::Fail(EINVAL, "No xclbin given");
  try {
    // As XRT does, the caller's buffer is trusted to hold m_length bytes once the magic says it
    // is an axlf.
    const auto* bytes = reinterpret_cast<const uint8_t*>(xclbin);
    if (std::memcmp(bytes, "xclbin2", 8) != 0) {
      return emu::Fail(EINVAL, "failed to load xclbin: invalid xclbin magic string");
    }
    uint64_t length = 0;
    std::memcpy(&length, bytes + emu::kLengthOffset, sizeof(length));
    if (length < fpgahost::images::kAxlfHeaderSize) {
      return emu::Fail(EINVAL, fmt::format("failed to load xclbin: m_length {} is shorter than "
                                           "the axlf header",
                                           length));
    }
    return emu::Load(dhdl, std::span<const uint8_t>(bytes, static_cast<size_t>(length)));
  } catch (const std::exception& e) {
    return emu::Fail(EIO, e.what());
  }
}

int xrtDeviceLoadXclbinFile(xrtDeviceHandle dhdl, const char* xclbin_fnm) {
  if (xclbin_fnm == nullptr) return emu::Fail(EINVAL, "No xclbin specified");
  try {
    auto file = fpgahost::MappedFile::Open(xclbin_fnm);
    if (!file.ok()) {
      return emu::Fail(ENOENT, fmt::format("Failed to open file '{}' for reading", xclbin_fnm));
    }
    return emu::Load(dhdl, file->bytes());
  } catch (const std::exception& e) {
    return emu::Fail(EIO, e.what());
  }
}

int xrtDeviceGetXclbinUUID(xrtDeviceHandle dhdl, xuid_t out) {
  try {
    std::shared_ptr<emu::Device> device = emu::Handles().Find(dhdl);
    if (!device) return emu::Fail(EINVAL, "No such device handle");
    fpgahost::fpga::RealSysfs sysfs(device->root);
    // What XRT reads: xocl's xclbinuuid on the user PF.
    std::string path = "bus/pci/devices/" + device->card.user_bdf() + "/xclbinuuid";
    auto text = sysfs.ReadAttribute(path);
    if (!text.ok()) return emu::Fail(ENODEV, std::string(text.status().message()));
    std::string_view line = std::string_view(*text).substr(0, text->find('\n'));
    if (size_t space = line.find_last_of(' '); space != std::string_view::npos) {
      line.remove_prefix(space + 1);
    }
    fpgahost::images::Uuid uuid{};
    if (!line.empty()) {
      auto parsed = fpgahost::images::ParseUuid(line);
      if (!parsed) return emu::Fail(EIO, fmt::format("{}: not a UUID", path));
      uuid = *parsed;
    }
    std::memcpy(out, uuid.data(), uuid.size());
    return 0;
  } catch (const std::exception& e) {
    return emu::Fail(EIO, e.what());
  }
}
