// BindingJournal: where VfioBinder writes down what it is about to do to a device's driver
// binding, so that a crash half-way can be repaired at start-up (VfioBinder::Repair).
//
// One entry per PCI function, keyed by BDF. An entry says which operation was started
// (bind to vfio-pci, or release back to the host), the driver the device had before the bind
// (the one it returns to), and whether the operation completed. A completed bind stays in the
// journal for as long as the device is held by vfio-pci; a completed release removes the
// entry.
//
// The daemon backs this with its state store; InMemoryBindingJournal is for tests and tools.
//
// Errors: implementations return their storage errors as Status; Put must be durable when it
// returns OK (the binder acts on the device only after that).
//
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"

namespace fpgahost::vfio {

struct BindingJournalEntry {
  enum class Operation { kBind, kRelease };

  std::string bdf;
  Operation operation = Operation::kBind;
  // The driver the device was bound to before the bind, and goes back to; empty when it was
  // unbound.
  std::string original_driver;
  // The IOMMU group number when known ("7"), for the record.
  std::string group;
  bool complete = false;

  bool operator==(const BindingJournalEntry&) const = default;
};

// "bind" / "release".
std::string_view OperationName(BindingJournalEntry::Operation operation);

class BindingJournal {
 public:
  virtual ~BindingJournal() = default;

  // Records `entry`, replacing any entry for the same BDF.
  virtual Status Put(const BindingJournalEntry& entry) = 0;
  // Forgets the entry for `bdf`; OK when there is none.
  virtual Status Erase(std::string_view bdf) = 0;
  // The entry for `bdf`, nullopt when there is none.
  virtual StatusOr<std::optional<BindingJournalEntry>> Get(std::string_view bdf) const = 0;
  // Every entry, sorted by BDF.
  virtual StatusOr<std::vector<BindingJournalEntry>> List() const = 0;
};

class InMemoryBindingJournal : public BindingJournal {
 public:
  Status Put(const BindingJournalEntry& entry) override;
  Status Erase(std::string_view bdf) override;
  StatusOr<std::optional<BindingJournalEntry>> Get(std::string_view bdf) const override;
  StatusOr<std::vector<BindingJournalEntry>> List() const override;

 private:
  mutable Mutex mu_;
  std::map<std::string, BindingJournalEntry, std::less<>> entries_ GUARDED_BY(mu_);
};

}  // namespace fpgahost::vfio
