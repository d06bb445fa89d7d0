// Maps (method, path) to handlers. Patterns are literal segments and "{name}" segments,
// e.g. "/v1/images/{id}/permissions"; a "{name}" matches one non-empty segment and lands
// in Request::params. Register everything before the server starts; Match is then safe
// to call from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/http/http_types.h"

namespace fpgahost::http {

struct RouteOptions {
  // Largest request body this route accepts; 0 means the server's default.
  size_t max_body_bytes = 0;
};

class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  // A route whose body is streamed to a BodySink instead of being read into memory.
  void AddStreaming(std::string method, std::string pattern, StreamHandler handler,
                    RouteOptions options = {});

  struct Match {
    const Handler* handler = nullptr;               // set for ordinary routes
    const StreamHandler* stream_handler = nullptr;  // set for streaming routes
    bool found() const { return handler != nullptr || stream_handler != nullptr; }
    RouteOptions options;
    std::map<std::string, std::string> params;
    bool path_known = false;  // the path matched some route, with another method
  };
  Match Find(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    StreamHandler stream_handler;
    RouteOptions options;
  };
  std::vector<Route> routes_;
};

// Splits "a/b%20c?x=1&y" into the decoded path "a/b c" and the query {x: 1, y: ""}.
// Returns false when the percent-encoding is malformed.
bool SplitTarget(std::string_view target, std::string& path,
                 std::map<std::string, std::string>& query);

}  // namespace fpgahost::http
