// VfioBinder: moves a PCI function (a card's user PF) from its host driver to vfio-pci for a
// VM, and back, through sysfs the way libvirt's "managed" hostdevs and driverctl do:
//
//   Bind:    check the IOMMU group (vfio/iommu_group.h); journal the intent; driver_override =
//            vfio-pci; unbind from the current driver (if bound); drivers_probe; wait until
//            the device is bound to vfio-pci and <dev_root>/vfio/<group> exists; journal done.
//   Release: journal the intent; clear driver_override; unbind from vfio-pci; drivers_probe
//            (an explicit bind to the original driver when the probe picked none); wait until
//            bound to the original driver; erase the journal entry.
//
// On a failing step Bind rolls the device back to its original driver and forgets the entry;
// when even that fails (or the process dies) the entry stays incomplete for Repair.
//
// Repair rule, for every journal entry that is not complete (a crash or failure half-way):
// the device is returned to the entry's original driver, with driver_override cleared, and the
// entry is erased. That finishes an interrupted release and rolls back an interrupted bind: a
// bind that never completed was never handed to a VM (Bind had not returned its record), so
// undoing it strands nothing, while finishing it could leave a device on vfio-pci that no
// instance owns. A device that has disappeared (hot unplug) needs nothing: the kernel gives a
// rescanned device a clear override and its default driver, so its entry is just erased.
// Completed binds are left alone: the owner (the instance) decides about them.
//
// dev_root is "/dev" in production, fpga::emu::EmulatedDevRoot(fleet) on an emulated fleet.
//
// Errors: NotFound (DEVICE_NOT_FOUND) for a device not in bus/pci/devices; the group check's
// FailedPrecondition (NO_IOMMU_GROUP, IOMMU_GROUP_NOT_VIABLE); FailedPrecondition
// (BINDING_IN_PROGRESS) when the journal has an incomplete entry for the device (run Repair),
// (ALREADY_BOUND_TO_VFIO) when the device is on vfio-pci without a journal entry of ours;
// DeadlineExceeded (VFIO_BIND_TIMEOUT) when the driver does not show up in time; a failing
// sysfs write or journal write as its own Status. Every message names the device and the step
// ("0000:11:00.1: bind step unbind xocl: ...").
//
// Thread-safety: one binder's calls are serialized by its mutex; the journal and sysfs must be
// safe for concurrent use when shared with other code. Bind and Release block for up to the
// timeout: never call them on a request thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "fpga/sysfs.h"
#include "vfio/binding_journal.h"

namespace fpgahost::vfio {

inline constexpr char kReasonBindingInProgress[] = "BINDING_IN_PROGRESS";
inline constexpr char kReasonAlreadyBoundToVfio[] = "ALREADY_BOUND_TO_VFIO";
inline constexpr char kReasonVfioBindTimeout[] = "VFIO_BIND_TIMEOUT";

struct BindingRecord {
  std::string bdf;
  // What the device returns to on Release; empty when it was unbound.
  std::string original_driver;
  std::string group;                       // IOMMU group number, "7"
  std::filesystem::path vfio_device_path;  // <dev_root>/vfio/<group>, what QEMU opens

  bool operator==(const BindingRecord&) const = default;
};

struct VfioBinderOptions {
  // How long a probe may take to show its effect (the driver link, /dev/vfio/<group>).
  std::chrono::milliseconds timeout{5000};
  std::chrono::milliseconds poll_interval{10};
};

class VfioBinder {
 public:
  // `sysfs` and `journal` must outlive the binder.
  VfioBinder(fpga::Sysfs& sysfs, std::filesystem::path dev_root, BindingJournal& journal,
             VfioBinderOptions options = {});

  // Gives `user_bdf` to vfio-pci. Binding a device this binder already holds (a completed
  // journal entry, still on vfio-pci) returns its record again.
  StatusOr<BindingRecord> Bind(std::string_view user_bdf) EXCLUDES(mu_);
  // Gives the device back to record.original_driver.
  Status Release(const BindingRecord& record) EXCLUDES(mu_);
  // Applies the repair rule above to every incomplete journal entry; returns the BDFs it
  // repaired. Carries on past a failing device and then returns the first failure.
  StatusOr<std::vector<std::string>> Repair() EXCLUDES(mu_);

 private:
  // The driver `bdf` is bound to, "" when unbound.
  std::string CurrentDriver(const std::string& bdf) const;
  Status Write(const std::string& bdf, std::string_view step, const std::string& path,
               std::string_view value) REQUIRES(mu_);
  // Waits until `bdf` is bound to `driver` ("" = unbound) and, when `node` is not empty, until
  // `node` exists.
  Status WaitFor(const std::string& bdf, std::string_view step, const std::string& driver,
                 const std::filesystem::path& node) REQUIRES(mu_);
  Status DoBindSteps(const std::string& bdf, const std::string& current,
                     const BindingRecord& record) REQUIRES(mu_);
  // Clears driver_override and moves the device to `driver` ("" = leave it unbound).
  Status Restore(const std::string& bdf, std::string_view step, const std::string& driver)
      REQUIRES(mu_);

  fpga::Sysfs& sysfs_;
  const std::filesystem::path dev_root_;
  BindingJournal& journal_;
  const VfioBinderOptions options_;
  Mutex mu_;
};

}  // namespace fpgahost::vfio
