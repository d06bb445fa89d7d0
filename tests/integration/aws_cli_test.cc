// The real AWS CLI (Debian's awscli, /usr/bin/aws) against fpgahostd's Lambda-compatible API
// with --endpoint-url, signing with an access key made through /v1/credentials: what a user
// does after `fpgahost credentials create`. The CLI runs with an environment of its own
// (no config or credentials files, no profile, no pager), so nothing on the machine leaks in.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/base64.h"
#include "common/files.h"
#include "common/json.h"
#include "examples/examples_dir.h"
#include "tests/support/fleet_daemon_test.h"
#include "tests/support/zip_builder.h"

namespace fpgahost {
namespace {

using ::testing::HasSubstr;

// Not the `aws` first on PATH: a developer's own install may differ from what CI has.
constexpr char kAwsCli[] = "/usr/bin/aws";

class AwsCliTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    // scripts/setup installs awscli: its absence is a broken set-up, not a reason to skip.
    ASSERT_TRUE(std::filesystem::exists(kAwsCli)) << kAwsCli << " is missing: run scripts/setup";
    FleetDaemonTest::SetUp();
    StartDaemon();
    http::ClientResponse r = daemon_->Call("POST", "/v1/credentials", daemon_->Token("demo"),
                                           R"({"description":"aws cli test"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    Json key = Json::parse(r.body);
    key_id_ = key["access_key_id"];
    secret_ = key["secret_access_key"];

    home_ = dir_.path() / "home";
    std::filesystem::create_directories(home_);
    std::ofstream(home_ / "config").close();
    std::ofstream(home_ / "credentials").close();
  }

  // Runs `aws lambda <args> --endpoint-url <daemon> --region us-east-1 --output json` signed
  // with the given key.
  testing::RunResult Aws(const std::vector<std::string>& args, const std::string& key_id,
                         const std::string& secret) {
    std::vector<std::string> argv = {
        "/usr/bin/env",
        "-i",
        "PATH=/usr/bin:/bin",
        "LANG=C.UTF-8",
        "HOME=" + home_.string(),
        "AWS_CONFIG_FILE=" + (home_ / "config").string(),
        "AWS_SHARED_CREDENTIALS_FILE=" + (home_ / "credentials").string(),
        "AWS_ACCESS_KEY_ID=" + key_id,
        "AWS_SECRET_ACCESS_KEY=" + secret,
        "AWS_PAGER=",
        "AWS_EC2_METADATA_DISABLED=true",
        "AWS_MAX_ATTEMPTS=1",
        kAwsCli,
        "lambda"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--endpoint-url", daemon_->endpoint(), "--region", "us-east-1",
                             "--output", "json"});
    return testing::RunCommand(argv);
  }
  testing::RunResult Aws(const std::vector<std::string>& args) {
    return Aws(args, key_id_, secret_);
  }

  static Json Output(const testing::RunResult& r) {
    Json j = Json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    return j;
  }

  std::filesystem::path home_;
  std::string key_id_, secret_;
};

