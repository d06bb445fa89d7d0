#include "host/api/lambda_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/auth/sigv4.h"
#include "tests/support/fake_clock.h"
#include "tests/support/sigv4_signer.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::api {
namespace {

class LambdaAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    tokens_ = std::make_unique<TokenAuthenticator>(*store_, clock_);
    keys_ = std::make_unique<CredentialStore>(*store_, clock_);
    demo_token_ = *tokens_->CreateTenant("demo");
    operator_token_ = *tokens_->IssueToken("admin", Role::kOperator, "t");
    key_ = *keys_->Create("demo", "test");
  }

  // Runs LambdaAuthed around a handler that records who called and answers 200.
  http::Response Call(http::Request req, Role min_role = Role::kCustomer) {
    req.request_id = "req-test";
    if (req.path.empty()) req.path = req.target.substr(0, req.target.find('?'));
    http::Handler h =
        LambdaAuthed(*tokens_, *keys_, clock_, min_role,
                     [this](http::Request&, const Principal& who, http::Responder respond) {
                       caller_ = who;
                       respond(http::JsonResponse("{}"));
                     });
    caller_.reset();
    http::Response out;
    h(req, [&out](http::Response r) { out = std::move(r); });
    return out;
  }

  http::Request Signed(const std::string& method, const std::string& target,
                       const std::string& body, const std::string& key_id,
                       const std::string& secret) {
    http::Request req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.headers = {{"host", "127.0.0.1:9001"}, {"content-type", "application/json"}};
    testing::SigV4Signer(key_id, secret).Sign(method, target, req.headers, body, clock_.Now());
    return req;
  }
  http::Request SignedByDemo(const std::string& target = "/2015-03-31/functions/") {
    return Signed("GET", target, "", key_.key.access_key_id, key_.secret_access_key);
  }

  static std::string Header(const http::Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }
  static Json Body(const http::Response& r) { return Json::parse(r.body, nullptr, false); }

  static void ExpectLambdaError(const http::Response& r, unsigned status, std::string_view type,
                                std::string_view message_part = "") {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(Header(r, "x-amzn-ErrorType"), type);
    EXPECT_EQ(Header(r, "x-amzn-RequestId"), "req-test");
    Json body = Body(r);
    EXPECT_EQ(body.value("Type", ""), "User") << r.body;
    EXPECT_THAT(body.value("message", ""), ::testing::HasSubstr(std::string(message_part)));
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<TokenAuthenticator> tokens_;
  std::unique_ptr<CredentialStore> keys_;
  IssuedToken demo_token_, operator_token_;
  IssuedAccessKey key_;
  std::optional<Principal> caller_;
};

TEST_F(LambdaAuthTest, SigV4SignedRequestIsTheKeysTenant) {
  http::Response r = Call(SignedByDemo());
  EXPECT_EQ(r.status, 200u) << r.body;
  ASSERT_TRUE(caller_.has_value());
  EXPECT_EQ(caller_->tenant, "demo");
  EXPECT_EQ(caller_->role, Role::kCustomer);
  EXPECT_EQ(caller_->token_id, key_.key.access_key_id);

  http::Request post = Signed("POST", "/2015-03-31/functions", R"({"FunctionName":"f"})",
                              key_.key.access_key_id, key_.secret_access_key);
  EXPECT_EQ(Call(post).status, 200u);
}

TEST_F(LambdaAuthTest, BearerTokensStillWork) {
  http::Request req;
  req.method = "GET";
  req.target = "/2015-03-31/functions/";
  req.headers["authorization"] = "Bearer " + demo_token_.secret;
  EXPECT_EQ(Call(req).status, 200u);
  ASSERT_TRUE(caller_.has_value());
  EXPECT_EQ(caller_->tenant, "demo");
  EXPECT_EQ(caller_->token_id, demo_token_.id);

  req.headers["authorization"] = "Bearer fph_nope";
  http::Response r = Call(req);
  ExpectLambdaError(r, 403, "UnrecognizedClientException",
                    "The security token included in the request is invalid.");
  EXPECT_FALSE(caller_.has_value());
}

