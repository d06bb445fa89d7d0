#include "fpga/emu/sysfs_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "common/files.h"
#include "common/json.h"
#include "fpga/card.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

constexpr char kPciRoot[] = "devices/pci0000:00";
constexpr int kFirstBus = 0x10;
constexpr char kUnsetOverride[] = "(null)";  // what the kernel shows for no driver_override

struct Board {
  std::string_view vbnv_key;  // as it appears in a VBNV, e.g. "xilinx_u250_gen3x16_..."
  uint16_t mgmt_device;
  uint16_t user_device;
  std::string_view part;
};

constexpr Board kBoards[] = {
    {"_u200_", 0x5000, 0x5001, "xcu200-fsgd2104-2-e"},
    {"_u250_", 0x5004, 0x5005, "xcu250-figd2104-2L-e"},
    {"_u280_", 0x500c, 0x500d, "xcu280-fsvh2892-2L-e"},
    {"_u50_", 0x5020, 0x5021, "xcu50-fsvh2104-2-e"},
};

const Board& BoardFor(std::string_view vbnv) {
  for (const Board& board : kBoards) {
    if (vbnv.find(board.vbnv_key) != std::string_view::npos) return board;
  }
  return kBoards[1];
}

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

Status WriteText(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return ErrnoError("writing " + path.string(), errno);
  return Status::Ok();
}

Status MakeDirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return ErrnoError("creating " + dir.string(), ec.value());
  return Status::Ok();
}

Status MakeLink(const fs::path& target, const fs::path& link) {
  std::error_code ec;
  fs::create_symlink(target, link, ec);
  if (ec) return ErrnoError("linking " + link.string(), ec.value());
  return Status::Ok();
}

// "../" once per component of `from_dir` (relative to the root): the way back to the root.
std::string UpTo(const fs::path& from_dir) {
  std::string up;
  for (auto it = from_dir.begin(); it != from_dir.end(); ++it) up += "../";
  return up;
}

// Links a device into a driver both ways, as the kernel's driver core does on bind.
Status LinkDriver(const fs::path& root, const fs::path& device_rel, const std::string& bdf,
                  const std::string& driver) {
  fs::path driver_rel = fs::path("bus/pci/drivers") / driver;
  RETURN_IF_ERROR(MakeLink(UpTo(device_rel) + driver_rel.string(), root / device_rel / "driver"));
  return MakeLink(UpTo(driver_rel) + device_rel.string(), root / driver_rel / bdf);
}

struct Function {
  std::string bdf;
  uint16_t device_id;
  std::string driver;
  int iommu_group;
};

Status WriteFunction(const fs::path& root, const Function& f, uint16_t subsystem_device) {
  fs::path rel = fs::path(kPciRoot) / f.bdf;
  fs::path dir = root / rel;
  RETURN_IF_ERROR(MakeDirs(dir));
  RETURN_IF_ERROR(WriteText(dir / "vendor", fmt::format("0x{:04x}\n", kXilinxVendorId)));
  RETURN_IF_ERROR(WriteText(dir / "device", fmt::format("0x{:04x}\n", f.device_id)));
  // PCI class 0x1200xx: processing accelerator.
  RETURN_IF_ERROR(WriteText(dir / "class", "0x120000\n"));
  RETURN_IF_ERROR(WriteText(dir / "subsystem_vendor", fmt::format("0x{:04x}\n", kXilinxVendorId)));
  RETURN_IF_ERROR(WriteText(dir / "subsystem_device", fmt::format("0x{:04x}\n", subsystem_device)));
  RETURN_IF_ERROR(WriteText(dir / "driver_override", std::string(kUnsetOverride) + "\n"));
  RETURN_IF_ERROR(WriteText(dir / "remove", ""));

  fs::path group_rel = fs::path("kernel/iommu_groups") / std::to_string(f.iommu_group);
  RETURN_IF_ERROR(MakeDirs(root / group_rel / "devices"));
  RETURN_IF_ERROR(MakeLink(UpTo(rel) + group_rel.string(), dir / "iommu_group"));
  RETURN_IF_ERROR(
      MakeLink(UpTo(group_rel / "devices") + rel.string(), root / group_rel / "devices" / f.bdf));
  return LinkDriver(root, rel, f.bdf, f.driver);
}

