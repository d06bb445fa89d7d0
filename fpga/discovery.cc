#include "fpga/discovery.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "images/xclbin.h"

namespace fpgahost::fpga {
namespace {

constexpr std::string_view kDevicesDir = "bus/pci/devices";

// "DDDD:BB:DD.F" with hex digits: the only names the kernel puts in bus/pci/devices.
bool IsBdf(std::string_view s) {
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11}) {
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::optional<uint32_t> ParseHex(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// A status word as drivers print it: "0x..." hex, or decimal.
std::optional<uint32_t> ParseStatusWord(std::string_view s) {
  if (s.starts_with("0x") || s.starts_with("0X")) return ParseHex(s);
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseNumber(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

// Reads one card's files, collecting problems instead of failing.
class CardReader {
 public:
  CardReader(const Sysfs& sysfs, CardInfo& card) : sysfs_(sysfs), card_(card) {}

  std::string DevicePath(std::string_view bdf, std::string_view file) const {
    std::string path(kDevicesDir);
    path.append("/").append(bdf);
    if (!file.empty()) path.append("/").append(file);
    return path;
  }

  void Problem(const std::string& path, std::string_view what) {
    card_.problems.push_back(path + ": " + std::string(what));
  }

  std::optional<std::string> Read(const std::string& path) {
    StatusOr<std::string> text = sysfs_.ReadAttribute(path);
    if (!text.ok()) {
      Problem(path, text.status().code() == StatusCode::kNotFound ? "missing" : "unreadable");
      return std::nullopt;
    }
    return std::move(*text);
  }

  std::optional<std::string> ReadNonEmpty(const std::string& path) {
    std::optional<std::string> text = Read(path);
    if (text && text->empty()) {
      Problem(path, "empty");
      return std::nullopt;
    }
    return text;
  }

  std::optional<double> ReadNumber(const std::string& path) {
    std::optional<std::string> text = Read(path);
    if (!text) return std::nullopt;
    std::optional<double> v = ParseNumber(*text);
    if (!v) Problem(path, "not a number: \"" + text->substr(0, 40) + "\"");
    return v;
  }

  std::optional<uint16_t> ReadDeviceId(std::string_view bdf) {
    std::string path = DevicePath(bdf, "device");
    std::optional<std::string> text = Read(path);
    if (!text) return std::nullopt;
    std::optional<uint32_t> v = ParseHex(*text);
    if (!v || *v > 0xffff) {
      Problem(path, "not a PCI device id: \"" + text->substr(0, 40) + "\"");
      return std::nullopt;
    }
    return static_cast<uint16_t>(*v);
  }

  // The bound driver's name; empty when unbound (no `driver` link is how the kernel says so).
  std::string ReadDriver(std::string_view bdf, std::initializer_list<std::string_view> allowed) {
    std::string path = DevicePath(bdf, "driver");
    StatusOr<std::string> target = sysfs_.ReadLink(path);
    if (!target.ok()) {
      if (target.status().code() != StatusCode::kNotFound) Problem(path, "unreadable link");
      return {};
    }
    std::string driver = LinkBasename(*target);
    if (std::find(allowed.begin(), allowed.end(), driver) == allowed.end()) {
      Problem(path, "unexpected driver " + driver);
    }
    return driver;
  }

  std::optional<int> ReadIommuGroup(std::string_view bdf) {
    std::string path = DevicePath(bdf, "iommu_group");
    StatusOr<std::string> target = sysfs_.ReadLink(path);
    if (!target.ok()) {
      Problem(path, target.status().code() == StatusCode::kNotFound ? "missing (no IOMMU?)"
                                                                    : "unreadable link");
      return std::nullopt;
    }
    std::string name = LinkBasename(*target);
    int group = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), group);
    if (ec != std::errc() || end != name.data() + name.size() || name.empty() || group < 0) {
      Problem(path, "not an IOMMU group: \"" + name + "\"");
      return std::nullopt;
    }
    return group;
  }

  // The subdevice directory whose name starts with "<prefix>." (e.g. "xmc.m.1024").
  std::optional<std::string> FindSubdevice(std::string_view bdf,
                                           const std::vector<std::string>& entries,
                                           std::string_view prefix) {
    std::string dotted = std::string(prefix) + ".";
    for (const std::string& name : entries) {
      if (name.starts_with(dotted)) return DevicePath(bdf, name);
    }
    Problem(DevicePath(bdf, dotted + "*"), "missing");
    return std::nullopt;
  }

  void ReadInterfaceUuid(const std::string& path) {
    std::optional<std::string> uuids = Read(path);
    if (!uuids) return;
    std::string_view first = std::string_view(*uuids).substr(0, uuids->find('\n'));
    if (std::optional<images::Uuid> uuid = images::ParseUuid(first)) {
      card_.interface_uuid = images::FormatUuid(*uuid);
    } else {
      Problem(path, "not a UUID: \"" + std::string(first.substr(0, 40)) + "\"");
    }
  }

  // xocl's xclbinuuid: the first slot's UUID; the nil UUID means nothing is loaded.
  void ReadLoadedXclbin(std::string_view user_bdf) {
    std::string path = DevicePath(user_bdf, "xclbinuuid");
    std::optional<std::string> text = Read(path);
    if (!text) return;
    std::string_view line = std::string_view(*text).substr(0, text->find('\n'));
    // Multi-slot drivers print "<slot> <uuid>".
    if (size_t space = line.find_last_of(" \t"); space != std::string_view::npos) {
      line.remove_prefix(space + 1);
    }
    if (line.empty()) {
      card_.loaded_xclbin_uuid = "";
    } else if (std::optional<images::Uuid> uuid = images::ParseUuid(line)) {
      card_.loaded_xclbin_uuid = images::IsNilUuid(*uuid) ? "" : images::FormatUuid(*uuid);
    } else {
      Problem(path, "not a UUID: \"" + std::string(line.substr(0, 40)) + "\"");
    }
  }

  void ReadShellAndSensors(std::string_view bdf) {
    std::vector<std::string> entries;
    StatusOr<std::vector<std::string>> listed = sysfs_.ListDirectory(DevicePath(bdf, ""));
    if (listed.ok()) {
      entries = std::move(*listed);
    } else {
      Problem(DevicePath(bdf, ""), "unreadable directory");
    }

    if (std::optional<std::string> rom = FindSubdevice(bdf, entries, "rom")) {
      card_.vbnv = ReadNonEmpty(*rom + "/VBNV");
    }

    // The AXI firewall (shells without one publish no subdevice: not a fault).
    for (const std::string& name : entries) {
      if (!name.starts_with("firewall.")) continue;
      std::string path = DevicePath(bdf, name + "/detected_status");
      if (std::optional<std::string> text = Read(path)) {
        if (std::optional<uint32_t> status = ParseStatusWord(*text)) {
          card_.firewall_status = status;
        } else {
          Problem(path, "not a firewall status: \"" + text->substr(0, 40) + "\"");
        }
      }
      break;
    }

    // Only partitioned (2RP) shells publish interface_uuids; its absence is not a fault.
    if (std::binary_search(entries.begin(), entries.end(), "interface_uuids")) {
      ReadInterfaceUuid(DevicePath(bdf, "interface_uuids"));
    }

    std::optional<std::string> xmc = FindSubdevice(bdf, entries, "xmc");
    if (!xmc) return;
    card_.serial = ReadNonEmpty(*xmc + "/serial_num");
    card_.temperature_c = ReadNumber(*xmc + "/xmc_fpga_temp");

    std::optional<double> pex_mv = ReadNumber(*xmc + "/xmc_12v_pex_vol");
    std::optional<double> pex_ma = ReadNumber(*xmc + "/xmc_12v_pex_curr");
    if (!pex_mv || !pex_ma) return;
    double watts = *pex_mv * *pex_ma / 1e6;
    // Boards without an auxiliary power connector (U50) have no 12 V AUX rail: absent is fine,
    // garbage is not.
    std::string aux_vol = *xmc + "/xmc_12v_aux_vol";
    std::string aux_curr = *xmc + "/xmc_12v_aux_curr";
    if (sysfs_.Exists(aux_vol) || sysfs_.Exists(aux_curr)) {
      std::optional<double> aux_mv = ReadNumber(aux_vol);
      std::optional<double> aux_ma = ReadNumber(aux_curr);
      if (!aux_mv || !aux_ma) return;
      watts += *aux_mv * *aux_ma / 1e6;
    }
    card_.power_w = watts;
  }

 private:
  const Sysfs& sysfs_;
  CardInfo& card_;
};

}  // namespace

std::string CardIdForBdf(std::string_view mgmt_bdf) {
  std::string id = "card-";
  for (char c : mgmt_bdf) id.push_back(c == ':' || c == '.' ? '-' : c);
  return id;
}

bool SysfsDeviceScanner::IsXilinxFunction(const std::string& bdf) const {
  // An unreadable vendor file means the device went away mid-scan (or is not ours).
  StatusOr<std::string> vendor =
      sysfs_.ReadAttribute(std::string(kDevicesDir) + "/" + bdf + "/vendor");
  return vendor.ok() && ParseHex(*vendor) == kXilinxVendorId;
}

CardInfo SysfsDeviceScanner::ReadCard(const std::string& mgmt, const std::string& user) const {
  CardInfo card;
  card.id = CardIdForBdf(mgmt);
  card.mgmt_bdf = mgmt;
  card.user_bdf = user;
  CardReader reader(sysfs_, card);
  card.mgmt_device_id = reader.ReadDeviceId(mgmt);
  card.mgmt_driver = reader.ReadDriver(mgmt, {"xclmgmt"});
  if (user.empty()) {
    reader.Problem(reader.DevicePath(mgmt.substr(0, 10) + ".1", ""), "user PF missing");
  } else {
    card.user_device_id = reader.ReadDeviceId(user);
    card.user_driver = reader.ReadDriver(user, {"xocl", "vfio-pci"});
    card.user_iommu_group = reader.ReadIommuGroup(user);
    if (card.user_driver == "xocl") reader.ReadLoadedXclbin(user);
  }
  reader.ReadShellAndSensors(mgmt);
  return card;
}

StatusOr<std::vector<CardInfo>> SysfsDeviceScanner::Scan() const {
  StatusOr<std::vector<std::string>> names = sysfs_.ListDirectory(kDevicesDir);
  if (!names.ok()) return names.status().WithContext("scanning PCI devices");

  // domain:bus:device -> (management BDF, user BDF)
  std::map<std::string, std::pair<std::string, std::string>> slots;
  for (const std::string& bdf : *names) {
    if (!IsBdf(bdf)) continue;
    char function = bdf.back();
    if (function != '0' && function != '1') continue;
    if (!IsXilinxFunction(bdf)) continue;
    auto& slot = slots[bdf.substr(0, 10)];
    (function == '0' ? slot.first : slot.second) = bdf;
  }

  std::vector<CardInfo> cards;
  cards.reserve(slots.size());
  for (const auto& [device, pfs] : slots) {
    if (!pfs.first.empty()) cards.push_back(ReadCard(pfs.first, pfs.second));
  }
  return cards;
}

StatusOr<CardInfo> SysfsDeviceScanner::ScanCard(std::string_view mgmt_bdf) const {
  std::string mgmt(mgmt_bdf);
  if (!IsBdf(mgmt) || mgmt.back() != '0' || !IsXilinxFunction(mgmt)) {
    return NotFoundError("no Xilinx management PF at " + mgmt);
  }
  std::string user = mgmt.substr(0, 10) + ".1";
  return ReadCard(mgmt, IsXilinxFunction(user) ? user : "");
}

}  // namespace fpgahost::fpga
