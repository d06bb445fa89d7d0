// A small blocking HTTP/1.1 client for the CLI and the integration tests: Send and SendFile
// make one request on a fresh connection; a Connection keeps one open for many requests.
// Thread-compatible (no shared state; a Connection belongs to one thread at a time).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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

// One connection kept open between requests (HTTP/1.1 keep-alive), for a client that polls
// or sends many requests in a row: each request after the first saves the TCP handshake and
// the server's accept. Connects on the first Send and again after the server closed it; a
// request other than POST that finds a reused connection closed under it is sent once more on
// a new one (a POST is not: the server may have acted on it). Errors as Send.
class Connection {
 public:
  explicit Connection(Endpoint endpoint);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  StatusOr<ClientResponse> Send(const ClientRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fpgahost::http
