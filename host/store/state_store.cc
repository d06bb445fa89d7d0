#include "host/store/state_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace fpgahost {

namespace {

// The first read of a file that is not a database fails here with SQLITE_NOTADB; a damaged
// one fails quick_check. The statement is finalized on return, ending its read transaction.
Status CheckIntegrity(SqliteDb& db) {
  StatusOr<Statement> check = db.Prepare("PRAGMA quick_check");
  StatusOr<bool> row = check.ok() ? check->Step() : check.status();
  if (!row.ok() && row.status().code() == StatusCode::kDataLoss) {
    return DataLossError(fmt::format("state database {} is corrupt or not a database ({}); "
                                     "restore it from a backup or move it away",
                                     db.path(), sqlite3_errmsg(db.handle())),
                         "STORE_CORRUPT");
  }
  RETURN_IF_ERROR(row.status());
  if (*row && check->ColumnText(0) != "ok") {
    return DataLossError(fmt::format("state database {} failed its integrity check: {}", db.path(),
                                     check->ColumnText(0)),
                         "STORE_CORRUPT");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path,
                                                       std::span<const Migration> migrations) {
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  RETURN_IF_ERROR(CheckIntegrity(*db));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db)));
  RETURN_IF_ERROR(store->db_->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(store->db_->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(store->db_->Exec("PRAGMA foreign_keys=ON"));
  RETURN_IF_ERROR(store->Migrate(migrations));
  return store;
}

Status StateStore::Migrate(std::span<const Migration> migrations) {
  int current = 0;
  {
    ASSIGN_OR_RETURN(Statement get, db_->Prepare("PRAGMA user_version"));
    ASSIGN_OR_RETURN(bool row, get.Step());
    if (row) current = static_cast<int>(get.ColumnInt64(0));
  }
  int latest = migrations.empty() ? 0 : migrations.back().version;
  if (current > latest) {
    return FailedPreconditionError(
        fmt::format("state database {} has schema version {}, newer than this fpgahost "
                    "understands ({}); run a newer fpgahostd",
                    db_->path(), current, latest),
        "STORE_TOO_NEW");
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    RETURN_IF_ERROR(InTransaction([&](SqliteDb& db) {
      RETURN_IF_ERROR(
          db.Exec(m.sql).WithContext(fmt::format("migration {} ({})", m.version, m.name)));
      return db.Exec(fmt::format("PRAGMA user_version={}", m.version));
    }));
    spdlog::info("state store: applied migration {} ({})", m.version, m.name);
    current = m.version;
  }
  schema_version_ = current;
  return Status::Ok();
}

Status StateStore::InTransaction(const std::function<Status(SqliteDb&)>& body) {
  MutexLock lock(write_mu_);
  RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  Status s = body(*db_);
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) db_->Exec("ROLLBACK").IgnoreError();
  return s;
}

}  // namespace fpgahost
