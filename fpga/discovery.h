// Card discovery: finds the Xilinx Alveo cards of this host in sysfs.
//
// SysfsDeviceScanner lists bus/pci/devices, keeps functions of vendor 0x10ee, pairs each
// management PF (function 0) with the user PF (function 1) of the same domain:bus:device and
// reads what the drivers publish about the card. The layout it reads mirrors what XRT's
// drivers expose (XRT src/runtime_src/core/pcie/driver/linux/xocl/, documented in XRT's
// src/runtime_src/doc/toc/sysfs.rst and read back by core/pcie/linux/device_linux.cpp):
//
//   bus/pci/devices/<bdf>            -> link to the device's directory under devices/
//     vendor, device, class          "0x10ee", "0x5004", "0x120000" (kernel PCI core)
//     driver                         -> .../bus/pci/drivers/<xclmgmt|xocl|vfio-pci>
//     iommu_group                    -> .../kernel/iommu_groups/<n>
//     driver_override                "(null)" when unset (kernel PCI core)
//     interface_uuids                mgmt PF, 2RP shells: one UUID per line, 32 hex digits
//                                    (xclmgmt; XRT reads it with subdev "" = the PF itself)
//     rom.<m|u>.<inst>/VBNV          the shell's VBNV (feature ROM subdevice); also FPGA
//     xmc.<m|u>.<inst>/serial_num    board serial (XMC / CMC subdevice)
//     xmc.<m|u>.<inst>/xmc_fpga_temp degrees C
//     xmc.<m|u>.<inst>/xmc_12v_pex_vol, xmc_12v_pex_curr, xmc_12v_aux_vol, xmc_12v_aux_curr
//                                    millivolts / milliamps; power = sum of V*I of the rails
//     firewall.<m|u>.<inst>/detected_status  AXI firewall: 0, or the status bits of a trip
//                                    (XRT's firewall_status query); absent on shells without
//                                    one
//     xclbinuuid                     user PF while bound to xocl (userpf/xocl_sysfs.c): the
//                                    loaded xclbin's UUID, 8-4-4-4-12, one line per slot
//                                    ("<slot> <uuid>" on multi-slot drivers); the nil UUID when
//                                    cleared. xclmgmt has no such file on the management PF.
//
// Subdevice directories are found by prefix ("rom." / "xmc."), as XRT's pcidev does: the
// instance suffix varies (it looks like (bus << 8 | devfn) in XRT's sample tree, not relied
// on). Everything but the loaded xclbin is read from the management PF, which the host keeps
// even when the user PF is in a VM; the loaded xclbin's UUID is known only while the host holds
// the user PF (CardInfo::loaded_xclbin_uuid). Not yet read: legacy 1RP shells' rom/uuid,
// hwmon, the 3v3 rails.
//
// A management PF bound to something other than xclmgmt, or a user PF bound to something other
// than xocl or vfio-pci, is reported as a problem. A function without a management PF beside it
// is not a card and is ignored; a management PF without a user PF is a card with a problem.
//
// Errors: Scan() fails only when bus/pci/devices cannot be listed, ScanCard() when the card is
// not there; anything about one card (missing or garbage files, a device vanishing mid-scan)
// ends up in that card's problems or drops the vanished card, never fails the scan.
//
// Thread-safety: Scan() and ScanCard() are const and may run concurrently if the Sysfs allows
// it (all do).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "fpga/card.h"
#include "fpga/sysfs.h"

namespace fpgahost::fpga {

class SysfsDeviceScanner {
 public:
  // `sysfs` must outlive the scanner.
  explicit SysfsDeviceScanner(const Sysfs& sysfs) : sysfs_(sysfs) {}

  // The cards present now, sorted by management PF BDF.
  StatusOr<std::vector<CardInfo>> Scan() const;
  // One card, read as Scan() reads it; NotFound when no Xilinx management PF is at `mgmt_bdf`.
  StatusOr<CardInfo> ScanCard(std::string_view mgmt_bdf) const;

 private:
  bool IsXilinxFunction(const std::string& bdf) const;
  CardInfo ReadCard(const std::string& mgmt, const std::string& user) const;

  const Sysfs& sysfs_;
};

// "card-0000-04-00-0" for "0000:04:00.0".
std::string CardIdForBdf(std::string_view mgmt_bdf);

}  // namespace fpgahost::fpga