Status WriteCard(const fs::path& root, int index, const images::ShellSpec& shell) {
  const Board& board = BoardFor(shell.vbnv);
  Function mgmt{EmulatedMgmtBdf(index), board.mgmt_device, "xclmgmt", 2 * index};
  Function user{EmulatedUserBdf(index), board.user_device, "xocl", 2 * index + 1};
  RETURN_IF_ERROR(CreateCardState(root, mgmt.bdf));
  RETURN_IF_ERROR(WriteFunction(root, mgmt, 0x000e));
  RETURN_IF_ERROR(WriteFunction(root, user, 0x000e));
  // xocl's attribute: nothing loaded yet.
  RETURN_IF_ERROR(
      WriteText(root / kPciRoot / user.bdf / "xclbinuuid", std::string(kNilUuid) + "\n"));

  fs::path dir = root / kPciRoot / mgmt.bdf;
  int instance = (kFirstBus + index) << 8;  // bus << 8 | devfn, devfn 0
  if (!shell.interface_uuid.empty()) {
    std::string hex;
    for (char c : shell.interface_uuid) {
      if (c != '-') hex.push_back(c);
    }
    RETURN_IF_ERROR(WriteText(dir / "interface_uuids", hex + "\n"));
  }
  fs::path rom = dir / fmt::format("rom.m.{}", instance);
  RETURN_IF_ERROR(MakeDirs(rom));
  RETURN_IF_ERROR(WriteText(rom / "VBNV", shell.vbnv + "\n"));
  RETURN_IF_ERROR(WriteText(rom / "FPGA", std::string(board.part) + "\n"));

  // The AXI firewall subdevice: detected_status is 0 until a firewall trips.
  fs::path firewall = dir / fmt::format("firewall.m.{}", instance);
  RETURN_IF_ERROR(MakeDirs(firewall));
  RETURN_IF_ERROR(WriteText(firewall / "detected_status", "0\n"));
  RETURN_IF_ERROR(WriteText(firewall / "detected_level", "0\n"));

  fs::path xmc = dir / fmt::format("xmc.m.{}", instance);
  RETURN_IF_ERROR(MakeDirs(xmc));
  RETURN_IF_ERROR(WriteText(xmc / "serial_num", fmt::format("EMU{:09d}\n", index + 1)));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_fpga_temp", fmt::format("{}\n", kHealthyTempC)));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_pex_vol", fmt::format("{}\n", kRailMillivolts)));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_pex_curr", fmt::format("{}\n", kHealthyPexMilliamps)));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_aux_vol", fmt::format("{}\n", kRailMillivolts)));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_aux_curr", fmt::format("{}\n", kHealthyAuxMilliamps)));
  // Listed last, user PF first: a scan of a fleet being written (`emu init` under a running
  // daemon, a hot-plugged card) sees whole cards or none, never a management PF without its
  // user PF or sensors.
  for (const Function* f : {&user, &mgmt}) {
    RETURN_IF_ERROR(MakeLink(UpTo("bus/pci/devices") + (fs::path(kPciRoot) / f->bdf).string(),
                             root / "bus/pci/devices" / f->bdf));
  }
  return Status::Ok();
}

// Leaves `root` an existing, empty directory, or says why it may not be used.
Status PrepareRoot(const fs::path& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return MakeDirs(root);
  if (!fs::is_directory(root, ec)) {
    return FailedPreconditionError(root.string() + " is not a directory",
                                   kReasonNotAnEmulatedFleet);
  }
  bool empty = fs::is_empty(root, ec);
  if (ec) return ErrnoError("reading " + root.string(), ec.value());
  if (empty) return Status::Ok();
  if (!fs::exists(root / kFleetMarker, ec)) {
    return FailedPreconditionError(
        root.string() + " is not empty and holds no emulated fleet (no " + kFleetMarker + ")",
        kReasonNotAnEmulatedFleet);
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
    fs::remove_all(entry.path(), ec);
    if (ec) return ErrnoError("removing " + entry.path().string(), ec.value());
  }
  if (ec) return ErrnoError("reading " + root.string(), ec.value());
  return Status::Ok();
}

}  // namespace

std::string EmulatedMgmtBdf(int index) {
  return fmt::format("0000:{:02x}:00.0", kFirstBus + index);
}
std::string EmulatedUserBdf(int index) {
  return fmt::format("0000:{:02x}:00.1", kFirstBus + index);
}

