#include "fpga/emu/emulated_card.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "fpga/discovery.h"
#include "fpga/emu/emu_area.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/sysfs.h"
#include "images/xclbin.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

// How often a waiting load looks for a reset, a removal or a cleared fault.
constexpr std::chrono::milliseconds kPollInterval{50};

DriverResult Failure(int error, std::string message) { return {error, std::move(message)}; }

bool LooksLikeBdf(std::string_view s) {
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11}) {
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

StatusOr<EmulatedCard> EmulatedCard::Find(const fs::path& root, std::string_view bdf) {
  std::string lower(bdf);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!LooksLikeBdf(lower) || (lower.back() != '0' && lower.back() != '1')) {
    return InvalidArgumentError(fmt::format("'{}' is not a PCI address (DDDD:BB:DD.F)", bdf));
  }
  std::string mgmt = MgmtBdfOf(lower);
  if (!HasCard(root, mgmt)) {
    return NotFoundError(
        fmt::format("no card at {} in the emulated fleet at {}", mgmt, root.string()));
  }
  return EmulatedCard(root, mgmt, UserBdfOf(lower));
}

std::string EmulatedCard::id() const { return CardIdForBdf(mgmt_bdf_); }

bool EmulatedCard::Bound(std::string_view bdf, std::string_view driver) const {
  RealSysfs files(root_);
  StatusOr<std::string> link = files.ReadLink("bus/pci/devices/" + std::string(bdf) + "/driver");
  return link.ok() && LinkBasename(*link) == driver;
}

DriverResult EmulatedCard::CheckShell(const images::Uuid& interface_uuid,
                                      std::string_view vbnv) const {
  RealSysfs files(root_);
  std::string device = "bus/pci/devices/" + mgmt_bdf_;
  if (!files.Exists(device)) {
    return Failure(ENODEV, fmt::format("the card's management PF {} is gone", mgmt_bdf_));
  }
  StatusOr<std::string> uuids = files.ReadAttribute(device + "/interface_uuids");
  if (uuids.ok()) {
    std::string offered;
    size_t begin = 0;
    while (begin < uuids->size()) {
      size_t end = std::min(uuids->find('\n', begin), uuids->size());
      std::string_view line = std::string_view(*uuids).substr(begin, end - begin);
      if (std::optional<images::Uuid> uuid = images::ParseUuid(line)) {
        if (*uuid == interface_uuid) return {};
        offered += (offered.empty() ? "" : ", ") + images::FormatUuid(*uuid);
      }
      begin = end + 1;
    }
    return Failure(EINVAL, fmt::format("interface uuids do not match: the xclbin needs {}, the "
                                       "card's shell offers {}",
                                       images::FormatUuid(interface_uuid),
                                       offered.empty() ? "none" : offered));
  }
  // Shells without interface UUIDs are matched by name, as XRT's shim reports it.
  StatusOr<std::vector<std::string>> entries = files.ListDirectory(device);
  std::string shell_vbnv;
  if (entries.ok()) {
    for (const std::string& name : *entries) {
      if (!name.starts_with("rom.")) continue;
      shell_vbnv = files.ReadAttribute(device + "/" + name + "/VBNV").value_or("");
    }
  }
  if (shell_vbnv != vbnv) {
    return Failure(EOPNOTSUPP, fmt::format("xclbin does not match shell on card: shell VBNV is "
                                           "'{}', xclbin VBNV is '{}'",
                                           shell_vbnv, images::EscapeForDisplay(vbnv, 64)));
  }
  return {};
}

