// The sample functions (examples/functions), run for real: each zip made at build time goes
// through the bundle checker and is extracted as fpgahostd would, then its `bootstrap` runs as
// a plain child process (empty environment but AWS_LAMBDA_RUNTIME_API) against fpgahostd's
// Runtime API server on a loopback port, and answers invocations dispatched to it.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/files.h"
#include "host/functions/bundle.h"
#include "host/functions/runtime_api.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using ::fpgahost::testing::BackgroundProcess;
using ::fpgahost::testing::TempDir;
using functions::FunctionError;
using functions::Invocation;
using functions::InvocationResponse;
using functions::InvocationResult;
using functions::RuntimeApi;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

fs::path FunctionsDir() { return FPGAHOST_FUNCTIONS_DIR; }

int ListenLoopback() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 16) != 0) {
    ADD_FAILURE() << "cannot listen on loopback: " << std::strerror(errno);
  }
  return fd;
}

// ~100 KB of JSON mixing ASCII, escapes, raw newlines between members and multi-byte UTF-8.
std::string LargeEvent() {
  std::string out = "{\"items\":[";
  for (int i = 0; out.size() < 100'000; ++i) {
    if (i > 0) out += ",\n";
    out += "{\"i\":" + std::to_string(i) +
           ",\"text\":\"caf\xC3\xA9 \\\"quoted\\\" \xE2\x98\x83 \xF0\x9F\x98\x80 tab\\tend\"}";
  }
  out += "]}";
  return out;
}

class FunctionExampleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // Through the same checker and extraction as `function create`: a zip whose bootstrap lost
    // its execute bit fails here.
    fs::path zip_path = FunctionsDir() / (GetParam() + ".zip");
    StatusOr<std::string> zip = ReadFile(zip_path);
    ASSERT_TRUE(zip.ok()) << zip.status().ToString();
    StatusOr<functions::BundleInfo> info =
        functions::ExtractBundle(*zip, tmp_ / "task", functions::BundleLimits{});
    ASSERT_TRUE(info.ok()) << zip_path << ": " << info.status().ToString();
    EXPECT_EQ(info->files, 1u) << "the zip should hold only the bootstrap";

    functions::RuntimeApiOptions options;
    options.io_threads = &io_;
    StatusOr<std::unique_ptr<RuntimeApi>> api = RuntimeApi::Adopt(ListenLoopback(), options);
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
    runtime_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"/usr/bin/env", "-i",
                                 "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" + std::to_string(api_->port()),
                                 (tmp_ / "task" / "bootstrap").string()},
        tmp_ / "stderr");
  }

  void TearDown() override {
    if (runtime_ != nullptr) {
      runtime_->Signal(SIGKILL);
      runtime_->Wait();
    }
  }

  std::string Stderr() { return ReadFile(tmp_ / "stderr").value_or(""); }

  // Dispatches one invocation and waits for its result.
  InvocationResult Invoke(const std::string& request_id, const std::string& payload) {
    Invocation inv;
    inv.request_id = request_id;
    inv.payload = payload;
    inv.deadline = std::chrono::system_clock::now() + 30s;
    inv.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:" + GetParam();
    auto promise = std::make_shared<std::promise<InvocationResult>>();
    std::future<InvocationResult> result = promise->get_future();
    Status s = api_->Dispatch(inv, [promise](InvocationResult r) { promise->set_value(r); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return functions::RuntimeFailure{"dispatch", s.ToString()};
    if (result.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << request_id << ": no answer from the runtime; stderr: " << Stderr();
      (void)api_->Fail(request_id, {"test", "no answer"});
    }
    return result.get();
  }

  // The line the runtime logged for `request_id`.
  std::string LogLine(const std::string& request_id) {
    return runtime_->WaitForLine("request " + request_id, 10s);
  }

  TempDir tmp_;
  http::IoThreads io_{1};
  std::unique_ptr<RuntimeApi> api_;
  std::unique_ptr<BackgroundProcess> runtime_;
};

TEST_P(FunctionExampleTest, EchoesEventsByteForByteAndLogsEachInvocation) {
  const std::vector<std::pair<std::string, std::string>> events = {
      {"8476a536-e9f4-11e8-9739-2dfe598c3fcd", R"({"hello":"world"})"},
      {"req-quotes", "{\"say\": \"\\\"hi\\\" \\\\ \\u0000\",\n \"lines\": \"a\\nb\"}\r\n\n"},
      {"req-utf8", "{\"text\":\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xC3\xA9 \xF0\x9F\x98\x80\"}"},
      {"req-empty", ""},
      {"req-not-failing", R"({"fail": false, "note": "fail is false"})"},
      {"req-large", LargeEvent()},
      {"req-after-large", "[1,2,3]"},
  };
  for (const auto& [id, event] : events) {
    SCOPED_TRACE(id);
    InvocationResult r = Invoke(id, event);
    const auto* response = std::get_if<InvocationResponse>(&r);
    ASSERT_NE(response, nullptr) << "stderr: " << Stderr();
    EXPECT_EQ(response->payload.size(), event.size());
    EXPECT_TRUE(response->payload == event) << "the echoed payload differs";
    EXPECT_THAT(LogLine(id),
                HasSubstr(GetParam() + ": request " + id + " (" + std::to_string(event.size())));
  }
}

TEST_P(FunctionExampleTest, FailKeyBecomesAFunctionErrorAndTheRuntimeCarriesOn) {
  for (const std::string& event :
       {std::string(R"({"fail":true})"), std::string("{\"n\": 1, \"fail\" :\n true}")}) {
    std::string id = "req-fail-" + std::to_string(event.size());
    InvocationResult r = Invoke(id, event);
    const auto* error = std::get_if<FunctionError>(&r);
    ASSERT_NE(error, nullptr) << event << "; stderr: " << Stderr();
    EXPECT_EQ(error->error_type, "EchoError");
    EXPECT_EQ(error->body, R"({"errorMessage":"asked to fail","errorType":"EchoError"})");
    EXPECT_THAT(LogLine(id), HasSubstr("request " + id));
  }
  InvocationResult r = Invoke("req-after-error", R"({"ok":1})");
  const auto* response = std::get_if<InvocationResponse>(&r);
  ASSERT_NE(response, nullptr) << "stderr: " << Stderr();
  EXPECT_EQ(response->payload, R"({"ok":1})");
}

TEST_P(FunctionExampleTest, EventWithANulByteIsEchoedByCppAndRefusedByBash) {
  std::string event("{\"bytes\":\"a\0b\"}", 15);
  InvocationResult r = Invoke("req-nul", event);
  if (GetParam() == "echo-cpp") {
    const auto* response = std::get_if<InvocationResponse>(&r);
    ASSERT_NE(response, nullptr) << "stderr: " << Stderr();
    EXPECT_TRUE(response->payload == event);
  } else {
    // bash strings cannot hold a NUL: the runtime says so instead of echoing a changed event.
    const auto* error = std::get_if<FunctionError>(&r);
    ASSERT_NE(error, nullptr) << "stderr: " << Stderr();
    EXPECT_EQ(error->error_type, "EchoError");
    EXPECT_THAT(error->body, HasSubstr("NUL"));
  }
  InvocationResult next = Invoke("req-after-nul", "{}");
  EXPECT_TRUE(std::holds_alternative<InvocationResponse>(next)) << "stderr: " << Stderr();
}

TEST_P(FunctionExampleTest, ExitsWhenTheRuntimeApiGoesAway) {
  InvocationResult r = Invoke("req-1", "{}");
  ASSERT_TRUE(std::holds_alternative<InvocationResponse>(r)) << "stderr: " << Stderr();
  ASSERT_THAT(LogLine("req-1"), HasSubstr("req-1"));
  api_->Close();
  // Reads stdout to its end: the runtime closed it by exiting.
  EXPECT_EQ(runtime_->WaitForLine("\x01never printed", 10s), "");
  EXPECT_EQ(runtime_->Wait(), 1) << "stderr: " << Stderr();
  runtime_.reset();
}

INSTANTIATE_TEST_SUITE_P(Functions, FunctionExampleTest,
                         ::testing::Values(std::string("echo-sh"), std::string("echo-cpp")),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param == "echo-sh" ? std::string("EchoSh")
                                                           : std::string("EchoCpp");
                         });

}  // namespace
}  // namespace fpgahost
