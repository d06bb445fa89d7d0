#include "host/http/errors.h"

#include "common/json.h"

namespace fpgahost::http {

unsigned HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kPayloadTooLarge:
      return 413;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kDataLoss:
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

Response ErrorResponse(const Status& status, std::string_view request_id) {
  Json body = {{"error",
                {{"code", std::string(status.reason())},
                 {"message", std::string(status.message())},
                 {"request_id", std::string(request_id)}}}};
  Response r;
  r.status = HttpStatusFor(status.code());
  r.body = body.dump();
  if (status.code() == StatusCode::kUnauthenticated) {
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"fpgahost\"");
  }
  return r;
}

Response JsonResponse(std::string body, unsigned http_status) {
  Response r;
  r.status = http_status;
  r.body = std::move(body);
  return r;
}

}  // namespace fpgahost::http
