// AWS Lambda's control API, as the AWS CLI and SDKs call it with --endpoint-url:
// CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, DeleteFunction,
// PutFunctionConcurrency, GetFunctionConcurrency, DeleteFunctionConcurrency, under
// /2015-03-31/functions. Same JSON shapes and status codes as Lambda; errors carry Lambda's
// exception name in the x-amzn-ErrorType header and {"Type", "message"} in the body.
// Beside them, fpgahost's own setting (with /v1 errors): PUT|GET|DELETE
// /v1/functions/{name}/idempotency, which declares a function idempotent with its dependencies.
#include <fmt/format.h>

#include "common/base64.h"
#include "common/digest.h"
#include "common/ids.h"
#include "host/api/api.h"
#include "host/api/lambda_auth.h"
#include "host/functions/card_lender.h"
#include "host/functions/concurrency_limiter.h"
#include "host/functions/function_registry.h"
#include "host/functions/invoker.h"

namespace fpgahost::api {
namespace {

using functions::FunctionConfig;
using functions::FunctionRegistry;

// Lambda's limit for a zip sent in the request (50 MB), base64-encoded, plus the rest.
constexpr size_t kMaxCreateBody = (50u << 20) / 3 * 4 + (1u << 20);

http::Response LambdaJson(unsigned status, const Json& body) {
  http::Response r = http::JsonResponse(body.dump(), status);
  return r;
}

StatusOr<FunctionConfig> ParseCreate(const Principal& who, std::string_view body,
                                     std::string* zip) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object()) {
    return InvalidArgumentError("the request body is not a JSON object",
                                functions::kInvalidParameterValue);
  }
  auto text = [&](const char* key, std::string fallback = "") -> StatusOr<std::string> {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_string()) {
      return InvalidArgumentError(fmt::format("{} must be a string", key),
                                  functions::kInvalidParameterValue);
    }
    return j[key].get<std::string>();
  };
  auto integer = [&](const char* key, int fallback) -> StatusOr<int> {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number_integer()) {
      return InvalidArgumentError(fmt::format("{} must be an integer", key),
                                  functions::kInvalidParameterValue);
    }
    return j[key].get<int>();
  };
  FunctionConfig f;
  f.tenant = who.tenant;
  ASSIGN_OR_RETURN(f.name, text("FunctionName"));
  ASSIGN_OR_RETURN(f.runtime, text("Runtime", f.runtime));
  ASSIGN_OR_RETURN(f.handler, text("Handler"));
  ASSIGN_OR_RETURN(f.role, text("Role"));
  ASSIGN_OR_RETURN(f.description, text("Description"));
  ASSIGN_OR_RETURN(f.fpga_image, text("FpgaImage"));
  if (j.contains("TenantSidecars") && !j["TenantSidecars"].is_null()) {
    const Json& names = j["TenantSidecars"];
    if (!names.is_array() || names.size() > 10) {
      return InvalidArgumentError("TenantSidecars must be a list of at most 10 extension names",
                                  functions::kInvalidParameterValue);
    }
    for (const Json& name : names) {
      if (!name.is_string()) {
        return InvalidArgumentError("TenantSidecars must be a list of extension names",
                                    functions::kInvalidParameterValue);
      }
      f.tenant_sidecars.push_back(name.get<std::string>());
    }
  }
  ASSIGN_OR_RETURN(f.memory_mib, integer("MemorySize", f.memory_mib));
  ASSIGN_OR_RETURN(f.timeout_seconds, integer("Timeout", f.timeout_seconds));
  ASSIGN_OR_RETURN(std::string package_type, text("PackageType", "Zip"));
  if (package_type != "Zip") {
    return InvalidArgumentError("PackageType must be Zip: fpgahost does not run container images",
                                functions::kInvalidParameterValue);
  }
  if (j.contains("Environment") && j["Environment"].is_object() &&
      j["Environment"].contains("Variables")) {
    const Json& vars = j["Environment"]["Variables"];
    if (!vars.is_object()) {
      return InvalidArgumentError("Environment.Variables must be an object of strings",
                                  functions::kInvalidParameterValue);
    }
    for (const auto& [k, v] : vars.items()) {
      if (!v.is_string()) {
        return InvalidArgumentError(fmt::format("Environment.Variables.{} must be a string", k),
                                    functions::kInvalidParameterValue);
      }
      f.environment[k] = v.get<std::string>();
    }
  }
  if (!j.contains("Code") || !j["Code"].is_object() || !j["Code"].contains("ZipFile") ||
      !j["Code"]["ZipFile"].is_string()) {
    return InvalidArgumentError(
        "Code.ZipFile is required (a base64 zip with a bootstrap; S3 locations are not "
        "supported)",
        functions::kInvalidParameterValue);
  }
  std::optional<std::string> bytes = Base64Decode(j["Code"]["ZipFile"].get<std::string>());
  if (!bytes) {
    return InvalidArgumentError("Code.ZipFile is not base64", functions::kInvalidParameterValue);
  }
  *zip = std::move(*bytes);
  return f;
}

