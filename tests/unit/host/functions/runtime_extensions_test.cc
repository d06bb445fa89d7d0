// The Extensions API (2020-01-01) of a slot's RuntimeApi: registration, INVOKE and SHUTDOWN
// events, and Lambda's lifecycle rules tying the runtime and its extensions together.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "common/json.h"
#include "host/functions/runtime_api.h"
#include "host/http/http_client.h"
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

constexpr char kRegister[] = "/2020-01-01/extension/register";
constexpr char kEventNext[] = "/2020-01-01/extension/event/next";
constexpr char kInitError[] = "/2020-01-01/extension/init/error";
constexpr char kExitError[] = "/2020-01-01/extension/exit/error";
constexpr char kNext[] = "/2018-06-01/runtime/invocation/next";

std::string ErrorType(const StatusOr<ClientResponse>& r) {
  return r.ok() ? BodyJson(*r).value("errorType", "") : r.status().ToString();
}

class RuntimeExtensionsTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> extensions = {"logger"}) {
    RuntimeApiOptions options;
    options.io_threads = &io_;
    options.extensions = std::move(extensions);
    options.function_name = "echo";
    options.function_version = "$LATEST";
    options.handler = "index.handler";
    options.on_first_next = [this] { ++initialised_; };
    options.on_init_error = [this](const InitError& e) {
      std::lock_guard<std::mutex> lock(mu_);
      init_error_ = e;
    };
    auto api = RuntimeApi::Adopt(ListenLoopback(), std::move(options));
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
  }

  StatusOr<ClientResponse> Send(std::string method, std::string target, std::string body = "",
                                std::map<std::string, std::string> headers = {}) {
    ClientRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    return http::Send(Endpoint{"127.0.0.1", api_->port()}, req);
  }

  StatusOr<ClientResponse> Register(
      const std::string& name, const std::string& body = R"({"events":["INVOKE","SHUTDOWN"]})") {
    return Send("POST", kRegister, body, {{"Lambda-Extension-Name", name}});
  }
  // Registers `name` and returns its identifier.
  std::string RegisterOk(const std::string& name,
                         const std::string& body = R"({"events":["INVOKE","SHUTDOWN"]})") {
    auto r = Register(name, body);
    EXPECT_TRUE(r.ok() && r->status == 200u) << (r.ok() ? r->body : r.status().ToString());
    return r.ok() ? r->headers["lambda-extension-identifier"] : "";
  }
  std::future<StatusOr<ClientResponse>> EventNext(const std::string& id) {
    return std::async(std::launch::async,
                      [this, id] { return Send("GET", kEventNext, "", ExtensionHeader(id)); });
  }
  std::future<StatusOr<ClientResponse>> RuntimeNext() {
    return std::async(std::launch::async, [this] { return Send("GET", kNext); });
  }
  static std::map<std::string, std::string> ExtensionHeader(const std::string& id) {
    return {{"Lambda-Extension-Identifier", id}};
  }
  // The extension asks for an event: it is waiting once its state says so.
  std::future<StatusOr<ClientResponse>> ParkedEventNext(const std::string& id,
                                                        const std::string& name = "logger") {
    auto next = EventNext(id);
    EXPECT_TRUE(Eventually([&] { return State(name) == "Ready"; })) << State(name);
    return next;
  }
  std::string State(const std::string& name) {
    for (const ExtensionStatus& e : api_->Extensions()) {
      if (e.name == name) return e.state;
    }
    return "<none>";
  }
  // Initialises a slot with one extension registered for `events`: returns its identifier and
  // leaves both the runtime and the extension waiting.
  std::string Initialise(const std::string& events = R"({"events":["INVOKE","SHUTDOWN"]})") {
    std::string id = RegisterOk("logger", events);
    runtime_next_ = RuntimeNext();
    extension_next_ = ParkedEventNext(id);
    EXPECT_TRUE(Eventually([&] { return api_->Ready(); }));
    EXPECT_TRUE(Eventually([&] { return initialised_ == 1; }));  // on_first_next runs unlocked
    return id;
  }

  http::IoThreads io_{2};
  Results results_;
  std::atomic<int> initialised_{0};
  std::mutex mu_;
  std::optional<InitError> init_error_;
  std::future<StatusOr<ClientResponse>> runtime_next_;
  std::future<StatusOr<ClientResponse>> extension_next_;
  // Long polls still waiting when a test ends, cut off by the api's Close before they go.
  std::vector<std::future<StatusOr<ClientResponse>>> pending_;
  std::unique_ptr<RuntimeApi> api_;
};