Status CreateEmulatedFleet(const fs::path& root, int cards, const images::ShellSpec& shell,
                           int load_ms) {
  if (cards < 1 || cards > kMaxEmulatedCards) {
    return InvalidArgumentError(
        fmt::format("cards: {} is outside 1..{}", cards, kMaxEmulatedCards));
  }
  if (load_ms < 0 || load_ms > kMaxLoadMs) {
    return InvalidArgumentError(fmt::format("load_ms: {} is outside 0..{}", load_ms, kMaxLoadMs));
  }
  if (shell.vbnv.empty()) return InvalidArgumentError("shell " + shell.name + " has no VBNV");
  RETURN_IF_ERROR(PrepareRoot(root));
  // The marker goes first so a half-written tree can still be replaced by the next attempt.
  Json marker = {{"cards", cards}, {"shell", shell.name}};
  RETURN_IF_ERROR(WriteText(root / kFleetMarker, marker.dump() + "\n"));
  RETURN_IF_ERROR(WriteFleetConfig(root, FleetConfig{load_ms}));
  for (const char* dir : {"bus/pci/devices", "kernel/iommu_groups"}) {
    RETURN_IF_ERROR(MakeDirs(root / dir));
  }
  for (const char* driver : {"xclmgmt", "xocl", "vfio-pci"}) {
    fs::path dir = root / "bus/pci/drivers" / driver;
    RETURN_IF_ERROR(MakeDirs(dir));
    RETURN_IF_ERROR(WriteText(dir / "bind", ""));
    RETURN_IF_ERROR(WriteText(dir / "unbind", ""));
  }
  RETURN_IF_ERROR(WriteText(root / "bus/pci/drivers_probe", ""));
  RETURN_IF_ERROR(WriteText(root / "bus/pci/rescan", ""));
  for (int i = 0; i < cards; ++i) RETURN_IF_ERROR(WriteCard(root, i, shell));
  return Status::Ok();
}

Status CreateEmulatedFleet(const fs::path& root, int cards, const images::ShellCatalogue& catalogue,
                           std::string_view shell_name, int load_ms) {
  const images::ShellSpec* shell = catalogue.FindByName(shell_name);
  if (shell == nullptr) {
    return NotFoundError("no shell named " + std::string(shell_name) + " in the catalogue",
                         "UNKNOWN_SHELL");
  }
  return CreateEmulatedFleet(root, cards, *shell, load_ms);
}

fs::path EmulatedDevRoot(const fs::path& root) { return root / "dev"; }

bool IsEmulatedFleet(const fs::path& root) {
  std::error_code ec;
  return fs::is_regular_file(root / kFleetMarker, ec);
}

namespace {

// The tree's operations with kernel effects, on a canonical root. Callers hold the tree lock.
class Tree {
 public:
  explicit Tree(const fs::path& root) : root_(root), files_(root) {}

  // Canonicalizes `root` and takes the fleet's tree lock for the lifetime of the result.
  static StatusOr<std::pair<Tree, FileLock>> Lock(const fs::path& root) {
    std::error_code ec;
    fs::path canon = fs::canonical(root, ec);
    if (ec) return ErrnoError("resolving " + root.string(), ec.value());
    ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(TreeLockPath(canon)));
    return std::make_pair(Tree(canon), std::move(lock));
  }

  const fs::path& root() const { return root_; }

  Status Bind(const std::string& bdf, const std::string& driver);
  Status Unbind(const std::string& bdf, const std::string& driver);
  Status Probe(const std::string& bdf);
  Status Remove(const std::string& bdf);
  Status Rescan(const std::vector<std::string>& only);
  Status SyncXclbinUuid(const std::string& mgmt_bdf);

 private:
  std::string Device(const std::string& bdf) const { return "bus/pci/devices/" + bdf; }
  std::string BoundDriver(const std::string& bdf) const {
    StatusOr<std::string> link = files_.ReadLink(Device(bdf) + "/driver");
    return link.ok() ? LinkBasename(*link) : "";
  }
  // xocl's xclbinuuid: what the card's state says is loaded.
  Status WriteXclbinUuid(const std::string& user_bdf);
  // <root>/dev/vfio/<group> of the device's group: present while a device of the group is
  // bound to vfio-pci.
  Status SyncVfioGroupNode(const std::string& bdf);

  fs::path root_;
  RealSysfs files_;
};

// A single path component: never a way out of the directory it is joined to.
bool IsPlainName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