DriverResult EmulatedCard::Load(std::span<const uint8_t> bytes, LoadPath path) const {
  // 1. The container, as the drivers' sanity checks see it.
  constexpr char kMagic[8] = {'x', 'c', 'l', 'b', 'i', 'n', '2', '\0'};
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return Failure(EINVAL, "invalid xclbin magic string");
  }
  StatusOr<images::XclbinLayout> layout = images::ParseXclbinLayout(bytes);
  if (!layout.ok()) {
    return Failure(EINVAL, fmt::format("invalid xclbin: {}", layout.status().message()));
  }
  const images::AxlfHeader& header = layout->header;
  if (header.length > bytes.size()) {
    return Failure(EINVAL, fmt::format("xclbin is truncated: m_length is {} but only {} bytes "
                                       "were given",
                                       header.length, bytes.size()));
  }
  if (images::IsNilUuid(header.uuid)) return Failure(EINVAL, "invalid xclbin uuid");

  // 2. The way in.
  const std::string& bdf = path == LoadPath::kUserPf ? user_bdf_ : mgmt_bdf_;
  const char* driver = path == LoadPath::kUserPf ? "xocl" : "xclmgmt";
  if (!Bound(bdf, driver)) {
    return Failure(ENODEV, fmt::format("no device {} bound to {}", bdf, driver));
  }

  // 3. The shell.
  if (DriverResult shell = CheckShell(header.interface_uuid, header.platform_vbnv); !shell.ok()) {
    return shell;
  }

  // 4. One load at a time; the old design goes as the download starts.
  StatusOr<FileLock> load_lock = FileLock::Acquire(CardDir(root_, mgmt_bdf_) / "load.lock");
  if (!load_lock.ok()) return Failure(EIO, std::string(load_lock.status().message()));
  bool inject_failure = false;
  StatusOr<CardState> start = UpdateCardState(root_, mgmt_bdf_, [&](CardState& s) {
    s.xclbin_uuid = kNilUuid;
    s.loading = true;
    if (s.faults.load_fail > 0) {
      --s.faults.load_fail;
      inject_failure = true;
    }
  });
  if (!start.ok()) return Failure(EIO, std::string(start.status().message()));
  // However the load ends from here on, it is no longer in progress.
  struct LoadingFlag {
    const EmulatedCard& card;
    ~LoadingFlag() {
      UpdateCardState(card.root_, card.mgmt_bdf_, [](CardState& s) { s.loading = false; })
          .status()
          .IgnoreError();
    }
  } loading_flag{*this};
  if (Status s = SyncUserPfXclbinUuid(root_, mgmt_bdf_); !s.ok()) {
    return Failure(EIO, std::string(s.message()));
  }
  StatusOr<FleetConfig> fleet = ReadFleetConfig(root_);
  int load_ms = start->faults.load_ms.value_or(fleet.ok() ? fleet->load_ms : kDefaultLoadMs);

  // What ends a download early: a reset, the card going away.
  bool timeout_cleared = false;
  auto interrupted = [&]() -> DriverResult {
    StatusOr<CardState> now = ReadCardState(root_, mgmt_bdf_);
    if (!now.ok()) {
      return Failure(ENODEV, "the card is gone: " + std::string(now.status().message()));
    }
    if (now->resets != start->resets) {
      return Failure(EIO, "xclbin download abandoned: the card was reset");
    }
    if (!Bound(bdf, driver)) return Failure(ENODEV, "device " + bdf + " removed during download");
    timeout_cleared = !now->faults.load_timeout;
    return {};
  };

  // 5. A hung download.
  if (start->faults.load_timeout) {
    auto give_up = std::chrono::steady_clock::now() + kMaxHang;
    while (true) {
      std::this_thread::sleep_for(kPollInterval);
      if (DriverResult r = interrupted(); !r.ok()) return r;
      if (timeout_cleared) break;
      if (std::chrono::steady_clock::now() >= give_up) {
        return Failure(ETIMEDOUT, "xclbin download timed out: the ICAP did not finish");
      }
    }
  }

  // 6. The download itself.
  auto done = std::chrono::steady_clock::now() + std::chrono::milliseconds(load_ms);
  while (std::chrono::steady_clock::now() < done) {
    auto left = done - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, kPollInterval));
    if (DriverResult r = interrupted(); !r.ok()) return r;
  }

  // 7. An injected failure.
  if (inject_failure) {
    return Failure(EIO,
                   "bitstream download failed: ICAP reported an error (emulated "
                   "load-fail fault)");
  }

  // 8. The card holds the xclbin, unless a reset came in between.
  bool abandoned = false;
  StatusOr<CardState> end = UpdateCardState(root_, mgmt_bdf_, [&](CardState& s) {
    if (s.resets != start->resets) {
      abandoned = true;
      return;
    }
    s.xclbin_uuid = images::FormatUuid(header.uuid);
  });
  if (!end.ok()) return Failure(ENODEV, "the card is gone: " + std::string(end.status().message()));
  if (abandoned) return Failure(EIO, "xclbin download abandoned: the card was reset");
  if (Status s = SyncUserPfXclbinUuid(root_, mgmt_bdf_); !s.ok()) {
    return Failure(EIO, std::string(s.message()));
  }
  return {};
}

DriverResult EmulatedCard::Reset() const {
  if (!Bound(mgmt_bdf_, "xclmgmt")) {
    return Failure(ENODEV, fmt::format("no device {} bound to xclmgmt", mgmt_bdf_));
  }
  StatusOr<CardState> state = UpdateCardState(root_, mgmt_bdf_, [](CardState& s) {
    s.xclbin_uuid = kNilUuid;
    s.loading = false;
    ++s.resets;
    s.faults.load_timeout = false;
  });
  if (!state.ok()) return Failure(EIO, std::string(state.status().message()));
  if (Status s = SyncUserPfXclbinUuid(root_, mgmt_bdf_); !s.ok()) {
    return Failure(EIO, std::string(s.message()));
  }
  // A hot reset also re-arms the AXI firewalls.
  std::error_code ec;
  fs::path device = root_ / "bus/pci/devices" / mgmt_bdf_;
  for (const auto& entry : fs::directory_iterator(device, ec)) {
    if (!entry.path().filename().string().starts_with("firewall.")) continue;
    for (const char* file : {"detected_status", "detected_level"}) {
      if (Status s = ReplaceFile(entry.path() / file, "0\n"); !s.ok()) {
        return Failure(EIO, std::string(s.message()));
      }
    }
  }
  return {};
}

}  // namespace fpgahost::fpga::emu
