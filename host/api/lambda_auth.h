// Authentication and errors for the Lambda-compatible API (/2015-03-31/functions...): the
// callers are the AWS CLI and SDKs, which sign with SigV4 and read errors the way Lambda
// writes them; fpgahost's own bearer tokens are accepted too.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "host/api/api.h"
#include "host/auth/credentials.h"
#include "host/auth/tokens.h"
#include "host/http/http_types.h"

namespace fpgahost::api {

// Lambda's exception name for a failed Status: its reason when that is one (ends in
// "Exception"), else one chosen by its code.
std::string LambdaExceptionName(const Status& s);

// An error as Lambda answers it: its HTTP status (403 for authentication failures, 400 for
// IncompleteSignatureException, else the usual table), `x-amzn-ErrorType: <exception>`,
// `x-amzn-RequestId` and the body {"Type": "User" (or "Service"), "message": "..."}.
http::Response LambdaError(const Status& s, std::string_view request_id);

// A handler that first authenticates the caller the way Lambda does, answering failures
// with LambdaError:
//   - no Authorization header: 403 MissingAuthenticationTokenException;
//   - "Bearer <token>": an fpgahost API token; an unknown one is 403
//     UnrecognizedClientException;
//   - "AWS4-HMAC-SHA256 ...": a SigV4 signature (host/auth/sigv4.h, service "lambda") by
//     one of `keys`; the caller is the key's tenant with the customer role;
//   - a role below `min_role`: 403 AccessDeniedException.
// Verification hashes the body on the calling (I/O) thread.
http::Handler LambdaAuthed(TokenAuthenticator& tokens, CredentialStore& keys, const Clock& clock,
                           Role min_role, AuthedHandler handler);

}  // namespace fpgahost::api
