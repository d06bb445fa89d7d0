// Running functions: Lambda's Invoke (POST /2015-03-31/functions/{name}/invocations) as the
// AWS CLI and SDKs call it, with fpgahost's affinity header X-Fpgahost-Routing-Key; pre-trigger
// notifications (POST /v1/functions/{name}/prewarm); and fpgahost's own views of what ran:
// GET /v1/invocations (records and logs) and GET /v1/function-slots (the warm slots and the
// isolation in force in each).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "common/base64.h"
#include "host/api/api.h"
#include "host/api/lambda_auth.h"
#include "host/functions/invocation_records.h"
#include "host/functions/invoker.h"

namespace fpgahost::api {
namespace {

using functions::InvocationType;
using functions::InvokeRequest;
using functions::InvokeResponse;

// Bodies over the synchronous limit are read up to this much, so the caller gets Lambda's
// RequestTooLargeException rather than the server's own 413.
constexpr size_t kInvokeBodyCap = 2 * functions::kMaxSyncPayloadBytes;

std::string Header(const http::Request& req, const std::string& name) {
  auto it = req.headers.find(name);
  return it == req.headers.end() ? "" : it->second;
}

StatusOr<InvokeRequest> ParseInvoke(const http::Request& req, const Principal& who) {
  InvokeRequest r;
  r.tenant = who.tenant;
  r.function = req.params.at("name");
  std::string type = Header(req, "x-amz-invocation-type");
  if (type.empty() || type == "RequestResponse") {
    r.type = InvocationType::kRequestResponse;
  } else if (type == "Event") {
    r.type = InvocationType::kEvent;
  } else if (type == "DryRun") {
    r.type = InvocationType::kDryRun;
  } else {
    return InvalidArgumentError(
        fmt::format("1 validation error detected: Value '{}' at 'invocationType' failed to "
                    "satisfy constraint: Member must satisfy enum value set: [Event, "
                    "RequestResponse, DryRun]",
                    type),
        functions::kInvalidParameterValue);
  }
  std::string log_type = Header(req, "x-amz-log-type");
  if (log_type == "Tail") {
    r.log_tail = true;
  } else if (!log_type.empty() && log_type != "None") {
    return InvalidArgumentError(
        fmt::format("1 validation error detected: Value '{}' at 'logType' failed to satisfy "
                    "constraint: Member must satisfy enum value set: [None, Tail]",
                    log_type),
        functions::kInvalidParameterValue);
  }
  if (std::string q = req.query.contains("Qualifier") ? req.query.at("Qualifier") : "";
      !q.empty() && q != "$LATEST") {
    return NotFoundError(
        fmt::format("Function not found: {}:{} (fpgahost keeps only $LATEST)", r.function, q),
        functions::kResourceNotFound);
  }
  if (std::string context = Header(req, "x-amz-client-context"); !context.empty()) {
    std::optional<std::string> decoded = Base64Decode(context);
    if (!decoded || !Json::accept(*decoded)) {
      return InvalidArgumentError("X-Amz-Client-Context must be base64-encoded JSON",
                                  functions::kInvalidParameterValue);
    }
    r.client_context = *std::move(decoded);
  }
  r.trace_id = Header(req, "x-amzn-trace-id");
  r.routing_key = Header(req, "x-fpgahost-routing-key");
  if (r.routing_key.size() > functions::kMaxRoutingKeyBytes ||
      !std::all_of(r.routing_key.begin(), r.routing_key.end(),
                   [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    return InvalidArgumentError(
        fmt::format("X-Fpgahost-Routing-Key must be 1 to {} printable ASCII characters without "
                    "spaces",
                    functions::kMaxRoutingKeyBytes),
        functions::kInvalidParameterValue);
  }
  r.payload = req.body;
  return r;
}

http::Response InvokeAnswer(const InvokeResponse& r, std::string_view api_request_id) {
  if (!r.status.ok()) {
    http::Response error =
        LambdaError(r.status, r.request_id.empty() ? api_request_id : r.request_id);
    if (!r.throttle_reason.empty()) {
      // Lambda's TooManyRequestsException carries the kind of limit in "Reason".
      Json body = Json::parse(error.body, nullptr, false);
      if (body.is_object()) {
        body["Reason"] = r.throttle_reason;
        error.body = body.dump();
      }
    }
    return error;
  }
  http::Response res;
  res.status = r.http_status;
  if (r.http_status == 200) {
    res.body = r.payload;
    res.headers.emplace_back("Content-Type", "application/json");
    res.headers.emplace_back("X-Amz-Executed-Version", r.version);
    if (!r.function_error.empty())
      res.headers.emplace_back("X-Amz-Function-Error", r.function_error);
    if (!r.log_tail.empty()) res.headers.emplace_back("X-Amz-Log-Result", Base64Encode(r.log_tail));
    if (!r.reused_from.empty()) res.headers.emplace_back("X-Fpgahost-Reused-From", r.reused_from);
  }
  res.headers.emplace_back("x-amzn-RequestId",
                           r.request_id.empty() ? std::string(api_request_id) : r.request_id);
  return res;
}

struct Prewarm {
  int count = 0;
  std::chrono::seconds within{60};
};

// {"count": N, "within_seconds": T}: N from 1 to 1000, T from 1 to 3600 (default 60).
StatusOr<Prewarm> ParsePrewarm(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"count", "within_seconds"}));
  ASSIGN_OR_RETURN(int64_t count, GetField<int64_t>(j, "count"));
  ASSIGN_OR_RETURN(std::optional<int64_t> within, GetOptionalField<int64_t>(j, "within_seconds"));
  if (count < 1 || count > 1000) {
    return InvalidArgumentError(fmt::format("count must be from 1 to 1000, not {}", count),
                                "INVALID_FIELD");
  }
  if (within && (*within < 1 || *within > 3600)) {
    return InvalidArgumentError(
        fmt::format("within_seconds must be from 1 to 3600, not {}", *within), "INVALID_FIELD");
  }
  Prewarm p;
  p.count = static_cast<int>(count);
  if (within) p.within = std::chrono::seconds(*within);
  return p;
}

StatusOr<int> LimitParam(const http::Request& req) {
  auto it = req.query.find("limit");
  if (it == req.query.end()) return 50;
  int limit = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
  if (ec != std::errc() || end != it->second.data() + it->second.size() || limit < 1 ||
      limit > 1000) {
    return InvalidArgumentError("limit must be an integer from 1 to 1000", "INVALID_LIMIT");
  }
  return limit;
}

}  // namespace