TEST_F(LambdaAuthTest, MissingAuthorizationIsMissingAuthenticationToken) {
  http::Request req;
  req.method = "GET";
  req.target = "/2015-03-31/functions/";
  http::Response r = Call(req);
  ExpectLambdaError(r, 403, "MissingAuthenticationTokenException");
  EXPECT_EQ(Body(r)["message"], "Missing Authentication Token");
  EXPECT_FALSE(caller_.has_value());
}

TEST_F(LambdaAuthTest, SignatureFailuresAnswerLikeLambda) {
  http::Response r = Call(Signed("GET", "/2015-03-31/functions/", "", key_.key.access_key_id,
                                 "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
  ExpectLambdaError(r, 403, "InvalidSignatureException");
  EXPECT_EQ(Body(r)["message"], sigv4::kSignatureMismatchMessage);

  r = Call(
      Signed("GET", "/2015-03-31/functions/", "", "AKIAUNKNOWNKEY234567", key_.secret_access_key));
  ExpectLambdaError(r, 403, "UnrecognizedClientException",
                    "The security token included in the request is invalid.");

  http::Request tampered = SignedByDemo();
  tampered.target = "/2015-03-31/functions/?MaxItems=1";
  ExpectLambdaError(Call(tampered), 403, "InvalidSignatureException");

  http::Request old = SignedByDemo();
  clock_.Advance(std::chrono::minutes(16));
  ExpectLambdaError(Call(old), 403, "InvalidSignatureException", "Signature expired: ");

  http::Request broken = SignedByDemo();
  broken.headers["authorization"] = "AWS4-HMAC-SHA256 Credential=x";
  ExpectLambdaError(Call(broken), 400, "IncompleteSignatureException",
                    "Authorization header requires 'Signature' parameter.");
  EXPECT_FALSE(caller_.has_value());
}

TEST_F(LambdaAuthTest, DeletedKeyStopsWorking) {
  ASSERT_EQ(Call(SignedByDemo()).status, 200u);
  ASSERT_TRUE(keys_->Delete("demo", key_.key.access_key_id).ok());
  ExpectLambdaError(Call(SignedByDemo()), 403, "UnrecognizedClientException");
}

TEST_F(LambdaAuthTest, OperatorRoutesRefuseAccessKeys) {
  ExpectLambdaError(Call(SignedByDemo(), Role::kOperator), 403, "AccessDeniedException",
                    "operator");
  http::Request req;
  req.method = "GET";
  req.target = "/2015-03-31/functions/";
  req.headers["authorization"] = "Bearer " + operator_token_.secret;
  EXPECT_EQ(Call(req, Role::kOperator).status, 200u);
}

TEST(LambdaErrorTest, StatusesAndNames) {
  auto check = [](const Status& s, unsigned status, const std::string& type) {
    http::Response r = LambdaError(s, "req-1");
    EXPECT_EQ(r.status, status) << s.ToString();
    EXPECT_EQ(LambdaExceptionName(s), type);
    Json body = Json::parse(r.body);
    EXPECT_EQ(body["message"], std::string(s.message()));
  };
  check(NotFoundError("no f"), 404, "ResourceNotFoundException");
  check(InvalidArgumentError("bad"), 400, "InvalidParameterValueException");
  check(ConflictError("busy"), 409, "ResourceConflictException");
  check(ResourceExhaustedError("slow down"), 429, "TooManyRequestsException");
  check(InvalidArgumentError("bad", "InvalidRequestContentException"), 400,
        "InvalidRequestContentException");
  check(UnauthenticatedError("who?"), 403, "UnrecognizedClientException");
  check(UnauthenticatedError("m", sigv4::kIncompleteSignature), 400,
        "IncompleteSignatureException");
  check(InternalError("oops"), 500, "ServiceException");
  EXPECT_EQ(Json::parse(LambdaError(InternalError("oops"), "r").body)["Type"], "Service");
}

}  // namespace
}  // namespace fpgahost::api
