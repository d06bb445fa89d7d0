// Lambda's control API end to end, as the AWS CLI calls it with --endpoint-url: create a
// function from a zip, get, list, reserve concurrency, delete; errors as Lambda names them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/base64.h"
#include "common/json.h"
#include "tests/support/fleet_daemon_test.h"
#include "tests/support/zip_builder.h"

namespace fpgahost {
namespace {

using ::testing::HasSubstr;

class FunctionApiTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    FleetDaemonTest::SetUp();
    StartDaemon();
    demo_ = daemon_->Token("demo");
  }

  http::ClientResponse Call(const std::string& method, const std::string& target,
                            const Json& body = nullptr, const std::string& token = "") {
    return daemon_->Call(method, target, token.empty() ? demo_ : token,
                         body.is_null() ? "" : body.dump());
  }

  static Json CreateBody(const std::string& name, const std::string& zip) {
    return {{"FunctionName", name},
            {"Runtime", "provided.al2023"},
            {"Role", "arn:aws:iam::123456789012:role/lambda"},
            {"Handler", "function.handler"},
            {"MemorySize", 256},
            {"Timeout", 10},
            {"Environment", {{"Variables", {{"GREETING", "hello"}}}}},
            {"Code", {{"ZipFile", Base64Encode(zip)}}}};
  }

  static std::string EchoZip() {
    return testing::MakeZip({testing::Bootstrap(), {"function.sh", "echo hi\n"}});
  }

  static std::string ErrorType(const http::ClientResponse& r) {
    auto it = r.headers.find("x-amzn-errortype");
    return it == r.headers.end() ? "" : it->second;
  }

  std::string demo_;
};

TEST_F(FunctionApiTest, CreateGetListDelete) {
  std::string zip = EchoZip();
  http::ClientResponse r = Call("POST", "/2015-03-31/functions", CreateBody("echo", zip));
  ASSERT_EQ(r.status, 201u) << r.body;
  Json f = Json::parse(r.body);
  EXPECT_EQ(f["FunctionName"], "echo");
  EXPECT_THAT(f["FunctionArn"].get<std::string>(),
              ::testing::MatchesRegex("arn:aws:lambda:us-east-1:[0-9]{12}:function:echo"));
  EXPECT_EQ(f["MemorySize"], 256);
  EXPECT_EQ(f["Timeout"], 10);
  EXPECT_EQ(f["CodeSize"], zip.size());
  EXPECT_EQ(f["Environment"]["Variables"]["GREETING"], "hello");
  EXPECT_EQ(f["State"], "Active");
  EXPECT_EQ(f["Version"], "$LATEST");

  Json got = Json::parse(Call("GET", "/2015-03-31/functions/echo").body);
  EXPECT_EQ(got["Configuration"]["CodeSha256"], f["CodeSha256"]);
  Json list = Json::parse(Call("GET", "/2015-03-31/functions/").body);
  ASSERT_EQ(list["Functions"].size(), 1u);

  // The same name again is a conflict; another tenant does not see it and may use the name.
  r = Call("POST", "/2015-03-31/functions", CreateBody("echo", zip));
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(ErrorType(r), "ResourceConflictException");
  std::string other = Json::parse(Post("/v1/tenants", {{"name", "other"}}).body)["token"]["secret"];
  r = Call("GET", "/2015-03-31/functions/echo", nullptr, other);
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(ErrorType(r), "ResourceNotFoundException");
  EXPECT_EQ(Call("POST", "/2015-03-31/functions", CreateBody("echo", zip), other).status, 201u);

  r = Call("PUT", "/2017-10-31/functions/echo/concurrency", {{"ReservedConcurrentExecutions", 5}});
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(Json::parse(r.body)["ReservedConcurrentExecutions"], 5);
  EXPECT_EQ(Json::parse(Call("GET", "/2015-03-31/functions/echo")
                            .body)["Concurrency"]["ReservedConcurrentExecutions"],
            5);

  EXPECT_EQ(Call("DELETE", "/2015-03-31/functions/echo").status, 204u);
  EXPECT_EQ(Call("GET", "/2015-03-31/functions/echo").status, 404u);
  EXPECT_EQ(Call("DELETE", "/2015-03-31/functions/echo").status, 404u);
  // The other tenant's function with the same code is still there.
  EXPECT_EQ(Call("GET", "/2015-03-31/functions/echo", nullptr, other).status, 200u);
}

TEST_F(FunctionApiTest, BadBundlesAndParametersAreInvalidParameterValue) {
  auto expect_invalid = [&](const Json& body, const std::string& mentions) {
    http::ClientResponse r = Call("POST", "/2015-03-31/functions", body);
    EXPECT_EQ(r.status, 400u) << r.body;
    EXPECT_EQ(ErrorType(r), "InvalidParameterValueException") << r.body;
    EXPECT_THAT(Json::parse(r.body, nullptr, false).value("message", ""), HasSubstr(mentions))
        << r.body;
  };
  Json body = CreateBody("f", EchoZip());
  body["Code"]["ZipFile"] = Base64Encode("not a zip at all");
  expect_invalid(body, "INVALID_ZIP");
  body["Code"]["ZipFile"] = Base64Encode(testing::MakeZip({{"handler.sh", "echo\n"}}));
  expect_invalid(body, "NO_BOOTSTRAP");
  body["Code"]["ZipFile"] =
      Base64Encode(testing::MakeZip({testing::Bootstrap(), {"../escape", "x"}}));
  expect_invalid(body, "PATH_TRAVERSAL");
  body["Code"]["ZipFile"] = "!!!";
  expect_invalid(body, "base64");
  body = CreateBody("bad name!", EchoZip());
  expect_invalid(body, "FunctionName");
  body = CreateBody("f", EchoZip());
  body["MemorySize"] = 64;
  expect_invalid(body, "MemorySize");
  body = CreateBody("f", EchoZip());
  body["Runtime"] = "python3.12";
  expect_invalid(body, "Runtime");
  body = CreateBody("f", EchoZip());
  body["Environment"]["Variables"]["AWS_REGION"] = "x";
  expect_invalid(body, "reserved");
  http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions", demo_, "{nope");
  EXPECT_EQ(r.status, 400u);
  // Nothing was created by any of these.
  EXPECT_TRUE(Json::parse(Call("GET", "/2015-03-31/functions/").body)["Functions"].empty());
}

}  // namespace
}  // namespace fpgahost