TEST_F(RuntimeExtensionsTest, RegisterAnswersWithAFreshIdentifierAndTheFunction) {
  Start({"logger", "metrics"});
  auto r = Register("logger");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200u);
  std::string id = r->headers["lambda-extension-identifier"];
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');  // a version-4 UUID
  EXPECT_EQ(BodyJson(*r), Json({{"functionName", "echo"},
                                {"functionVersion", "$LATEST"},
                                {"handler", "index.handler"}}));
  std::string other = RegisterOk("metrics", R"({"events":[]})");
  EXPECT_NE(other, id);
  auto statuses = api_->Extensions();
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0].name, "logger");
  EXPECT_EQ(statuses[0].state, "Registered");
  EXPECT_TRUE(statuses[0].invoke);
  EXPECT_TRUE(statuses[0].shutdown);
  EXPECT_FALSE(statuses[1].invoke);
  EXPECT_FALSE(statuses[1].shutdown);
}

TEST_F(RuntimeExtensionsTest, RegistrationsLambdaRefuses) {
  Start();
  EXPECT_EQ(ErrorType(Register("")), "Extension.InvalidExtensionName");
  // Lambda-Extension-Name must be the name of the extension's file.
  auto wrong = Register("not-a-file");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 403u);
  EXPECT_EQ(ErrorType(wrong), "Extension.InvalidExtensionName");
  EXPECT_EQ(ErrorType(Register("logger", "not json")), "InvalidRequestFormat");
  EXPECT_EQ(ErrorType(Register("logger", R"({"events":"INVOKE"})")), "InvalidRequestFormat");
  auto bad_event = Register("logger", R"({"events":["INVOKE","LOGS"]})");
  ASSERT_TRUE(bad_event.ok());
  EXPECT_EQ(bad_event->status, 403u);
  EXPECT_EQ(ErrorType(bad_event), "Extension.InvalidEventType");
  EXPECT_NE(BodyJson(*bad_event)["errorMessage"].get<std::string>().find("LOGS"),
            std::string::npos);
  EXPECT_EQ(State("logger"), "Launched");  // none of those registered it
  RegisterOk("logger");
  EXPECT_EQ(ErrorType(Register("logger")), "Extension.InvalidExtensionState");
}

TEST_F(RuntimeExtensionsTest, InitialisationWaitsForEveryExtensionThenRegistrationCloses) {
  Start({"logger", "metrics"});
  std::string logger = RegisterOk("logger");
  runtime_next_ = RuntimeNext();
  pending_.push_back(ParkedEventNext(logger));
  // The runtime and one extension wait; the other extension has not registered yet.
  EXPECT_EQ(initialised_, 0);
  EXPECT_FALSE(api_->Ready());
  std::string metrics = RegisterOk("metrics", R"({"events":["SHUTDOWN"]})");
  EXPECT_EQ(initialised_, 0);
  pending_.push_back(ParkedEventNext(metrics, "metrics"));
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));
  EXPECT_TRUE(Eventually([&] { return initialised_ == 1; }));  // on_first_next runs unlocked

  auto late = Register("logger");
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->status, 403u);
  EXPECT_EQ(ErrorType(late), "Extension.RegistrationClosed");
}

