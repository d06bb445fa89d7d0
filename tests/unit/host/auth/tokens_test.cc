#include "host/auth/tokens.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    auth_ = std::make_unique<TokenAuthenticator>(*store_, clock_);
    ASSERT_TRUE(auth_->Load().ok());
  }
  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<TokenAuthenticator> auth_;
};

TEST_F(TokensTest, IssuedTokenAuthenticatesAsItsTenantAndRole) {
  EXPECT_FALSE(auth_->HasTokens());
  auto t = auth_->IssueToken("acme", Role::kOperator, "test");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(auth_->HasTokens());
  auto who = auth_->Authenticate("Bearer " + t->secret);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->tenant, "acme");
  EXPECT_EQ(who->role, Role::kOperator);
  EXPECT_EQ(who->token_id, t->id);
}

TEST_F(TokensTest, SecretIsNotStored) {
  auto t = auth_->IssueToken("acme", Role::kCustomer, "test");
  ASSERT_TRUE(t.ok());
  auto q = store_->db().Prepare("SELECT sha256 FROM api_tokens");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_NE(q->ColumnText(0), t->secret);
  EXPECT_EQ(q->ColumnText(0).find(t->secret.substr(4)), std::string::npos);
}

TEST_F(TokensTest, TokensSurviveReload) {
  auto t = auth_->IssueToken("acme", Role::kCustomer, "test");
  ASSERT_TRUE(t.ok());
  TokenAuthenticator fresh(*store_, clock_);
  ASSERT_TRUE(fresh.Load().ok());
  EXPECT_TRUE(fresh.Authenticate("Bearer " + t->secret).ok());
}

TEST_F(TokensTest, MissingMalformedAndWrongTokensAreRejected) {
  auto t = auth_->IssueToken("acme", Role::kCustomer, "test");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(auth_->Authenticate("").status().reason(), "MISSING_TOKEN");
  EXPECT_EQ(auth_->Authenticate("Basic abc").status().reason(), "INVALID_TOKEN");
  std::string wrong = t->secret;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  auto s = auth_->Authenticate("Bearer " + wrong);
  EXPECT_EQ(s.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.status().reason(), "INVALID_TOKEN");
}

TEST_F(TokensTest, FailedBeforeCommitCreatesNothing) {
  auto r = auth_->IssueTokens({{"acme", Role::kOperator, "x"}, {"demo", Role::kCustomer, "y"}},
                              [](const IssuedToken& t) -> Status {
                                if (t.principal.tenant == "demo") return InternalError("disk full");
                                return Status::Ok();
                              });
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(auth_->HasTokens());
  auto tenants = auth_->ListTenants();
  ASSERT_TRUE(tenants.ok());
  EXPECT_TRUE(tenants->empty());
}

TEST_F(TokensTest, TenantNamesAreChecked) {
  EXPECT_TRUE(TokenAuthenticator::CheckTenantName("acme-2").ok());
  EXPECT_EQ(TokenAuthenticator::CheckTenantName("").reason(), "INVALID_TENANT_NAME");
  EXPECT_FALSE(TokenAuthenticator::CheckTenantName("2acme").ok());
  EXPECT_FALSE(TokenAuthenticator::CheckTenantName("Acme").ok());
  EXPECT_FALSE(TokenAuthenticator::CheckTenantName("a/b").ok());
  EXPECT_FALSE(TokenAuthenticator::CheckTenantName(std::string(64, 'a')).ok());
}

TEST_F(TokensTest, CreateTenantComesWithAWorkingToken) {
  auto t = auth_->CreateTenant("acme");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto who = auth_->Authenticate("Bearer " + t->secret);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->tenant, "acme");
  EXPECT_EQ(who->role, Role::kCustomer);
}

TEST_F(TokensTest, DuplicateTenantIsAlreadyExistsAndIssuesNoToken) {
  ASSERT_TRUE(auth_->CreateTenant("acme").ok());
  auto s = auth_->CreateTenant("acme");
  EXPECT_EQ(s.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s.status().reason(), "TENANT_EXISTS");
  auto q = store_->db().Prepare("SELECT count(*) FROM api_tokens");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt64(0), 1);
}

TEST_F(TokensTest, IssuingRecordsAnEvent) {
  auto t = auth_->IssueToken("acme", Role::kCustomer, "test");
  ASSERT_TRUE(t.ok());
  auto q = store_->db().Prepare("SELECT kind, subject, time FROM events");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "token.created");
  EXPECT_EQ(q->ColumnText(1), t->id);
  EXPECT_EQ(q->ColumnText(2), "2026-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace fpgahost
