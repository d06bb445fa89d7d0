#include "host/api/credential_routes.h"

#include <gtest/gtest.h>

#include <future>

#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::api {
namespace {

// Calls the routes in-process and waits for their pooled answer.
class CredentialRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    auth_ = std::make_unique<TokenAuthenticator>(*store_, clock_);
    keys_ = std::make_unique<CredentialStore>(*store_, clock_);
    ctx_ = std::make_unique<ApiContext>(
        ApiContext{*auth_, *store_, clock_, pool_, std::chrono::steady_clock::now()});
    RegisterCredentialRoutes(router_, *ctx_, *keys_);
    demo_ = auth_->CreateTenant("demo")->secret;
    other_ = auth_->CreateTenant("other")->secret;
  }

  http::Response Call(const std::string& method, const std::string& path, const std::string& token,
                      const std::string& body = "") {
    auto m = router_.Find(method, path);
    EXPECT_NE(m.handler, nullptr) << method << " " << path;
    if (m.handler == nullptr) return {};
    http::Request req;
    req.method = method;
    req.path = path;
    req.target = path;
    req.params = m.params;
    req.body = body;
    req.request_id = "req-test";
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    std::promise<http::Response> done;
    (*m.handler)(req, [&done](http::Response r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  static Json Body(const http::Response& r) { return Json::parse(r.body, nullptr, false); }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  ThreadPool pool_{2};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<CredentialStore> keys_;
  std::unique_ptr<ApiContext> ctx_;
  http::Router router_;
  std::string demo_, other_;
};

TEST_F(CredentialRoutesTest, CreateListDelete) {
  http::Response r = Call("POST", "/v1/credentials", demo_, R"({"description":"ci"})");
  ASSERT_EQ(r.status, 201u) << r.body;
  Json key = Body(r);
  std::string id = key["access_key_id"];
  EXPECT_EQ(key["tenant"], "demo");
  EXPECT_EQ(key["description"], "ci");
  EXPECT_EQ(key["created_at"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(key["secret_access_key"].get<std::string>().size(), 40u);
  EXPECT_EQ(keys_->Lookup(id)->secret_access_key, key["secret_access_key"]);

  // No body at all is fine too.
  ASSERT_EQ(Call("POST", "/v1/credentials", demo_).status, 201u);

  r = Call("GET", "/v1/credentials", demo_);
  ASSERT_EQ(r.status, 200u);
  Json list = Body(r)["credentials"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["access_key_id"], id);
  EXPECT_FALSE(list[0].contains("secret_access_key"));
  EXPECT_TRUE(Body(Call("GET", "/v1/credentials", other_))["credentials"].empty());

  // Another tenant cannot delete it: to them it does not exist.
  r = Call("DELETE", "/v1/credentials/" + id, other_);
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Body(r)["error"]["code"], "ACCESS_KEY_NOT_FOUND");
  r = Call("DELETE", "/v1/credentials/" + id, demo_);
  EXPECT_EQ(r.status, 204u);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(Body(Call("GET", "/v1/credentials", demo_))["credentials"].size(), 1u);
  EXPECT_EQ(Call("DELETE", "/v1/credentials/" + id, demo_).status, 404u);
}

TEST_F(CredentialRoutesTest, LimitIsAConflict) {
  ASSERT_EQ(Call("POST", "/v1/credentials", demo_).status, 201u);
  ASSERT_EQ(Call("POST", "/v1/credentials", demo_).status, 201u);
  http::Response r = Call("POST", "/v1/credentials", demo_);
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(Body(r)["error"]["code"], "ACCESS_KEY_LIMIT_EXCEEDED");
  EXPECT_EQ(Body(r)["error"]["request_id"], "req-test");
}

TEST_F(CredentialRoutesTest, BadBodiesAndMissingTokens) {
  EXPECT_EQ(Body(Call("POST", "/v1/credentials", demo_, "{nope"))["error"]["code"],
            "MALFORMED_JSON");
  EXPECT_EQ(Body(Call("POST", "/v1/credentials", demo_, R"({"descripton":"x"})"))["error"]["code"],
            "UNKNOWN_FIELD");
  EXPECT_EQ(Body(Call("POST", "/v1/credentials", demo_, R"({"description":1})"))["error"]["code"],
            "INVALID_FIELD");
  http::Response r = Call("GET", "/v1/credentials", "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Body(r)["error"]["code"], "MISSING_TOKEN");
  EXPECT_TRUE(Body(Call("GET", "/v1/credentials", demo_))["credentials"].empty());
}

}  // namespace
}  // namespace fpgahost::api