TEST_F(RuntimeExtensionsTest, AColdInvocationWaitsForTheExtensionsToInitialise) {
  Start();
  std::string id = RegisterOk("logger");
  runtime_next_ = RuntimeNext();
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  // The runtime asked, but the extension has not: the event is held back from both.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runtime_next_.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(initialised_, 0);
  auto event = EventNext(id).get();
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(BodyJson(*event)["requestId"], "req-1");
  auto runtime = runtime_next_.get();
  ASSERT_TRUE(runtime.ok());
  EXPECT_EQ(runtime->headers["lambda-runtime-aws-request-id"], "req-1");
  EXPECT_TRUE(Eventually([&] { return initialised_ == 1; }));  // on_first_next runs unlocked
}

TEST_F(RuntimeExtensionsTest, InvokeReachesTheExtensionAndTheInvocationEndsAfterItsNext) {
  Start();
  std::string id = Initialise();
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  auto runtime = runtime_next_.get();
  ASSERT_TRUE(runtime.ok());
  EXPECT_EQ(runtime->headers["lambda-runtime-aws-request-id"], "req-1");
  auto event = extension_next_.get();
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(event->status, 200u);
  EXPECT_FALSE(event->headers["lambda-extension-event-identifier"].empty());
  EXPECT_EQ(BodyJson(*event),
            Json({{"eventType", "INVOKE"},
                  {"deadlineMs", 1'900'000'000'123},
                  {"requestId", "req-1"},
                  {"invokedFunctionArn", "arn:aws:lambda:us-east-1:123456789012:function:echo"},
                  {"tracing", {{"type", "X-Amzn-Trace-Id"}, {"value", testing::kTraceId}}}}));
  EXPECT_EQ(State("logger"), "Running");

  // The runtime answers; `done` would have run before that answer's 202 came back.
  auto posted = Send("POST", "/2018-06-01/runtime/invocation/req-1/response", "pong");
  ASSERT_TRUE(posted.ok());
  EXPECT_EQ(posted->status, 202u);
  runtime_next_ = RuntimeNext();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(results_.count(), 0u) << "the invocation ended before the extension was done";
  EXPECT_FALSE(api_->Ready());
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-2"), results_.Callback()).reason(), "SLOT_BUSY");

  // The extension asks for its next event: now the invocation is over and the slot warm.
  extension_next_ = EventNext(id);
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
  EXPECT_EQ(std::get<InvocationResponse>(*result).payload, "pong");
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));

  // And again, the extension finishing first this time.
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-2"), results_.Callback()).ok());
  ASSERT_EQ(BodyJson(*extension_next_.get())["requestId"], "req-2");
  ASSERT_EQ(runtime_next_.get()->headers["lambda-runtime-aws-request-id"], "req-2");
  extension_next_ = ParkedEventNext(id);
  EXPECT_EQ(results_.count(), 1u);
  ASSERT_EQ(Send("POST", "/2018-06-01/runtime/invocation/req-2/response", "two")->status, 202u);
  auto second = results_.Wait(2);
  ASSERT_TRUE(second && std::holds_alternative<InvocationResponse>(*second));
}

TEST_F(RuntimeExtensionsTest, AnExtensionOnlyForShutdownDoesNotHoldInvocations) {
  Start();
  Initialise(R"({"events":["SHUTDOWN"]})");
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  ASSERT_TRUE(runtime_next_.get().ok());
  ASSERT_EQ(Send("POST", "/2018-06-01/runtime/invocation/req-1/response", "ok")->status, 202u);
  ASSERT_TRUE(results_.Wait());
  EXPECT_EQ(extension_next_.wait_for(0s), std::future_status::timeout);  // no INVOKE for it
  EXPECT_EQ(State("logger"), "Ready");
}

