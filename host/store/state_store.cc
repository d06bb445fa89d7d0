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
                                                       std::span<const Migration> migrations,
                                                       std::chrono::milliseconds flush_interval) {
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  RETURN_IF_ERROR(CheckIntegrity(*db));
  RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  // The flusher's checkpoints sync the WAL and then the database file (synchronous=FULL).
  ASSIGN_OR_RETURN(auto flusher_db, SqliteDb::Open(path));
  RETURN_IF_ERROR(flusher_db->Exec("PRAGMA synchronous=FULL"));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db), std::move(flusher_db)));
  RETURN_IF_ERROR(store->Migrate(migrations));
  store->flush_interval_ = flush_interval;
  if (flush_interval.count() > 0) {
    store->flusher_ =
        std::thread([s = store.get(), flush_interval] { s->FlushLoop(flush_interval); });
  }
  return store;
}

StateStore::~StateStore() {
  {
    MutexLock lock(flush_mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

Status StateStore::Flush() {
  {
    MutexLock lock(flush_mu_);
    unsynced_ = false;
  }
  // PASSIVE: copies what no reader still needs and never waits; before copying anything it
  // fsyncs the WAL, which holds every commit so far.
  int log_frames = 0;
  int copied_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(flusher_db_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                     &log_frames, &copied_frames);
  if (rc == SQLITE_OK && copied_frames >= log_frames) return Status::Ok();
  {
    // A reader held back part of the log, another checkpoint was running (BUSY), or the
    // checkpoint failed: try again next time.
    MutexLock lock(flush_mu_);
    unsynced_ = true;
  }
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
    return flusher_db_->Error(rc, "flushing the state database");
  }
  return Status::Ok();
}

// std::unique_lock (which the condition variable needs) carries no thread-safety annotations.
void StateStore::FlushLoop(std::chrono::milliseconds interval) NO_THREAD_SAFETY_ANALYSIS {
  std::unique_lock<Mutex> lock(flush_mu_);
  while (true) {
    flush_cv_.wait_for(lock, interval, [this]() NO_THREAD_SAFETY_ANALYSIS { return stopping_; });
    bool last = stopping_;
    if (unsynced_) {
      lock.unlock();
      Status s = Flush();
      if (!s.ok()) spdlog::warn("state store: {}", s.ToString());
      lock.lock();
    }
    if (last) return;
  }
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

Status StateStore::InTransaction(const std::function<Status(SqliteDb&)>& body,
                                 Durability durability) {
  if (flush_interval_.count() == 0) durability = Durability::kSynced;
  {
    MutexLock lock(write_mu_);
    if (durability != commits_) {
      // Takes effect at the next commit; a pragma cannot run inside a transaction.
      RETURN_IF_ERROR(db_->Exec(durability == Durability::kSynced ? "PRAGMA synchronous=FULL"
                                                                  : "PRAGMA synchronous=NORMAL"));
      commits_ = durability;
    }
    RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    Status s = body(*db_);
    if (s.ok()) s = db_->Exec("COMMIT");
    if (!s.ok()) {
      db_->Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  if (durability == Durability::kRuntime) {
    MutexLock lock(flush_mu_);
    unsynced_ = true;
  }
  return Status::Ok();
}

}  // namespace fpgahost
