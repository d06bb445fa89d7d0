#include "host/functions/runtime_api.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "common/json.h"
#include "host/http/http_client.h"
#include "tests/support/raw_http.h"
#include "tests/support/runtime_api_support.h"

namespace fpgahost::functions {
namespace {

using namespace std::chrono_literals;
using http::ClientRequest;
using http::ClientResponse;
using http::Endpoint;
using testing::BodyJson;
using testing::Eventually;
using testing::ListenLoopback;
using testing::MakeInvocation;
using testing::Results;

constexpr char kNext[] = "/2018-06-01/runtime/invocation/next";

size_t CountEntries(const char* dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

long RssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

class RuntimeApiTest : public ::testing::Test {
 protected:
  RuntimeApiOptions OnSharedThreads() {
    RuntimeApiOptions options;
    options.io_threads = &io_;
    return options;
  }
  void Start(RuntimeApiOptions options = {}) {
    options.io_threads = &io_;
    auto api = RuntimeApi::Adopt(ListenLoopback(), std::move(options));
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
  }

  StatusOr<ClientResponse> Next(std::chrono::milliseconds timeout = 10s) {
    ClientRequest req;
    req.target = kNext;
    req.timeout = timeout;
    return http::Send(Endpoint{"127.0.0.1", api_->port()}, req);
  }
  std::future<StatusOr<ClientResponse>> NextAsync() {
    return std::async(std::launch::async, [this] { return Next(); });
  }

  StatusOr<ClientResponse> Post(const std::string& target, std::string body,
                                std::map<std::string, std::string> headers = {}) {
    ClientRequest req;
    req.method = "POST";
    req.target = target;
    req.body = std::move(body);
    req.headers = std::move(headers);
    return http::Send(Endpoint{"127.0.0.1", api_->port()}, req);
  }
  StatusOr<ClientResponse> Respond(const std::string& id, std::string body) {
    return Post("/2018-06-01/runtime/invocation/" + id + "/response", std::move(body));
  }

  // Dispatches `inv` and has the "runtime" take it with `next`.
  void DispatchAndTake(Invocation inv) {
    std::string id = inv.request_id;
    ASSERT_TRUE(api_->Dispatch(std::move(inv), results_.Callback()).ok());
    auto next = Next();
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    ASSERT_EQ(next->status, 200u);
    ASSERT_EQ(next->headers["lambda-runtime-aws-request-id"], id);
  }

  // Destroyed in reverse: the slot first (its Close reports to results_), the threads last.
  http::IoThreads io_{2};
  Results results_;
  std::unique_ptr<RuntimeApi> api_;
};

TEST_F(RuntimeApiTest, NextWaitsForDispatchThenCarriesPayloadAndHeaders) {
  Start();
  auto next = NextAsync();
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));
  EXPECT_EQ(next.wait_for(0s), std::future_status::timeout);

  Invocation inv = MakeInvocation("8476a536-e9f4-11e8-9739-2dfe598c3fcd", "{\"hello\":\"world\"}");
  inv.client_context = R"({"custom":{"k":"v"}})";
  ASSERT_TRUE(api_->Dispatch(inv, results_.Callback()).ok());
  EXPECT_FALSE(api_->Ready());

  auto r = next.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "{\"hello\":\"world\"}");
  EXPECT_EQ(r->headers["lambda-runtime-aws-request-id"], inv.request_id);
  EXPECT_EQ(r->headers["lambda-runtime-deadline-ms"], "1900000000123");
  EXPECT_EQ(r->headers["lambda-runtime-invoked-function-arn"], inv.function_arn);
  EXPECT_EQ(r->headers["lambda-runtime-trace-id"], inv.trace_id);
  EXPECT_EQ(r->headers["lambda-runtime-client-context"], inv.client_context);
  EXPECT_EQ(r->headers.count("lambda-runtime-cognito-identity"), 0u);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  EXPECT_EQ(results_.count(), 0u);
}

TEST_F(RuntimeApiTest, BinaryResponseReachesDoneByteExact) {
  Start();
  std::string payload;
  for (int i = 0; i < 3 * 256; ++i) payload.push_back(static_cast<char>(i % 256));
  payload += "\r\n\r\nHTTP/1.1 200 OK\r\n";
  // Dispatched before the runtime asks: a cold start; `next` then answers at once.
  DispatchAndTake(MakeInvocation("req-1"));
  auto r = Respond("req-1", payload);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 202u);
  EXPECT_EQ(BodyJson(*r), Json({{"status", "OK"}}));

  auto result = results_.Wait();
  ASSERT_TRUE(result);
  auto* response = std::get_if<InvocationResponse>(&*result);
  ASSERT_NE(response, nullptr);
  EXPECT_EQ(response->payload, payload);
}