TEST_F(RuntimeExtensionsTest, TimeoutFailsAnInvocationHeldByAnExtension) {
  Start();
  Initialise();
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  ASSERT_TRUE(runtime_next_.get().ok());
  ASSERT_TRUE(extension_next_.get().ok());
  ASSERT_EQ(Send("POST", "/2018-06-01/runtime/invocation/req-1/response", "ok")->status, 202u);
  ASSERT_TRUE(api_->Fail("req-1", {std::string(kErrorTypeTimeout), "Task timed out"}).ok());
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<RuntimeFailure>(*result));
  EXPECT_EQ(std::get<RuntimeFailure>(*result).error_type, "Sandbox.Timedout");
}

TEST_F(RuntimeExtensionsTest, ShutdownGoesToItsSubscribersAndEndsWhenTheyAskAgain) {
  Start();
  std::string id = Initialise();
  std::promise<void> finished;
  auto deadline =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'002'000));
  ASSERT_TRUE(api_->Shutdown(ShutdownReason::kSpindown, deadline, [&] { finished.set_value(); }));
  EXPECT_FALSE(api_->Ready());
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).reason(), "SLOT_CLOSED");
  auto event = extension_next_.get();
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(BodyJson(*event), Json({{"eventType", "SHUTDOWN"},
                                    {"shutdownReason", "spindown"},
                                    {"deadlineMs", 1'700'000'002'000}}));
  auto done = finished.get_future();
  EXPECT_EQ(done.wait_for(50ms), std::future_status::timeout);
  extension_next_ = EventNext(id);  // done with SHUTDOWN
  EXPECT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(api_->Shutdown(ShutdownReason::kSpindown, deadline, [] {}));  // once
}

TEST_F(RuntimeExtensionsTest, ShutdownWithoutSubscribersHasNothingToWaitFor) {
  Start();
  Initialise(R"({"events":["INVOKE"]})");
  bool called = false;
  EXPECT_FALSE(api_->Shutdown(ShutdownReason::kSpindown, std::chrono::system_clock::now(),
                              [&] { called = true; }));
  EXPECT_FALSE(called);
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).reason(), "SLOT_CLOSED");
}

TEST_F(RuntimeExtensionsTest, ExitErrorEndsTheShutdownAndIsRecorded) {
  Start();
  std::string id = Initialise();
  std::promise<void> finished;
  ASSERT_TRUE(api_->Shutdown(ShutdownReason::kSpindown, std::chrono::system_clock::now() + 2s,
                             [&] { finished.set_value(); }));
  ASSERT_TRUE(extension_next_.get().ok());
  auto r = Send("POST", kExitError, R"({"errorMessage":"flush failed","errorType":"Flush"})",
                {{"Lambda-Extension-Identifier", id},
                 {"Lambda-Extension-Function-Error-Type", "Extension.FlushFailed"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  EXPECT_EQ(finished.get_future().wait_for(10s), std::future_status::ready);
  auto statuses = api_->Extensions();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state, "Exited");
  EXPECT_EQ(statuses[0].error_type, "Extension.FlushFailed");
  EXPECT_EQ(ErrorType(EventNext(id).get()), "Extension.InvalidExtensionState");
}

TEST_F(RuntimeExtensionsTest, ExitErrorReleasesAnInvocationTheExtensionHeld) {
  Start();
  std::string id = Initialise();
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  ASSERT_TRUE(runtime_next_.get().ok());
  ASSERT_TRUE(extension_next_.get().ok());
  ASSERT_EQ(Send("POST", "/2018-06-01/runtime/invocation/req-1/response", "ok")->status, 202u);
  EXPECT_EQ(results_.count(), 0u);
  ASSERT_EQ(Send("POST", kExitError, "",
                 {{"Lambda-Extension-Identifier", id},
                  {"Lambda-Extension-Function-Error-Type", "Extension.Crash"}})
                ->status,
            202u);
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InvocationResponse>(*result));
}

TEST_F(RuntimeExtensionsTest, UnknownMissingAndMalformedIdentifiersAreRefused) {
  Start();
  RegisterOk("logger");
  auto unknown =
      Send("GET", kEventNext, "", ExtensionHeader("0c8e5a2e-1d3f-4b6a-9c7d-2e4f6a8b0c1d"));
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 403u);
  EXPECT_EQ(BodyJson(*unknown),
            Json({{"errorMessage", "Unknown extension 0c8e5a2e-1d3f-4b6a-9c7d-2e4f6a8b0c1d"},
                  {"errorType", "Extension.UnknownExtensionIdentifier"}}));
  EXPECT_EQ(ErrorType(Send("GET", kEventNext)), "Extension.MissingExtensionIdentifier");
  EXPECT_EQ(ErrorType(Send("GET", kEventNext, "", ExtensionHeader("not-a-uuid"))),
            "Extension.InvalidExtensionIdentifier");
  EXPECT_EQ(ErrorType(Send("POST", kExitError, "",
                           {{"Lambda-Extension-Identifier", "0c8e5a2e-1d3f-4b6a-9c7d-2e4f6a8b0c1d"},
                            {"Lambda-Extension-Function-Error-Type", "X"}})),
            "Extension.UnknownExtensionIdentifier");
}

