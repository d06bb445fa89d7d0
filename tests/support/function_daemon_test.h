// FleetDaemonTest for tests of function slots: the demo tenant's token (set by the test once
// the daemon runs), its invocation records and its slots as the API shows them.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "common/json.h"
#include "tests/support/fleet_daemon_test.h"

namespace fpgahost::testing {

class FunctionDaemonTest : public FleetDaemonTest {
 protected:
  // The record of the invocation whose answer is `answer` (its "request_id" field).
  Json Record(const Json& answer) {
    http::ClientResponse r = daemon_->Call(
        "GET", "/v1/invocations?request_id=" + answer["request_id"].get<std::string>(), demo_);
    EXPECT_EQ(r.status, 200u) << r.body;
    Json records = Json::parse(r.body)["invocations"];
    EXPECT_EQ(records.size(), 1u) << r.body;
    return records.empty() ? Json::object() : records[0];
  }

  Json Slots() {
    http::ClientResponse r = daemon_->Call("GET", "/v1/function-slots", demo_);
    EXPECT_EQ(r.status, 200u) << r.body;
    return Json::parse(r.body)["slots"];
  }

  // Waits (at most 30 s) until the slots are exactly `n`, all idle; false if they never are.
  bool WaitForIdleSlots(size_t n) {
    for (int i = 0; i < 300; ++i) {
      Json slots = Slots();
      size_t idle = 0;
      for (const Json& s : slots) idle += s["state"] == "idle" ? 1 : 0;
      if (idle == n && slots.size() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cerr << "fpgahostd's output:\n" << daemon_->process().output();  // why they did not
    return false;
  }

  std::string demo_;
};

}  // namespace fpgahost::testing