void RegisterInvokeRoutes(http::Router& router, ApiContext& ctx, FunctionServices& services) {
  functions::Invoker& invoker = services.invoker;
  router.Add("POST", "/2015-03-31/functions/{name}/invocations",
             LambdaAuthed(
                 ctx.auth, services.keys, ctx.clock, Role::kCustomer,
                 [&invoker](http::Request& req, const Principal& who, http::Responder respond) {
                   StatusOr<InvokeRequest> parsed = ParseInvoke(req, who);
                   if (!parsed.ok()) return respond(LambdaError(parsed.status(), req.request_id));
                   invoker.Invoke(*std::move(parsed),
                                  [respond = std::move(respond), id = req.request_id](
                                      InvokeResponse r) mutable { respond(InvokeAnswer(r, id)); });
                 }),
             http::RouteOptions{kInvokeBodyCap});

  router.Add(
      "POST", "/v1/functions/{name}/prewarm",
      Authed(ctx.auth, Role::kCustomer,
             [&invoker](http::Request& req, const Principal& who, http::Responder respond) {
               StatusOr<Prewarm> args = ParsePrewarm(req.body);
               if (!args.ok()) return respond(http::ErrorResponse(args.status(), req.request_id));
               StatusOr<functions::PrewarmResult> r =
                   invoker.Prewarm(who.tenant, req.params.at("name"), args->count, args->within);
               if (!r.ok()) return respond(http::ErrorResponse(r.status(), req.request_id));
               Json body = {
                   {"function", req.params.at("name")}, {"requested", r->requested},
                   {"existing", r->existing},           {"starting", r->starting},
                   {"deferred", r->deferred},           {"within_seconds", args->within.count()}};
               respond(http::JsonResponse(body.dump(), 202));
             }));

  functions::InvocationRecords& records = services.records;
  router.Add(
      "GET", "/v1/invocations",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &records](http::Request& req, const Principal& who, http::Responder respond) {
               functions::InvocationQuery q;
               q.tenant = who.tenant;
               // The operator may look at any tenant's.
               if (who.role == Role::kOperator && req.query.contains("tenant")) {
                 q.tenant = req.query.at("tenant");
               }
               if (req.query.contains("function")) q.function = req.query.at("function");
               if (req.query.contains("request_id")) {
                 q.request_id = req.query.at("request_id");
               }
               q.with_logs = req.query.contains("logs") && req.query.at("logs") == "true";
               StatusOr<int> limit = LimitParam(req);
               if (!limit.ok()) {
                 return respond(http::ErrorResponse(limit.status(), req.request_id));
               }
               q.limit = *limit;
               RespondFromPool(ctx.blocking, req, std::move(respond),
                               [&records, q]() -> StatusOr<Json> {
                                 ASSIGN_OR_RETURN(std::vector<Json> found, records.Query(q));
                                 return Json{{"invocations", std::move(found)}};
                               });
             }));

  router.Add(
      "GET", "/v1/function-slots",
      Authed(ctx.auth, Role::kCustomer,
             [&invoker](http::Request&, const Principal& who, http::Responder respond) {
               std::string tenant = who.role == Role::kOperator ? "" : who.tenant;
               respond(http::JsonResponse(Json{{"slots", invoker.SlotsView(tenant)}}.dump(), 200));
             }));
}

}  // namespace fpgahost::api
