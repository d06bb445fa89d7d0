// XbmgmtProgrammer: loads and resets cards through their management PF with XRT's xbmgmt tool,
// which works whatever holds the user PF (a VM through vfio-pci, or the host's xocl).
//
// The tool is configuration (a path, or a name looked up in PATH): XRT's
// /opt/xilinx/xrt/bin/xbmgmt on hosts with XRT, the emulated xbmgmt
// (fpga/emu/xbmgmt_emu_main.cc) for the emulated fleet. It runs as
//
//   xbmgmt program --device <mgmt bdf> --user <xclbin> --force
//   xbmgmt reset --device <mgmt bdf> --force                  (a hot reset, the default type)
//
// as a child process (common/subprocess.h: posix_spawn, no shell, its own process group,
// stdin from /dev/null, no other descriptor of the daemon inherited) with the daemon's
// environment, so FPGAHOST_SYSFS_ROOT reaches the emulated tool. The last 4 KB of its stdout and
// stderr go into error messages. Exit status 0 is success. On timeout the whole process group
// is killed (SIGKILL).
//
// Errors (fpga/programmer.h):
//   XRT_UNAVAILABLE      the tool is missing or cannot be run
//   CARD_NOT_FOUND       the tool says the device was not found
//   XCLBIN_INCOMPATIBLE  the tool's output says the interface UUIDs (or the shell) do not match;
//                        the real tool usually reports a download failure only, which is
//                        LOAD_FAILED
//   LOAD_TIMEOUT         (Load) not done within `timeout`
//   RESET_FAILED         (Reset) the tool failed or did not finish within `timeout`
//   LOAD_FAILED          (Load) any other failure, with the tool's output
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <chrono>
#include <filesystem>
#include <string_view>

#include "fpga/programmer.h"

namespace fpgahost::fpga {

class XbmgmtProgrammer : public Programmer, public CardResetter {
 public:
  explicit XbmgmtProgrammer(std::filesystem::path xbmgmt_path);

  std::string_view name() const override { return "xbmgmt"; }
  Status Load(const CardAddress& card, const std::filesystem::path& xclbin,
              std::chrono::milliseconds timeout) override;
  Status Reset(const CardAddress& card, std::chrono::milliseconds timeout) override;

 private:
  const std::filesystem::path xbmgmt_path_;
};

}  // namespace fpgahost::fpga