TEST_F(AwsCliTest, FunctionLifecycle) {
  testing::RunResult r = Aws({"list-functions"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Output(r)["Functions"].empty()) << r.out;

  std::filesystem::path zip = dir_.path() / "echo.zip";
  {
    std::string bytes =
        testing::MakeZip({{"bootstrap", "#!/bin/sh\nexec cat\n", testing::kFile | 0755}});
    std::ofstream(zip, std::ios::binary) << bytes;
  }
  r = Aws({"create-function", "--function-name", "echo", "--runtime", "provided.al2023", "--role",
           "arn:aws:iam::123456789012:role/lambda", "--handler", "function.handler",
           "--memory-size", "256", "--timeout", "10", "--zip-file", "fileb://" + zip.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json created = Output(r);
  EXPECT_EQ(created["FunctionName"], "echo");
  EXPECT_EQ(created["MemorySize"], 256);
  EXPECT_THAT(created.value("FunctionArn", ""), HasSubstr(":function:echo"));

  r = Aws({"get-function", "--function-name", "echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Output(r)["Configuration"]["CodeSha256"], created["CodeSha256"]);

  r = Aws({"list-functions"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Output(r)["Functions"].size(), 1u) << r.out;
  // Query strings and percent-encoded names (':' in an ARN) are signed as botocore signs
  // them: these get past authentication to the function's absence.
  r = Aws({"list-functions", "--max-items", "1", "--function-version", "ALL"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Aws({"get-function", "--function-name", "arn:aws:lambda:us-east-1:123456789012:function:nope",
           "--qualifier", "$LATEST"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("ResourceNotFoundException"));

  r = Aws({"put-function-concurrency", "--function-name", "echo",
           "--reserved-concurrent-executions", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Output(r)["ReservedConcurrentExecutions"], 3);

  // The key belongs to tenant demo: the function is demo's, as a bearer token shows.
  http::ClientResponse demo =
      daemon_->Call("GET", "/2015-03-31/functions/echo", daemon_->Token("demo"));
  EXPECT_EQ(demo.status, 200u) << demo.body;

  r = Aws({"delete-function", "--function-name", "echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Aws({"get-function", "--function-name", "echo"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("ResourceNotFoundException"));
}

// The README's sample function (examples/functions/echo-sh), created and invoked as the
// AWS CLI does it: RequestResponse with the log tail, a function error, and an Event.
TEST_F(AwsCliTest, InvokesTheSampleFunction) {
  std::filesystem::path zip =
      std::filesystem::path(FPGAHOST_EXAMPLES_DIR) / "functions" / "echo-sh.zip";
  testing::RunResult r = Aws({"create-function", "--function-name", "echo-sh", "--runtime",
                              "provided.al2023", "--role", "arn:aws:iam::123456789012:role/lambda",
                              "--handler", "echo", "--zip-file", "fileb://" + zip.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::filesystem::path out = dir_.path() / "out.json";
  r = Aws({"invoke", "--function-name", "echo-sh", "--cli-binary-format", "raw-in-base64-out",
           "--payload", R"({"hello":"world"})", "--log-type", "Tail", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json answer = Output(r);
  EXPECT_EQ(answer["StatusCode"], 200);
  EXPECT_EQ(answer["ExecutedVersion"], "$LATEST");
  EXPECT_FALSE(answer.contains("FunctionError")) << r.out;
  std::string log = Base64Decode(answer.value("LogResult", "")).value_or("");
  EXPECT_THAT(log, HasSubstr("echo-sh: request"));
  EXPECT_THAT(log, HasSubstr("REPORT RequestId:"));
  EXPECT_EQ(ReadFile(out).value_or(""), R"({"hello":"world"})");

  r = Aws({"invoke", "--function-name", "echo-sh", "--cli-binary-format", "raw-in-base64-out",
           "--payload", R"({"fail":true})", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;  // a function error is not a CLI error
  EXPECT_EQ(Output(r)["FunctionError"], "Unhandled");
  EXPECT_EQ(Json::parse(ReadFile(out).value_or("{}"))["errorType"], "EchoError");

  r = Aws({"invoke", "--function-name", "echo-sh", "--cli-binary-format", "raw-in-base64-out",
           "--invocation-type", "Event", "--payload", "{}", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Output(r)["StatusCode"], 202);

  r = Aws({"invoke", "--function-name", "missing", out.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("ResourceNotFoundException"));
}

TEST_F(AwsCliTest, WrongSecretAndUnknownKeyAreRefusedAsLambdaDoes) {
  std::string wrong = secret_;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  testing::RunResult r = Aws({"list-functions"}, key_id_, wrong);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.err, HasSubstr("InvalidSignatureException"));
  EXPECT_THAT(r.err, HasSubstr("The request signature we calculated does not match"));

  r = Aws({"list-functions"}, "AKIAUNKNOWNKEY234567", secret_);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.err, HasSubstr("UnrecognizedClientException"));

  // A deleted key stops working at once.
  http::ClientResponse del =
      daemon_->Call("DELETE", "/v1/credentials/" + key_id_, daemon_->Token("demo"));
  ASSERT_EQ(del.status, 204u) << del.body;
  r = Aws({"list-functions"});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.err, HasSubstr("UnrecognizedClientException"));
}

TEST_F(AwsCliTest, CredentialsCliPrintsWhatTheAwsCliNeeds) {
  testing::RunResult r = Cli({"credentials", "list"}, "demo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(key_id_));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(secret_)));

  r = Cli({"credentials", "create", "--description", "second"}, "demo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("AWS_DEFAULT_REGION=us-east-1\n"));
  auto printed = [&r](const std::string& prefix) {
    size_t at = r.out.find("\n" + prefix);
    EXPECT_NE(at, std::string::npos) << prefix << " in:\n" << r.out;
    if (at == std::string::npos) return std::string();
    at += 1 + prefix.size();
    return r.out.substr(at, r.out.find('\n', at) - at);
  };
  std::string id = printed("AWS_ACCESS_KEY_ID="), secret = printed("AWS_SECRET_ACCESS_KEY=");
  EXPECT_THAT(id, ::testing::MatchesRegex("AKIA[A-Z2-7]{16}"));
  // What it printed works with the AWS CLI as it is.
  r = Aws({"list-functions"}, id, secret);
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // Two keys are the limit.
  r = Cli({"credentials", "create"}, "demo");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("ACCESS_KEY_LIMIT_EXCEEDED"));

  r = Cli({"credentials", "delete", id}, "demo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("deleted " + id));
  r = Cli({"credentials", "delete", id}, "demo");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("ACCESS_KEY_NOT_FOUND"));
  r = Cli({"--output", "json", "credentials", "list"}, "demo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).size(), 1u) << r.out;
}

}  // namespace
}  // namespace fpgahost
