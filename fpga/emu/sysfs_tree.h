// The emulated fleet's sysfs: a directory tree shaped like /sys on a host with Alveo cards,
// and an EmulatedSysfs that gives writes to its control files the kernel's effects.
//
// This is a product feature (`fpgahost emu init`, demos, CI), not a test hack: the same
// SysfsDeviceScanner and VFIO code that run on /sys run on this tree.
//
// CreateEmulatedFleet writes, under `root`, for card i (0-based) on bus 0x10 + i:
//
//   devices/pci0000:00/0000:BB:00.0/   management PF (xclmgmt)
//     vendor "0x10ee", device, class "0x120000", subsystem_vendor, subsystem_device,
//     driver_override "(null)", remove, driver -> ../../../bus/pci/drivers/xclmgmt,
//     iommu_group -> ../../../kernel/iommu_groups/<n>, interface_uuids (32 hex, when the
//     shell has one), rom.m.<inst>/{VBNV,FPGA}, xmc.m.<inst>/{serial_num, xmc_fpga_temp,
//     xmc_12v_pex_vol, xmc_12v_pex_curr, xmc_12v_aux_vol, xmc_12v_aux_curr} (healthy values)
//   devices/pci0000:00/0000:BB:00.1/   user PF (xocl), alone in its IOMMU group; the same PCI
//                                      core files, plus xocl's xclbinuuid while bound to xocl
//                                      (the loaded xclbin's UUID, the nil UUID when cleared,
//                                      as XRT's xocl prints it); no xocl subdevices
//   bus/pci/devices/<bdf> -> ../../../devices/pci0000:00/<bdf>
//   bus/pci/drivers/{xclmgmt,xocl,vfio-pci}/{bind,unbind} and <bdf> -> the device
//   bus/pci/drivers_probe, bus/pci/rescan
//   kernel/iommu_groups/<n>/devices/<bdf> -> the device
//   .fpgahost-emulated-fleet           marker (JSON: cards, shell)
//   dev/vfio/<n>                       the emulated /dev (EmulatedDevRoot): vfio-pci's group
//                                      node, a regular file standing in for the character
//                                      device, present while a device of group <n> is bound
//                                      to vfio-pci (as the kernel's vfio core creates it with
//                                      the group's first vfio device and removes it with the
//                                      last)
//   emu/                               the emulator's control area (fpga/emu/emu_area.h):
//                                      fleet.json with `load_ms`, per-card state and faults
//
// <inst> is (bus << 8 | devfn), as in XRT's sample tree. Device ids follow the board named in
// the VBNV (U200 0x5000/0x5001, U250 0x5004/0x5005, U280 0x500c/0x500d, U50 0x5020/0x5021;
// others as U250); subsystem ids are placeholders. See fpga/discovery.h for the real layout.
// The management PF publishes no loaded-xclbin UUID, as with the real xclmgmt: only xocl's
// user PF does.
//
// Errors: InvalidArgument for cards outside 1..64 or load_ms outside 0..kMaxLoadMs;
// FailedPrecondition (reason NOT_AN_EMULATED_FLEET) when `root` exists, is not empty and has
// no marker; an existing emulated fleet at `root` is replaced. File errors as ErrnoError.
//
// Thread-safety: CreateEmulatedFleet must not run concurrently on one root. EmulatedSysfs and
// the Remove/Rescan functions are safe for concurrent use, also across processes: their
// changes to the tree hold the fleet's tree lock (emu/tree.lock).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "fpga/emu/emu_area.h"
#include "fpga/sysfs.h"
#include "images/shell_catalogue.h"

