#include "fpga/emu/sysfs_tree.h"

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

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
  RETURN_IF_ERROR(
      MakeLink(UpTo("bus/pci/devices") + rel.string(), root / "bus/pci/devices" / f.bdf));

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
  RETURN_IF_ERROR(WriteFunction(root, mgmt, 0x000e));
  RETURN_IF_ERROR(WriteFunction(root, user, 0x000e));

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

  fs::path xmc = dir / fmt::format("xmc.m.{}", instance);
  RETURN_IF_ERROR(MakeDirs(xmc));
  RETURN_IF_ERROR(WriteText(xmc / "serial_num", fmt::format("EMU{:09d}\n", index + 1)));
  // Healthy readings: 45 C, 12 V PEX 2 A + 12 V AUX 1 A = 36 W.
  RETURN_IF_ERROR(WriteText(xmc / "xmc_fpga_temp", "45\n"));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_pex_vol", "12000\n"));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_pex_curr", "2000\n"));
  RETURN_IF_ERROR(WriteText(xmc / "xmc_12v_aux_vol", "12000\n"));
  return WriteText(xmc / "xmc_12v_aux_curr", "1000\n");
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

Status CreateEmulatedFleet(const fs::path& root, int cards, const images::ShellSpec& shell) {
  if (cards < 1 || cards > kMaxEmulatedCards) {
    return InvalidArgumentError(
        fmt::format("cards: {} is outside 1..{}", cards, kMaxEmulatedCards));
  }
  if (shell.vbnv.empty()) return InvalidArgumentError("shell " + shell.name + " has no VBNV");
  RETURN_IF_ERROR(PrepareRoot(root));
  // The marker goes first so a half-written tree can still be replaced by the next attempt.
  Json marker = {{"cards", cards}, {"shell", shell.name}};
  RETURN_IF_ERROR(WriteText(root / kFleetMarker, marker.dump() + "\n"));
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
  for (int i = 0; i < cards; ++i) RETURN_IF_ERROR(WriteCard(root, i, shell));
  return Status::Ok();
}

Status CreateEmulatedFleet(const fs::path& root, int cards, const images::ShellCatalogue& catalogue,
                           std::string_view shell_name) {
  const images::ShellSpec* shell = catalogue.FindByName(shell_name);
  if (shell == nullptr) {
    return NotFoundError("no shell named " + std::string(shell_name) + " in the catalogue",
                         "UNKNOWN_SHELL");
  }
  return CreateEmulatedFleet(root, cards, *shell);
}

Status EmulatedSysfs::WriteAttribute(std::string_view path, std::string_view value) {
  ASSIGN_OR_RETURN(fs::path rel, CheckSysfsPath(path));
  MutexLock lock(mu_);
  // Resolve links so that bus/pci/devices/<bdf>/driver/unbind is seen as the driver's file.
  std::error_code ec;
  fs::path root = fs::canonical(files_.root(), ec);
  if (ec) return ErrnoError("resolving " + files_.root().string(), ec.value());
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

  if (canon == "bus/pci/drivers_probe") return Probe(arg);
  if (parts.size() == 5 && parts[0] == "bus" && parts[1] == "pci" && parts[2] == "drivers") {
    if (parts[4] == "bind") return Bind(arg, parts[3]);
    if (parts[4] == "unbind") return Unbind(arg, parts[3]);
  }
  if (parts.back() == "driver_override") {
    return files_.WriteAttribute(canon.string(), (arg.empty() ? kUnsetOverride : arg) + "\n");
  }
  return files_.WriteAttribute(canon.string(), value);
}

Status EmulatedSysfs::Bind(const std::string& bdf, const std::string& driver) {
  std::string device = "bus/pci/devices/" + bdf;
  if (bdf.empty() || bdf.find('/') != std::string::npos || !files_.Exists(device)) {
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
  fs::path root = fs::canonical(files_.root(), ec);
  fs::path device_dir = fs::canonical(root / device, ec);
  if (ec) return ErrnoError("resolving " + device, ec.value());
  return LinkDriver(root, device_dir.lexically_relative(root), bdf, driver);
}

Status EmulatedSysfs::Unbind(const std::string& bdf, const std::string& driver) {
  std::string device = "bus/pci/devices/" + bdf;
  Status not_bound = NotFoundError("unbind " + driver + ": " + bdf + " is not bound to it");
  if (bdf.empty() || bdf.find('/') != std::string::npos) return not_bound;
  StatusOr<std::string> bound = files_.ReadLink(device + "/driver");
  if (!bound.ok() || LinkBasename(*bound) != driver) return not_bound;
  std::error_code ec;
  fs::remove(files_.root() / device / "driver", ec);
  if (ec) return ErrnoError("unbinding " + bdf, ec.value());
  fs::remove(files_.root() / "bus/pci/drivers" / driver / bdf, ec);
  if (ec) return ErrnoError("unbinding " + bdf, ec.value());
  return Status::Ok();
}

Status EmulatedSysfs::Probe(const std::string& bdf) {
  std::string device = "bus/pci/devices/" + bdf;
  if (bdf.empty() || bdf.find('/') != std::string::npos || !files_.Exists(device)) {
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
  if (driver.empty() || driver.find('/') != std::string::npos ||
      !files_.Exists("bus/pci/drivers/" + driver)) {
    return Status::Ok();
  }
  return Bind(bdf, driver);
}

}  // namespace fpgahost::fpga::emu
