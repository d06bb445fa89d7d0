#include "host/api/api.h"

#include <fmt/format.h>

#include <charconv>

namespace fpgahost::api {

http::Handler Authed(TokenAuthenticator& auth, Role min_role, AuthedHandler handler) {
  return [&auth, min_role, handler = std::move(handler)](http::Request& req,
                                                         http::Responder respond) {
    StatusOr<Principal> who = auth.Authenticate(req.Header("authorization"));
    if (!who.ok()) return respond(http::ErrorResponse(who.status(), req.request_id));
    if (min_role == Role::kOperator && who->role != Role::kOperator) {
      return respond(http::ErrorResponse(
          PermissionDeniedError(fmt::format("{} {} needs an operator token", req.method, req.path),
                                "OPERATOR_ONLY"),
          req.request_id));
    }
    handler(req, *who, std::move(respond));
  };
}

void RespondFromPool(ThreadPool& pool, const http::Request& request, http::Responder respond,
                     std::function<StatusOr<Json>()> work, unsigned ok_status) {
  pool.Post([request_id = request.request_id, respond = std::move(respond), work = std::move(work),
             ok_status]() {
    StatusOr<Json> result = work();
    if (!result.ok()) return respond(http::ErrorResponse(result.status(), request_id));
    if (ok_status == 204) {
      http::Response none;
      none.status = 204;
      return respond(std::move(none));
    }
    // Replace rather than throw on bytes that are not UTF-8 (e.g. a function's log).
    respond(http::JsonResponse(result->dump(-1, ' ', false, Json::error_handler_t::replace),
                               ok_status));
  });
}

StatusOr<int64_t> QueryInteger(const http::Request& req, const std::string& key, int64_t fallback,
                               int64_t min, int64_t max) {
  auto it = req.query.find(key);
  if (it == req.query.end()) return fallback;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
    return InvalidArgumentError(
        fmt::format("query parameter '{}' must be an integer from {} to {}", key, min, max),
        "INVALID_FIELD");
  }
  return v;
}

}  // namespace fpgahost::api