namespace fpgahost::fpga::emu {

inline constexpr char kFleetMarker[] = ".fpgahost-emulated-fleet";
inline constexpr int kMaxEmulatedCards = 64;
inline constexpr char kReasonNotAnEmulatedFleet[] = "NOT_AN_EMULATED_FLEET";

// What a healthy emulated card's sensors read: 45 C; 12 V PEX 2 A + 12 V AUX 1 A = 36 W.
inline constexpr int kHealthyTempC = 45;
inline constexpr int kRailMillivolts = 12000;
inline constexpr int kHealthyPexMilliamps = 2000;
inline constexpr int kHealthyAuxMilliamps = 1000;

// `load_ms`: how long a load takes on every card (fleet.json; `slow-load` overrides per card).
Status CreateEmulatedFleet(const std::filesystem::path& root, int cards,
                           const images::ShellSpec& shell, int load_ms = kDefaultLoadMs);
// The same with the shell looked up by name; NotFound (reason UNKNOWN_SHELL) when absent.
Status CreateEmulatedFleet(const std::filesystem::path& root, int cards,
                           const images::ShellCatalogue& catalogue, std::string_view shell_name,
                           int load_ms = kDefaultLoadMs);

inline constexpr char kVfioPciDriver[] = "vfio-pci";

// The fleet's stand-in for /dev: <root>/dev, where vfio/<group> appears (see above).
std::filesystem::path EmulatedDevRoot(const std::filesystem::path& root);

// True when `root` holds an emulated fleet (its marker file).
bool IsEmulatedFleet(const std::filesystem::path& root);

// The BDFs CreateEmulatedFleet gives card `index` (0-based).
std::string EmulatedMgmtBdf(int index);
std::string EmulatedUserBdf(int index);

// A hot unplug of one PCI function, as writing "1" to bus/pci/devices/<bdf>/remove does: the
// function is unbound from its driver and disappears from devices/, bus/pci/devices, its
// driver's directory and its IOMMU group (the group goes when it empties). Its directory is
// kept under emu/removed/ for a rescan. NotFound when no such device is present.
Status RemovePciDevice(const std::filesystem::path& root, std::string_view bdf);
// Brings removed functions back, as writing "1" to bus/pci/rescan does: each is re-added as a
// new device (driver_override cleared) in its IOMMU group and probed, so it binds to its
// default driver. All removed functions, or only those named in `only` when it is not empty.
Status RescanPciBus(const std::filesystem::path& root, const std::vector<std::string>& only = {});
// Rewrites xocl's xclbinuuid on the card's user PF from the card's state, when the user PF is
// bound to xocl (the file exists only then). Called after a load or a reset changed the state.
Status SyncUserPfXclbinUuid(const std::filesystem::path& root, std::string_view mgmt_bdf);

// Sysfs over an emulated tree. Reads are plain file reads. Writes to these control files act
// as the kernel would:
//   bus/pci/drivers/<drv>/unbind (also reached as bus/pci/devices/<bdf>/driver/unbind), value
//     a BDF: removes the device's `driver` link; NotFound when it is not bound to <drv>.
//   bus/pci/drivers/<drv>/bind, value a BDF: binds it; FailedPrecondition when already bound,
//     NotFound when driver_override names another driver.
//   bus/pci/devices/<bdf>/driver_override: sets it; an empty value clears it ("(null)").
//   bus/pci/drivers_probe, value a BDF: binds an unbound device to driver_override when set
//     (staying unbound when no such driver exists), else to its default driver (function 0:
//     xclmgmt, function 1: xocl); a bound device is left alone.
//   bus/pci/devices/<bdf>/remove, value a number: non-zero removes the device
//     (RemovePciDevice), zero does nothing; InvalidArgument for anything else.
//   bus/pci/rescan, value a number: non-zero brings back every removed device (RescanPciBus).
// Binding a user PF to xocl creates xocl's xclbinuuid from the card's state; unbinding it
// removes the file. Binding a device to vfio-pci creates dev/vfio/<its group>; unbinding (or
// removing) the group's last vfio-pci device removes it. Other writes go to the file as with
// RealSysfs.
class EmulatedSysfs : public Sysfs {
 public:
  explicit EmulatedSysfs(std::filesystem::path root) : files_(std::move(root)) {}

  StatusOr<std::string> ReadAttribute(std::string_view path) const override {
    return files_.ReadAttribute(path);
  }
  Status WriteAttribute(std::string_view path, std::string_view value) override;
  StatusOr<std::vector<std::string>> ListDirectory(std::string_view path) const override {
    return files_.ListDirectory(path);
  }
  StatusOr<std::string> ReadLink(std::string_view path) const override {
    return files_.ReadLink(path);
  }
  bool Exists(std::string_view path) const override { return files_.Exists(path); }

 private:
  RealSysfs files_;
};

}  // namespace fpgahost::fpga::emu