// The image an FPGA function declares must be one the tenant can load, on a host with cards.
Status CheckFpgaImage(functions::CardLender* cards, const std::string& tenant,
                      const std::string& image_id) {
  if (!IsValidId(image_id, "img")) {
    return InvalidArgumentError(
        fmt::format("FpgaImage must be an image id (img-...), not '{}'", image_id),
        functions::kInvalidParameterValue);
  }
  if (!cards) {
    return InvalidArgumentError("FpgaImage: this host lends no FPGA cards to functions",
                                functions::kInvalidParameterValue);
  }
  Status s = cards->CheckImage(tenant, image_id);
  if (s.ok()) return s;
  return InvalidArgumentError(fmt::format("FpgaImage {}: {}", image_id, s.message()),
                              functions::kInvalidParameterValue);
}

StatusOr<std::optional<int>> ParseConcurrency(std::string_view body) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("ReservedConcurrentExecutions") ||
      !j["ReservedConcurrentExecutions"].is_number_integer()) {
    return InvalidArgumentError("ReservedConcurrentExecutions must be an integer",
                                functions::kInvalidParameterValue);
  }
  return std::optional<int>(j["ReservedConcurrentExecutions"].get<int>());
}

Json ConcurrencyJson(const FunctionConfig& f) {
  return f.reserved_concurrency ? Json{{"ReservedConcurrentExecutions", *f.reserved_concurrency}}
                                : Json::object();
}

// PutFunctionConcurrency's check against the tenant's other reservations (Lambda keeps at
// least 100 unreserved).
Status CheckReservation(FunctionRegistry& registry, functions::ConcurrencyLimiter& limiter,
                        const std::string& tenant, const std::string& name,
                        std::optional<int> value) {
  ASSIGN_OR_RETURN(std::vector<FunctionConfig> all, registry.List(tenant));
  std::map<std::string, int, std::less<>> current;
  bool found = false;
  for (const FunctionConfig& f : all) {
    if (f.reserved_concurrency) current[f.name] = *f.reserved_concurrency;
    found = found || f.name == name;
  }
  // An unknown function is the registry's 404, not a reservation problem.
  if (!found) return Status::Ok();
  return limiter.CheckReservation(tenant, name, value, current);
}

}  // namespace

