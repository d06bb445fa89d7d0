// Lambda's Invoke against the real fpgahostd, its real bubblewrap slots and runtimes written
// in bash: results, function errors, timeouts, crashes, logs, warm reuse, asynchronous retries,
// throttling, and what a function can and cannot reach from its sandbox.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "common/json.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/fleet_daemon_test.h"
#include "tests/support/zip_builder.h"

namespace fpgahost {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::Function;

class InvokeTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    FleetDaemonTest::SetUp();
    StartDaemon({{"--function-retry-delay", "0"}, {"--function-idle-timeout", "60"}});
    demo_ = daemon_->Token("demo");
  }

  void Create(const std::string& name, const std::string& zip, int timeout = 10,
              const Json& env = Json::object()) {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "handler"},
                 {"MemorySize", 256},
                 {"Timeout", timeout},
                 {"Environment", {{"Variables", env}}},
                 {"Code", {{"ZipFile", Base64Encode(zip)}}}};
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  http::ClientResponse Invoke(const std::string& name, const std::string& payload,
                              const std::map<std::string, std::string>& headers = {}) {
    return daemon_->Call("POST", "/2015-03-31/functions/" + name + "/invocations", demo_, payload,
                         headers);
  }

  static std::string Header(const http::ClientResponse& r, const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? "" : it->second;
  }

  Json Records(const std::string& query) {
    http::ClientResponse r = daemon_->Call("GET", "/v1/invocations?" + query, demo_);
    EXPECT_EQ(r.status, 200u) << r.body;
    return Json::parse(r.body)["invocations"];
  }

  std::string demo_;
};

TEST_F(InvokeTest, EchoesColdThenWarmInTheSameSlotWithLogs) {
  Create("echo", Function("while true; do next; echo \"got $id\"; respond \"$event\"; done\n"));
  std::string payload = R"({"text":"quotes \" and\nnewlines","utf8":"h\u00e9llo \u2603"})";
  http::ClientResponse first = Invoke("echo", payload, {{"X-Amz-Log-Type", "Tail"}});
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(first.body, payload);
  EXPECT_EQ(Header(first, "x-amz-function-error"), "");
  EXPECT_EQ(Header(first, "x-amz-executed-version"), "$LATEST");
  std::string request_id = Header(first, "x-amzn-requestid");
  std::optional<std::string> tail = Base64Decode(Header(first, "x-amz-log-result"));
  ASSERT_TRUE(tail.has_value());
  EXPECT_THAT(*tail, HasSubstr("START RequestId: " + request_id));
  EXPECT_THAT(*tail, HasSubstr("got " + request_id));
  EXPECT_THAT(*tail, HasSubstr("REPORT RequestId: " + request_id));
  EXPECT_THAT(*tail, HasSubstr("Init Duration:"));

  http::ClientResponse second = Invoke("echo", "[1,2,3]");
  ASSERT_EQ(second.status, 200u);
  EXPECT_EQ(second.body, "[1,2,3]");
  EXPECT_EQ(Header(second, "x-amz-log-result"), "");  // not asked for

  Json records = Records("function=echo&logs=true");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["request_id"], request_id);
  EXPECT_EQ(records[1]["start"], "cold");
  EXPECT_GT(records[1]["init_ms"].get<double>(), 0.0);
  EXPECT_EQ(records[0]["start"], "warm");
  EXPECT_EQ(records[0]["slot"], records[1]["slot"]);
  EXPECT_EQ(records[0]["state"], "succeeded");
  EXPECT_THAT(records[0]["log"].get<std::string>(),
              HasSubstr("got " + records[0]["request_id"].get<std::string>()));

  // One warm slot, reporting what isolation is in force.
  Json slots = Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"];
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0]["state"], "idle");
  EXPECT_EQ(slots[0]["invocations"], 2);
  EXPECT_TRUE(slots[0]["isolation"]["namespaces"]["net"].get<bool>());
  // After initialisation the function's own CPU share applies, as on Lambda (256 MB of
  // 1,769 MB per vCPU), where the host lets fpgahostd set CPU limits at all.
  const Json& cgroup = slots[0]["isolation"]["cgroup"];
  if (cgroup["cpu_quota_us"].is_number()) {
    EXPECT_EQ(cgroup["cpu_quota_us"], 256 * 100000 / 1769);
  }
}

