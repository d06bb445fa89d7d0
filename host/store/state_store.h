// The daemon's durable state: one SQLite database in WAL mode in the data dir.
//
// Open() applies the numbered schema migrations that the file has not seen yet, each in
// its own transaction, and records the version in SQLite's user_version: a fresh file gets
// them all, an older one is upgraded, a newer one (written by a later fpgahost) is refused.
// Modules keep their tables' SQL in migrations.cc and reach the database through db().
//
// Two kinds of commit (Durability):
//   kSynced   on disk when InTransaction returns (synchronous=FULL: the WAL is fsynced at each
//             commit). Customer data and operator decisions: images and their permissions,
//             functions, credentials, tokens, a card's admin state.
//   kRuntime  in the WAL file when InTransaction returns, on disk within `flush_interval`
//             (synchronous=NORMAL; the store's flusher checkpoints, which fsyncs the WAL).
//             The host's runtime state: instances' lifecycles, the card ledger's assignments
//             and load states, the VFIO binding journal.
// Both survive a crash of fpgahostd (kill -9): the WAL is in the kernel's page cache. Only a
// power loss or a kernel crash can take back kRuntime commits of the last interval, and such a
// reboot resets what they describe anyway (domains off, cards back to their shell, every PCI
// function bound to its default driver); start-up reconciliation repairs the store against
// libvirt and the cards, as after any crash. libvirt makes the same split: a domain's
// persistent definition is fsynced, its live status lives in /run. A kSynced commit also makes
// every earlier kRuntime commit durable.
//
// Thread-safe: SQLite runs in serialized mode; InTransaction serializes writers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "host/store/sqlite.h"

namespace fpgahost {

struct Migration {
  int version;            // 1, 2, 3, ... with no gaps
  std::string_view name;  // what it adds, for logs
  std::string_view sql;
};

// The schema of this build of fpgahost, oldest first.
std::span<const Migration> SchemaMigrations();

enum class Durability { kSynced, kRuntime };

inline constexpr std::chrono::milliseconds kDefaultFlushInterval{1000};

class StateStore {
 public:
  // Opens or creates the database. Errors: DataLoss (STORE_CORRUPT) for a file that is not
  // a database or fails its integrity check; FailedPrecondition (STORE_TOO_NEW) for a schema
  // newer than `migrations`; Internal for I/O failures. Nothing is written on failure.
  // `flush_interval` bounds how long a kRuntime commit may stay off the disk; 0 makes every
  // commit kSynced.
  static StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& path, std::span<const Migration> migrations = SchemaMigrations(),
      std::chrono::milliseconds flush_interval = kDefaultFlushInterval);
  // Flushes what kRuntime commits left unsynced, then closes.
  ~StateStore();

  int schema_version() const { return schema_version_; }
  SqliteDb& db() { return *db_; }

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it returns an error.
  Status InTransaction(const std::function<Status(SqliteDb&)>& body,
                       Durability durability = Durability::kSynced) EXCLUDES(write_mu_);

  // Makes every commit so far durable now: a checkpoint through the flusher's connection.
  // When a reader or another checkpoint holds part of the log back, the flusher tries again at
  // its next interval. Errors: the checkpoint's I/O errors.
  Status Flush() EXCLUDES(flush_mu_);

 private:
  StateStore(std::unique_ptr<SqliteDb> db, std::unique_ptr<SqliteDb> flusher_db)
      : db_(std::move(db)), flusher_db_(std::move(flusher_db)) {}
  Status Migrate(std::span<const Migration> migrations);
  void FlushLoop(std::chrono::milliseconds interval) EXCLUDES(flush_mu_);

  std::unique_ptr<SqliteDb> db_;
  std::chrono::milliseconds flush_interval_{kDefaultFlushInterval};
  Mutex write_mu_;
  Durability commits_ GUARDED_BY(write_mu_) = Durability::kSynced;
  int schema_version_ = 0;

  // The flusher: its own connection, so that its checkpoints never wait for a writer.
  std::unique_ptr<SqliteDb> flusher_db_;
  Mutex flush_mu_;
  std::condition_variable_any flush_cv_;
  bool unsynced_ GUARDED_BY(flush_mu_) = false;  // a kRuntime commit since the last flush
  bool stopping_ GUARDED_BY(flush_mu_) = false;
  std::thread flusher_;
};

}  // namespace fpgahost