TEST_F(RuntimeApiTest, ResponseOfExactlyTheLimitIsAccepted) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  std::string payload(kMaxPayloadBytes, 'a');
  payload.front() = '<';
  payload.back() = '>';
  auto r = Respond("req-1", payload);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
  EXPECT_EQ(std::get<InvocationResponse>(*result).payload, payload);
}

TEST_F(RuntimeApiTest, ErrorReachesDoneAsFunctionError) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  std::string body =
      R"({"errorMessage":"boom","errorType":"ValueError","stackTrace":["a.py:1","b.py:2"]})";
  auto r = Post("/2018-06-01/runtime/invocation/req-1/error", body,
                {{"Lambda-Runtime-Function-Error-Type", "Runtime.HandlerError"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  EXPECT_EQ(BodyJson(*r), Json({{"status", "OK"}}));
  auto result = results_.Wait();
  ASSERT_TRUE(result);
  auto* error = std::get_if<FunctionError>(&*result);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->error_type, "Runtime.HandlerError");
  EXPECT_EQ(error->body, body);
}

TEST_F(RuntimeApiTest, ErrorTypeFallsBackToTheBodyAndNonJsonBodiesPassAsLambdaDoes) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  ASSERT_TRUE(Post("/2018-06-01/runtime/invocation/req-1/error",
                   R"({"errorMessage":"boom","errorType":"KeyError"})")
                  .ok());
  auto first = results_.Wait(1);
  ASSERT_TRUE(first && std::holds_alternative<FunctionError>(*first));
  EXPECT_EQ(std::get<FunctionError>(*first).error_type, "KeyError");

  DispatchAndTake(MakeInvocation("req-2"));
  auto r = Post("/2018-06-01/runtime/invocation/req-2/error", "not json {");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  auto second = results_.Wait(2);
  ASSERT_TRUE(second && std::holds_alternative<FunctionError>(*second));
  EXPECT_EQ(std::get<FunctionError>(*second).error_type, "");
  EXPECT_EQ(std::get<FunctionError>(*second).body, "not json {");

  // The error-cause media type is reduced to Lambda's error shape; unparsable, it is replaced.
  DispatchAndTake(MakeInvocation("req-3"));
  ASSERT_TRUE(Post("/2018-06-01/runtime/invocation/req-3/error",
                   R"({"errorMessage":"m","errorType":"T","errorCause":{"paths":[]}})",
                   {{"Content-Type", "application/vnd.aws.lambda.error.cause+json"}})
                  .ok());
  auto third = results_.Wait(3);
  ASSERT_TRUE(third && std::holds_alternative<FunctionError>(*third));
  EXPECT_EQ(Json::parse(std::get<FunctionError>(*third).body),
            Json({{"errorMessage", "m"}, {"errorType", "T"}}));

  DispatchAndTake(MakeInvocation("req-4"));
  ASSERT_TRUE(Post("/2018-06-01/runtime/invocation/req-4/error", "{",
                   {{"Content-Type", "application/vnd.aws.lambda.error.cause+json"}})
                  .ok());
  auto fourth = results_.Wait(4);
  ASSERT_TRUE(fourth && std::holds_alternative<FunctionError>(*fourth));
  EXPECT_EQ(std::get<FunctionError>(*fourth).body, "\"Invalid error body\"");
}