// Parses a number the way the kernel's kstrtoul(buf, 0, ...) does for these attributes.
std::optional<unsigned long> ParseKernelNumber(std::string_view text) {
  text = Trim(text);
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  unsigned long v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

Status Tree::WriteXclbinUuid(const std::string& user_bdf) {
  std::string uuid = kNilUuid;
  std::string mgmt = MgmtBdfOf(user_bdf);
  if (HasCard(root_, mgmt)) {
    ASSIGN_OR_RETURN(CardState state, ReadCardState(root_, mgmt));
    uuid = state.xclbin_uuid;
  }
  std::error_code ec;
  fs::path dir = fs::canonical(root_ / Device(user_bdf), ec);
  if (ec) return ErrnoError("resolving " + Device(user_bdf), ec.value());
  return WriteText(dir / "xclbinuuid", uuid + "\n");
}

Status Tree::Bind(const std::string& bdf, const std::string& driver) {
  std::string device = Device(bdf);
  if (!IsPlainName(bdf) || !files_.Exists(device)) {
    return NotFoundError("bind " + driver + ": no such device " + bdf);
  }
  if (StatusOr<std::string> bound = files_.ReadLink(device + "/driver"); bound.ok()) {
    return FailedPreconditionError(bdf + " is already bound to " + LinkBasename(*bound));
  }
  StatusOr<std::string> override_name = files_.ReadAttribute(device + "/driver_override");
  if (override_name.ok() && *override_name != kUnsetOverride && !override_name->empty() &&
      *override_name != driver) {
    return NotFoundError("bind " + driver + ": " + bdf + " has driver_override " + *override_name);
  }
  std::error_code ec;
  fs::path device_dir = fs::canonical(root_ / device, ec);
  if (ec) return ErrnoError("resolving " + device, ec.value());
  RETURN_IF_ERROR(LinkDriver(root_, device_dir.lexically_relative(root_), bdf, driver));
  // xocl's probe publishes its attributes; the only one emulated is xclbinuuid.
  if (driver == "xocl") return WriteXclbinUuid(bdf);
  if (driver == kVfioPciDriver) return SyncVfioGroupNode(bdf);
  return Status::Ok();
}

Status Tree::SyncVfioGroupNode(const std::string& bdf) {
  StatusOr<std::string> link = files_.ReadLink(Device(bdf) + "/iommu_group");
  if (!link.ok()) return Status::Ok();  // vfio-pci refuses such a device; nothing to publish
  std::string group = LinkBasename(*link);
  if (!IsPlainName(group)) return Status::Ok();
  bool held = false;
  StatusOr<std::vector<std::string>> members =
      files_.ListDirectory("kernel/iommu_groups/" + group + "/devices");
  for (const std::string& member : members.value_or(std::vector<std::string>{})) {
    if (BoundDriver(member) == kVfioPciDriver) held = true;
  }
  fs::path node = EmulatedDevRoot(root_) / "vfio" / group;
  std::error_code ec;
  if (!held) {
    fs::remove(node, ec);
    if (ec) return ErrnoError("removing " + node.string(), ec.value());
    return Status::Ok();
  }
  if (fs::exists(node, ec)) return Status::Ok();
  RETURN_IF_ERROR(MakeDirs(node.parent_path()));
  return WriteText(node, "");
}

Status Tree::Unbind(const std::string& bdf, const std::string& driver) {
  std::string device = Device(bdf);
  Status not_bound = NotFoundError("unbind " + driver + ": " + bdf + " is not bound to it");
  if (!IsPlainName(bdf)) return not_bound;
  StatusOr<std::string> bound = files_.ReadLink(device + "/driver");
  if (!bound.ok() || LinkBasename(*bound) != driver) return not_bound;
  std::error_code ec;
  if (driver == "xocl") {
    fs::remove(root_ / device / "xclbinuuid", ec);
    if (ec) return ErrnoError("unbinding " + bdf, ec.value());
  }
  fs::remove(root_ / device / "driver", ec);
  if (ec) return ErrnoError("unbinding " + bdf, ec.value());
  fs::remove(root_ / "bus/pci/drivers" / driver / bdf, ec);
  if (ec) return ErrnoError("unbinding " + bdf, ec.value());
  if (driver == kVfioPciDriver) return SyncVfioGroupNode(bdf);
  return Status::Ok();
}

Status Tree::Probe(const std::string& bdf) {
  std::string device = Device(bdf);
  if (!IsPlainName(bdf) || !files_.Exists(device)) {
    return NotFoundError("drivers_probe: no such device " + bdf);
  }
  if (files_.Exists(device + "/driver")) return Status::Ok();
  std::string driver;
  StatusOr<std::string> override_name = files_.ReadAttribute(device + "/driver_override");
  if (override_name.ok() && *override_name != kUnsetOverride && !override_name->empty()) {
    driver = *override_name;
  } else {
    StatusOr<std::string> vendor = files_.ReadAttribute(device + "/vendor");
    if (!vendor.ok() || *vendor != fmt::format("0x{:04x}", kXilinxVendorId)) return Status::Ok();
    if (bdf.ends_with(".0")) driver = "xclmgmt";
    if (bdf.ends_with(".1")) driver = "xocl";
  }
  // As in the kernel, no matching driver is not an error: the device just stays unbound.
  if (!IsPlainName(driver) || !files_.Exists("bus/pci/drivers/" + driver)) return Status::Ok();
  return Bind(bdf, driver);
}

Status Tree::Remove(const std::string& bdf) {
  std::string device = Device(bdf);
  std::error_code ec;
  fs::path dir = IsPlainName(bdf) ? fs::canonical(root_ / device, ec) : fs::path();
  if (!IsPlainName(bdf) || ec) return NotFoundError("remove: no such device " + bdf);
  fs::path rel = dir.lexically_relative(root_);

  if (std::string driver = BoundDriver(bdf); !driver.empty()) RETURN_IF_ERROR(Unbind(bdf, driver));

  Json record = {{"path", rel.string()}, {"iommu_group", nullptr}};
  if (StatusOr<std::string> group = files_.ReadLink(device + "/iommu_group"); group.ok()) {
    std::string name = LinkBasename(*group);
    record["iommu_group"] = name;
    fs::path group_dir = root_ / "kernel/iommu_groups" / name;
    fs::remove(group_dir / "devices" / bdf, ec);
    // The kernel frees a group with its last device.
    if (fs::is_empty(group_dir / "devices", ec) && !ec) fs::remove_all(group_dir, ec);
    fs::remove(dir / "iommu_group", ec);
  }

  fs::path kept = RemovedDir(root_) / bdf;
  RETURN_IF_ERROR(MakeDirs(RemovedDir(root_)));
  fs::remove_all(kept, ec);
  RETURN_IF_ERROR(ReplaceFile(RemovedDir(root_) / (bdf + ".json"), record.dump() + "\n"));
  fs::rename(dir, kept, ec);
  if (ec) return ErrnoError("removing " + bdf, ec.value());
  fs::remove(root_ / device, ec);
  if (ec) return ErrnoError("removing " + device, ec.value());
  return Status::Ok();
}

Status Tree::Rescan(const std::vector<std::string>& only) {
  std::vector<std::string> bdfs;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(RemovedDir(root_), ec)) {
    if (entry.path().extension() != ".json") continue;
    std::string bdf = entry.path().stem().string();
    if (only.empty() || std::find(only.begin(), only.end(), bdf) != only.end()) {
      bdfs.push_back(bdf);
    }
  }
  std::sort(bdfs.begin(), bdfs.end());
  for (const std::string& bdf : bdfs) {
    fs::path record_path = RemovedDir(root_) / (bdf + ".json");
    ASSIGN_OR_RETURN(std::string text, ReadFile(record_path));
    Json record = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("path") || !record["path"].is_string()) {
      return DataLossError(record_path.string() + ": not a removed-device record",
                           kReasonEmuStateCorrupt);
    }
    fs::path rel(record["path"].get<std::string>());
    bool escapes = rel.empty() || rel.is_absolute() ||
                   std::any_of(rel.begin(), rel.end(), [](const fs::path& p) { return p == ".."; });
    if (escapes || !IsPlainName(bdf)) {
      return DataLossError(record_path.string() + ": bad path", kReasonEmuStateCorrupt);
    }
    fs::path dir = root_ / rel;
    RETURN_IF_ERROR(MakeDirs(dir.parent_path()));
    fs::rename(RemovedDir(root_) / bdf, dir, ec);
    if (ec) return ErrnoError("rescanning " + bdf, ec.value());
    fs::remove(record_path, ec);
    // A new device: no override, no driver yet.
    RETURN_IF_ERROR(WriteText(dir / "driver_override", std::string(kUnsetOverride) + "\n"));
    if (record["iommu_group"].is_string()) {
      std::string group = record["iommu_group"].get<std::string>();
      if (!IsPlainName(group)) {
        return DataLossError(record_path.string() + ": bad IOMMU group", kReasonEmuStateCorrupt);
      }
      fs::path group_rel = fs::path("kernel/iommu_groups") / group;
      RETURN_IF_ERROR(MakeDirs(root_ / group_rel / "devices"));
      RETURN_IF_ERROR(MakeLink(UpTo(rel) + group_rel.string(), dir / "iommu_group"));
      RETURN_IF_ERROR(MakeLink(UpTo(group_rel / "devices") + rel.string(),
                               root_ / group_rel / "devices" / bdf));
    }
    RETURN_IF_ERROR(
        MakeLink(UpTo("bus/pci/devices") + rel.string(), root_ / "bus/pci/devices" / bdf));
    RETURN_IF_ERROR(Probe(bdf));
  }
  return Status::Ok();
}

