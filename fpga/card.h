// What discovery knows about one FPGA card: the CardInfo a scan returns.
//
// A card is one physical Alveo board seen as two PCI functions of the same device:
// the management PF (function 0, driver xclmgmt, always kept by the host) and the user PF
// (function 1, driver xocl on the host or vfio-pci when passed to a VM). Fields the scan could
// not read are unset and `problems` says which file was missing or garbled; a card with
// problems is still a card (health decides what to do with it).
//
// Plain value type; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fpgahost::fpga {

inline constexpr uint16_t kXilinxVendorId = 0x10ee;

struct CardInfo {
  // "card-" + the management PF's BDF with ':' and '.' as '-' ("card-0000-04-00-0"): stable
  // across scans and restarts as long as the card stays in its slot.
  std::string id;

  std::string mgmt_bdf;                    // "0000:04:00.0"
  std::string user_bdf;                    // "0000:04:00.1"; empty when the user PF is missing
  std::optional<uint16_t> mgmt_device_id;  // PCI device id of the management PF (0x5004)
  std::optional<uint16_t> user_device_id;

  // The PCI driver bound to each PF ("xclmgmt", "xocl", "vfio-pci"); empty when unbound.
  std::string mgmt_driver;
  std::string user_driver;
  // The IOMMU group of the user PF (what VFIO passes through).
  std::optional<int> user_iommu_group;

  std::optional<std::string> vbnv;            // the shell, as rom/VBNV
  std::optional<std::string> interface_uuid;  // lowercase 8-4-4-4-12
  std::optional<std::string> serial;          // the board's serial number

  // The xclbin loaded in the user partition, as xocl's xclbinuuid on the user PF shows it:
  // lowercase 8-4-4-4-12; "" when the card is cleared (xocl shows the nil UUID); nullopt when it
  // cannot be read: the user PF is not bound to xocl (in a VM, unbound; the management PF
  // publishes no such file), or the file is missing or garbled (then also a problem).
  std::optional<std::string> loaded_xclbin_uuid;

  std::optional<double> temperature_c;  // FPGA die temperature
  std::optional<double> power_w;        // board input power (12 V rails)
  // AXI firewall status, firewall.m.<inst>/detected_status: 0 when no firewall tripped, else
  // the status bits of the first one that did (a hung or misbehaving kernel). Unset when the
  // shell publishes no firewall subdevice.
  std::optional<uint32_t> firewall_status;

  // One line per file that was missing or unreadable, naming it.
  std::vector<std::string> problems;
};

}  // namespace fpgahost::fpga
