// /v1/instances (customers see their own, the operator all): create, list, describe, stop,
// start, terminate; the FPGA slots of an instance: describe, load, clear.
// /v1/instance-types (anyone with a token) and /v1/capacity (operator).
#include <fmt/format.h>

#include <charconv>

#include "host/api/api.h"
#include "host/capacity/capacity_account.h"
#include "host/images/image_registry.h"
#include "host/instances/instance_manager.h"

namespace fpgahost::api {
namespace {

// The longest GET /v1/instances/{id}?wait= a client may ask for.
constexpr int64_t kMaxWaitSeconds = 60;

http::Response Reply(unsigned status, const Json& body) {
  return http::JsonResponse(body.dump(), status);
}

// The tenant whose instances the caller may see; empty (all) for the operator.
std::string_view Scope(const Principal& who) {
  return who.role == Role::kOperator ? std::string_view() : std::string_view(who.tenant);
}

StatusOr<int> SlotIndex(const http::Request& req) {
  const std::string& s = req.params.at("slot");
  int n = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || n < 0 || n > 63) {
    return InvalidArgumentError(fmt::format("slot must be a slot number from 0 to 63, not '{}'", s),
                                "INVALID_FIELD");
  }
  return n;
}

StatusOr<Json> ParseCreate(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"type", "name"}));
  ASSIGN_OR_RETURN(std::string type, GetField<std::string>(j, "type"));
  ASSIGN_OR_RETURN(std::optional<std::string> name, GetOptionalField<std::string>(j, "name"));
  return Json{{"type", type}, {"name", name.value_or("")}};
}

}  // namespace

void RegisterInstanceRoutes(http::Router& router, ApiContext& ctx, InstanceManager& instances,
                            const CapacityAccount& capacity, ImageRegistry& registry,
                            const images::BlobStore& blobs) {
  // Handlers may wait on the store and on the card manager's lock: off the I/O threads.
  auto as = [&ctx](Role role, auto work) {
    return Authed(
        ctx.auth, role,
        [&ctx, work](http::Request& req, const Principal& who, http::Responder respond) {
          ctx.blocking.Post([req, who, respond = std::move(respond), work]() mutable {
            StatusOr<http::Response> r = work(req, who);
            respond(r.ok() ? std::move(*r) : http::ErrorResponse(r.status(), req.request_id));
          });
        });
  };
  auto customer = [as](auto work) { return as(Role::kCustomer, work); };
  using R = StatusOr<http::Response>;
  using P = const Principal&;

  router.Add("GET", "/v1/instance-types", customer([&instances](http::Request&, P) -> R {
               Json types = Json::array();
               for (const InstanceType& t : instances.types()) {
                 types.push_back(InstanceTypeToJson(t));
               }
               return Reply(200, Json{{"instance_types", std::move(types)}});
             }));
  router.Add("GET", "/v1/capacity", as(Role::kOperator, [&capacity](http::Request&, P) -> R {
               return Reply(200, capacity.View());
             }));
  router.Add("POST", "/v1/instances", customer([&instances](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(Json args, ParseCreate(req.body));
               ASSIGN_OR_RETURN(Json instance,
                                instances.Create(who.tenant, args["type"].get<std::string>(),
                                                 args["name"].get<std::string>()));
               return Reply(202, instance);
             }));
  router.Add("GET", "/v1/instances", customer([&instances](http::Request&, P who) -> R {
               return Reply(200, Json{{"instances", instances.List(Scope(who))}});
             }));
  // ?wait=N: an instance in a transitional state is answered when it leaves it, or after N
  // seconds as it is then; the request holds no thread while it waits.
  router.Add("GET", "/v1/instances/{id}",
             Authed(ctx.auth, Role::kCustomer,
                    [&ctx, &instances](http::Request& req, P who, http::Responder respond) {
                      ctx.blocking.Post([&instances, req, who, respond = std::move(respond)] {
                        auto answer = [respond, id = req.request_id](StatusOr<Json> r) {
                          respond(r.ok() ? Reply(200, *r) : http::ErrorResponse(r.status(), id));
                        };
                        StatusOr<int64_t> wait = QueryInteger(req, "wait", 0, 0, kMaxWaitSeconds);
                        if (!wait.ok()) return answer(wait.status());
                        instances.WhenSettled(Scope(who), req.params.at("id"),
                                              std::chrono::seconds(*wait), answer);
                      });
                    }));
  router.Add("DELETE", "/v1/instances/{id}", customer([&instances](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(Json instance, instances.Terminate(Scope(who), req.params["id"]));
               return Reply(instance["state"] == "terminated" ? 200 : 202, instance);
             }));
  router.Add(
      "POST", "/v1/instances/{id}/stop", customer([&instances](http::Request& req, P who) -> R {
        ASSIGN_OR_RETURN(Json instance, instances.StopInstance(Scope(who), req.params["id"]));
        return Reply(instance["state"] == "stopped" ? 200 : 202, instance);
      }));
  router.Add(
      "POST", "/v1/instances/{id}/start", customer([&instances](http::Request& req, P who) -> R {
        ASSIGN_OR_RETURN(Json instance, instances.StartInstance(Scope(who), req.params["id"]));
        return Reply(instance["state"] == "running" ? 200 : 202, instance);
      }));
  router.Add("GET", "/v1/instances/{id}/slots",
             customer([&instances](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(Json slots, instances.ListSlots(Scope(who), req.params["id"]));
               return Reply(200, Json{{"slots", std::move(slots)}});
             }));
  router.Add("GET", "/v1/instances/{id}/slots/{slot}",
             customer([&instances](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(int n, SlotIndex(req));
               ASSIGN_OR_RETURN(Json slot, instances.GetSlot(Scope(who), req.params["id"], n));
               return Reply(200, slot);
             }));
  router.Add("PUT", "/v1/instances/{id}/slots/{slot}/image",
             customer([&instances, &registry, &blobs](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(int n, SlotIndex(req));
               // The instance first: a caller who cannot see it learns nothing about images.
               RETURN_IF_ERROR(instances.Get(Scope(who), req.params["id"]).status());
               ASSIGN_OR_RETURN(LoadRequest load,
                                ResolveLoadableImage(registry, blobs, who, req.body));
               ASSIGN_OR_RETURN(InstanceManager::SlotAccepted a,
                                instances.LoadSlot(Scope(who), req.params["id"], n, load));
               return Reply(a.started ? 202 : 200, a.slot);
             }));
  router.Add("DELETE", "/v1/instances/{id}/slots/{slot}/image",
             customer([&instances](http::Request& req, P who) -> R {
               ASSIGN_OR_RETURN(int n, SlotIndex(req));
               ASSIGN_OR_RETURN(InstanceManager::SlotAccepted a,
                                instances.ClearSlot(Scope(who), req.params["id"], n));
               return Reply(a.started ? 202 : 200, a.slot);
             }));
}

}  // namespace fpgahost::api
