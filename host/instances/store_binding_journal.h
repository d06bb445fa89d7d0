// The VFIO binding journal (vfio/binding_journal.h) kept in the state store's
// `vfio_bindings` table, so that fpgahostd can repair a binding a crash left half-done
// (VfioBinder::Repair at start-up). Each Put is its own committed transaction (durable before
// the binder acts) and appends a vfio.binding event.
//
// Thread-safe: the store serializes writers.
#pragma once

#include "common/clock.h"
#include "host/store/state_store.h"
#include "vfio/binding_journal.h"

namespace fpgahost {

class StoreBindingJournal : public vfio::BindingJournal {
 public:
  StoreBindingJournal(StateStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  Status Put(const vfio::BindingJournalEntry& entry) override;
  Status Erase(std::string_view bdf) override;
  StatusOr<std::optional<vfio::BindingJournalEntry>> Get(std::string_view bdf) const override;
  StatusOr<std::vector<vfio::BindingJournalEntry>> List() const override;

 private:
  StatusOr<std::vector<vfio::BindingJournalEntry>> Query(std::string_view bdf) const;

  StateStore& store_;
  const Clock& clock_;
};

}  // namespace fpgahost
