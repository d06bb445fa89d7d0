// A thin RAII layer over the SQLite C API that reports failures as Status.
//
// SqliteDb owns one connection, opened in SQLite's serialized mode, so it may be shared
// between threads; a Statement belongs to one thread at a time. Corruption
// (SQLITE_CORRUPT, SQLITE_NOTADB) is DataLoss with reason STORE_CORRUPT; a busy database is
// Unavailable; everything else is Internal. Messages name the database file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost {

class SqliteDb;

class Statement {
 public:
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  // Parameters are 1-based, as in SQLite.
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, int64_t value);
  Statement& BindNull(int index);

  // Runs one step: true when a row is ready to read, false when done.
  StatusOr<bool> Step();
  // Steps to completion, for statements that return no rows.
  Status Run();
  // Makes the statement ready to run again (bound values are kept until rebound).
  void Reset();

  std::string ColumnText(int index) const;
  int64_t ColumnInt64(int index) const;
  bool ColumnIsNull(int index) const;

 private:
  friend class SqliteDb;
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  Statement(const SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  const SqliteDb* db_;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

class SqliteDb {
 public:
  // Opens (creating when missing) the database at `path`.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);

  Status Exec(std::string_view sql);
  StatusOr<Statement> Prepare(std::string_view sql) const;

  // The Status for SQLite result code `rc`, naming `what` and the file.
  Status Error(int rc, std::string_view what) const;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_.get(); }

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  SqliteDb(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
};

}  // namespace fpgahost
