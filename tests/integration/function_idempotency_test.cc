// Idempotent reuse against the real fpgahostd and real bubblewrap slots: a call whose function
// version, input and dependencies (files under the tenant's data root, images, other
// functions) match an earlier success gets that result without running; any change runs it
// again; identical calls that arrive together run once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "common/json.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/fleet_daemon_test.h"

namespace fpgahost {
namespace {

using testing::Function;
using ::testing::HasSubstr;

// Counts its runs in its slot's /tmp; sleeps for the event's "sleep" seconds; fails when asked.
constexpr char kCounted[] = R"(
while true; do
  next
  n=$(( $(cat /tmp/runs 2>/dev/null || echo 0) + 1 )); echo "$n" > /tmp/runs
  [[ $event =~ \"sleep\":([0-9.]+) ]] && sleep "${BASH_REMATCH[1]}"
  if [[ $event == *'"fail":true'* ]]; then
    fail "{\"errorType\":\"Asked\",\"errorMessage\":\"run $n\"}"
  else
    respond "{\"runs\":$n}"
  fi
done
)";

class FunctionIdempotencyTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    FleetDaemonTest::SetUp();
    StartDaemon({{"--function-idle-timeout", "60"}});
    demo_ = daemon_->Token("demo");
    Create("counted");
  }

  void Create(const std::string& name) {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "handler"},
                 {"MemorySize", 128},
                 {"Timeout", 30},
                 {"Code", {{"ZipFile", Base64Encode(Function(kCounted))}}}};
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  http::ClientResponse Declare(const std::string& spec) {
    return daemon_->Call("PUT", "/v1/functions/counted/idempotency", demo_, spec);
  }

  struct Answer {
    unsigned status = 0;
    std::string body;
    std::string request_id;
    std::string reused_from;
  };
  Answer Invoke(const std::string& payload) {
    http::ClientResponse r =
        daemon_->Call("POST", "/2015-03-31/functions/counted/invocations", demo_, payload);
    return {r.status, r.body, r.headers["x-amzn-requestid"], r.headers["x-fpgahost-reused-from"]};
  }

  Json Record(const std::string& request_id) {
    http::ClientResponse r =
        daemon_->Call("GET", "/v1/invocations?request_id=" + request_id, demo_);
    EXPECT_EQ(r.status, 200u) << r.body;
    Json records = Json::parse(r.body)["invocations"];
    EXPECT_EQ(records.size(), 1u) << r.body;
    return records.empty() ? Json::object() : records[0];
  }

  // A file under the demo tenant's data root (<data dir>/function-data/demo).
  void WriteData(const std::string& path, const std::string& text) {
    std::filesystem::path p = daemon_->data_dir() / "function-data" / "demo" / path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  std::string demo_;
};

TEST_F(FunctionIdempotencyTest, AnIdenticalCallReusesTheResultUntilADependencyChanges) {
  WriteData("model.txt", "v1");
  http::ClientResponse declared = Declare(
      R"({"files": ["model.txt"], "functions": ["helper"], "images": ["img-0123456789abcdef0"],
          "ttl_seconds": 600})");
  ASSERT_EQ(declared.status, 200u) << declared.body;
  EXPECT_EQ(Json::parse(declared.body)["idempotency"]["files"], Json::array({"model.txt"}));

  Answer first = Invoke(R"({"x":1})");
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(first.body, R"({"runs":1})");
  EXPECT_EQ(first.reused_from, "");

  // The same input, nothing changed: the same result, without running.
  Answer again = Invoke(R"({"x":1})");
  EXPECT_EQ(again.body, R"({"runs":1})");
  EXPECT_EQ(again.reused_from, first.request_id);
  EXPECT_NE(again.request_id, first.request_id);
  Json record = Record(again.request_id);
  EXPECT_EQ(record["start"], "reused");
  EXPECT_EQ(record["reused_from"], first.request_id);
  EXPECT_EQ(record["state"], "succeeded");

