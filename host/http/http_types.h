// Requests and responses as the API handlers see them: plain values, no Beast types, so
// handlers and their tests do not depend on the transport.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

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

// Receives a large request body piece by piece as it arrives (image uploads), so memory
// stays flat whatever the body's size. The server calls Write for each piece in order,
// then exactly one of Finish (the whole body arrived) or Abort (the client went away, the
// body broke a limit, or Write failed). All calls come from one I/O thread at a time.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // An error ends the upload: the server answers with it (e.g. 400 for a header that is
  // already invalid), closes the connection and calls Abort.
  virtual Status Write(std::string_view piece) = 0;
  // The sink answers through the Responder it was given, now or later.
  virtual void Finish() = 0;
  // Nothing may be left behind. The server answers the client itself (if it still can).
  virtual void Abort(const Status& why) = 0;
};

// Called once the request header arrived, before any of the body is read: returns the sink
// for the body, or null after answering through the Responder (refused: bad token, bad
// parameters), in which case the body is not read.
using StreamHandler = std::function<std::unique_ptr<BodySink>(Request&, Responder)>;

}  // namespace fpgahost::http
