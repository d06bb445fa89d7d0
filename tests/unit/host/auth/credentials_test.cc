#include "host/auth/credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <thread>

#include "host/auth/tokens.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

class CredentialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    TokenAuthenticator tokens(*store_, clock_);
    ASSERT_TRUE(tokens.CreateTenant("demo").ok());
    ASSERT_TRUE(tokens.CreateTenant("other").ok());
    keys_ = std::make_unique<CredentialStore>(*store_, clock_);
    ASSERT_TRUE(keys_->Load().ok());
  }

  IssuedAccessKey MustCreate(const std::string& tenant, const std::string& description = "") {
    StatusOr<IssuedAccessKey> k = keys_->Create(tenant, description);
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return k.ok() ? *k : IssuedAccessKey{};
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<CredentialStore> keys_;
};

TEST_F(CredentialStoreTest, CreatedKeysLookLikeAwsKeysAndLookUp) {
  IssuedAccessKey k = MustCreate("demo", "laptop");
  EXPECT_TRUE(std::regex_match(k.key.access_key_id, std::regex("AKIA[A-Z2-7]{16}")))
      << k.key.access_key_id;
  EXPECT_TRUE(std::regex_match(k.secret_access_key, std::regex("[A-Za-z0-9+/]{40}")))
      << k.secret_access_key;
  EXPECT_EQ(k.key.tenant, "demo");
  EXPECT_EQ(k.key.description, "laptop");
  EXPECT_EQ(k.key.created_at, "2026-01-01T00:00:00.000Z");

  std::optional<CredentialStore::Secret> found = keys_->Lookup(k.key.access_key_id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->tenant, "demo");
  EXPECT_EQ(found->secret_access_key, k.secret_access_key);
  EXPECT_FALSE(keys_->Lookup("AKIAAAAAAAAAAAAAAAAA").has_value());
  EXPECT_FALSE(keys_->Lookup("").has_value());
}

TEST_F(CredentialStoreTest, KeysAreRandom) {
  std::set<std::string> ids, secrets;
  for (int i = 0; i < 20; ++i) {
    IssuedAccessKey k = MustCreate("demo");
    ids.insert(k.key.access_key_id);
    secrets.insert(k.secret_access_key);
    ASSERT_TRUE(keys_->Delete("demo", k.key.access_key_id).ok());
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(secrets.size(), 20u);
}

TEST_F(CredentialStoreTest, KeysSurviveReload) {
  IssuedAccessKey k = MustCreate("demo");
  CredentialStore fresh(*store_, clock_);
  EXPECT_FALSE(fresh.Lookup(k.key.access_key_id).has_value());
  ASSERT_TRUE(fresh.Load().ok());
  std::optional<CredentialStore::Secret> found = fresh.Lookup(k.key.access_key_id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->secret_access_key, k.secret_access_key);
}

TEST_F(CredentialStoreTest, ListShowsTheTenantsKeysWithoutSecrets) {
  IssuedAccessKey a = MustCreate("demo", "first");
  clock_.Advance(std::chrono::seconds(1));
  IssuedAccessKey b = MustCreate("demo", "second");
  MustCreate("other");
  StatusOr<std::vector<AccessKey>> list = keys_->List("demo");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].access_key_id, a.key.access_key_id);
  EXPECT_EQ((*list)[0].description, "first");
  EXPECT_EQ((*list)[1].access_key_id, b.key.access_key_id);
  EXPECT_TRUE(keys_->List("nobody")->empty());
}

TEST_F(CredentialStoreTest, TwoKeysPerTenant) {
  MustCreate("demo");
  IssuedAccessKey second = MustCreate("demo");
  StatusOr<IssuedAccessKey> third = keys_->Create("demo", "");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kFailedPrecondition);  // HTTP 409
  EXPECT_EQ(third.status().reason(), "ACCESS_KEY_LIMIT_EXCEEDED");
  EXPECT_THAT(std::string(third.status().message()), ::testing::HasSubstr("already has 2"));
  // Another tenant is not affected, and deleting one makes room.
  MustCreate("other");
  ASSERT_TRUE(keys_->Delete("demo", second.key.access_key_id).ok());
  MustCreate("demo");
}

TEST_F(CredentialStoreTest, ConcurrentCreatesRespectTheLimit) {
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      if (keys_->Create("demo", "").ok()) ++created;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), CredentialStore::kMaxKeysPerTenant);
  EXPECT_EQ(keys_->List("demo")->size(), 2u);
}

TEST_F(CredentialStoreTest, UnknownTenantAndLongDescriptionAreRefused) {
  StatusOr<IssuedAccessKey> k = keys_->Create("nobody", "");
  EXPECT_EQ(k.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(k.status().reason(), "TENANT_NOT_FOUND");
  k = keys_->Create("demo", std::string(257, 'x'));
  EXPECT_EQ(k.status().reason(), "INVALID_FIELD");
  EXPECT_TRUE(keys_->List("demo")->empty());
}

TEST_F(CredentialStoreTest, DeleteOnlyTheTenantsOwnKeys) {
  IssuedAccessKey k = MustCreate("demo");
  Status s = keys_->Delete("other", k.key.access_key_id);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.reason(), "ACCESS_KEY_NOT_FOUND");
  EXPECT_TRUE(keys_->Lookup(k.key.access_key_id).has_value());

  ASSERT_TRUE(keys_->Delete("demo", k.key.access_key_id).ok());
  EXPECT_FALSE(keys_->Lookup(k.key.access_key_id).has_value());
  EXPECT_TRUE(keys_->List("demo")->empty());
  EXPECT_EQ(keys_->Delete("demo", k.key.access_key_id).reason(), "ACCESS_KEY_NOT_FOUND");
  CredentialStore fresh(*store_, clock_);
  ASSERT_TRUE(fresh.Load().ok());
  EXPECT_FALSE(fresh.Lookup(k.key.access_key_id).has_value());
}

TEST_F(CredentialStoreTest, CreationAndDeletionAreEvents) {
  IssuedAccessKey k = MustCreate("demo");
  ASSERT_TRUE(keys_->Delete("demo", k.key.access_key_id).ok());
  auto q = store_->db().Prepare("SELECT kind, detail FROM events WHERE subject = ?1 ORDER BY seq");
  ASSERT_TRUE(q.ok());
  q->Bind(1, k.key.access_key_id);
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "access_key.created");
  EXPECT_EQ(q->ColumnText(1).find(k.secret_access_key), std::string::npos);
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "access_key.deleted");
}

}  // namespace
}  // namespace fpgahost
