// XrtProgrammer: loads xclbins through the user PF with XRT's C API, opened at run time.
//
// The library is configuration: XRT's libxrt_coreutil.so where XRT is installed, libxrt_emu.so
// (fpga/emu/xrt_emu.cc) for the emulated fleet. It is dlopen'ed (RTLD_NOW | RTLD_LOCAL) on the
// first Load, again on later calls while that fails, and never closed: a load abandoned after
// its timeout may still be running inside it. Of XRT's C API (xrt/xrt_device.h) it uses:
//
//   xrtDeviceHandle xrtDeviceOpenByBDF(const char* bdf);     NULL on error
//   int xrtDeviceClose(xrtDeviceHandle);                      0, or -1 with errno
//   int xrtDeviceLoadXclbin(xrtDeviceHandle, const axlf*);   0, or -1 with errno
//   int xrtDeviceGetXclbinUUID(xrtDeviceHandle, xuid_t out); 0, or -1 with errno
//
// XRT reports a failure as -1 and errno (older releases returned the negative errno itself;
// both are understood) and prints its own words on stderr ("[XRT] ERROR: ..."), which cannot
// be captured here without touching the process's stderr, so messages name the errno.
//
// Load(card, file, timeout): reads the file, then on a worker thread opens the user PF by BDF,
// loads, reads the loaded UUID back and closes. It waits up to `timeout`; after that it returns
// LOAD_TIMEOUT and leaves the worker to finish (it owns the file's bytes and the handle).
//
// Errors (fpga/programmer.h):
//   XRT_UNAVAILABLE      the library cannot be opened or lacks one of the functions above
//   CARD_NOT_FOUND       open failed with ENODEV/ENOENT/EINVAL: no user PF at that BDF bound to
//                        xocl (surprise removal, or the PF is with vfio-pci); a load failing
//                        with ENODEV/ENOENT
//   XCLBIN_INCOMPATIBLE  the driver refused the shell: EINVAL (xocl's "interface uuids do not
//                        match"; the card manager validated the file before, so a malformed
//                        file is not expected here) or EOPNOTSUPP (1RP shells)
//   LOAD_TIMEOUT         not done within `timeout`
//   LOAD_FAILED          any other error, with strerror; also when the UUID read back after the
//                        load is not the file's
//
// Thread-safety: safe for concurrent use (on different cards, as the card manager does).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>

#include "common/thread_annotations.h"
#include "fpga/programmer.h"

namespace fpgahost::fpga {

class XrtProgrammer : public Programmer {
 public:
  explicit XrtProgrammer(std::filesystem::path library_path);

  std::string_view name() const override { return "xrt"; }
  Status Load(const CardAddress& card, const std::filesystem::path& xclbin,
              std::chrono::milliseconds timeout) override;

  // The XRT functions, resolved. Public for the worker threads; not part of the contract.
  struct Api {
    void* (*open_by_bdf)(const char*);
    int (*close)(void*);
    int (*load_xclbin)(void*, const void*);
    int (*get_xclbin_uuid)(void*, unsigned char*);
  };

 private:
  // The resolved API, opening the library first when needed.
  StatusOr<Api> Resolve() EXCLUDES(mu_);

  const std::filesystem::path library_path_;
  Mutex mu_;
  std::optional<Api> api_ GUARDED_BY(mu_);
};

}  // namespace fpgahost::fpga
