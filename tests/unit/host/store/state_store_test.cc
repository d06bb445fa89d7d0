#include "host/store/state_store.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

using testing::TempDir;

int64_t CountRows(StateStore& store, const std::string& table) {
  auto q = store.db().Prepare("SELECT count(*) FROM " + table);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_TRUE(*q->Step());
  return q->ColumnInt64(0);
}

std::string JournalMode(StateStore& store) {
  auto q = store.db().Prepare("PRAGMA journal_mode");
  EXPECT_TRUE(q.ok());
  EXPECT_TRUE(*q->Step());
  return q->ColumnText(0);
}

TEST(StateStoreTest, FreshDatabaseGetsEveryMigrationInWalMode) {
  TempDir dir;
  auto store = StateStore::Open((dir / "state.db").string());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->schema_version(), SchemaMigrations().back().version);
  EXPECT_EQ(JournalMode(**store), "wal");
  EXPECT_EQ(CountRows(**store, "tenants"), 0);
  EXPECT_EQ(CountRows(**store, "events"), 0);
}

TEST(StateStoreTest, MigrationsAreNumberedWithoutGaps) {
  int expected = 1;
  for (const Migration& m : SchemaMigrations()) EXPECT_EQ(m.version, expected++) << m.name;
}

TEST(StateStoreTest, UpgradeFromFirstVersionKeepsData) {
  TempDir dir;
  std::string path = (dir / "state.db").string();
  {
    auto v1 = StateStore::Open(path, SchemaMigrations().first(1));
    ASSERT_TRUE(v1.ok()) << v1.status().ToString();
    EXPECT_EQ((*v1)->schema_version(), 1);
    ASSERT_TRUE((*v1)->db().Exec("INSERT INTO tenants VALUES ('acme', 'then')").ok());
    // The events table comes with migration 2.
    EXPECT_FALSE((*v1)->db().Prepare("SELECT * FROM events").ok());
  }
  auto latest = StateStore::Open(path);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ((*latest)->schema_version(), SchemaMigrations().back().version);
  EXPECT_EQ(CountRows(**latest, "tenants"), 1);
  EXPECT_EQ(CountRows(**latest, "events"), 0);
}

TEST(StateStoreTest, ReopeningAppliesNothingTwice) {
  TempDir dir;
  std::string path = (dir / "state.db").string();
  ASSERT_TRUE(StateStore::Open(path).ok());
  auto again = StateStore::Open(path);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->schema_version(), SchemaMigrations().back().version);
}

TEST(StateStoreTest, FailedMigrationLeavesPreviousVersion) {
  TempDir dir;
  std::string path = (dir / "state.db").string();
  const std::array<Migration, 2> broken{{
      {1, "ok", "CREATE TABLE a (x INTEGER);"},
      {2, "broken", "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1);"},
  }};
  auto s = StateStore::Open(path, broken);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("migration 2 (broken)"), std::string_view::npos)
      << s.status().message();
  auto v1 = StateStore::Open(path, std::span(broken).first(1));
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ((*v1)->schema_version(), 1);
  // Table b was rolled back with the failed migration.
  EXPECT_FALSE((*v1)->db().Prepare("SELECT * FROM b").ok());
}

TEST(StateStoreTest, NewerSchemaIsRefused) {
  TempDir dir;
  std::string path = (dir / "state.db").string();
  ASSERT_TRUE(StateStore::Open(path).ok());
  auto old = StateStore::Open(path, SchemaMigrations().first(1));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().reason(), "STORE_TOO_NEW");
}

TEST(StateStoreTest, CorruptFileIsDataLossAndUntouched) {
  TempDir dir;
  std::string path = (dir / "state.db").string();
  const std::string garbage(8192, 'x');
  std::ofstream(path) << garbage;
  auto s = StateStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.status().reason(), "STORE_CORRUPT");
  EXPECT_NE(s.status().message().find(path), std::string_view::npos);
  std::ifstream in(path);
  std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, garbage);
}

