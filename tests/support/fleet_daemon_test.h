// A test fixture for the daemon on an emulated fleet: `fpgahost emu init` makes a 4-card fleet
// in a temporary directory, StartDaemon (re)starts the real fpgahostd on it with the emulated
// XRT and xbmgmt, and helpers drive the API and the CLI as the operator (or any token).
//
// Needs the test target to define XRT_EMU_LIBRARY and XBMGMT_EMU (the built emulated tools)
// and to depend on fpgahostd, fpgahost, xrt_emu and xbmgmt.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "host/http/http_client.h"
#include "tests/support/daemon_under_test.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::testing {

class FleetDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunResult init = Cli({"emu", "init", Fleet().string(), "--cards", "4", "--load-ms", "0"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
  }

  std::filesystem::path Fleet() const { return dir_.path() / "fleet"; }

  // Starts (or restarts) fpgahostd on the fleet; `overrides` replace default options.
  void StartDaemon(const std::map<std::string, std::string>& overrides = {}) {
    std::map<std::string, std::string> options = {{"--sysfs-root", Fleet().string()},
                                                  {"--xrt-library", XRT_EMU_LIBRARY},
                                                  {"--xbmgmt", XBMGMT_EMU},
                                                  {"--card-scan-interval", "0.1"},
                                                  {"--card-load-timeout", "5"}};
    for (const auto& [k, v] : overrides) options[k] = v;
    std::vector<std::string> args;
    for (const auto& [k, v] : options) args.insert(args.end(), {k, v});
    daemon_.reset();
    daemon_ = std::make_unique<DaemonUnderTest>(dir_.path() / "data", args);
    ASSERT_NE(daemon_->port(), 0) << daemon_->process().output();
    op_ = daemon_->Token("operator");
  }

  // Runs the CLI against the daemon (when it runs) with the token file of `who`.
  RunResult Cli(std::vector<std::string> args, const std::string& who = "operator") {
    std::vector<std::string> argv = {BinaryPath("fpgahost").string()};
    if (daemon_) {
      argv.insert(argv.end(), {"--endpoint", daemon_->endpoint(), "--token-file",
                               daemon_->TokenFile(who).string()});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  void Fault(const std::string& card, const std::string& kind, const std::string& value = "") {
    std::vector<std::string> args = {
        BinaryPath("fpgahost").string(), "emu", "fault", Fleet().string(), card, kind};
    if (!value.empty()) args.push_back(value);
    RunResult r = RunCommand(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // GETs `target` expecting 200, with the operator's token unless another is given.
  Json Get(const std::string& target, const std::string& token = "") {
    http::ClientResponse r = daemon_->Call("GET", target, token.empty() ? op_ : token);
    EXPECT_EQ(r.status, 200u) << target << ": " << r.body;
    return Json::parse(r.body, nullptr, false);
  }

  http::ClientResponse Post(const std::string& target, const Json& body = Json::object()) {
    return daemon_->Call("POST", target, op_, body.dump());
  }

  // Uploads an xclbin with `token` (the operator's by default) and waits until it is
  // available; returns its id.
  std::string UploadFile(const std::filesystem::path& file, const std::string& token = "") {
    const std::string& who = token.empty() ? op_ : token;
    http::ClientRequest req;
    req.method = "POST";
    req.target = "/v1/images?name=" + file.stem().string();
    req.headers["Authorization"] = "Bearer " + who;
    auto r = http::SendFile(http::Endpoint{"127.0.0.1", daemon_->port()}, req, file.string());
    EXPECT_TRUE(r.ok() && r->status == 202) << (r.ok() ? r->body : r.status().ToString());
    if (!r.ok() || r->status != 202) return "";
    std::string id = Json::parse(r->body)["id"];
    for (int i = 0; i < 500 && Get("/v1/images/" + id, who)["state"] == "pending"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(Get("/v1/images/" + id, who)["state"], "available");
    return id;
  }

  // Polls GET `target` until `done` holds (up to 60 s) and returns the last answer.
  template <typename Pred>
  Json Poll(const std::string& target, Pred done, const std::string& token = "") {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    Json v = Get(target, token);
    while (!done(v) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      v = Get(target, token);
    }
    EXPECT_TRUE(done(v)) << target << ": " << v.dump(2);
    return v;
  }

  TempDir dir_;
  std::unique_ptr<DaemonUnderTest> daemon_;
  std::string op_;
};

}  // namespace fpgahost::testing
