#include "vfio/binding_journal.h"

namespace fpgahost::vfio {

std::string_view OperationName(BindingJournalEntry::Operation operation) {
  return operation == BindingJournalEntry::Operation::kBind ? "bind" : "release";
}

Status InMemoryBindingJournal::Put(const BindingJournalEntry& entry) {
  MutexLock lock(mu_);
  entries_[entry.bdf] = entry;
  return Status::Ok();
}

Status InMemoryBindingJournal::Erase(std::string_view bdf) {
  MutexLock lock(mu_);
  if (auto it = entries_.find(bdf); it != entries_.end()) entries_.erase(it);
  return Status::Ok();
}

StatusOr<std::optional<BindingJournalEntry>> InMemoryBindingJournal::Get(
    std::string_view bdf) const {
  MutexLock lock(mu_);
  auto it = entries_.find(bdf);
  if (it == entries_.end()) return std::optional<BindingJournalEntry>();
  return std::optional<BindingJournalEntry>(it->second);
}

StatusOr<std::vector<BindingJournalEntry>> InMemoryBindingJournal::List() const {
  MutexLock lock(mu_);
  std::vector<BindingJournalEntry> out;
  out.reserve(entries_.size());
  for (const auto& [bdf, entry] : entries_) out.push_back(entry);
  return out;
}

}  // namespace fpgahost::vfio
