// One emulated card as its drivers see it: loading an xclbin into its user partition and
// hot-resetting it. libxrt_emu.so (the user PF path, as xocl) and the emulated xbmgmt (the
// management PF path, as xclmgmt) both call this, so the two loaders behave alike.
//
// A load, in the order the real drivers check things:
//   1. the axlf: magic "xclbin2", a readable header and section table, m_length within the
//      bytes given, a non-nil xclbin UUID                                     else EINVAL;
//   2. the PF the load goes through is present and bound to its driver (xocl for the user PF,
//      xclmgmt for the management PF)                                       else ENODEV;
//   3. the shell: m_interface_uuid is one of the management PF's interface_uuids (2RP shells;
//      xocl and xclmgmt both refuse with EINVAL, "interface uuids do not match"), or, for a
//      shell without interface UUIDs, m_platformVBNV is the ROM's VBNV          else EOPNOTSUPP;
//   4. one load per card at a time (emu/cards/<bdf>/load.lock, across processes); from here
//      on the previous design is gone (the card shows the nil UUID);
//   5. faults: `load-timeout` hangs the load, re-checked every 50 ms, until a reset (EIO,
//      abandoned), the fault is cleared (the load goes on), the card disappears (ENODEV) or
//      kMaxHang passes (ETIMEDOUT);
//   6. the load time (the card's `slow-load` fault, else fleet.json's load_ms), during which a
//      reset abandons the load (EIO) and a removal fails it (ENODEV);
//   7. `load-fail`: the load fails with EIO, "bitstream download failed";
//   8. the card holds the xclbin: its state and, while the user PF is bound to xocl, xocl's
//      xclbinuuid show the file's UUID.
// Loading the UUID already loaded is a full load: deciding it is a no-op is the caller's job.
//
// Reset (xbmgmt reset, hot): the management PF must be present and bound to xclmgmt (else
// ENODEV); the user partition is cleared (nil UUID), a hung load is abandoned (the
// load-timeout fault is cleared), other faults and the sensors stay as they are.
//
// Errors come back as a DriverResult: an errno value, as the drivers return them, and the
// drivers' words for the message.
//
// Thread-safety: safe to use from several threads and processes at once.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace fpgahost::fpga::emu {

// How long a load hung by the load-timeout fault waits before it gives up by itself.
inline constexpr std::chrono::minutes kMaxHang{10};

struct DriverResult {
  int error = 0;        // 0, or a positive errno value
  std::string message;  // the driver's words when error != 0

  bool ok() const { return error == 0; }
};

enum class LoadPath {
  kUserPf,  // xocl, through XRT's xrtDeviceLoadXclbin
  kMgmtPf,  // xclmgmt, through xbmgmt program --user
};

class EmulatedCard {
 public:
  // The card of `bdf` (either PF) in the fleet at `root`. NotFound when the fleet has no such
  // card (a removed card is still a card).
  static StatusOr<EmulatedCard> Find(const std::filesystem::path& root, std::string_view bdf);

  const std::string& mgmt_bdf() const { return mgmt_bdf_; }
  const std::string& user_bdf() const { return user_bdf_; }
  // "card-0000-10-00-0", as discovery names it.
  std::string id() const;

  // True when the PF is present (not removed) and bound to `driver`.
  bool Bound(std::string_view bdf, std::string_view driver) const;

  DriverResult Load(std::span<const uint8_t> xclbin, LoadPath path) const;
  DriverResult Reset() const;

 private:
  EmulatedCard(std::filesystem::path root, std::string mgmt_bdf, std::string user_bdf)
      : root_(std::move(root)), mgmt_bdf_(std::move(mgmt_bdf)), user_bdf_(std::move(user_bdf)) {}

  DriverResult CheckShell(const std::array<uint8_t, 16>& interface_uuid,
                          std::string_view vbnv) const;

  std::filesystem::path root_;
  std::string mgmt_bdf_;
  std::string user_bdf_;
};

}  // namespace fpgahost::fpga::emu
