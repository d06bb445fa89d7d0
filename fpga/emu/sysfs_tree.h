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
//     driver_override "(null)", driver -> ../../../bus/pci/drivers/xclmgmt,
//     iommu_group -> ../../../kernel/iommu_groups/<n>, interface_uuids (32 hex, when the
//     shell has one), rom.m.<inst>/{VBNV,FPGA}, xmc.m.<inst>/{serial_num, xmc_fpga_temp,
//     xmc_12v_pex_vol, xmc_12v_pex_curr, xmc_12v_aux_vol, xmc_12v_aux_curr} (healthy values)
//   devices/pci0000:00/0000:BB:00.1/   user PF (xocl), alone in its IOMMU group; no xocl
//                                      subdevices (they would vanish when bound to vfio-pci)
//   bus/pci/devices/<bdf> -> ../../../devices/pci0000:00/<bdf>
//   bus/pci/drivers/{xclmgmt,xocl,vfio-pci}/{bind,unbind} and <bdf> -> the device
//   bus/pci/drivers_probe
//   kernel/iommu_groups/<n>/devices/<bdf> -> the device
//   .fpgahost-emulated-fleet           marker (JSON: cards, shell)
//
// <inst> is (bus << 8 | devfn), as in XRT's sample tree. Device ids follow the board named in
// the VBNV (U200 0x5000/0x5001, U250 0x5004/0x5005, U280 0x500c/0x500d, U50 0x5020/0x5021;
// others as U250); subsystem ids are placeholders. See fpga/discovery.h for the real layout.
//
// Errors: InvalidArgument for cards outside 1..64; FailedPrecondition (reason
// NOT_AN_EMULATED_FLEET) when `root` exists, is not empty and has no marker; an existing
// emulated fleet at `root` is replaced. File errors as ErrnoError.
//
// Thread-safety: CreateEmulatedFleet must not run concurrently on one root. EmulatedSysfs is
// safe for concurrent use; its writes are serialized.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "fpga/sysfs.h"
#include "images/shell_catalogue.h"

namespace fpgahost::fpga::emu {

inline constexpr char kFleetMarker[] = ".fpgahost-emulated-fleet";
inline constexpr int kMaxEmulatedCards = 64;
inline constexpr char kReasonNotAnEmulatedFleet[] = "NOT_AN_EMULATED_FLEET";

Status CreateEmulatedFleet(const std::filesystem::path& root, int cards,
                           const images::ShellSpec& shell);
// The same with the shell looked up by name; NotFound (reason UNKNOWN_SHELL) when absent.
Status CreateEmulatedFleet(const std::filesystem::path& root, int cards,
                           const images::ShellCatalogue& catalogue, std::string_view shell_name);

// The BDFs CreateEmulatedFleet gives card `index` (0-based).
std::string EmulatedMgmtBdf(int index);
std::string EmulatedUserBdf(int index);

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
// Other writes go to the file as with RealSysfs.
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
  Status Bind(const std::string& bdf, const std::string& driver) REQUIRES(mu_);
  Status Unbind(const std::string& bdf, const std::string& driver) REQUIRES(mu_);
  Status Probe(const std::string& bdf) REQUIRES(mu_);

  RealSysfs files_;
  Mutex mu_;
};

}  // namespace fpgahost::fpga::emu