Status Tree::SyncXclbinUuid(const std::string& mgmt_bdf) {
  std::string user = UserBdfOf(mgmt_bdf);
  if (!IsPlainName(user) || BoundDriver(user) != "xocl") return Status::Ok();
  return WriteXclbinUuid(user);
}

}  // namespace

Status RemovePciDevice(const fs::path& root, std::string_view bdf) {
  ASSIGN_OR_RETURN(auto locked, Tree::Lock(root));
  return locked.first.Remove(std::string(bdf));
}

Status RescanPciBus(const fs::path& root, const std::vector<std::string>& only) {
  ASSIGN_OR_RETURN(auto locked, Tree::Lock(root));
  return locked.first.Rescan(only);
}

Status SyncUserPfXclbinUuid(const fs::path& root, std::string_view mgmt_bdf) {
  ASSIGN_OR_RETURN(auto locked, Tree::Lock(root));
  return locked.first.SyncXclbinUuid(std::string(mgmt_bdf));
}

Status EmulatedSysfs::WriteAttribute(std::string_view path, std::string_view value) {
  ASSIGN_OR_RETURN(fs::path rel, CheckSysfsPath(path));
  ASSIGN_OR_RETURN(auto locked, Tree::Lock(files_.root()));
  Tree& tree = locked.first;
  const fs::path& root = tree.root();
  // Resolve links so that bus/pci/devices/<bdf>/driver/unbind is seen as the driver's file.
  std::error_code ec;
  fs::path real = fs::canonical(root / rel, ec);
  if (ec) {
    return NotFoundError("writing " + rel.string() + ": no such file", kReasonSysfsNotFound);
  }
  fs::path canon = real.lexically_relative(root);
  if (canon.empty() || *canon.begin() == "..") {
    return InvalidArgumentError("sysfs path " + rel.string() + " leaves the sysfs root",
                                kReasonSysfsPathEscapes);
  }
  std::vector<std::string> parts;
  for (const fs::path& part : canon) parts.push_back(part.string());
  std::string arg(Trim(value));

  if (canon == "bus/pci/drivers_probe") return tree.Probe(arg);
  if (parts.size() == 5 && parts[0] == "bus" && parts[1] == "pci" && parts[2] == "drivers") {
    if (parts[4] == "bind") return tree.Bind(arg, parts[3]);
    if (parts[4] == "unbind") return tree.Unbind(arg, parts[3]);
  }
  bool is_rescan = canon == "bus/pci/rescan";
  bool is_remove = parts.size() == 4 && parts[0] == "devices" && parts[3] == "remove";
  if (is_rescan || is_remove) {
    std::optional<unsigned long> n = ParseKernelNumber(arg);
    if (!n) {
      return InvalidArgumentError("writing " + rel.string() + ": not a number: \"" +
                                  arg.substr(0, 40) + "\"");
    }
    if (*n == 0) return Status::Ok();
    return is_rescan ? tree.Rescan({}) : tree.Remove(parts[2]);
  }
  if (parts.back() == "driver_override") {
    return files_.WriteAttribute(canon.string(), (arg.empty() ? kUnsetOverride : arg) + "\n");
  }
  return files_.WriteAttribute(canon.string(), value);
}

}  // namespace fpgahost::fpga::emu
