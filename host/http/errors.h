// The one table from Status to HTTP, and the JSON error envelope every API error uses:
//   {"error": {"code": "<reason>", "message": "...", "request_id": "..."}}
#pragma once

#include <string_view>

#include "common/status.h"
#include "host/http/http_types.h"

namespace fpgahost::http {

// 400, 404, 409, ... for a failed Status.
unsigned HttpStatusFor(StatusCode code);

// The error envelope for `status` (which must not be OK).
Response ErrorResponse(const Status& status, std::string_view request_id);

// A 200 (or `http_status`) JSON response.
Response JsonResponse(std::string body, unsigned http_status = 200);

}  // namespace fpgahost::http
