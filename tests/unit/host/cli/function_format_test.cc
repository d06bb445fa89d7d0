#include "host/cli/function_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base64.h"

namespace fpgahost::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A FunctionConfiguration as the Lambda-compatible API returns it.
Json Configuration() {
  return Json::parse(R"({
    "FunctionName": "echo",
    "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:echo",
    "Runtime": "provided.al2023", "Role": "arn:aws:iam::000000000000:role/fpgahost",
    "Handler": "", "CodeSize": 1576, "Description": "", "Timeout": 3, "MemorySize": 128,
    "LastModified": "2026-11-28T10:52:40.784+0000",
    "CodeSha256": "V1Ib3l4NpvD2dbs4t2eNJ9TZa09Yko9lvq7jcRrzZIU=", "Version": "$LATEST",
    "Environment": {"Variables": {"GREETING": "hello", "MODE": "a=b"}},
    "State": "Active", "LastUpdateStatus": "Successful", "PackageType": "Zip"})");
}

Json Invocation(std::string id, std::string start, std::string state, Json duration, Json init,
                std::string log) {
  return {{"request_id", id},
          {"function", "echo"},
          {"version", "$LATEST"},
          {"tenant", "demo"},
          {"slot", "slot-1"},
          {"start", start},
          {"state", state},
          {"error_type", state == "failed" ? Json("EchoError") : Json(nullptr)},
          {"invocation_type", "RequestResponse"},
          {"attempt", 1},
          {"init_ms", init},
          {"duration_ms", duration},
          {"queued_ms", 0.05},
          {"started_at", "2026-11-28T10:52:4" + std::to_string(id.size() % 10) + "Z"},
          {"finished_at", "2026-11-28T10:52:49Z"},
          {"memory_mib", 128},
          {"log", log}};
}

TEST(CreateFunctionBodyTest, IsLambdaCreateFunctionWithTheZipInBase64) {
  CreateFunctionArgs args;
  args.name = "echo";
  args.zip = std::string("PK\x03\x04\0\xff", 6);
  args.memory_mib = 256;
  args.timeout_seconds = 10;
  args.env = {"GREETING=hello", "EMPTY=", "EQ=a=b"};
  args.description = "echoes";
  StatusOr<Json> body = CreateFunctionBody(args);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ((*body)["FunctionName"], "echo");
  EXPECT_EQ((*body)["Runtime"], "provided.al2023");
  EXPECT_EQ((*body)["Role"], kPlaceholderRole);
  EXPECT_EQ((*body)["PackageType"], "Zip");
  EXPECT_EQ(Base64Decode((*body)["Code"]["ZipFile"].get<std::string>()), args.zip);
  EXPECT_EQ((*body)["MemorySize"], 256);
  EXPECT_EQ((*body)["Timeout"], 10);
  EXPECT_EQ((*body)["Description"], "echoes");
  EXPECT_EQ((*body)["Environment"]["Variables"],
            Json({{"GREETING", "hello"}, {"EMPTY", ""}, {"EQ", "a=b"}}));
  EXPECT_FALSE(body->contains("Handler"));
}

TEST(CreateFunctionBodyTest, LeavesOutWhatWasNotGiven) {
  CreateFunctionArgs args;
  args.name = "f";
  args.zip = "zip";
  StatusOr<Json> body = CreateFunctionBody(args);
  ASSERT_TRUE(body.ok());
  for (const char* key : {"MemorySize", "Timeout", "Description", "Environment", "Handler"}) {
    EXPECT_FALSE(body->contains(key)) << key;
  }
}

TEST(CreateFunctionBodyTest, RefusesBadEnvAssignments) {
  for (std::vector<std::string> env :
       std::vector<std::vector<std::string>>{{"NOEQUALS"}, {"=value"}, {"A=1", "A=2"}}) {
    CreateFunctionArgs args;
    args.name = "f";
    args.env = env;
    StatusOr<Json> body = CreateFunctionBody(args);
    ASSERT_FALSE(body.ok()) << env.back();
    EXPECT_EQ(body.status().reason(), "USAGE");
    EXPECT_THAT(std::string(body.status().message()), HasSubstr("--env"));
  }
}