  // Another input runs.
  EXPECT_EQ(Invoke(R"({"x":2})").body, R"({"runs":2})");
  // A file it depends on changed: runs again, then is reused again.
  WriteData("model.txt", "v2, retrained");
  EXPECT_EQ(Invoke(R"({"x":1})").body, R"({"runs":3})");
  EXPECT_EQ(Invoke(R"({"x":1})").body, R"({"runs":3})");
  // A function it depends on appeared.
  Create("helper");
  EXPECT_EQ(Invoke(R"({"x":1})").body, R"({"runs":4})");
  Answer reused = Invoke(R"({"x":1})");
  EXPECT_EQ(reused.body, R"({"runs":4})");
  EXPECT_FALSE(reused.reused_from.empty());

  // No longer idempotent: every call runs.
  ASSERT_EQ(daemon_->Call("DELETE", "/v1/functions/counted/idempotency", demo_).status, 204u);
  EXPECT_EQ(Invoke(R"({"x":1})").body, R"({"runs":5})");
  http::ClientResponse shown = daemon_->Call("GET", "/v1/functions/counted/idempotency", demo_);
  EXPECT_TRUE(Json::parse(shown.body)["idempotency"].is_null()) << shown.body;
}

TEST_F(FunctionIdempotencyTest, IdenticalCallsAtOnceRunOnceAndShareTheResult) {
  ASSERT_EQ(Declare(R"({})").status, 200u);
  std::vector<std::future<Answer>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return Invoke(R"({"sleep":1})"); }));
  }
  std::vector<Answer> answers;
  for (auto& c : calls) answers.push_back(c.get());
  std::string ran;
  int reused = 0;
  for (const Answer& a : answers) {
    ASSERT_EQ(a.status, 200u) << a.body;
    EXPECT_EQ(a.body, R"({"runs":1})");
    if (a.reused_from.empty()) {
      EXPECT_EQ(ran, "") << "two calls ran";
      ran = a.request_id;
    } else {
      ++reused;
    }
  }
  EXPECT_EQ(reused, 4);
  for (const Answer& a : answers) {
    if (!a.reused_from.empty()) {
      EXPECT_EQ(a.reused_from, ran);
    }
  }
}

TEST_F(FunctionIdempotencyTest, FailuresAreNotReusedAndResultsExpire) {
  ASSERT_EQ(Declare(R"({"ttl_seconds": 1})").status, 200u);
  Answer failed = Invoke(R"({"fail":true})");
  EXPECT_THAT(failed.body, HasSubstr("run 1"));
  Answer failed_again = Invoke(R"({"fail":true})");
  EXPECT_THAT(failed_again.body, HasSubstr("run 2"));
  EXPECT_EQ(failed_again.reused_from, "");

  EXPECT_EQ(Invoke(R"({"y":1})").body, R"({"runs":3})");
  EXPECT_EQ(Invoke(R"({"y":1})").body, R"({"runs":3})");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Invoke(R"({"y":1})").body, R"({"runs":4})");
}

TEST_F(FunctionIdempotencyTest, BadDeclarationsAreRefused) {
  struct Case {
    std::string body;
    std::string needle;
  };
  for (const Case& c : {
           Case{R"({"files": ["/etc/shadow"]})", "files: '/etc/shadow'"},
           Case{R"({"files": ["../other-tenant/x"]})", "without '..'"},
           Case{R"({"images": ["ami-1"]})", "images: 'ami-1'"},
           Case{R"({"ttl_seconds": 0})", "ttl_seconds"},
           Case{R"({"depends": []})", "depends"},
       }) {
    http::ClientResponse r = Declare(c.body);
    EXPECT_EQ(r.status, 400u) << c.body << " -> " << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.needle)) << c.body;
  }
  EXPECT_EQ(daemon_->Call("PUT", "/v1/functions/nonesuch/idempotency", demo_, "{}").status, 404u);
  // Nothing was declared: calls run every time.
  EXPECT_EQ(Invoke("{}").body, R"({"runs":1})");
  EXPECT_EQ(Invoke("{}").body, R"({"runs":2})");
}

}  // namespace
}  // namespace fpgahost
