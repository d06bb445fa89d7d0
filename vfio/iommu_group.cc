#include "vfio/iommu_group.h"

#include <charconv>
#include <optional>
#include <vector>

namespace fpgahost::vfio {
namespace {

std::string DevicePath(std::string_view bdf) { return "bus/pci/devices/" + std::string(bdf); }

// A bare name: a BDF or group number that cannot step out of the directory it is joined to.
bool IsPlainName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

// The 24-bit class code of "0x060400".
std::optional<unsigned> ParseClass(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// PCI-to-PCI (0x0604) and CardBus (0x0607) bridges: the functions with a type 1 or 2 header.
bool IsBridge(const fpga::Sysfs& sysfs, const std::string& device) {
  StatusOr<std::string> text = sysfs.ReadAttribute(device + "/class");
  if (!text.ok()) return false;
  std::optional<unsigned> pci_class = ParseClass(*text);
  if (!pci_class) return false;
  unsigned base_sub = *pci_class >> 8;
  return base_sub == 0x0604 || base_sub == 0x0607;
}

}  // namespace

StatusOr<std::string> IommuGroupOf(const fpga::Sysfs& sysfs, std::string_view bdf) {
  std::string device = DevicePath(bdf);
  if (!IsPlainName(bdf) || !sysfs.Exists(device)) {
    return NotFoundError("no PCI device " + std::string(bdf), kReasonDeviceNotFound);
  }
  StatusOr<std::string> link = sysfs.ReadLink(device + "/iommu_group");
  if (!link.ok()) {
    if (link.status().code() != StatusCode::kNotFound) {
      return link.status().WithContext("reading the IOMMU group of " + std::string(bdf));
    }
    return FailedPreconditionError(std::string(bdf) +
                                       " has no IOMMU group: the IOMMU is off or unsupported "
                                       "(intel_iommu=on / amd_iommu=on), so VFIO cannot use it",
                                   kReasonNoIommuGroup);
  }
  std::string group = fpga::LinkBasename(*link);
  if (!IsPlainName(group)) {
    return InternalError(std::string(bdf) + ": unexpected iommu_group link " + *link);
  }
  return group;
}

Status CheckIommuGroupForPassthrough(const fpga::Sysfs& sysfs, std::string_view user_bdf) {
  ASSIGN_OR_RETURN(std::string group, IommuGroupOf(sysfs, user_bdf));
  std::string group_dir = "kernel/iommu_groups/" + group + "/devices";
  StatusOr<std::vector<std::string>> members = sysfs.ListDirectory(group_dir);
  if (!members.ok()) {
    return members.status().WithContext("listing IOMMU group " + group + " of " +
                                        std::string(user_bdf));
  }
  std::string offenders;
  for (const std::string& member : *members) {
    if (member == user_bdf) continue;
    std::string device = group_dir + "/" + member;
    StatusOr<std::string> link = sysfs.ReadLink(device + "/driver");
    if (!link.ok()) continue;  // unbound
    std::string driver = fpga::LinkBasename(*link);
    if (driver == kVfioPciDriver || driver == "pci-stub" || IsBridge(sysfs, device)) continue;
    if (!offenders.empty()) offenders += ", ";
    offenders += member + " (bound to " + driver + ")";
  }
  if (offenders.empty()) return Status::Ok();
  return FailedPreconditionError(
      "IOMMU group " + group + " of " + std::string(user_bdf) +
          " is not viable for passthrough: " + offenders +
          "; every other device in the group must be unbound, bound to vfio-pci or pci-stub, "
          "or a PCI bridge",
      kReasonIommuGroupNotViable);
}

}  // namespace fpgahost::vfio
