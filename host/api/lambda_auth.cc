#include "host/api/lambda_auth.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/json.h"
#include "host/auth/sigv4.h"
#include "host/functions/function_registry.h"
#include "host/http/errors.h"

namespace fpgahost::api {

std::string LambdaExceptionName(const Status& s) {
  std::string_view reason = s.reason();
  if (reason.ends_with("Exception")) return std::string(reason);
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return functions::kInvalidParameterValue;
    case StatusCode::kNotFound:
      return functions::kResourceNotFound;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
      return functions::kResourceConflict;
    case StatusCode::kPayloadTooLarge:
      return functions::kRequestTooLarge;
    case StatusCode::kResourceExhausted:
      return "TooManyRequestsException";
    case StatusCode::kUnauthenticated:
      return sigv4::kUnrecognizedClient;
    case StatusCode::kPermissionDenied:
      return "AccessDeniedException";
    default:
      return "ServiceException";
  }
}

http::Response LambdaError(const Status& s, std::string_view request_id) {
  std::string type = LambdaExceptionName(s);
  http::Response r;
  // Lambda never answers 401: every authentication failure is a 403, except a malformed
  // signature header, which is the client's bad request.
  if (type == sigv4::kIncompleteSignature) {
    r.status = 400;
  } else if (s.code() == StatusCode::kUnauthenticated) {
    r.status = 403;
  } else {
    r.status = http::HttpStatusFor(s.code());
  }
  r.body = Json{{"Type", s.code() == StatusCode::kInternal ? "Service" : "User"},
                {"message", std::string(s.message())}}
               .dump();
  r.headers.emplace_back("x-amzn-ErrorType", type);
  r.headers.emplace_back("x-amzn-RequestId", std::string(request_id));
  return r;
}

http::Handler LambdaAuthed(TokenAuthenticator& tokens, CredentialStore& keys, const Clock& clock,
                           Role min_role, AuthedHandler handler) {
  return [&tokens, &keys, &clock, min_role, handler = std::move(handler)](http::Request& req,
                                                                          http::Responder respond) {
    std::string_view authorization = req.Header("authorization");
    Principal who;
    if (authorization.empty()) {
      return respond(LambdaError(
          UnauthenticatedError("Missing Authentication Token", sigv4::kMissingAuthenticationToken),
          req.request_id));
    }
    if (authorization.starts_with("Bearer ")) {
      StatusOr<Principal> token = tokens.Authenticate(authorization);
      if (!token.ok()) {
        return respond(LambdaError(
            UnauthenticatedError(sigv4::kUnrecognizedClientMessage, sigv4::kUnrecognizedClient),
            req.request_id));
      }
      who = *std::move(token);
    } else {
      std::string tenant;
      sigv4::Verification v = sigv4::Verify(
          sigv4::RequestView{req.method, req.target, req.headers, req.body},
          [&keys, &tenant](std::string_view id) -> std::optional<std::string> {
            std::optional<CredentialStore::Secret> key = keys.Lookup(id);
            if (!key) return std::nullopt;
            tenant = std::move(key->tenant);
            return std::move(key->secret_access_key);
          },
          clock);
      if (!v.status.ok()) {
        spdlog::info("{} {}: SigV4 refused{}: {}: {} ({})", req.method, req.path,
                     v.access_key_id.empty() ? "" : " for " + v.access_key_id, v.status.reason(),
                     v.status.message(), req.request_id);
        return respond(LambdaError(v.status, req.request_id));
      }
      who = Principal{std::move(tenant), Role::kCustomer, std::move(v.access_key_id)};
    }
    if (min_role == Role::kOperator && who.role != Role::kOperator) {
      return respond(LambdaError(
          PermissionDeniedError(fmt::format("{} {} needs an operator token", req.method, req.path),
                                "AccessDeniedException"),
          req.request_id));
    }
    handler(req, who, std::move(respond));
  };
}

}  // namespace fpgahost::api
