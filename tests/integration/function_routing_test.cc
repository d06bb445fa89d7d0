// Pre-trigger notifications and affinity routing against the real fpgahostd and real bubblewrap
// slots: slots started ahead of announced calls (and what their first calls see), and calls
// with a routing key going back to the slot that served their key, which still holds what the
// function kept in its /tmp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <iostream>
#include <string>
#include <thread>

#include "common/base64.h"
#include "common/json.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/function_daemon_test.h"

namespace fpgahost {
namespace {

using testing::Function;
using ::testing::HasSubstr;
using ::testing::Not;

// Sleeps for the event's "sleep" seconds, notes its "key" in /tmp/seen, and answers with every
// key this slot has noted, its slot's initialisation type and its host name.
constexpr char kSticky[] = R"(
while true; do
  next
  key=; [[ $event =~ \"key\":\"([a-z0-9]*)\" ]] && key=${BASH_REMATCH[1]}
  [[ $event =~ \"sleep\":([0-9.]+) ]] && sleep "${BASH_REMATCH[1]}"
  printf '%s,' "$key" >> /tmp/seen
  respond "{\"seen\":\"$(cat /tmp/seen)\",\"init\":\"$AWS_LAMBDA_INITIALIZATION_TYPE\"}"
done
)";

class FunctionRoutingTest : public testing::FunctionDaemonTest {
 protected:
  // Starts the daemon (idle slots kept a minute unless `overrides` says otherwise) and creates
  // the function.
  void Start(std::map<std::string, std::string> overrides = {}) {
    overrides.emplace("--function-idle-timeout", "60");
    StartDaemon(overrides);
    demo_ = daemon_->Token("demo");
    Json body = {{"FunctionName", "sticky"},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "handler"},
                 {"MemorySize", 256},
                 {"Timeout", 30},
                 {"Code", {{"ZipFile", Base64Encode(Function(kSticky))}}}};
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  // The function's answer to an event with `key` (none when empty) that sleeps `sleep` s.
  Json Invoke(const std::string& key, double sleep = 0) {
    Json event = {{"key", key}, {"sleep", sleep}};
    std::map<std::string, std::string> headers;
    if (!key.empty()) headers["X-Fpgahost-Routing-Key"] = key;
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions/sticky/invocations",
                                           demo_, event.dump(), headers);
    EXPECT_EQ(r.status, 200u) << r.body;
    Json answer = Json::parse(r.body, nullptr, false);
    EXPECT_TRUE(answer.is_object()) << r.body;
    auto id = r.headers.find("x-amzn-requestid");
    if (id != r.headers.end()) answer["request_id"] = id->second;
    return answer;
  }

  http::ClientResponse Prewarm(const std::string& body, const std::string& function = "sticky") {
    return daemon_->Call("POST", "/v1/functions/" + function + "/prewarm", demo_, body);
  }
};

TEST_F(FunctionRoutingTest, PrewarmStartsSlotsAheadAndTheirFirstCallsAreNotCold) {
  Start();
  http::ClientResponse r = Prewarm(R"({"count": 3, "within_seconds": 30})");
  ASSERT_EQ(r.status, 202u) << r.body;
  Json answer = Json::parse(r.body);
  EXPECT_EQ(answer["requested"], 3);
  EXPECT_EQ(answer["existing"], 0);
  EXPECT_EQ(answer["starting"], 3);
  EXPECT_EQ(answer["deferred"], 0);
  ASSERT_TRUE(WaitForIdleSlots(3)) << Slots().dump();
  for (const Json& s : Slots()) EXPECT_TRUE(s["prewarmed"].get<bool>()) << s.dump();

  // The first call finds an initialised slot, told it was initialised ahead (as Lambda tells
  // provisioned concurrency); it is recorded as pre-warmed, not cold, and its REPORT line has
  // no Init Duration.
  http::ClientResponse first = daemon_->Call("POST", "/2015-03-31/functions/sticky/invocations",
                                             demo_, "{}", {{"X-Amz-Log-Type", "Tail"}});
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(Json::parse(first.body)["init"], "provisioned-concurrency");
  std::optional<std::string> tail = Base64Decode(first.headers["x-amz-log-result"]);
  ASSERT_TRUE(tail.has_value());
  EXPECT_THAT(*tail, HasSubstr("REPORT RequestId:"));
  EXPECT_THAT(*tail, Not(HasSubstr("Init Duration")));
  Json record = Record({{"request_id", first.headers["x-amzn-requestid"]}});
  EXPECT_EQ(record["start"], "prewarmed");
  // The same slot again: an ordinary warm call.
  EXPECT_EQ(Record(Invoke(""))["start"], "warm");

  // Announcing fewer calls than there are slots starts nothing.
  r = Prewarm(R"({"count": 2})");
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(Json::parse(r.body)["existing"], 3);
  EXPECT_EQ(Json::parse(r.body)["starting"], 0);
  EXPECT_EQ(Slots().size(), 3u);
}

TEST_F(FunctionRoutingTest, PrewarmStaysWithinCapacityAndSlotsRetireAfterTheWindow) {
  // 1,280 MiB holds five 256 MB slots; idle slots would retire after a second, but the
  // pre-warmed ones are kept for the announced window (8 s) first.
  Start({{"--capacity-memory-mib", "1280"}, {"--function-idle-timeout", "1"}});
  http::ClientResponse r = Prewarm(R"({"count": 6, "within_seconds": 8})");
  ASSERT_EQ(r.status, 202u) << r.body;
  Json answer = Json::parse(r.body);
  EXPECT_EQ(answer["starting"], 4);  // four starts at a time
  EXPECT_EQ(answer["deferred"], 2);
  // The fifth starts when a start finishes; the sixth never fits.
  ASSERT_TRUE(WaitForIdleSlots(5)) << Slots().dump();
  http::ClientResponse capacity = daemon_->Call("GET", "/v1/capacity", daemon_->Token("operator"));
  EXPECT_EQ(Json::parse(capacity.body)["memory_mib"]["used"], 1280) << capacity.body;

  // Three seconds on, well past the idle timeout, within the window: all still there.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(Slots().size(), 5u);
  // After the window they retire as idle slots do, and give their memory back.
  for (int i = 0; i < 200 && !Slots().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(Slots().empty());
  capacity = daemon_->Call("GET", "/v1/capacity", daemon_->Token("operator"));
  EXPECT_EQ(Json::parse(capacity.body)["memory_mib"]["used"], 0) << capacity.body;
}

TEST_F(FunctionRoutingTest, PrewarmRefusesBadRequests) {
  Start();
  struct Case {
    std::string body;
    unsigned status;
    std::string code;
    std::string names;
  };
  for (const Case& c : {
           Case{R"({"count": 0})", 400, "INVALID_FIELD", "count"},
           Case{R"({"count": 1001})", 400, "INVALID_FIELD", "count"},
           Case{R"({"count": "3"})", 400, "INVALID_FIELD", "count"},
           Case{R"({"within_seconds": 5})", 400, "MISSING_FIELD", "count"},
           Case{R"({"count": 1, "within_seconds": 0})", 400, "INVALID_FIELD", "within_seconds"},
           Case{R"({"count": 1, "within": 5})", 400, "UNKNOWN_FIELD", "within"},
           Case{R"({"count": 1)", 400, "MALFORMED_JSON", ""},
       }) {
    http::ClientResponse r = Prewarm(c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.code)) << c.body;
    EXPECT_THAT(r.body, HasSubstr(c.names)) << c.body;
  }
  EXPECT_EQ(Prewarm(R"({"count": 1})", "nonesuch").status, 404u);
  EXPECT_TRUE(Slots().empty());
}

TEST_F(FunctionRoutingTest, ACallGoesBackToTheSlotThatServedItsKey) {
  Start();
  ASSERT_EQ(Prewarm(R"({"count": 2})").status, 202u);
  ASSERT_TRUE(WaitForIdleSlots(2)) << Slots().dump();
  // Two calls at once take one slot each.
  auto a = std::async(std::launch::async, [&] { return Invoke("a", 0.5); });
  auto b = std::async(std::launch::async, [&] { return Invoke("b", 0.5); });
  Json first_a = a.get();
  Json first_b = b.get();
  EXPECT_EQ(first_a["seen"], "a,");
  EXPECT_EQ(first_b["seen"], "b,");
  std::string slot_a = Record(first_a)["slot"];
  std::string slot_b = Record(first_b)["slot"];
  ASSERT_NE(slot_a, slot_b);
  EXPECT_EQ(Record(first_a)["affinity"], "new");

  // One after another, each key goes back to its slot and sees only its own state, though
  // without a key any call would take the slot used last.
  EXPECT_EQ(Invoke("b")["seen"], "b,b,");
  Json again = Invoke("a");
  EXPECT_EQ(again["seen"], "a,a,");
  EXPECT_EQ(Record(again)["slot"], slot_a);
  EXPECT_EQ(Record(again)["affinity"], "hit");
  EXPECT_EQ(Record(again)["routing_key"], "a");
  EXPECT_EQ(Invoke("b")["seen"], "b,b,b,");
  EXPECT_EQ(Invoke("a")["seen"], "a,a,a,");
}

TEST_F(FunctionRoutingTest, ACallWaitsBrieflyForItsBusySlotThenTakesAnother) {
  Start({{"--function-affinity-wait", "2000"}});
  ASSERT_EQ(Prewarm(R"({"count": 2})").status, 202u);
  ASSERT_TRUE(WaitForIdleSlots(2)) << Slots().dump();
  std::string slot_a = Record(Invoke("a"))["slot"];

  auto busy_then_free = [&](double seconds) {
    auto long_call = std::async(std::launch::async, [&, seconds] { return Invoke("a", seconds); });
    // Until the slot is busy with it.
    for (int i = 0; i < 100; ++i) {
      bool busy = false;
      for (const Json& s : Slots()) busy |= s["name"] == slot_a && s["state"] == "busy";
      if (busy) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return long_call;
  };

  // Its slot frees up within the wait (0.3 s of 2 s): the call waits for it, though the
  // other slot is idle.
  auto long_call = busy_then_free(0.3);
  Json waited = Invoke("a");
  EXPECT_EQ(long_call.get()["seen"], "a,a,");
  EXPECT_EQ(waited["seen"], "a,a,a,");
  EXPECT_EQ(Record(waited)["slot"], slot_a);
  EXPECT_EQ(Record(waited)["affinity"], "waited");

  // Its slot stays busy past the wait (4 s): the other slot serves it, without the state.
  long_call = busy_then_free(4);
  Json missed = Invoke("a");
  EXPECT_EQ(missed["seen"], "a,");
  EXPECT_NE(Record(missed)["slot"], slot_a);
  EXPECT_EQ(Record(missed)["affinity"], "missed");
  EXPECT_EQ(long_call.get()["seen"], "a,a,a,a,");
}

TEST_F(FunctionRoutingTest, BadRoutingKeysAreRefused) {
  Start();
  for (const std::string& key : {std::string(257, 'k'), std::string("has space")}) {
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions/sticky/invocations",
                                           demo_, "{}", {{"X-Fpgahost-Routing-Key", key}});
    EXPECT_EQ(r.status, 400u) << r.body;
    EXPECT_EQ(r.headers["x-amzn-errortype"], "InvalidParameterValueException");
    EXPECT_THAT(r.body, HasSubstr("X-Fpgahost-Routing-Key"));
  }
  EXPECT_TRUE(Slots().empty());
}

}  // namespace
}  // namespace fpgahost