TEST(InvocationsTargetTest, EncodesTheQuery) {
  EXPECT_EQ(InvocationsTarget("", 0, false, ""), "/v1/invocations");
  EXPECT_EQ(InvocationsTarget("echo", 20, false, ""), "/v1/invocations?function=echo&limit=20");
  EXPECT_EQ(InvocationsTarget("echo", 0, true, "a b/c&d"),
            "/v1/invocations?function=echo&logs=true&request_id=a%20b%2Fc%26d");
}

TEST(LambdaApiErrorTest, NamesTheExceptionFromTheHeader) {
  Status s = LambdaApiError(
      404, {{"x-amzn-errortype", "ResourceNotFoundException"}},
      R"({"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:1:function:x"})");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.reason(), "ResourceNotFoundException");
  EXPECT_EQ(s.message(), "Function not found: arn:aws:lambda:us-east-1:1:function:x");
}

TEST(LambdaApiErrorTest, ReadsAwsVariants) {
  // The header may carry a URL after a colon; some errors say "Message"; throttles a Reason.
  Status s = LambdaApiError(
      429, {{"x-amzn-errortype", "TooManyRequestsException:http://internal.amazon.com/coral/"}},
      R"({"Message":"Rate exceeded","Reason":"ReservedFunctionConcurrent)"
      R"(InvocationLimitExceeded","Type":"User"})");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.reason(), "TooManyRequestsException");
  EXPECT_EQ(s.message(), "Rate exceeded (ReservedFunctionConcurrentInvocationLimitExceeded)");

  Status typed = LambdaApiError(400, {},
                                R"({"__type":"InvalidRequestContentException",)"
                                R"("message":"Could not parse request body"})");
  EXPECT_EQ(typed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(typed.reason(), "InvalidRequestContentException");
}

TEST(LambdaApiErrorTest, UnderstandsFpgahostsEnvelopeAndBareStatuses) {
  Status auth = LambdaApiError(
      401, {}, R"({"error":{"code":"UNAUTHENTICATED","message":"bad token","request_id":"r"}})");
  EXPECT_EQ(auth.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.reason(), "UNAUTHENTICATED");
  EXPECT_EQ(auth.message(), "bad token");

  Status bare = LambdaApiError(502, {}, "");
  EXPECT_EQ(bare.code(), StatusCode::kInternal);
  EXPECT_EQ(bare.reason(), "HTTP 502");
  EXPECT_THAT(std::string(bare.message()), HasSubstr("502"));

  Status text = LambdaApiError(503, {}, "upstream down\nsecond line");
  EXPECT_EQ(text.code(), StatusCode::kUnavailable);
  EXPECT_EQ(text.message(), "upstream down");
}

TEST(FunctionErrorStatusTest, ReadsLambdasErrorShape) {
  Status s = FunctionErrorStatus(
      "Unhandled", R"({"errorMessage":"asked to fail","errorType":"EchoError","stackTrace":[]})");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.reason(), "function error (Unhandled)");
  EXPECT_EQ(s.message(), "EchoError: asked to fail");
  EXPECT_EQ(s.ToString(), "function error (Unhandled): EchoError: asked to fail");
}

TEST(FunctionErrorStatusTest, FallsBackToWhatThereIs) {
  EXPECT_EQ(FunctionErrorStatus("Unhandled", R"({"errorMessage":"line 1\nline 2"})").message(),
            "line 1");
  EXPECT_EQ(FunctionErrorStatus("Handled", R"({"errorType":"Runtime.ExitError"})").message(),
            "Runtime.ExitError");
  EXPECT_EQ(FunctionErrorStatus("Handled", R"({"errorType":"X"})").reason(),
            "function error (Handled)");
  EXPECT_EQ(FunctionErrorStatus("Unhandled", "Traceback (most recent call last):\n  ...").message(),
            "Traceback (most recent call last):");
  EXPECT_EQ(FunctionErrorStatus("Unhandled", "").message(), "(no payload)");
  EXPECT_EQ(FunctionErrorStatus("Unhandled", std::string(500, 'x')).message().size(), 203u);
}

