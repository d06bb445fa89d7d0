// IOMMU groups: may a PCI function be given to a VM through VFIO?
//
// VFIO hands a VM whole IOMMU groups, never single functions: a device that shares a group
// with the user PF can reach the same DMA space. The kernel's vfio core (drivers/vfio,
// vfio_dev_viable) lets user space use a group only when every device in it is
//   - driver-less (unbound),
//   - bound to a vfio driver (here: vfio-pci),
//   - bound to pci-stub (which only keeps other drivers off and does no DMA), or
//   - a PCI interconnect device (a bridge: the kernel checks for a non-normal config header;
//     sysfs publishes no header type, so the check here is the class code, 0x0604xx
//     PCI-to-PCI or 0x0607xx CardBus bridge, which are the header type 1 and 2 devices),
// and QEMU/libvirt fail to open /dev/vfio/<group> otherwise ("group is not viable").
// CheckIommuGroupForPassthrough applies the same rule before anything is unbound, so a refusal
// names the device in the way instead of leaving a half-moved card.
//
// Errors (all messages name the device, and the offending devices with their drivers):
//   NotFound (DEVICE_NOT_FOUND) when `user_bdf` is not in bus/pci/devices;
//   FailedPrecondition (NO_IOMMU_GROUP) when it has no iommu_group link (IOMMU off or not
//     supported: intel_iommu=on / amd_iommu=on);
//   FailedPrecondition (IOMMU_GROUP_NOT_VIABLE) when another device in the group fails the
//     rule above; Sysfs errors (listing the group) as they come, with context.
//
// Thread-safety: a pure function of what `sysfs` shows; safe to call concurrently.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "fpga/sysfs.h"

namespace fpgahost::vfio {

inline constexpr char kReasonDeviceNotFound[] = "DEVICE_NOT_FOUND";
inline constexpr char kReasonNoIommuGroup[] = "NO_IOMMU_GROUP";
inline constexpr char kReasonIommuGroupNotViable[] = "IOMMU_GROUP_NOT_VIABLE";

inline constexpr char kVfioPciDriver[] = "vfio-pci";

// The IOMMU group number of a PCI function ("7"), from its iommu_group link. Errors as above
// (DEVICE_NOT_FOUND, NO_IOMMU_GROUP).
StatusOr<std::string> IommuGroupOf(const fpga::Sysfs& sysfs, std::string_view bdf);

// OK when `user_bdf` may be bound to vfio-pci and passed through: every other device in its
// IOMMU group satisfies the kernel's viability rule (see above). The device itself may be bound
// to anything: it is the one about to move.
Status CheckIommuGroupForPassthrough(const fpga::Sysfs& sysfs, std::string_view user_bdf);

}  // namespace fpgahost::vfio
