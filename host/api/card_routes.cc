// /v1/cards (operator): inventory, health, drain/undrain, load/clear/reset/validate, rescan;
// /v1/events (operator): the event log.
#include <fmt/format.h>

#include <charconv>

#include "common/ids.h"
#include "host/api/api.h"
#include "host/cards/card_manager.h"
#include "host/cards/loadable_image.h"
#include "host/images/image_registry.h"

namespace fpgahost::api {
namespace {

http::Response Reply(unsigned status, const Json& body) {
  return http::JsonResponse(body.dump(), status);
}

// 200 with the card for finished requests, 202 when an operation was started.
http::Response AcceptedResponse(const CardManager::Accepted& a) {
  return Reply(a.started ? 202 : 200, a.card);
}

StatusOr<Json> ListEvents(StateStore& store, const http::Request& req) {
  for (const auto& [key, value] : req.query) {
    if (key != "after" && key != "limit" && key != "subject" && key != "kind") {
      return InvalidArgumentError(
          fmt::format("unknown query parameter '{}' (after, limit, subject, kind)", key),
          "UNKNOWN_FIELD");
    }
  }
  ASSIGN_OR_RETURN(int64_t after, QueryInteger(req, "after", 0, 0, INT64_MAX));
  ASSIGN_OR_RETURN(int64_t limit, QueryInteger(req, "limit", 100, 1, 1000));
  auto get = [&](const char* key) {
    auto it = req.query.find(key);
    return it == req.query.end() ? std::string() : it->second;
  };
  std::string subject = get("subject");
  std::string kind = get("kind");
  // `kind` matches a whole kind ("card.health") or a family ("card").
  ASSIGN_OR_RETURN(Statement q,
                   store.db().Prepare("SELECT seq, time, kind, subject, detail FROM events "
                                      "WHERE seq > ?1 AND (?2 = '' OR subject = ?2) "
                                      "AND (?3 = '' OR kind = ?3 OR kind LIKE ?3 || '.%') "
                                      "ORDER BY seq LIMIT ?4"));
  q.Bind(1, after).Bind(2, subject).Bind(3, kind).Bind(4, limit);
  Json events = Json::array();
  int64_t last = after;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    last = q.ColumnInt64(0);
    Json detail = Json::parse(q.ColumnText(4), nullptr, false);
    events.push_back({{"seq", last},
                      {"time", q.ColumnText(1)},
                      {"kind", q.ColumnText(2)},
                      {"subject", q.ColumnText(3)},
                      {"detail", detail.is_discarded() ? Json(nullptr) : detail}});
  }
  return Json{{"events", std::move(events)}, {"next_after", last}};
}

}  // namespace

// The image a POST .../load names, resolved to what the card manager needs.
StatusOr<LoadRequest> ResolveLoadableImage(ImageRegistry& registry, const images::BlobStore& blobs,
                                           const Principal& who, std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"image_id"}));
  ASSIGN_OR_RETURN(std::string image_id, GetField<std::string>(j, "image_id"));
  if (!IsValidId(image_id, "img")) {
    return InvalidArgumentError(
        fmt::format("field 'image_id' must be an image id (img-...), not '{}'", image_id),
        "INVALID_FIELD");
  }
  return LoadableImage(registry, blobs, who, image_id);
}

void RegisterCardRoutes(http::Router& router, ApiContext& ctx, CardManager& cards,
                        ImageRegistry& registry, const images::BlobStore& blobs) {
  auto op = [&ctx](auto work) {
    return Authed(
        ctx.auth, Role::kOperator,
        [&ctx, work](http::Request& req, const Principal& who, http::Responder respond) {
          ctx.blocking.Post([req, who, respond = std::move(respond), work]() mutable {
            StatusOr<http::Response> r = work(req, who);
            respond(r.ok() ? std::move(*r) : http::ErrorResponse(r.status(), req.request_id));
          });
        });
  };
  using R = StatusOr<http::Response>;

  router.Add("GET", "/v1/cards", op([&cards](http::Request&, const Principal&) -> R {
               return Reply(200, Json{{"cards", cards.List()}});
             }));
  router.Add("POST", "/v1/cards/rescan", op([&cards](http::Request&, const Principal&) -> R {
               RETURN_IF_ERROR(cards.Rescan());
               return Reply(200, Json{{"cards", cards.List()}});
             }));
  router.Add("GET", "/v1/cards/{id}", op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(Json card, cards.Get(req.params["id"]));
               return Reply(200, card);
             }));
  router.Add("POST", "/v1/cards/{id}/drain",
             op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(Json card, cards.Drain(req.params["id"]));
               return Reply(200, card);
             }));
  router.Add("POST", "/v1/cards/{id}/undrain",
             op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(Json card, cards.Undrain(req.params["id"]));
               return Reply(200, card);
             }));
  router.Add("POST", "/v1/cards/{id}/reset",
             op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(CardManager::Accepted a, cards.Reset(req.params["id"]));
               return AcceptedResponse(a);
             }));
  router.Add("POST", "/v1/cards/{id}/clear",
             op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(CardManager::Accepted a, cards.Clear(req.params["id"]));
               return AcceptedResponse(a);
             }));
  router.Add("POST", "/v1/cards/{id}/validate",
             op([&cards](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(CardManager::Accepted a, cards.Validate(req.params["id"]));
               return AcceptedResponse(a);
             }));
  router.Add("POST", "/v1/cards/{id}/load",
             op([&cards, &registry, &blobs](http::Request& req, const Principal& who) -> R {
               ASSIGN_OR_RETURN(LoadRequest load,
                                ResolveLoadableImage(registry, blobs, who, req.body));
               ASSIGN_OR_RETURN(CardManager::Accepted a, cards.Load(req.params["id"], load));
               return AcceptedResponse(a);
             }));
  router.Add("GET", "/v1/events", op([&ctx](http::Request& req, const Principal&) -> R {
               ASSIGN_OR_RETURN(Json events, ListEvents(ctx.store, req));
               return Reply(200, events);
             }));
}

}  // namespace fpgahost::api