TEST_F(InvokeTest, FunctionErrorsAreUnhandledAndTheSlotStaysWarm) {
  Create("fails", Function("while true; do next; echo oops >&2; "
                           "fail '{\"errorMessage\":\"boom\",\"errorType\":\"Boom\"}'; done\n"));
  for (int i = 0; i < 2; ++i) {
    http::ClientResponse r = Invoke("fails", "{}", {{"X-Amz-Log-Type", "Tail"}});
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(Header(r, "x-amz-function-error"), "Unhandled");
    EXPECT_EQ(Json::parse(r.body)["errorType"], "Boom");
    EXPECT_THAT(Base64Decode(Header(r, "x-amz-log-result")).value_or(""), HasSubstr("oops"));
  }
  Json records = Records("function=fails");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["state"], "failed");
  EXPECT_EQ(records[0]["error_type"], "Boom");
  EXPECT_EQ(records[0]["start"], "warm");
}

TEST_F(InvokeTest, TimeoutsAndCrashesKillTheSlotAndTheNextCallGetsANewOne) {
  Create("sleepy",
         Function("while true; do next; case \"$event\" in *sleep*) sleep 30;; esac; "
                  "respond ok; done\n"),
         /*timeout=*/1);
  http::ClientResponse r = Invoke("sleepy", R"({"sleep":true})");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(Header(r, "x-amz-function-error"), "Unhandled");
  Json error = Json::parse(r.body);
  EXPECT_EQ(error["errorType"], "Sandbox.Timedout");
  EXPECT_THAT(error["errorMessage"].get<std::string>(), HasSubstr("Task timed out after 1.0"));
  r = Invoke("sleepy", "{}");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "ok");
  Json records = Records("function=sleepy");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["state"], "timed_out");
  EXPECT_EQ(records[0]["start"], "cold");
  EXPECT_NE(records[0]["slot"], records[1]["slot"]);

  Create("crashy", Function("while true; do next; case \"$event\" in *crash*) echo dying >&2; "
                            "exit 3;; esac; respond fine; done\n"));
  r = Invoke("crashy", R"({"crash":1})", {{"X-Amz-Log-Type", "Tail"}});
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(Header(r, "x-amz-function-error"), "Unhandled");
  EXPECT_EQ(Json::parse(r.body)["errorType"], "Runtime.ExitError");
  EXPECT_THAT(Json::parse(r.body)["errorMessage"].get<std::string>(), HasSubstr("exit status 3"));
  EXPECT_THAT(Base64Decode(Header(r, "x-amz-log-result")).value_or(""), HasSubstr("dying"));
  r = Invoke("crashy", "{}");
  EXPECT_EQ(r.body, "fine");

  // A runtime that never asks for its event times out too; one that prints garbage is fine.
  Create("lazy", Function("sleep 30\n"), /*timeout=*/1);
  r = Invoke("lazy", "{}");
  EXPECT_EQ(Json::parse(r.body)["errorType"], "Sandbox.Timedout");
  Create("noisy", Function("printf '\\x00\\xff\\xfe binary garbage\\n'; "
                           "while true; do next; printf '\\x01\\x80'; respond '\"done\"'; done\n"));
  r = Invoke("noisy", "{}", {{"X-Amz-Log-Type", "Tail"}});
  EXPECT_EQ(r.body, "\"done\"");
  EXPECT_THAT(Base64Decode(Header(r, "x-amz-log-result")).value_or(""),
              HasSubstr("binary garbage"));
  // Records with non-UTF-8 logs are still served as JSON.
  EXPECT_FALSE(Records("function=noisy&logs=true").empty());
  EXPECT_EQ(daemon_->Call("GET", "/v1/health", "").status, 200u);
}