TEST_F(RuntimeApiTest, InitErrorIsReportedAndFailsTheWaitingInvocation) {
  std::promise<InitError> reported;
  RuntimeApiOptions options;
  options.on_init_error = [&](const InitError& e) { reported.set_value(e); };
  Start(std::move(options));
  // A cold slot: the invocation waits for the runtime, which fails to start.
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  std::string body =
      R"({"errorMessage":"cannot import handler","errorType":"Runtime.ImportModuleError"})";
  auto r = Post("/2018-06-01/runtime/init/error", body,
                {{"Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  EXPECT_EQ(BodyJson(*r), Json({{"status", "OK"}}));

  auto future = reported.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  InitError e = future.get();
  EXPECT_EQ(e.error_type, "Runtime.ImportModuleError");
  EXPECT_EQ(e.body, body);
  auto result = results_.Wait();
  ASSERT_TRUE(result);
  auto* init = std::get_if<InitError>(&*result);
  ASSERT_NE(init, nullptr);
  EXPECT_EQ(init->body, body);

  Status s = api_->Dispatch(MakeInvocation("req-2"), results_.Callback());
  EXPECT_EQ(s.reason(), "RUNTIME_INIT_FAILED");
  auto next = Next();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->status, 403u);
  EXPECT_EQ(BodyJson(*next)["errorType"], "InvalidStateTransition");
}

TEST_F(RuntimeApiTest, InitErrorAfterTheFirstNextIsRefused) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  auto r = Post("/2018-06-01/runtime/init/error", "{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403u);
  EXPECT_EQ(BodyJson(*r)["errorType"], "InvalidStateTransition");
  EXPECT_EQ(BodyJson(*r)["errorMessage"],
            "State transition from Ready to InitError failed for runtime. Error: State "
            "transition is not allowed");
}

TEST_F(RuntimeApiTest, WrongRequestIdIsRefusedAndTheInvocationGoesOn) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  for (const char* path : {"/2018-06-01/runtime/invocation/req-2/response",
                           "/2018-06-01/runtime/invocation/req-2/error"}) {
    auto r = Post(path, "{}");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400u) << path;
    EXPECT_EQ(BodyJson(*r),
              Json({{"errorMessage", "Invalid request ID"}, {"errorType", "InvalidRequestID"}}));
  }
  EXPECT_EQ(results_.count(), 0u);
  auto ok = Respond("req-1", "fine");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 202u);
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
}

TEST_F(RuntimeApiTest, SecondAnswerToAnInvocationIsRefused) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  ASSERT_EQ(Respond("req-1", "first")->status, 202u);
  auto again = Respond("req-1", "second");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 403u);
  EXPECT_EQ(BodyJson(*again)["errorType"], "InvalidStateTransition");
  EXPECT_EQ(BodyJson(*again)["errorMessage"],
            "State transition from RuntimeResponseSentState to InvocationResponse failed for "
            "runtime. Error: State transition is not allowed");
  auto error = Post("/2018-06-01/runtime/invocation/req-1/error", "{}");
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->status, 403u);

  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
  EXPECT_EQ(std::get<InvocationResponse>(*result).payload, "first");
  EXPECT_EQ(results_.count(), 1u);
}

TEST_F(RuntimeApiTest, ResponseBeforeAnyInvocationIsRefused) {
  Start();
  auto r = Respond("req-1", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403u);
  EXPECT_EQ(BodyJson(*r)["errorType"], "InvalidStateTransition");
}

TEST_F(RuntimeApiTest, OversizedResponseIs413AndFailsTheInvocation) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  auto r = Respond("req-1", std::string(kMaxPayloadBytes + 1, 'x'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413u);
  EXPECT_EQ(BodyJson(*r),
            Json({{"errorMessage", "Exceeded maximum allowed payload size (6291556 bytes)."},
                  {"errorType", "RequestEntityTooLarge"}}));
  auto result = results_.Wait();
  ASSERT_TRUE(result);
  auto* error = std::get_if<FunctionError>(&*result);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->error_type, "Function.ResponseSizeTooLarge");
  EXPECT_EQ(BodyJson(ClientResponse{0, {}, error->body})["errorMessage"],
            "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
            "(6291556 bytes).");
  // The invocation is over; the runtime goes on to the next one.
  EXPECT_EQ(Respond("req-1", "late")->status, 403u);
  DispatchAndTake(MakeInvocation("req-2"));
  EXPECT_EQ(Respond("req-2", "small")->status, 202u);
  ASSERT_TRUE(results_.Wait(2));
}

TEST_F(RuntimeApiTest, OversizedChunkedResponseIs413AndFailsTheInvocation) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  testing::RawConnection c(api_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.Send("POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  std::string chunk(1 << 20, 'y');
  std::string framed = fmt::format("{:x}\r\n{}\r\n", chunk.size(), chunk);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(c.Send(framed));
  ASSERT_TRUE(c.Send("0\r\n\r\n"));
  std::string answer = c.Read(10s, "}");
  EXPECT_NE(answer.find("HTTP/1.1 413"), std::string::npos) << answer.substr(0, 200);
  EXPECT_NE(answer.find("RequestEntityTooLarge"), std::string::npos);
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<FunctionError>(*result));
  EXPECT_EQ(std::get<FunctionError>(*result).error_type, "Function.ResponseSizeTooLarge");
}

