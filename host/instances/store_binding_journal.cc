#include "host/instances/store_binding_journal.h"

#include "host/store/events.h"

namespace fpgahost {

using vfio::BindingJournalEntry;

Status StoreBindingJournal::Put(const BindingJournalEntry& entry) {
  return store_.InTransaction(
      [&](SqliteDb& db) -> Status {
        ASSIGN_OR_RETURN(Statement upsert,
                         db.Prepare("INSERT OR REPLACE INTO vfio_bindings (bdf, operation, "
                                    "original_driver, iommu_group, complete, updated_at) "
                                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
        upsert.Bind(1, entry.bdf)
            .Bind(2, vfio::OperationName(entry.operation))
            .Bind(3, entry.original_driver)
            .Bind(4, entry.group)
            .Bind(5, int64_t{entry.complete ? 1 : 0})
            .Bind(6, FormatRfc3339(clock_.Now()));
        RETURN_IF_ERROR(upsert.Run());
        return AppendEvent(db, clock_, "vfio.binding", entry.bdf,
                           {{"operation", std::string(vfio::OperationName(entry.operation))},
                            {"original_driver", entry.original_driver},
                            {"complete", entry.complete}});
      },
      Durability::kRuntime);
}

Status StoreBindingJournal::Erase(std::string_view bdf) {
  return store_.InTransaction(
      [&](SqliteDb& db) -> Status {
        ASSIGN_OR_RETURN(Statement erase, db.Prepare("DELETE FROM vfio_bindings WHERE bdf = ?1"));
        erase.Bind(1, bdf);
        return erase.Run();
      },
      Durability::kRuntime);
}

StatusOr<std::vector<BindingJournalEntry>> StoreBindingJournal::Query(std::string_view bdf) const {
  ASSIGN_OR_RETURN(Statement q, store_.db().Prepare(
                                    "SELECT bdf, operation, original_driver, iommu_group, complete "
                                    "FROM vfio_bindings WHERE ?1 = '' OR bdf = ?1 ORDER BY bdf"));
  q.Bind(1, bdf);
  std::vector<BindingJournalEntry> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    BindingJournalEntry e;
    e.bdf = q.ColumnText(0);
    e.operation = q.ColumnText(1) == "release" ? BindingJournalEntry::Operation::kRelease
                                               : BindingJournalEntry::Operation::kBind;
    e.original_driver = q.ColumnText(2);
    e.group = q.ColumnText(3);
    e.complete = q.ColumnInt64(4) != 0;
    out.push_back(std::move(e));
  }
  return out;
}

StatusOr<std::optional<BindingJournalEntry>> StoreBindingJournal::Get(std::string_view bdf) const {
  if (bdf.empty()) return std::optional<BindingJournalEntry>();
  ASSIGN_OR_RETURN(std::vector<BindingJournalEntry> found, Query(bdf));
  if (found.empty()) return std::optional<BindingJournalEntry>();
  return std::optional<BindingJournalEntry>(std::move(found.front()));
}

StatusOr<std::vector<BindingJournalEntry>> StoreBindingJournal::List() const { return Query(""); }

}  // namespace fpgahost
