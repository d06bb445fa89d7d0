// A small blocking HTTP/1.1 client for the CLI and the integration tests. One request per
// call on a fresh connection. Thread-compatible (no shared state).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::http {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

// Parses "http://host:port" (a trailing "/" allowed). Errors name the bad part.
StatusOr<Endpoint> ParseEndpoint(std::string_view url);

struct ClientResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::map<std::string, std::string> headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};
};

// Sends the request and reads the whole response. Errors: Unavailable when the server
// cannot be reached ("cannot connect to 127.0.0.1:8080: Connection refused"),
// DeadlineExceeded on timeout. An HTTP error status is not an error here.
StatusOr<ClientResponse> Send(const Endpoint& endpoint, const ClientRequest& request);

// As Send, with the body streamed from `body_file` (request.body is ignored) so memory stays
// flat whatever the file's size. `progress`, when set, is called with bytes sent so far.
StatusOr<ClientResponse> SendFile(
    const Endpoint& endpoint, const ClientRequest& request, const std::string& body_file,
    const std::function<void(uint64_t sent, uint64_t total)>& progress = nullptr);

}  // namespace fpgahost::http
