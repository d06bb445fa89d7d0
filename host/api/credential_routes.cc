#include "host/api/credential_routes.h"

#include "common/json.h"

namespace fpgahost::api {
namespace {

Json AccessKeyJson(const AccessKey& key) {
  return {{"access_key_id", key.access_key_id},
          {"tenant", key.tenant},
          {"description", key.description},
          {"created_at", key.created_at}};
}

// The body of POST /v1/credentials: empty, or {"description": "..."}.
StatusOr<std::string> ParseCreate(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"description"}));
  ASSIGN_OR_RETURN(std::optional<std::string> description,
                   GetOptionalField<std::string>(j, "description"));
  return description.value_or("");
}

}  // namespace

void RegisterCredentialRoutes(http::Router& router, ApiContext& ctx, CredentialStore& keys) {
  // The store is SQLite: off the I/O threads.
  auto authed = [&ctx](auto work, unsigned ok_status = 200) {
    return Authed(
        ctx.auth, Role::kCustomer,
        [&ctx, work, ok_status](http::Request& req, const Principal& who, http::Responder respond) {
          RespondFromPool(
              ctx.blocking, req, std::move(respond), [req, who, work]() { return work(req, who); },
              ok_status);
        });
  };

  router.Add("POST", "/v1/credentials",
             authed(
                 [&keys](const http::Request& req, const Principal& who) -> StatusOr<Json> {
                   ASSIGN_OR_RETURN(std::string description, ParseCreate(req.body));
                   ASSIGN_OR_RETURN(IssuedAccessKey issued, keys.Create(who.tenant, description));
                   Json body = AccessKeyJson(issued.key);
                   body["secret_access_key"] = issued.secret_access_key;
                   return body;
                 },
                 201));

  router.Add("GET", "/v1/credentials",
             authed([&keys](const http::Request&, const Principal& who) -> StatusOr<Json> {
               ASSIGN_OR_RETURN(std::vector<AccessKey> list, keys.List(who.tenant));
               Json out = Json::array();
               for (const AccessKey& key : list) out.push_back(AccessKeyJson(key));
               return Json{{"credentials", std::move(out)}};
             }));

  router.Add(
      "DELETE", "/v1/credentials/{access_key_id}",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &keys](http::Request& req, const Principal& who, http::Responder respond) {
               ctx.blocking.Post([&keys, req, who, respond = std::move(respond)]() {
                 Status s = keys.Delete(who.tenant, req.params.at("access_key_id"));
                 if (!s.ok()) return respond(http::ErrorResponse(s, req.request_id));
                 http::Response r;
                 r.status = 204;
                 respond(std::move(r));
               });
             }));
}

}  // namespace fpgahost::api
