#include <gtest/gtest.h>

#include <future>

#include "host/api/api.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::api {
namespace {

// Calls routes in-process and waits for their (possibly pooled) answer.
class SystemRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    auth_ = std::make_unique<TokenAuthenticator>(*store_, clock_);
    ctx_ = std::make_unique<ApiContext>(
        ApiContext{*auth_, *store_, clock_, pool_, std::chrono::steady_clock::now()});
    RegisterSystemRoutes(router_, *ctx_);
    op_ = *auth_->IssueToken("admin", Role::kOperator, "t");
    customer_ = *auth_->IssueToken("demo", Role::kCustomer, "t");
  }

  http::Response Call(const std::string& method, const std::string& path,
                      const std::string& token = "", const std::string& body = "") {
    auto m = router_.Find(method, path);
    EXPECT_NE(m.handler, nullptr) << method << " " << path;
    http::Request req;
    req.method = method;
    req.path = path;
    req.body = body;
    req.request_id = "req-test";
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    std::promise<http::Response> done;
    (*m.handler)(req, [&done](http::Response r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  static Json Body(const http::Response& r) { return Json::parse(r.body); }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  ThreadPool pool_{2};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<ApiContext> ctx_;
  http::Router router_;
  IssuedToken op_, customer_;
};

TEST_F(SystemRoutesTest, HealthAndVersionNeedNoToken) {
  auto h = Call("GET", "/v1/health");
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(Body(h)["status"], "ok");
  auto v = Call("GET", "/v1/version");
  EXPECT_EQ(v.status, 200u);
  EXPECT_EQ(Body(v)["api"], "v1");
}

TEST_F(SystemRoutesTest, WhoamiNeedsAToken) {
  auto none = Call("GET", "/v1/whoami");
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(Body(none)["error"]["code"], "MISSING_TOKEN");
  auto bad = Call("GET", "/v1/whoami", "fph_nope");
  EXPECT_EQ(bad.status, 401u);
  EXPECT_EQ(Body(bad)["error"]["code"], "INVALID_TOKEN");
  auto ok = Call("GET", "/v1/whoami", customer_.secret);
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(Body(ok)["tenant"], "demo");
}

TEST_F(SystemRoutesTest, TenantCallsAreForOperators) {
  auto r = Call("GET", "/v1/tenants", customer_.secret);
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(Body(r)["error"]["code"], "OPERATOR_ONLY");
  auto list = Call("GET", "/v1/tenants", op_.secret);
  EXPECT_EQ(list.status, 200u);
  EXPECT_EQ(Body(list)["tenants"].size(), 2u);
}

TEST_F(SystemRoutesTest, CreateTenantReturnsAWorkingToken) {
  auto r = Call("POST", "/v1/tenants", op_.secret, R"({"name": "acme"})");
  ASSERT_EQ(r.status, 201u) << r.body;
  std::string secret = Body(r)["token"]["secret"];
  auto who = Call("GET", "/v1/whoami", secret);
  EXPECT_EQ(Body(who)["tenant"], "acme");
  EXPECT_EQ(Body(who)["role"], "customer");
  auto again = Call("POST", "/v1/tenants", op_.secret, R"({"name": "acme"})");
  EXPECT_EQ(again.status, 409u);
  EXPECT_EQ(Body(again)["error"]["code"], "TENANT_EXISTS");
}

TEST_F(SystemRoutesTest, CreateTenantRejectsBadBodiesNamingTheField) {
  struct Case {
    std::string body;
    std::string code;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{
           {"{", "MALFORMED_JSON", "not valid JSON"},
           {"[]", "MALFORMED_JSON", "JSON object"},
           {"{}", "MISSING_FIELD", "'name'"},
           {R"({"name": 3})", "INVALID_FIELD", "'name'"},
           {R"({"name": "x", "extra": 1})", "UNKNOWN_FIELD", "'extra'"},
           {R"({"name": "Bad Name"})", "INVALID_TENANT_NAME", "Bad Name"},
       }) {
    auto r = Call("POST", "/v1/tenants", op_.secret, c.body);
    EXPECT_EQ(r.status, 400u) << c.body;
    Json e = Body(r)["error"];
    EXPECT_EQ(e["code"], c.code) << c.body;
    EXPECT_NE(e["message"].get<std::string>().find(c.needle), std::string::npos) << e;
    EXPECT_EQ(e["request_id"], "req-test");
  }
}

}  // namespace
}  // namespace fpgahost::api
