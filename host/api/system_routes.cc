// /v1/health, /v1/version, /v1/whoami and tenant administration.
#include <fmt/format.h>

#include "common/json.h"
#include "host/api/api.h"
#include "host/version.h"

namespace fpgahost::api {
namespace {

Json VersionJson() {
  return {{"version", FPGAHOST_VERSION}, {"git_commit", FPGAHOST_GIT_COMMIT}, {"api", "v1"}};
}

// The body of POST /v1/tenants: {"name": "..."}.
StatusOr<std::string> ParseNewTenant(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"name"}));
  ASSIGN_OR_RETURN(std::string name, GetField<std::string>(j, "name"));
  RETURN_IF_ERROR(TokenAuthenticator::CheckTenantName(name));
  return name;
}

}  // namespace

void RegisterSystemRoutes(http::Router& router, ApiContext& ctx) {
  router.Add("GET", "/v1/health", [&ctx](http::Request&, http::Responder respond) {
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - ctx.started);
    Json body = {{"status", "ok"},
                 {"version", FPGAHOST_VERSION},
                 {"uptime_seconds", uptime.count()},
                 {"schema_version", ctx.store.schema_version()}};
    respond(http::JsonResponse(body.dump()));
  });

  router.Add("GET", "/v1/version", [](http::Request&, http::Responder respond) {
    respond(http::JsonResponse(VersionJson().dump()));
  });

  router.Add("GET", "/v1/whoami",
             Authed(ctx.auth, Role::kCustomer,
                    [](http::Request&, const Principal& who, http::Responder respond) {
                      Json body = {{"tenant", who.tenant},
                                   {"role", RoleName(who.role)},
                                   {"token_id", who.token_id}};
                      respond(http::JsonResponse(body.dump()));
                    }));

  router.Add("GET", "/v1/tenants",
             Authed(ctx.auth, Role::kOperator,
                    [&ctx](http::Request& req, const Principal&, http::Responder respond) {
                      RespondFromPool(
                          ctx.blocking, req, std::move(respond), [&ctx]() -> StatusOr<Json> {
                            ASSIGN_OR_RETURN(auto tenants, ctx.auth.ListTenants());
                            Json list = Json::array();
                            for (const auto& t : tenants) {
                              list.push_back({{"name", t.name}, {"created_at", t.created_at}});
                            }
                            return Json{{"tenants", list}};
                          });
                    }));

  // Creates a tenant with its first customer token; the secret is returned only here.
  router.Add("POST", "/v1/tenants",
             Authed(ctx.auth, Role::kOperator,
                    [&ctx](http::Request& req, const Principal&, http::Responder respond) {
                      StatusOr<std::string> name = ParseNewTenant(req.body);
                      if (!name.ok()) {
                        return respond(http::ErrorResponse(name.status(), req.request_id));
                      }
                      RespondFromPool(
                          ctx.blocking, req, std::move(respond),
                          [&ctx, tenant = *name]() -> StatusOr<Json> {
                            ASSIGN_OR_RETURN(IssuedToken token, ctx.auth.CreateTenant(tenant));
                            return Json{{"tenant", tenant},
                                        {"token", {{"id", token.id}, {"secret", token.secret}}}};
                          },
                          201);
                    }));
}

}  // namespace fpgahost::api
