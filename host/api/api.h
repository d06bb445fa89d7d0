// The REST API's shared plumbing: what handlers get to work with, and the wrappers that
// authenticate a caller before a handler runs.
#pragma once

#include <chrono>
#include <functional>

#include "common/clock.h"
#include "common/json.h"
#include "common/thread_pool.h"
#include "host/auth/tokens.h"
#include "host/http/errors.h"
#include "host/http/router.h"
#include "host/store/state_store.h"

namespace fpgahost {
class CardManager;
class CredentialStore;
class CapacityAccount;
class ImageRegistry;
class InstanceManager;
struct LoadRequest;
namespace images {
class BlobStore;
}  // namespace images
namespace functions {
class CardLender;
class ConcurrencyLimiter;
class FunctionRegistry;
class InvocationRecords;
class Invoker;
}  // namespace functions
}  // namespace fpgahost

namespace fpgahost::api {

struct ApiContext {
  TokenAuthenticator& auth;
  StateStore& store;
  const Clock& clock;
  ThreadPool& blocking;  // where handlers run anything that may block
  std::chrono::steady_clock::time_point started;
};

using AuthedHandler = std::function<void(http::Request&, const Principal&, http::Responder)>;

// A handler that first authenticates the caller: 401 without a valid token, 403 when the
// role is below `min_role`.
http::Handler Authed(TokenAuthenticator& auth, Role min_role, AuthedHandler handler);

// Runs `work` on the blocking pool and answers with its result: 200 (or `ok_status`) and
// the JSON it returns (no body for 204), or the error envelope.
void RespondFromPool(ThreadPool& pool, const http::Request& request, http::Responder respond,
                     std::function<StatusOr<Json>()> work, unsigned ok_status = 200);

// The integer query parameter `key`, `fallback` when absent; InvalidArgument (INVALID_FIELD)
// naming the parameter when it is not an integer from `min` to `max`.
StatusOr<int64_t> QueryInteger(const http::Request& req, const std::string& key, int64_t fallback,
                               int64_t min, int64_t max);

// Routes of the system API: /v1/health, /v1/version, /v1/whoami, /v1/tenants.
void RegisterSystemRoutes(http::Router& router, ApiContext& ctx);

// /v1/images and below.
void RegisterImageRoutes(http::Router& router, ApiContext& ctx, ImageRegistry& registry,
                         images::BlobStore& blobs);

// /v1/cards and below, and /v1/events (operator only).
void RegisterCardRoutes(http::Router& router, ApiContext& ctx, CardManager& cards,
                        ImageRegistry& registry, const images::BlobStore& blobs);

// The image a load request's body {"image_id": ...} names, checked to be visible to `who`
// (owned, shared with its tenant, or public) and available, resolved to what a load needs.
StatusOr<LoadRequest> ResolveLoadableImage(ImageRegistry& registry, const images::BlobStore& blobs,
                                           const Principal& who, std::string_view body);

// /v1/instances and below, /v1/instance-types (customers and the operator) and /v1/capacity
// (operator).
void RegisterInstanceRoutes(http::Router& router, ApiContext& ctx, InstanceManager& instances,
                            const CapacityAccount& capacity, ImageRegistry& registry,
                            const images::BlobStore& blobs);

// What the function routes work with.
struct FunctionServices {
  functions::FunctionRegistry& registry;
  functions::Invoker& invoker;
  functions::ConcurrencyLimiter& limiter;
  functions::InvocationRecords& records;
  CredentialStore& keys;  // SigV4 access keys
  std::string region;     // goes into ARNs
  // Checks the image an FPGA function declares; null on a host that lends no cards.
  functions::CardLender* cards = nullptr;
};

// AWS Lambda's control API under /2015-03-31/functions (and the concurrency routes), for
// the tenant of the caller's token.
void RegisterLambdaRoutes(http::Router& router, ApiContext& ctx, FunctionServices& services);

// Lambda's Invoke, GET /v1/invocations (records and logs) and GET /v1/function-slots.
void RegisterInvokeRoutes(http::Router& router, ApiContext& ctx, FunctionServices& services);

}  // namespace fpgahost::api
