// Requests and responses as the API handlers see them: plain values, no Beast types, so
// handlers and their tests do not depend on the transport.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace fpgahost::http {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // as sent: path and query
  std::string path;                            // decoded path, no query
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> params;   // {name} segments of the matched route
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string request_id;
  std::string remote;  // "ip:port" of the peer

  // The header's value, or "" when absent. `name` in lower case.
  std::string_view Header(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Completes a request. Call exactly once, from any thread, at any time: a handler may keep
// it while it waits for work elsewhere (a long poll holds no thread).
using Responder = std::function<void(Response)>;

using Handler = std::function<void(Request&, Responder)>;

}  // namespace fpgahost::http