void RegisterLambdaRoutes(http::Router& router, ApiContext& ctx, FunctionServices& services) {
  FunctionRegistry& registry = services.registry;
  functions::Invoker& invoker = services.invoker;
  functions::ConcurrencyLimiter& limiter = services.limiter;
  std::string region = services.region;
  // Every handler runs on the blocking pool (SQLite, extraction) and answers Lambda-style.
  auto lambda = [&ctx, &keys = services.keys](auto work) {
    return LambdaAuthed(
        ctx.auth, keys, ctx.clock, Role::kCustomer,
        [&ctx, work](http::Request& req, const Principal& who, http::Responder respond) {
          ctx.blocking.Post([req, who, respond = std::move(respond), work]() mutable {
            StatusOr<http::Response> r = work(req, who);
            respond(r.ok() ? std::move(*r) : LambdaError(r.status(), req.request_id));
          });
        });
  };
  using R = StatusOr<http::Response>;
  using P = const Principal&;
  auto configuration = [region](const FunctionConfig& f) {
    return functions::FunctionConfigurationJson(f, region, functions::LambdaAccountId(f.tenant));
  };

  router.Add("POST", "/2015-03-31/functions",
             lambda([&registry, &services, configuration](http::Request& req, P who) -> R {
               std::string zip;
               ASSIGN_OR_RETURN(FunctionConfig f, ParseCreate(who, req.body, &zip));
               if (!f.fpga_image.empty()) {
                 RETURN_IF_ERROR(CheckFpgaImage(services.cards, who.tenant, f.fpga_image));
               }
               ASSIGN_OR_RETURN(FunctionConfig created, registry.Create(std::move(f), zip));
               return LambdaJson(201, configuration(created));
             }),
             http::RouteOptions{kMaxCreateBody});
  router.Add("GET", "/2015-03-31/functions/",
             lambda([&registry, configuration](http::Request&, P who) -> R {
               ASSIGN_OR_RETURN(std::vector<FunctionConfig> all, registry.List(who.tenant));
               Json list = Json::array();
               for (const FunctionConfig& f : all) list.push_back(configuration(f));
               return LambdaJson(200, Json{{"Functions", std::move(list)}});
             }));
  router.Add("GET", "/2015-03-31/functions/{name}",
             lambda([&registry, configuration](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(FunctionConfig f, registry.Get(who.tenant, req.params["name"]));
               Json body = {{"Configuration", configuration(f)},
                            {"Code", {{"RepositoryType", "fpgahost"}}}};
               if (f.reserved_concurrency) body["Concurrency"] = ConcurrencyJson(f);
               return LambdaJson(200, body);
             }));
  router.Add("GET", "/2015-03-31/functions/{name}/configuration",
             lambda([&registry, configuration](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(FunctionConfig f, registry.Get(who.tenant, req.params["name"]));
               return LambdaJson(200, configuration(f));
             }));
  router.Add("DELETE", "/2015-03-31/functions/{name}",
             lambda([&registry, &invoker, &limiter](http::Request& req, P who) -> R {
               const std::string& name = req.params["name"];
               RETURN_IF_ERROR(registry.Delete(who.tenant, name));
               invoker.Forget(who.tenant, name);
               limiter.SetReservation(who.tenant, name, std::nullopt);
               http::Response r;
               r.status = 204;
               return r;
             }));
  router.Add("PUT", "/2017-10-31/functions/{name}/concurrency",
             lambda([&registry, &limiter](http::Request& req, P who) -> R {
               const std::string& name = req.params["name"];
               ASSIGN_OR_RETURN(std::optional<int> value, ParseConcurrency(req.body));
               RETURN_IF_ERROR(CheckReservation(registry, limiter, who.tenant, name, value));
               ASSIGN_OR_RETURN(FunctionConfig f,
                                registry.SetReservedConcurrency(who.tenant, name, value));
               limiter.SetReservation(who.tenant, name, f.reserved_concurrency);
               return LambdaJson(200, ConcurrencyJson(f));
             }));
  router.Add("GET", "/2019-09-30/functions/{name}/concurrency",
             lambda([&registry](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(FunctionConfig f, registry.Get(who.tenant, req.params["name"]));
               return LambdaJson(200, ConcurrencyJson(f));
             }));
  router.Add(
      "DELETE", "/2017-10-31/functions/{name}/concurrency",
      lambda([&registry, &limiter](http::Request& req, P who) -> R {
        const std::string& name = req.params["name"];
        RETURN_IF_ERROR(registry.SetReservedConcurrency(who.tenant, name, std::nullopt).status());
        limiter.SetReservation(who.tenant, name, std::nullopt);
        http::Response r;
        r.status = 204;
        return r;
      }));

  // fpgahost's own setting, beside Lambda's: idempotent reuse of results. /v1 errors.
  auto idempotency = [](const FunctionConfig& f) -> Json {
    return {{"function", f.name},
            {"idempotency", f.idempotency ? f.idempotency->ToJson() : Json(nullptr)}};
  };
  router.Add(
      "PUT", "/v1/functions/{name}/idempotency",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry, idempotency](http::Request& req, P who, http::Responder respond) {
               RespondFromPool(ctx.blocking, req, std::move(respond),
                               [&registry, idempotency, req, who]() -> StatusOr<Json> {
                                 ASSIGN_OR_RETURN(Json body, ParseJsonObject(req.body));
                                 ASSIGN_OR_RETURN(functions::IdempotencySpec spec,
                                                  functions::IdempotencySpec::FromJson(body));
                                 ASSIGN_OR_RETURN(FunctionConfig f,
                                                  registry.SetIdempotency(
                                                      who.tenant, req.params.at("name"), spec));
                                 return idempotency(f);
                               });
             }));
  router.Add(
      "GET", "/v1/functions/{name}/idempotency",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry, idempotency](http::Request& req, P who, http::Responder respond) {
               RespondFromPool(ctx.blocking, req, std::move(respond),
                               [&registry, idempotency, req, who]() -> StatusOr<Json> {
                                 ASSIGN_OR_RETURN(FunctionConfig f,
                                                  registry.Get(who.tenant, req.params.at("name")));
                                 return idempotency(f);
                               });
             }));
  router.Add(
      "DELETE", "/v1/functions/{name}/idempotency",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, P who, http::Responder respond) {
               RespondFromPool(
                   ctx.blocking, req, std::move(respond),
                   [&registry, req, who]() -> StatusOr<Json> {
                     RETURN_IF_ERROR(
                         registry.SetIdempotency(who.tenant, req.params.at("name"), std::nullopt)
                             .status());
                     return Json();
                   },
                   204);
             }));
}

}  // namespace fpgahost::api
