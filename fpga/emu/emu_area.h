// The emulated fleet's control area: the emulator's own state, kept beside the PCI tree and
// never inside a device directory, so fpgahost's discovery (which reads only what the kernel
// and XRT's drivers publish) never sees it. libxrt_emu.so, the emulated xbmgmt,
// `fpgahost emu fault` and EmulatedSysfs share it, possibly from several processes at once.
//
//   <root>/emu/
//     fleet.json              {"load_ms": 2000}: how long a load takes, for every card
//     tree.lock               flock(2) held by every change to the PCI tree's structure: bind,
//                             unbind, probe, remove, rescan, and the user PF's xclbinuuid
//     removed/<bdf>/          the directory of a removed PCI function, kept for a rescan
//     removed/<bdf>.json      {"path": "devices/pci0000:00/<bdf>", "iommu_group": 3}
//     cards/<mgmt bdf>/       one per card, created with the fleet
//       state.json            {"xclbin_uuid": "<8-4-4-4-12>", "resets": 0, "loading": false,
//                              "faults": {"load_fail": 0, "load_timeout": false,
//                                         "load_ms": null}}
//       state.lock            flock(2) held while state.json is read, changed and rewritten
//       load.lock             flock(2) held for the whole of a load: one load per card at a time
//
// state.json is the card itself: `xclbin_uuid` is what its user partition holds (the nil UUID
// when cleared), as the user PF's xclbinuuid shows it while bound to xocl; `resets` counts hot
// resets (a load in progress that sees it change is abandoned); `loading` is true while a load
// runs (or after its process died mid-load, until the next load or reset); `faults` are the
// injected faults that act on loads (fpga/emu/faults.h): the next `load_fail` loads fail, loads
// hang while `load_timeout` is set, and `load_ms` (when set) replaces fleet.json's load time.
// Sensor faults and surprise removal act on the PCI tree itself.
//
// Lock order: load.lock, then tree.lock, then state.lock; nothing takes tree.lock while
// holding state.lock.
//
// Errors: DataLoss (reason EMU_STATE_CORRUPT) for a garbled JSON file, naming it; NotFound for
// a card without state; file errors as ErrnoError.
//
// Thread-safety: free functions are safe to call from any thread and process; the files are
// written atomically (write and rename) and read-modify-writes hold state.lock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::fpga::emu {

inline constexpr char kEmuDirName[] = "emu";
inline constexpr int kDefaultLoadMs = 2000;
inline constexpr int kMaxLoadMs = 600'000;
inline constexpr char kNilUuid[] = "00000000-0000-0000-0000-000000000000";
inline constexpr char kReasonEmuStateCorrupt[] = "EMU_STATE_CORRUPT";

std::filesystem::path EmuDir(const std::filesystem::path& root);
std::filesystem::path TreeLockPath(const std::filesystem::path& root);
std::filesystem::path RemovedDir(const std::filesystem::path& root);
std::filesystem::path CardDir(const std::filesystem::path& root, std::string_view mgmt_bdf);

// The management PF (function 0) and the user PF (function 1) of the card a BDF belongs to.
std::string MgmtBdfOf(std::string_view bdf);
std::string UserBdfOf(std::string_view bdf);

// An exclusive flock(2) on a file, released when destroyed. Locks taken through separate
// FileLocks exclude each other whether they are in one process or several. Move-only.
class FileLock {
 public:
  // Blocks until the lock is held. Creates the file, and its directory, when missing.
  static StatusOr<FileLock> Acquire(const std::filesystem::path& path);
  // As Acquire, but gives up at once: nullopt when someone else holds it.
  static StatusOr<std::optional<FileLock>> TryAcquire(const std::filesystem::path& path);

  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

struct FleetConfig {
  int load_ms = kDefaultLoadMs;
};
// The defaults when fleet.json is missing.
StatusOr<FleetConfig> ReadFleetConfig(const std::filesystem::path& root);
Status WriteFleetConfig(const std::filesystem::path& root, const FleetConfig& config);

struct CardFaults {
  int load_fail = 0;
  bool load_timeout = false;
  std::optional<int> load_ms;

  bool operator==(const CardFaults&) const = default;
};

struct CardState {
  std::string xclbin_uuid = kNilUuid;
  uint64_t resets = 0;
  bool loading = false;
  CardFaults faults;
};

// Replaces `path` with `contents` atomically (a temporary file renamed over it): readers see the
// old contents or the new, never a part. Not synced to disk: the emulator's state need not
// survive a power cut.
Status ReplaceFile(const std::filesystem::path& path, std::string_view contents);

// True when the fleet has a card whose management PF is `mgmt_bdf` (removed or not).
bool HasCard(const std::filesystem::path& root, std::string_view mgmt_bdf);
// Writes a fresh state.json (cleared, no faults) for a new card.
Status CreateCardState(const std::filesystem::path& root, std::string_view mgmt_bdf);
StatusOr<CardState> ReadCardState(const std::filesystem::path& root, std::string_view mgmt_bdf);
// Applies `change` to the card's state under state.lock and returns the new state. `change`
// must not take other locks.
StatusOr<CardState> UpdateCardState(const std::filesystem::path& root, std::string_view mgmt_bdf,
                                    const std::function<void(CardState&)>& change);

}  // namespace fpgahost::fpga::emu
