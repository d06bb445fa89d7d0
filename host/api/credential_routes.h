// /v1/credentials: a tenant's AWS-style access keys (host/auth/credentials.h), with which the
// AWS CLI and SDKs sign their calls to the Lambda-compatible API.
//   POST   /v1/credentials                   {"description"?} -> 201, the key and its secret
//                                            (shown only here)
//   GET    /v1/credentials                   -> {"credentials": [...]}, no secrets
//   DELETE /v1/credentials/{access_key_id}   -> 204
// Every caller manages the keys of its own tenant (the operator those of its tenant too).
#pragma once

#include "host/api/api.h"
#include "host/auth/credentials.h"
#include "host/http/router.h"

namespace fpgahost::api {

void RegisterCredentialRoutes(http::Router& router, ApiContext& ctx, CredentialStore& keys);

}  // namespace fpgahost::api
