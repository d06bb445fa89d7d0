// Lambda external extensions against the real fpgahostd: a bundle's extensions/ executables run
// in each of its slots, register through the Extensions API, see every invocation with its
// request id, and write to the invocation's log.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "common/json.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/fleet_daemon_test.h"

namespace fpgahost {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::FunctionWithExtensions;

class ExtensionsTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    FleetDaemonTest::SetUp();
    StartDaemon({{"--function-retry-delay", "0"}, {"--function-idle-timeout", "60"}});
    demo_ = daemon_->Token("demo");
  }

  void Create(const std::string& name, const std::string& zip) {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "handler"},
                 {"MemorySize", 256},
                 {"Timeout", 10},
                 {"Code", {{"ZipFile", Base64Encode(zip)}}}};
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  http::ClientResponse Invoke(const std::string& name, const std::string& payload) {
    return daemon_->Call("POST", "/2015-03-31/functions/" + name + "/invocations", demo_, payload,
                         {{"X-Amz-Log-Type", "Tail"}});
  }

  Json Slots() {
    return Json::parse(daemon_->Call("GET", "/v1/function-slots", demo_).body)["slots"];
  }

  std::string demo_;
};

// The extension appends each event to /tmp/extension.log (the slot's private /tmp, shared by
// its processes) and says so on stderr; the runtime answers with that file once the extension
// has seen its invocation, so the answer shows what the extension saw.
constexpr char kRuntime[] = R"sh(
while true; do
  next
  for i in $(seq 500); do grep -q "INVOKE $id" /tmp/extension.log 2>/dev/null && break; sleep 0.01; done
  respond "{\"request\":\"$id\",\"extension\":\"$(tr '\n' ';' </tmp/extension.log)\"}"
done
)sh";

constexpr char kLogger[] = R"sh(
register INVOKE SHUTDOWN
echo "logger: registered" >&2
while true; do
  next_event
  [ -n "$event_type" ] || exit 0
  echo "$event_type $request_id$shutdown_reason" >> /tmp/extension.log
  echo "logger: $event_type $request_id$shutdown_reason" >&2
done
)sh";

TEST_F(ExtensionsTest, AnExtensionSeesEveryInvocationAndWritesToItsLog) {
  Create("logged", FunctionWithExtensions(kRuntime, {{"logger", kLogger}}));

  http::ClientResponse first = Invoke("logged", "{}");
  ASSERT_EQ(first.status, 200u) << first.body;
  std::string first_id = first.headers["x-amzn-requestid"];
  Json answer = Json::parse(first.body);
  EXPECT_EQ(answer["request"], first_id);
  EXPECT_EQ(answer["extension"], "INVOKE " + first_id + ";");
  std::string tail = Base64Decode(first.headers["x-amz-log-result"]).value_or("");
  // Its start-up and its INVOKE are in the first invocation's log, as on Lambda.
  EXPECT_THAT(tail, HasSubstr("logger: registered"));
  EXPECT_THAT(tail, HasSubstr("logger: INVOKE " + first_id));

  http::ClientResponse second = Invoke("logged", "{}");
  ASSERT_EQ(second.status, 200u) << second.body;
  std::string second_id = second.headers["x-amzn-requestid"];
  answer = Json::parse(second.body);
  EXPECT_EQ(answer["request"], second_id);
  // The same slot, warm: the extension saw both, in order.
  EXPECT_EQ(answer["extension"], "INVOKE " + first_id + ";INVOKE " + second_id + ";");

  http::ClientResponse r = daemon_->Call("GET", "/v1/invocations?function=logged&logs=true", demo_);
  ASSERT_EQ(r.status, 200u) << r.body;
  Json records = Json::parse(r.body)["invocations"];
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["request_id"], second_id);
  EXPECT_EQ(records[0]["start"], "warm");
  EXPECT_EQ(records[0]["slot"], records[1]["slot"]);
  EXPECT_THAT(records[0]["log"].get<std::string>(), HasSubstr("logger: INVOKE " + second_id));
  EXPECT_THAT(records[0]["log"].get<std::string>(),
              ::testing::Not(HasSubstr("logger: INVOKE " + first_id)));

  // The slot's view names the extension running in its sandbox.
  Json slots = Slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0]["isolation"]["extensions"], Json::array({"logger"}));

  // Deleting the function retires its slot, extension and all.
  ASSERT_EQ(daemon_->Call("DELETE", "/2015-03-31/functions/logged", demo_).status, 204u);
  EXPECT_TRUE(Slots().empty());
}