TEST(StateStoreTest, TransactionRollsBackOnError) {
  TempDir dir;
  auto store = StateStore::Open((dir / "state.db").string());
  ASSERT_TRUE(store.ok());
  Status s = (*store)->InTransaction([](SqliteDb& db) {
    RETURN_IF_ERROR(db.Exec("INSERT INTO tenants VALUES ('a', 'now')"));
    return InvalidArgumentError("changed my mind");
  });
  EXPECT_EQ(s.message(), "changed my mind");
  EXPECT_EQ(CountRows(**store, "tenants"), 0);
}

// The tenants in the database file alone, without its WAL: what checkpoints have copied there.
// A kRuntime commit is fsynced no earlier than the checkpoint that copies it.
std::vector<std::string> TenantsOnDisk(const TempDir& dir) {
  std::filesystem::copy_file(dir / "state.db", dir / "disk.db",
                             std::filesystem::copy_options::overwrite_existing);
  std::vector<std::string> names;
  auto db = SqliteDb::Open((dir / "disk.db").string());
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto q = (*db)->Prepare("SELECT name FROM tenants ORDER BY name");
  if (!q.ok()) return {"(no tenants table yet)"};
  while (*q->Step()) names.push_back(q->ColumnText(0));
  return names;
}

Status AddTenant(StateStore& store, const std::string& name, Durability durability) {
  return store.InTransaction(
      [&](SqliteDb& db) { return db.Exec("INSERT INTO tenants VALUES ('" + name + "', 'now')"); },
      durability);
}

TEST(StateStoreTest, RuntimeCommitsReachTheDatabaseFileWhenFlushed) {
  TempDir dir;
  auto store =
      StateStore::Open((dir / "state.db").string(), SchemaMigrations(), std::chrono::hours(1));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Flush().ok());  // the schema, into the file
  ASSERT_TRUE(AddTenant(**store, "runtime", Durability::kRuntime).ok());
  // Committed: every reader sees it at once.
  EXPECT_EQ(CountRows(**store, "tenants"), 1);
  EXPECT_EQ(TenantsOnDisk(dir), std::vector<std::string>{});
  Status flushed = (*store)->Flush();
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(TenantsOnDisk(dir), std::vector<std::string>{"runtime"});
}

TEST(StateStoreTest, TheFlusherWritesRuntimeCommitsWithinItsInterval) {
  TempDir dir;
  auto store = StateStore::Open((dir / "state.db").string(), SchemaMigrations(),
                                std::chrono::milliseconds(20));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE(AddTenant(**store, "runtime", Durability::kRuntime).ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (TenantsOnDisk(dir) != std::vector<std::string>{"runtime"} &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(TenantsOnDisk(dir), std::vector<std::string>{"runtime"});
}

// How the connection commits now: 1 NORMAL (kRuntime), 2 FULL (kSynced).
int64_t Synchronous(StateStore& store) {
  auto q = store.db().Prepare("PRAGMA synchronous");
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_TRUE(*q->Step());
  return q->ColumnInt64(0);
}

TEST(StateStoreTest, RuntimeCommitsAreSyncedAtOnceWithoutAFlushInterval) {
  TempDir dir;
  auto relaxed =
      StateStore::Open((dir / "a.db").string(), SchemaMigrations(), std::chrono::seconds(1));
  ASSERT_TRUE(relaxed.ok()) << relaxed.status().ToString();
  ASSERT_TRUE(AddTenant(**relaxed, "runtime", Durability::kRuntime).ok());
  EXPECT_EQ(Synchronous(**relaxed), 1);
  ASSERT_TRUE(AddTenant(**relaxed, "synced", Durability::kSynced).ok());
  EXPECT_EQ(Synchronous(**relaxed), 2);

  auto strict =
      StateStore::Open((dir / "b.db").string(), SchemaMigrations(), std::chrono::milliseconds(0));
  ASSERT_TRUE(strict.ok()) << strict.status().ToString();
  ASSERT_TRUE(AddTenant(**strict, "runtime", Durability::kRuntime).ok());
  EXPECT_EQ(Synchronous(**strict), 2);
  EXPECT_EQ(CountRows(**strict, "tenants"), 1);
}

}  // namespace
}  // namespace fpgahost
