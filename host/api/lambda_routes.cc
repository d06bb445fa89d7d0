// AWS Lambda's control API, as the AWS CLI and SDKs call it with --endpoint-url:
// CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, DeleteFunction,
// PutFunctionConcurrency, GetFunctionConcurrency, DeleteFunctionConcurrency, under
// /2015-03-31/functions. Same JSON shapes and status codes as Lambda; errors carry Lambda's
// exception name in the x-amzn-ErrorType header and {"Type", "message"} in the body.
#include <fmt/format.h>

#include "common/base64.h"
#include "common/digest.h"
#include "host/api/api.h"
#include "host/functions/function_registry.h"

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

// Lambda's exception name for a Status: its reason when it is one, else by code.
std::string ExceptionName(const Status& s) {
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
      return "UnrecognizedClientException";
    case StatusCode::kPermissionDenied:
      return "AccessDeniedException";
    default:
      return "ServiceException";
  }
}

http::Response LambdaError(const Status& s, std::string_view request_id) {
  std::string type = ExceptionName(s);
  http::Response r = http::ErrorResponse(s, request_id);
  r.body = Json{{"Type", s.code() == StatusCode::kInternal ? "Service" : "User"},
                {"message", std::string(s.message())}}
               .dump();
  r.headers.emplace_back("x-amzn-ErrorType", type);
  r.headers.emplace_back("x-amzn-RequestId", std::string(request_id));
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

}  // namespace

std::string LambdaAccountId(std::string_view tenant) {
  // Stable per tenant: twelve decimal digits taken from the SHA-256 of its name.
  std::string hex = Sha256Hex(tenant);
  std::string digits;
  for (size_t i = 0; digits.size() < 12; ++i) {
    digits += static_cast<char>('0' + std::stoi(hex.substr(i * 2, 2), nullptr, 16) % 10);
  }
  return digits;
}

void RegisterLambdaRoutes(http::Router& router, ApiContext& ctx, FunctionRegistry& registry,
                          std::string region) {
  // Every handler runs on the blocking pool (SQLite, extraction) and answers Lambda-style.
  auto lambda = [&ctx](auto work) {
    return Authed(ctx.auth, Role::kCustomer,
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
    return functions::FunctionConfigurationJson(f, region, LambdaAccountId(f.tenant));
  };

  router.Add("POST", "/2015-03-31/functions",
             lambda([&registry, configuration](http::Request& req, P who) -> R {
               std::string zip;
               ASSIGN_OR_RETURN(FunctionConfig f, ParseCreate(who, req.body, &zip));
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
             lambda([&registry](http::Request& req, P who) -> R {
               RETURN_IF_ERROR(registry.Delete(who.tenant, req.params["name"]));
               http::Response r;
               r.status = 204;
               return r;
             }));
  router.Add("PUT", "/2017-10-31/functions/{name}/concurrency",
             lambda([&registry](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(std::optional<int> value, ParseConcurrency(req.body));
               ASSIGN_OR_RETURN(FunctionConfig f, registry.SetReservedConcurrency(
                                                      who.tenant, req.params["name"], value));
               return LambdaJson(200, ConcurrencyJson(f));
             }));
  router.Add("GET", "/2019-09-30/functions/{name}/concurrency",
             lambda([&registry](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(FunctionConfig f, registry.Get(who.tenant, req.params["name"]));
               return LambdaJson(200, ConcurrencyJson(f));
             }));
  router.Add(
      "DELETE", "/2017-10-31/functions/{name}/concurrency",
      lambda([&registry](http::Request& req, P who) -> R {
        RETURN_IF_ERROR(
            registry.SetReservedConcurrency(who.tenant, req.params["name"], std::nullopt).status());
        http::Response r;
        r.status = 204;
        return r;
      }));
}

}  // namespace fpgahost::api
