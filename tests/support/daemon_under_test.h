// The real fpgahostd, started for one integration test on a free loopback port with the
// given data dir, and helpers to call it the way a client would.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "common/files.h"
#include "host/http/http_client.h"
#include "tests/support/process.h"

namespace fpgahost::testing {

class DaemonUnderTest {
 public:
  // Starts fpgahostd and waits (up to 20 s) for it to say where it listens; port() is 0 if
  // it did not. Its stderr goes to <data dir>/../<stderr_name>.
  explicit DaemonUnderTest(const std::filesystem::path& data_dir,
                           const std::vector<std::string>& extra_args = {},
                           const std::string& stderr_name = "stderr.log")
      : data_dir_(data_dir) {
    std::vector<std::string> argv = {BinaryPath("fpgahostd").string(), "--data-dir",
                                     data_dir.string(), "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<BackgroundProcess>(argv, data_dir.parent_path() / stderr_name);
    std::string line = process_->WaitForLine("listening on", std::chrono::seconds(20));
    std::smatch m;
    if (std::regex_search(line, m, std::regex(R"(http://127\.0\.0\.1:(\d+))"))) {
      port_ = static_cast<uint16_t>(std::stoi(m[1]));
      endpoint_ = m[0];
    }
  }

  uint16_t port() const { return port_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  const std::string& endpoint() const { return endpoint_; }
  BackgroundProcess& process() { return *process_; }

  // The secret in <data dir>/tokens/<name>.token ("operator", "demo").
  std::string Token(const std::string& name) const {
    auto t = ReadFile(TokenFile(name));
    return t.ok() ? t->substr(0, t->find('\n')) : "";
  }
  std::filesystem::path TokenFile(const std::string& name) const {
    return data_dir_ / "tokens" / (name + ".token");
  }

  // One HTTP call; a transport failure is a test failure and an empty response.
  http::ClientResponse Call(const std::string& method, const std::string& target,
                            const std::string& token = "", const std::string& body = "",
                            const std::map<std::string, std::string>& headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    for (const auto& [name, value] : headers) req.headers[name] = value;
    if (!token.empty()) req.headers["Authorization"] = "Bearer " + token;
    auto r = http::Send(http::Endpoint{"127.0.0.1", port_}, req);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::ClientResponse{};
  }

 private:
  std::filesystem::path data_dir_;
  std::unique_ptr<BackgroundProcess> process_;
  uint16_t port_ = 0;
  std::string endpoint_;
};

}  // namespace fpgahost::testing
