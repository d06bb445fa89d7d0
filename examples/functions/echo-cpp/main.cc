// echo-cpp: a Lambda custom runtime (`provided.al2023`) in C++ with nothing but POSIX sockets,
// libc and libstdc++, so it runs in a slot that sees only the host's /usr.
//
// Each invocation's event is posted back as its response, byte for byte, and one line is logged
// to stdout. An event holding "fail": true is reported as a function error instead (errorType
// EchoError), to show how function errors look to callers.
//
// It sits on the warm-invoke path, so it talks to the Runtime API through the shared
// RuntimeClient (../common/runtime_client.h: one keep-alive connection, TCP_NODELAY, one
// sendmsg per request, buffers reused): after the largest event so far, an invocation allocates
// nothing. When the Runtime API goes away the runtime exits, as on Lambda.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "examples/functions/common/runtime_client.h"

namespace {

using fpgahost::examples::Die;
using fpgahost::examples::kInvocationPath;
using fpgahost::examples::kNextPath;
using fpgahost::examples::RuntimeClient;
using fpgahost::examples::RuntimeResponse;

constexpr std::string_view kName = "echo-cpp";
constexpr std::string_view kFailError =
    R"({"errorMessage":"asked to fail","errorType":"EchoError"})";

// The event asks to fail: it holds "fail" followed by `:` and `true` (whitespace allowed).
bool AsksToFail(std::string_view event) {
  constexpr std::string_view kKey = "\"fail\"";
  for (size_t at = event.find(kKey); at != std::string_view::npos; at = event.find(kKey, at + 1)) {
    std::string_view rest = event.substr(at + kKey.size());
    auto skip_space = [&rest] {
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' ||
                               rest.front() == '\n' || rest.front() == '\r')) {
        rest.remove_prefix(1);
      }
    };
    skip_space();
    if (rest.empty() || rest.front() != ':') continue;
    rest.remove_prefix(1);
    skip_space();
    if (rest.starts_with("true")) return true;
  }
  return false;
}

void Log(std::string_view id, size_t bytes) {
  char line[400];
  int n = std::snprintf(line, sizeof(line), "echo-cpp: request %.*s (%zu bytes)\n",
                        static_cast<int>(std::min<size_t>(id.size(), 300)), id.data(), bytes);
  // One write per line, unbuffered: the line reaches the log even if the slot is killed next.
  if (n > 0) {
    ssize_t ignored = ::write(1, line, std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1));
    (void)ignored;
  }
}

}  // namespace

int main() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (api == nullptr || *api == '\0') Die(kName, "AWS_LAMBDA_RUNTIME_API is not set");
  RuntimeClient client(api, kName);
  RuntimeResponse next;
  RuntimeResponse ack;
  next.request_id.reserve(256);
  while (true) {
    client.Exchange("GET", kNextPath, "", "", "", "", next);
    if (next.status != 200 || next.request_id.empty()) {
      std::fprintf(stderr, "echo-cpp: invocation/next answered %d: %s\n", next.status,
                   next.body.c_str());
      return 1;
    }
    Log(next.request_id, next.body.size());
    if (AsksToFail(next.body)) {
      client.Exchange("POST", kInvocationPath, next.request_id, "/error",
                      "Lambda-Runtime-Function-Error-Type: EchoError\r\n", kFailError, ack);
    } else {
      client.Exchange("POST", kInvocationPath, next.request_id, "/response", "", next.body, ack);
    }
    if (ack.status != 202) {
      // Lambda refused the answer (too large, a stale id): say so and carry on, as Lambda's own
      // runtimes do.
      std::fprintf(stderr, "echo-cpp: request %s: the Runtime API answered %d: %s\n",
                   next.request_id.c_str(), ack.status, ack.body.c_str());
    }
  }
}