TEST_F(RuntimeApiTest, WarmRuntimeTakesOneInvocationAfterAnother) {
  Start();
  for (int i = 0; i < 5; ++i) {
    auto next = NextAsync();
    ASSERT_TRUE(Eventually([&] { return api_->Ready(); })) << "invocation " << i;
    std::string id = fmt::format("req-{}", i);
    ASSERT_TRUE(
        api_->Dispatch(MakeInvocation(id, fmt::format("{{\"n\":{}}}", i)), results_.Callback())
            .ok());
    auto event = next.get();
    ASSERT_TRUE(event.ok());
    ASSERT_EQ(event->headers["lambda-runtime-aws-request-id"], id);
    ASSERT_EQ(Respond(id, "echo:" + event->body)->status, 202u);
    auto result = results_.Wait(static_cast<size_t>(i) + 1);
    ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
    EXPECT_EQ(std::get<InvocationResponse>(*result).payload, fmt::format("echo:{{\"n\":{}}}", i));
  }
}

TEST_F(RuntimeApiTest, DispatchWhileBusyIsRefused) {
  Start();
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  Status pending = api_->Dispatch(MakeInvocation("req-2"), results_.Callback());
  EXPECT_EQ(pending.code(), StatusCode::kConflict);
  EXPECT_EQ(pending.reason(), "SLOT_BUSY");
  ASSERT_EQ(Next()->headers["lambda-runtime-aws-request-id"], "req-1");
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-3"), results_.Callback()).reason(), "SLOT_BUSY");
  ASSERT_EQ(Respond("req-1", "ok")->status, 202u);
  ASSERT_TRUE(results_.Wait());
  EXPECT_TRUE(api_->Dispatch(MakeInvocation("req-4"), results_.Callback()).ok());
  EXPECT_EQ(results_.count(), 1u);
}

TEST_F(RuntimeApiTest, DispatchRefusesWhatCannotGoOnTheWire) {
  Start();
  EXPECT_EQ(api_->Dispatch(MakeInvocation(""), results_.Callback()).reason(), "INVALID_REQUEST_ID");
  EXPECT_EQ(api_->Dispatch(MakeInvocation("a/b"), results_.Callback()).reason(),
            "INVALID_REQUEST_ID");
  Invocation inv = MakeInvocation("req-1");
  inv.trace_id = "Root=1\r\nX-Injected: 1";
  EXPECT_EQ(api_->Dispatch(inv, results_.Callback()).reason(), "INVALID_HEADER_VALUE");
}

TEST_F(RuntimeApiTest, NextAgainWithoutAnsweringGetsTheSameInvocation) {
  Start();
  DispatchAndTake(MakeInvocation("req-1", "payload"));
  auto again = Next();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->headers["lambda-runtime-aws-request-id"], "req-1");
  EXPECT_EQ(again->body, "payload");
  EXPECT_EQ(Respond("req-1", "ok")->status, 202u);
}

TEST_F(RuntimeApiTest, FailEndsTheInvocationAndRefusesALateAnswer) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  EXPECT_EQ(api_->Fail("req-9", {"Sandbox.Timedout", "x"}).code(), StatusCode::kNotFound);
  ASSERT_TRUE(
      api_->Fail("req-1", {std::string(kErrorTypeTimeout), "Task timed out after 3.00 seconds"})
          .ok());
  auto result = results_.Wait();
  ASSERT_TRUE(result);
  auto* failure = std::get_if<RuntimeFailure>(&*result);
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->error_type, "Sandbox.Timedout");
  EXPECT_EQ(Respond("req-1", "late")->status, 403u);
  EXPECT_EQ(api_->Fail("req-1", {"Sandbox.Timedout", "x"}).code(), StatusCode::kNotFound);
  EXPECT_EQ(results_.count(), 1u);
}

TEST_F(RuntimeApiTest, RuntimeExitedForgetsThePendingNext) {
  Start();
  auto next = NextAsync();
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));
  api_->RuntimeExited({std::string(kErrorTypeRuntimeExit), "exit status 1"});
  EXPECT_FALSE(api_->Ready());
  EXPECT_FALSE(next.get().ok());  // its connection was closed
  // A new runtime process starts over.
  DispatchAndTake(MakeInvocation("req-1"));
  EXPECT_EQ(Respond("req-1", "ok")->status, 202u);
  ASSERT_TRUE(results_.Wait());
}

TEST_F(RuntimeApiTest, CloseCompletesAPendingNextAndFailsTheInvocation) {
  Start();
  auto next = NextAsync();
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));
  api_->Close();
  ASSERT_EQ(next.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(next.get().ok());
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).reason(), "SLOT_CLOSED");
  api_->Close();  // idempotent
}