// An extension that posts init/error fails the slot's initialisation, and so the invocation
// waiting for it, with the extension's error (as the runtime's init/error does).
TEST_F(ExtensionsTest, AnExtensionThatFailsToInitialiseFailsTheInvocation) {
  Create("broken",
         FunctionWithExtensions("while true; do next; respond ok; done\n", {{"config", R"sh(
register INVOKE
exec 3<>"/dev/tcp/$host/$port"
body='{"errorMessage":"no configuration","errorType":"Extension.ConfigMissing"}'
printf 'POST /2020-01-01/extension/init/error HTTP/1.1\r\nHost: x\r\nLambda-Extension-Identifier: %s\r\nLambda-Extension-Function-Error-Type: Extension.ConfigMissing\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$ext_id" "${#body}" "$body" >&3
cat <&3 >/dev/null
sleep 1000
)sh"}}));
  http::ClientResponse r = Invoke("broken", "{}");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.headers["x-amz-function-error"], "Unhandled");
  Json error = Json::parse(r.body);
  EXPECT_EQ(error["errorType"], "Extension.ConfigMissing");
  EXPECT_EQ(error["errorMessage"], "no configuration");
}

// A tenant sidecar: notes every event it hears, with its tenant and whether it can see any
// function runtime's process (it must not: its sandbox is its own).
constexpr char kLedger[] = R"sh(
register INVOKE SHUTDOWN
while true; do
  next_event
  [ -n "$event_type" ] || exit 0
  seen=$(grep -l '[b]ootstrap' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
  echo "ledger $FPGAHOST_TENANT $event_type $request_id$shutdown_reason bootstraps-seen=$seen"
done
)sh";

// The function answers with how many processes named ledger it can see in its own sandbox.
constexpr char kLedgerless[] = R"sh(
while true; do
  next
  here=$(grep -l '[l]edger' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
  respond "{\"ledgers_here\":$here}"
done
)sh";

TEST_F(ExtensionsTest, TenantSidecarsRunOncePerTenantBesideItsSlotsAndHearOnlyItsCalls) {
  std::string zip = FunctionWithExtensions(kLedgerless, {{"ledger", kLedger}});
  auto create = [&](const std::string& name, const std::string& token) {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"MemorySize", 128},
                 {"TenantSidecars", {"ledger"}},
                 {"Code", {{"ZipFile", Base64Encode(zip)}}}};
    return daemon_->Call("POST", "/2015-03-31/functions", token, body.dump());
  };
  http::ClientResponse tenant = Post("/v1/tenants", {{"name", "other"}});
  ASSERT_EQ(tenant.status, 201u) << tenant.body;
  std::string other = Json::parse(tenant.body)["token"]["secret"];
  ASSERT_EQ(create("a", demo_).status, 201u);
  ASSERT_EQ(create("b", demo_).status, 201u);
  ASSERT_EQ(create("c", other).status, 201u);

  std::vector<std::string> demo_ids, other_ids;
  for (const char* name : {"a", "b", "a"}) {
    http::ClientResponse r = Invoke(name, "{}");
    ASSERT_EQ(r.status, 200u) << r.body;
    // The sidecar is not in the function's sandbox.
    EXPECT_EQ(Json::parse(r.body)["ledgers_here"], 0) << r.body;
    demo_ids.push_back(r.headers["x-amzn-requestid"]);
  }
  http::ClientResponse r =
      daemon_->Call("POST", "/2015-03-31/functions/c/invocations", other, "{}");
  ASSERT_EQ(r.status, 200u) << r.body;
  other_ids.push_back(r.headers["x-amzn-requestid"]);

  // One sidecar sandbox per tenant: demo's heard its three calls, other's its one.
  auto sidecars = [&](const std::string& token) {
    Json out = Json::array();
    Json all = Json::parse(daemon_->Call("GET", "/v1/function-slots", token).body)["slots"];
    for (const Json& s : all) {
      if (s["kind"] == "tenant-sidecar") out.push_back(s);
    }
    return out;
  };
  Json mine;
  for (int i = 0; i < 200; ++i) {
    mine = sidecars(demo_);
    if (mine.size() == 1 && mine[0]["events"] == 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(mine.size(), 1u) << mine.dump(2);
  EXPECT_EQ(mine[0]["events"], 3) << mine.dump(2);
  EXPECT_EQ(mine[0]["slots_using"], 2);  // a's slot and b's
  EXPECT_EQ(mine[0]["extensions"][0]["name"], "ledger");
  std::string log = mine[0]["log_tail"];
  for (const std::string& id : demo_ids) {
    EXPECT_THAT(log, HasSubstr("ledger demo INVOKE " + id + " bootstraps-seen=0"));
  }
  EXPECT_THAT(log, Not(HasSubstr(other_ids[0])));
  Json theirs;
  for (int i = 0; i < 200; ++i) {
    theirs = sidecars(other);
    if (theirs.size() == 1 && theirs[0]["events"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(theirs.size(), 1u) << theirs.dump(2);
  EXPECT_NE(theirs[0]["name"], mine[0]["name"]);
  EXPECT_THAT(theirs[0]["log_tail"].get<std::string>(),
              HasSubstr("ledger other INVOKE " + other_ids[0]));
  for (const std::string& id : demo_ids) {
    EXPECT_THAT(theirs[0]["log_tail"].get<std::string>(), Not(HasSubstr(id)));
  }
  // The slots run without it.
  for (const Json& s : Slots()) {
    if (s["kind"] == "function") {
      EXPECT_EQ(s["isolation"]["extensions"], Json::array());
    }
  }

  // When the last slot using it retires, the sidecar sandbox goes too (after SHUTDOWN).
  ASSERT_EQ(daemon_->Call("DELETE", "/2015-03-31/functions/a", demo_).status, 204u);
  EXPECT_EQ(sidecars(demo_)[0]["slots_using"], 1);
  ASSERT_EQ(daemon_->Call("DELETE", "/2015-03-31/functions/b", demo_).status, 204u);
  EXPECT_TRUE(sidecars(demo_).empty());
  EXPECT_EQ(sidecars(other).size(), 1u);

  // A sidecar must be one of the bundle's extensions.
  Json bad = {{"FunctionName", "bad"},
              {"Runtime", "provided.al2023"},
              {"Role", "arn:aws:iam::123456789012:role/lambda"},
              {"TenantSidecars", {"shipper"}},
              {"Code", {{"ZipFile", Base64Encode(zip)}}}};
  http::ClientResponse refused = daemon_->Call("POST", "/2015-03-31/functions", demo_, bad.dump());
  EXPECT_EQ(refused.status, 400u) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("TenantSidecars: 'shipper' is not an extension"));
}

}  // namespace
}  // namespace fpgahost
