// The daemon's durable state: one SQLite database in WAL mode in the data dir.
//
// Open() applies the numbered schema migrations that the file has not seen yet, each in
// its own transaction, and records the version in SQLite's user_version: a fresh file gets
// them all, an older one is upgraded, a newer one (written by a later fpgahost) is refused.
// Modules keep their tables' SQL in migrations.cc and reach the database through db().
//
// Thread-safe: SQLite runs in serialized mode; InTransaction serializes writers.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

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

class StateStore {
 public:
  // Opens or creates the database. Errors: DataLoss (STORE_CORRUPT) for a file that is not
  // a database or fails its integrity check; FailedPrecondition (STORE_TOO_NEW) for a schema
  // newer than `migrations`; Internal for I/O failures. Nothing is written on failure.
  static StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& path, std::span<const Migration> migrations = SchemaMigrations());

  int schema_version() const { return schema_version_; }
  SqliteDb& db() { return *db_; }

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it returns an error.
  Status InTransaction(const std::function<Status(SqliteDb&)>& body) EXCLUDES(write_mu_);

 private:
  explicit StateStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Status Migrate(std::span<const Migration> migrations);

  std::unique_ptr<SqliteDb> db_;
  Mutex write_mu_;
  int schema_version_ = 0;
};

}  // namespace fpgahost