TEST(FormatFunctionConfigurationTest, ShowsWhatCreateAndDescribePromise) {
  std::string text =
      FormatFunctionConfiguration(Configuration(), Json{{"ReservedConcurrentExecutions", 5}});
  EXPECT_THAT(text, StartsWith("echo\n"));
  EXPECT_THAT(text, HasSubstr("  code sha256     V1Ib3l4NpvD2dbs4t2eNJ9TZa09Yko9lvq7jcRrzZIU=\n"));
  EXPECT_THAT(text, HasSubstr("  memory          128 MiB\n"));
  EXPECT_THAT(text, HasSubstr("  timeout         3 s\n"));
  EXPECT_THAT(text, HasSubstr("  last modified   2026-11-28T10:52:40.784+0000\n"));
  EXPECT_THAT(text, HasSubstr("  handler         -\n"));
  EXPECT_THAT(text, HasSubstr("  concurrency     5 reserved\n"));
  EXPECT_THAT(text, HasSubstr("  environment     GREETING=hello\n                  MODE=a=b\n"));
}

TEST(FormatFunctionConfigurationTest, ToleratesAnEmptyAnswer) {
  std::string text = FormatFunctionConfiguration(Json(), Json());
  EXPECT_THAT(text, StartsWith("-\n"));
  EXPECT_THAT(text, HasSubstr("  memory          - MiB\n"));
  EXPECT_THAT(text, HasSubstr("  environment     -\n"));
  EXPECT_THAT(text, Not(HasSubstr("concurrency")));
}

TEST(FormatFunctionListTest, OneRowPerFunction) {
  Json other = Configuration();
  other["FunctionName"] = "resize-images";
  other["MemorySize"] = 1024;
  other["Description"] = "thumbnails";
  std::string text = FormatFunctionList(Json::array({Configuration(), other}));
  EXPECT_EQ(text,
            "NAME           RUNTIME          MEMORY_MIB  TIMEOUT_S  CODE_SIZE  LAST_MODIFIED      "
            "           DESCRIPTION\n"
            "echo           provided.al2023  128         3          1576       "
            "2026-11-28T10:52:40.784+0000  -\n"
            "resize-images  provided.al2023  1024        3          1576       "
            "2026-11-28T10:52:40.784+0000  thumbnails\n");
  EXPECT_THAT(FormatFunctionList(Json()), StartsWith("NAME "));
}

TEST(FormatMsTest, KeepsMicrosecondsVisibleForWarmInvocations) {
  EXPECT_EQ(FormatMs(0.184), "0.184");
  EXPECT_EQ(FormatMs(12.34), "12.3");
  EXPECT_EQ(FormatMs(1520.4), "1520");
  EXPECT_EQ(FormatMs(7), "7.000");
  EXPECT_EQ(FormatMs(nullptr), "-");
  EXPECT_EQ(FormatMs("12"), "-");
}

TEST(FormatInvocationsTest, TableInTheOrderGiven) {
  Json list = Json::array({Invocation("req-2", "warm", "failed", 0.21, nullptr, ""),
                           Invocation("req-1", "cold", "succeeded", 3.5, 41.0, "")});
  list[0]["invocation_type"] = "Event";
  list[0]["init_ms"] = 0;  // warm: no init, however the daemon says it
  std::string text = FormatInvocations(list);
  std::vector<std::string> lines;
  for (size_t start = 0, nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(text.substr(start, nl - start));
  }
  ASSERT_EQ(lines.size(), 3u) << text;
  EXPECT_THAT(lines[0], StartsWith("STARTED  "));
  EXPECT_THAT(lines[0], HasSubstr("REQUEST_ID  FUNCTION  TYPE   SLOT    START  STATE"));
  EXPECT_THAT(lines[1], HasSubstr("req-2       echo      async  slot-1  warm   failed     0.210"));
  EXPECT_THAT(lines[1], HasSubstr("-        0.050      EchoError"));
  EXPECT_THAT(lines[2], HasSubstr("req-1       echo      sync   slot-1  cold   succeeded  3.500"));
  EXPECT_THAT(lines[2], HasSubstr("41.0"));
}

