// What the tests of a slot's RuntimeApi share: the loopback socket the slot's creator hands it,
// an invocation as the invoker makes one, waiting for a condition, and collecting the results
// its `done` callbacks report.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/json.h"
#include "host/functions/runtime_api.h"
#include "host/http/http_client.h"

namespace fpgahost::testing {

// The X-Ray trace header of MakeInvocation's invocations.
inline constexpr char kTraceId[] =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

// What the slot's creator does inside the namespace: a socket listening on loopback.
inline int ListenLoopback() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 64) != 0) {
    ADD_FAILURE() << "cannot listen on loopback: " << std::strerror(errno);
  }
  return fd;
}

// Whether `condition` holds within 10 s.
inline bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

inline functions::Invocation MakeInvocation(std::string id, std::string payload = "{\"x\":1}") {
  functions::Invocation inv;
  inv.request_id = std::move(id);
  inv.payload = std::move(payload);
  inv.deadline =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'900'000'000'123));
  inv.function_arn = "arn:aws:lambda:us-east-1:123456789012:function:echo";
  inv.trace_id = kTraceId;
  return inv;
}

// The response's body as JSON (null when it is not JSON).
inline Json BodyJson(const http::ClientResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

// Collects what `done` callbacks report.
class Results {
 public:
  std::function<void(functions::InvocationResult)> Callback() {
    return [this](functions::InvocationResult r) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(std::move(r));
      cv_.notify_all();
    };
  }
  // The n-th result (1-based), once it arrived (within 10 s).
  std::optional<functions::InvocationResult> Wait(size_t n = 1) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return got_.size() >= n; })) {
      return std::nullopt;
    }
    return got_[n - 1];
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<functions::InvocationResult> got_;
};

}  // namespace fpgahost::testing