TEST_F(InvokeTest, BadRequestsGetLambdaErrors) {
  Create("echo", Function("while true; do next; respond \"$event\"; done\n"));
  http::ClientResponse r = Invoke("missing", "{}");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Header(r, "x-amzn-errortype"), "ResourceNotFoundException");
  r = Invoke("echo", "{not json");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Header(r, "x-amzn-errortype"), "InvalidRequestContentException");
  r = Invoke("echo", "{}", {{"X-Amz-Invocation-Type", "Sometimes"}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("invocationType"));
  r = Invoke("echo", "\"" + std::string(6 * 1024 * 1024, 'x') + "\"");
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(Header(r, "x-amzn-errortype"), "RequestTooLargeException");
  r = Invoke("echo", "{}", {{"X-Amz-Invocation-Type", "DryRun"}});
  EXPECT_EQ(r.status, 204u);
  // None of these ran anything.
  EXPECT_TRUE(Records("function=echo").empty());
}

TEST_F(InvokeTest, EventsAreAcceptedAndRetriedTwiceOnFunctionError) {
  Create("flaky", Function("while true; do next; echo \"attempt for $id\"; "
                           "fail '{\"errorMessage\":\"nope\",\"errorType\":\"Nope\"}'; done\n"));
  http::ClientResponse r = Invoke("flaky", "{}", {{"X-Amz-Invocation-Type", "Event"}});
  ASSERT_EQ(r.status, 202u) << r.body;
  std::string id = Header(r, "x-amzn-requestid");
  ASSERT_FALSE(id.empty());
  Json records;
  for (int i = 0; i < 300 && records.size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    records = Records("request_id=" + id);
  }
  ASSERT_EQ(records.size(), 3u) << records.dump();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const Json& rec = records[3 - attempt];
    EXPECT_EQ(rec["attempt"], attempt);
    EXPECT_EQ(rec["invocation_type"], "Event");
    EXPECT_EQ(rec["state"], "failed");
  }
  // And no fourth.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Records("request_id=" + id).size(), 3u);
}

