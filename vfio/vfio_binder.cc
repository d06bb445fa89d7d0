#include "vfio/vfio_binder.h"

#include <thread>
#include <utility>

#include "vfio/iommu_group.h"

namespace fpgahost::vfio {
namespace {

namespace fs = std::filesystem;
using Operation = BindingJournalEntry::Operation;

std::string DevicePath(const std::string& bdf) { return "bus/pci/devices/" + bdf; }

std::string Describe(const std::string& driver) { return driver.empty() ? "no driver" : driver; }

}  // namespace

VfioBinder::VfioBinder(fpga::Sysfs& sysfs, fs::path dev_root, BindingJournal& journal,
                       VfioBinderOptions options)
    : sysfs_(sysfs), dev_root_(std::move(dev_root)), journal_(journal), options_(options) {}

std::string VfioBinder::CurrentDriver(const std::string& bdf) const {
  StatusOr<std::string> link = sysfs_.ReadLink(DevicePath(bdf) + "/driver");
  return link.ok() ? fpga::LinkBasename(*link) : "";
}

Status VfioBinder::Write(const std::string& bdf, std::string_view step, const std::string& path,
                         std::string_view value) {
  Status written = sysfs_.WriteAttribute(path, value);
  if (written.ok()) return written;
  return written.WithContext(bdf + ": " + std::string(step));
}

Status VfioBinder::WaitFor(const std::string& bdf, std::string_view step, const std::string& driver,
                           const fs::path& node) {
  // The kernel binds from drivers_probe synchronously, but udev creates /dev nodes
  // asynchronously and a driver's probe may defer; poll for both, bounded.
  auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (true) {
    std::string current = CurrentDriver(bdf);
    std::error_code ec;
    bool node_ok = node.empty() || fs::exists(node, ec);
    if (current == driver && node_ok) return Status::Ok();
    if (!sysfs_.Exists(DevicePath(bdf))) {
      return NotFoundError(bdf + ": " + std::string(step) + ": the device disappeared",
                           kReasonDeviceNotFound);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string why = current != driver ? "it is bound to " + Describe(current)
                                          : node.string() + " did not appear";
      return DeadlineExceededError(
          bdf + ": " + std::string(step) + ": not bound to " + Describe(driver) + " after " +
              std::to_string(options_.timeout.count()) + " ms (" + why + ")",
          kReasonVfioBindTimeout);
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

Status VfioBinder::DoBindSteps(const std::string& bdf, const std::string& current,
                               const BindingRecord& record) {
  RETURN_IF_ERROR(Write(bdf, "bind step driver_override", DevicePath(bdf) + "/driver_override",
                        kVfioPciDriver));
  if (!current.empty()) {
    RETURN_IF_ERROR(
        Write(bdf, "bind step unbind " + current, "bus/pci/drivers/" + current + "/unbind", bdf));
  }
  RETURN_IF_ERROR(Write(bdf, "bind step drivers_probe", "bus/pci/drivers_probe", bdf));
  return WaitFor(bdf, "bind step wait for vfio-pci", kVfioPciDriver, record.vfio_device_path);
}

Status VfioBinder::Restore(const std::string& bdf, std::string_view step,
                           const std::string& driver) {
  std::string prefix = std::string(step) + " step ";
  // "\n", as `echo > driver_override` writes: an empty write(2) would not reach the kernel.
  RETURN_IF_ERROR(
      Write(bdf, prefix + "clear driver_override", DevicePath(bdf) + "/driver_override", "\n"));
  std::string current = CurrentDriver(bdf);
  if (current == driver) return Status::Ok();
  if (!current.empty()) {
    RETURN_IF_ERROR(
        Write(bdf, prefix + "unbind " + current, "bus/pci/drivers/" + current + "/unbind", bdf));
  }
  if (driver.empty()) return WaitFor(bdf, prefix + "wait for unbind", driver, {});
  RETURN_IF_ERROR(Write(bdf, prefix + "drivers_probe", "bus/pci/drivers_probe", bdf));
  // The probe picks the best-matching driver; the original one may not be it (a device that
  // was bound by hand), so bind it explicitly when the probe left the device alone.
  if (CurrentDriver(bdf).empty()) {
    RETURN_IF_ERROR(
        Write(bdf, prefix + "bind " + driver, "bus/pci/drivers/" + driver + "/bind", bdf));
  }
  return WaitFor(bdf, prefix + "wait for " + driver, driver, {});
}

StatusOr<BindingRecord> VfioBinder::Bind(std::string_view user_bdf) {
  MutexLock lock(mu_);
  std::string bdf(user_bdf);
  ASSIGN_OR_RETURN(std::string group, IommuGroupOf(sysfs_, bdf));
  BindingRecord record{bdf, "", group, dev_root_ / "vfio" / group};
  std::string current = CurrentDriver(bdf);

  StatusOr<std::optional<BindingJournalEntry>> existing = journal_.Get(bdf);
  if (!existing.ok()) return existing.status().WithContext(bdf + ": reading the journal");
  if (existing->has_value()) {
    const BindingJournalEntry& entry = **existing;
    if (entry.operation == Operation::kBind && entry.complete && current == kVfioPciDriver) {
      record.original_driver = entry.original_driver;
      return record;
    }
    return FailedPreconditionError(
        bdf + ": a " + std::string(OperationName(entry.operation)) + " did not complete (" +
            (entry.complete ? "device moved since" : "interrupted") + "); repair the journal first",
        kReasonBindingInProgress);
  }
  if (current == kVfioPciDriver) {
    return FailedPreconditionError(
        bdf + " is already bound to vfio-pci by someone else; its original driver is unknown",
        kReasonAlreadyBoundToVfio);
  }
  RETURN_IF_ERROR(CheckIommuGroupForPassthrough(sysfs_, bdf));
  record.original_driver = current;

  BindingJournalEntry entry{bdf, Operation::kBind, current, group, /*complete=*/false};
  Status put = journal_.Put(entry);
  if (!put.ok()) return put.WithContext(bdf + ": bind step journal intent");
  Status done = DoBindSteps(bdf, current, record);
  if (done.ok()) {
    entry.complete = true;
    done = journal_.Put(entry).WithContext(bdf + ": bind step journal done");
    if (done.ok()) return record;
  }
  // Undo what was done, so a failed bind leaves the device where it was; when even that fails,
  // the incomplete entry stays for Repair.
  Status undone = Restore(bdf, "bind rollback", current);
  if (undone.ok()) undone = journal_.Erase(bdf);
  if (!undone.ok()) {
    return Status(done.code(),
                  std::string(done.message()) + " (rollback failed: " +
                      std::string(undone.message()) + "; the journal keeps it for repair)",
                  std::string(done.reason()));
  }
  return done;
}

Status VfioBinder::Release(const BindingRecord& record) {
  MutexLock lock(mu_);
  const std::string& bdf = record.bdf;
  if (!sysfs_.Exists(DevicePath(bdf))) {
    return NotFoundError("release: no PCI device " + bdf, kReasonDeviceNotFound);
  }
  BindingJournalEntry entry{bdf, Operation::kRelease, record.original_driver, record.group,
                            /*complete=*/false};
  RETURN_IF_ERROR(journal_.Put(entry).WithContext(bdf + ": release step journal intent"));
  RETURN_IF_ERROR(Restore(bdf, "release", record.original_driver));
  return journal_.Erase(bdf).WithContext(bdf + ": release step journal done");
}

StatusOr<std::vector<std::string>> VfioBinder::Repair() {
  MutexLock lock(mu_);
  StatusOr<std::vector<BindingJournalEntry>> entries = journal_.List();
  if (!entries.ok()) return entries.status().WithContext("repair: reading the journal");
  std::vector<std::string> repaired;
  Status first_failure;
  for (const BindingJournalEntry& entry : *entries) {
    if (entry.complete) continue;
    const std::string& bdf = entry.bdf;
    Status fixed;
    if (sysfs_.Exists(DevicePath(bdf))) {
      fixed = Restore(bdf, "repair of " + std::string(OperationName(entry.operation)),
                      entry.original_driver);
    }
    if (fixed.ok()) fixed = journal_.Erase(bdf).WithContext(bdf + ": repair step journal done");
    if (fixed.ok()) {
      repaired.push_back(bdf);
    } else if (first_failure.ok()) {
      first_failure = fixed;
    }
  }
  if (!first_failure.ok()) return first_failure;
  return repaired;
}

}  // namespace fpgahost::vfio