TEST(FormatInvocationsTest, FpgaCallsAddTheCardAndTheLoad) {
  Json list = Json::array({Invocation("req-2", "warm", "succeeded", 0.9, nullptr, ""),
                           Invocation("req-1", "cold", "succeeded", 2.0, 1460.0, "")});
  list[0]["fpga_card"] = "card-0000-10-00-0";
  list[0]["image_load_ms"] = 0;
  list[1]["fpga_card"] = "card-0000-10-00-0";
  list[1]["image_load_ms"] = 2006.0;
  std::string text = FormatInvocations(list);
  EXPECT_THAT(text, HasSubstr("QUEUED_MS  CARD               LOAD_MS  ERROR"));
  EXPECT_THAT(text, HasSubstr("card-0000-10-00-0  -        -"));
  EXPECT_THAT(text, HasSubstr("card-0000-10-00-0  2006     -"));
  // Without FPGA calls, no such columns.
  EXPECT_THAT(
      FormatInvocations(Json::array({Invocation("r", "warm", "succeeded", 1, nullptr, "")})),
      Not(HasSubstr("CARD")));
}

TEST(FormatFunctionSlotsTest, ShowsStateAndTheCardOfFpgaSlots) {
  Json slots = Json::array(
      {{{"name", "fn-1-vadd"},
        {"function", "vadd"},
        {"state", "idle"},
        {"invocations", 3},
        {"prewarmed", true},
        {"init_ms", 1460.2},
        {"fpga", {{"card", "card-0000-10-00-0"}, {"loaded_for_slot", true}, {"load_ms", 2006}}}},
       {{"name", "fn-2-echo"},
        {"function", "echo"},
        {"state", "initialising"},
        {"invocations", 0},
        {"prewarmed", false}}});
  std::string text = FormatFunctionSlots(slots);
  EXPECT_THAT(
      text, HasSubstr("NAME       FUNCTION  STATE         INVOCATIONS  PREWARMED  INIT_MS  CARD"));
  EXPECT_THAT(text, HasSubstr("fn-1-vadd  vadd      idle          3            true       1460     "
                              "card-0000-10-00-0  loaded in 2006 ms"));
  EXPECT_THAT(text,
              HasSubstr("fn-2-echo  echo      initialising  0            false      -        -"));
}

TEST(FormatInvocationLogsTest, OldestFirstEachHeaderThenItsLog) {
  Json list = Json::array(
      {Invocation("req-2", "warm", "failed", 0.21, nullptr, "echo-sh: request req-2\n"),
       Invocation("req-1", "cold", "succeeded", 3.5, 41.0, "starting\necho-sh: request req-1")});
  list[0]["attempt"] = 2;
  list[0]["init_ms"] = 0;
  EXPECT_EQ(FormatInvocationLogs(list),
            "2026-11-28T10:52:45Z  req-1  cold  succeeded  3.500 ms, init 41.0 ms\n"
            "starting\n"
            "echo-sh: request req-1\n"
            "2026-11-28T10:52:45Z  req-2  warm  failed EchoError  0.210 ms, attempt 2\n"
            "echo-sh: request req-2\n");
  EXPECT_EQ(FormatInvocationLogs(Json::array()), "");
  EXPECT_EQ(FormatInvocationLogs(Json::array({Json::object()})), "-  -  -  -  - ms\n");
}

}  // namespace
}  // namespace fpgahost::cli