TEST_F(InvokeTest, ReservedConcurrencyThrottlesWithLambdasReason) {
  Create("slow", Function("while true; do next; sleep 1; respond '\"ok\"'; done\n"));
  http::ClientResponse r = daemon_->Call("PUT", "/2017-10-31/functions/slow/concurrency", demo_,
                                         R"({"ReservedConcurrentExecutions":0})");
  ASSERT_EQ(r.status, 200u) << r.body;
  r = Invoke("slow", "{}");
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(Header(r, "x-amzn-errortype"), "TooManyRequestsException");
  EXPECT_EQ(Json::parse(r.body)["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded");

  r = daemon_->Call("PUT", "/2017-10-31/functions/slow/concurrency", demo_,
                    R"({"ReservedConcurrentExecutions":1})");
  ASSERT_EQ(r.status, 200u);
  auto running = std::async(std::launch::async, [&] { return Invoke("slow", "{}"); });
  // The first holds the one execution for a second (after its cold start): wait until it runs.
  for (int i = 0; i < 200; ++i) {
    Json slots = Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"];
    if (!slots.empty() && slots[0]["state"] == "busy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r = Invoke("slow", "{}");
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(Json::parse(r.body)["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded");
  EXPECT_EQ(running.get().status, 200u);
  Json throttled = Records("function=slow");
  EXPECT_EQ(throttled[0]["state"], "succeeded");
  EXPECT_EQ(throttled[1]["state"], "throttled");

  // Lambda keeps 100 unreserved: reserving everything else is refused.
  r = daemon_->Call("PUT", "/2017-10-31/functions/slow/concurrency", demo_,
                    R"({"ReservedConcurrentExecutions":950})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Header(r, "x-amzn-errortype"), "InvalidParameterValueException");
}

TEST_F(InvokeTest, AFunctionCannotReachHostFilesOrTheNetwork) {
  // Each line of the answer is a probe the sandbox should refuse.
  std::string probe = R"sh(
while true; do
  next
  out=""
  [ -e "$DATA_DIR" ] && out+="sees the data dir;"
  [ -r /etc/shadow ] && out+="reads /etc/shadow;"
  [ -e /root ] && out+="sees /root;"
  touch /var/task/new 2>/dev/null && out+="writes its code;"
  touch /usr/new 2>/dev/null && out+="writes /usr;"
  (exec 4<>/dev/tcp/1.1.1.1/53) 2>/dev/null && out+="reaches the network;"
  (exec 4<>/dev/tcp/127.0.0.1/)sh" +
                      std::to_string(daemon_->port()) +
                      R"sh() 2>/dev/null && out+="reaches the daemon;"
  [ "$(id -u)" = 0 ] && out+="is root;"
  echo x > /tmp/state && n=$(( $(cat /tmp/count 2>/dev/null || echo 0) + 1 )) && echo $n > /tmp/count
  respond "{\"escapes\":\"$out\",\"calls\":$n}"
done
)sh";
  Create("probe", Function(probe), 10, {{"DATA_DIR", daemon_->data_dir().string()}});
  for (int i = 1; i <= 2; ++i) {
    http::ClientResponse r = Invoke("probe", "{}");
    ASSERT_EQ(r.status, 200u) << r.body;
    Json j = Json::parse(r.body);
    EXPECT_EQ(j["escapes"], "");
    // /tmp is private to the slot and kept while it is warm.
    EXPECT_EQ(j["calls"], i);
  }
}

TEST_F(InvokeTest, DeletingAFunctionRetiresItsSlots) {
  Create("echo", Function("while true; do next; respond \"$event\"; done\n"));
  ASSERT_EQ(Invoke("echo", "1").status, 200u);
  ASSERT_EQ(Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"].size(),
            1u);
  ASSERT_EQ(daemon_->Call("DELETE", "/2015-03-31/functions/echo", demo_).status, 204u);
  EXPECT_TRUE(Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"].empty());
  EXPECT_EQ(Invoke("echo", "1").status, 404u);
}

// Slots come out of the host's capacity account, shared with instances: when memory runs
// short an idle slot of another function is retired to make room; idle slots retire on
// their own after function-idle-timeout.
TEST_F(InvokeTest, SlotsLiveWithinTheCapacityAccountAndRetireWhenIdle) {
  StartDaemon({{"--capacity-memory-mib", "400"}, {"--function-idle-timeout", "1"}});
  std::string echo = "while true; do next; respond \"$event\"; done\n";
  Create("first", Function(echo));  // 256 MB each: one fits in 400
  Create("second", Function(echo));
  auto holders = [&] {
    http::ClientResponse r = daemon_->Call("GET", "/v1/capacity", daemon_->Token("operator"));
    EXPECT_EQ(r.status, 200u) << r.body;
    return Json::parse(r.body);
  };
  auto slots = [&] {
    return Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"];
  };
  ASSERT_EQ(Invoke("first", "1").body, "1");
  Json capacity = holders();
  EXPECT_EQ(capacity["memory_mib"]["used"], 256) << capacity.dump();
  ASSERT_EQ(slots().size(), 1u);
  EXPECT_EQ(slots()[0]["function"], "first");

  // The second function's slot does not fit beside the first's: the idle one makes room.
  ASSERT_EQ(Invoke("second", "2").body, "2");
  Json now = slots();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0]["function"], "second");
  EXPECT_EQ(holders()["memory_mib"]["used"], 256);

  // Idle for longer than a second: retired, its memory given back; the next call is cold.
  for (int i = 0; i < 100 && !slots().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(slots().empty());
  EXPECT_EQ(holders()["memory_mib"]["used"], 0);
  ASSERT_EQ(Invoke("second", "3").body, "3");
  EXPECT_EQ(Records("function=second&limit=1")[0]["start"], "cold");
}

}  // namespace
}  // namespace fpgahost