TEST_F(RuntimeExtensionsTest, InitErrorFromAnExtensionFailsTheSlotsInitialisation) {
  Start();
  std::string id = RegisterOk("logger");
  ASSERT_TRUE(api_->Dispatch(MakeInvocation("req-1"), results_.Callback()).ok());
  EXPECT_EQ(ErrorType(Send("POST", kInitError, "", ExtensionHeader(id))),
            "Extension.MissingHeader");
  std::string body = R"({"errorMessage":"no config","errorType":"Extension.ConfigMissing"})";
  auto r = Send("POST", kInitError, body,
                {{"Lambda-Extension-Identifier", id},
                 {"Lambda-Extension-Function-Error-Type", "Extension.ConfigMissing"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202u);
  EXPECT_EQ(BodyJson(*r), Json({{"status", "OK"}}));
  auto result = results_.Wait();
  ASSERT_TRUE(result && std::holds_alternative<InitError>(*result));
  EXPECT_EQ(std::get<InitError>(*result).error_type, "Extension.ConfigMissing");
  EXPECT_EQ(std::get<InitError>(*result).body, body);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_TRUE(init_error_);
    EXPECT_EQ(init_error_->error_type, "Extension.ConfigMissing");
  }
  EXPECT_EQ(api_->Dispatch(MakeInvocation("req-2"), results_.Callback()).reason(),
            "RUNTIME_INIT_FAILED");
  auto next = Send("GET", kNext);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->status, 403u);
  EXPECT_EQ(initialised_, 0);
}

TEST_F(RuntimeExtensionsTest, InitErrorAfterInitialisationIsRefused) {
  Start();
  std::string id = Initialise();
  EXPECT_EQ(ErrorType(Send("POST", kInitError, "",
                           {{"Lambda-Extension-Identifier", id},
                            {"Lambda-Extension-Function-Error-Type", "Extension.Late"}})),
            "Extension.InvalidExtensionState");
  EXPECT_TRUE(api_->Ready());
}

TEST_F(RuntimeExtensionsTest, CloseCutsOffTheExtensionsLongPolls) {
  Start();
  Initialise();
  api_->Close();
  ASSERT_EQ(extension_next_.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(extension_next_.get().ok());
}

// Without extensions the Extensions API refuses every name, and nothing waits for one.
TEST_F(RuntimeExtensionsTest, ASlotWithoutExtensionsRefusesRegistrations) {
  Start({});
  EXPECT_EQ(ErrorType(Register("logger")), "Extension.InvalidExtensionName");
  runtime_next_ = RuntimeNext();
  ASSERT_TRUE(Eventually([&] { return api_->Ready(); }));
  EXPECT_TRUE(Eventually([&] { return initialised_ == 1; }));  // on_first_next runs unlocked
  EXPECT_FALSE(api_->Shutdown(ShutdownReason::kSpindown, std::chrono::system_clock::now(), [] {}));
}

}  // namespace
}  // namespace fpgahost::functions