TEST_F(RuntimeApiTest, CloseFailsTheInvocationInProgress) {
  Start();
  DispatchAndTake(MakeInvocation("req-1"));
  api_.reset();
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<RuntimeFailure>(*result));
  EXPECT_EQ(std::get<RuntimeFailure>(*result).error_type, "Sandbox.Failure");
}

TEST_F(RuntimeApiTest, AdoptRefusesASocketThatIsNotListeningAndClosesIt) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  auto api = RuntimeApi::Adopt(fd, OnSharedThreads());
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // taken and closed
}

// The idle cost of one slot's server: on shared IoThreads no thread and no fd beyond the
// adopted socket; with a thread of its own, one thread each.
TEST_F(RuntimeApiTest, HundredSlotsShareTheIoThreadsAndEachServesAnInvocation) {
  constexpr int kSlots = 100;
  std::vector<int> fds;
  for (int i = 0; i < kSlots; ++i) fds.push_back(ListenLoopback());
  // The shared io_context's reactor (epoll, eventfd and timerfd) comes with its first socket.
  ASSERT_TRUE(RuntimeApi::Adopt(ListenLoopback(), OnSharedThreads()).ok());
  size_t threads_before = CountEntries("/proc/self/task");
  size_t fds_before = CountEntries("/proc/self/fd");
  long rss_before = RssKb();
  size_t heap_before = ::mallinfo2().uordblks;

  std::vector<std::unique_ptr<RuntimeApi>> slots;
  for (int fd : fds) {
    auto api = RuntimeApi::Adopt(fd, OnSharedThreads());
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    slots.push_back(std::move(*api));
  }
  EXPECT_EQ(CountEntries("/proc/self/task"), threads_before);
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds_before);
  std::cout << "100 adopted slots on shared IoThreads: +"
            << CountEntries("/proc/self/task") - threads_before << " threads, +"
            << CountEntries("/proc/self/fd") - fds_before << " fds, heap +"
            << (::mallinfo2().uordblks - heap_before) / kSlots << " B/slot, RSS +"
            << (RssKb() - rss_before) << " KiB total\n";

  for (int i = 0; i < kSlots; ++i) {
    ASSERT_TRUE(
        slots[i]->Dispatch(MakeInvocation(fmt::format("req-{}", i)), results_.Callback()).ok());
  }
  // Ten "runtimes" at a time, each taking its slot's invocation and answering it.
  std::atomic<int> failures{0};
  std::vector<std::thread> runtimes;
  for (int t = 0; t < 10; ++t) {
    runtimes.emplace_back([&, t] {
      for (int i = t; i < kSlots; i += 10) {
        Endpoint at{"127.0.0.1", slots[i]->port()};
        ClientRequest next;
        next.target = kNext;
        auto event = http::Send(at, next);
        if (!event.ok() ||
            event->headers["lambda-runtime-aws-request-id"] != fmt::format("req-{}", i)) {
          ++failures;
          continue;
        }
        ClientRequest post;
        post.method = "POST";
        post.target = fmt::format("/2018-06-01/runtime/invocation/req-{}/response", i);
        post.body = fmt::format("slot {}", i);
        auto posted = http::Send(at, post);
        if (!posted.ok() || posted->status != 202) ++failures;
      }
    });
  }
  for (auto& t : runtimes) t.join();
  EXPECT_EQ(failures, 0);
  ASSERT_TRUE(results_.Wait(kSlots));
  slots.clear();
}

TEST(RuntimeApiOwnThreadTest, WithoutSharedIoThreadsEachSlotCostsOneThread) {
  constexpr int kSlots = 100;
  std::vector<int> fds;
  for (int i = 0; i < kSlots; ++i) fds.push_back(ListenLoopback());
  size_t threads_before = CountEntries("/proc/self/task");
  size_t fds_before = CountEntries("/proc/self/fd");
  long rss_before = RssKb();
  std::vector<std::unique_ptr<RuntimeApi>> slots;
  for (int fd : fds) {
    auto api = RuntimeApi::Adopt(fd, RuntimeApiOptions{});
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    slots.push_back(std::move(*api));
  }
  EXPECT_EQ(CountEntries("/proc/self/task"), threads_before + kSlots);
  std::cout << "100 adopted slots with own threads: +"
            << CountEntries("/proc/self/task") - threads_before << " threads, +"
            << CountEntries("/proc/self/fd") - fds_before << " fds, RSS +" << (RssKb() - rss_before)
            << " KiB total\n";
}

}  // namespace
}  // namespace fpgahost::functions
