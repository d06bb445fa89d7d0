// /v1/images: streaming upload, list, describe, delete, permissions.
#include <fmt/format.h>

#include <charconv>

#include "host/api/api.h"
#include "host/images/image_registry.h"

namespace fpgahost::api {
namespace {

// Receives an upload: the bytes go straight to a temporary file (hashed on the way) while
// the first bytes, up to the end of the section table, are kept and checked as soon as they
// are in, so a file whose header is already wrong is refused before the rest arrives.
class UploadSink final : public http::BodySink {
 public:
  UploadSink(ImageRegistry& registry, ThreadPool& pool, Principal owner, std::string name,
             std::string description, std::optional<uint64_t> declared_size,
             std::unique_ptr<images::BlobWriter> blob, http::Responder respond,
             std::string request_id)
      : registry_(registry),
        pool_(pool),
        owner_(std::move(owner)),
        name_(std::move(name)),
        description_(std::move(description)),
        declared_size_(declared_size),
        blob_(std::move(blob)),
        respond_(std::move(respond)),
        request_id_(std::move(request_id)) {}

  Status Write(std::string_view piece) override {
    RETURN_IF_ERROR(blob_->Append(piece));
    const auto& options = registry_.validation_options();
    while (!prefix_checked_) {
      uint64_t need = images::XclbinPrefixBytesNeeded(PrefixSpan(), options);
      if (prefix_.size() >= need) {
        RETURN_IF_ERROR(images::CheckXclbinPrefix(PrefixSpan(), declared_size_, options));
        prefix_checked_ = true;
        prefix_.clear();
        prefix_.shrink_to_fit();
        break;
      }
      if (piece.empty()) break;
      size_t take = static_cast<size_t>(std::min<uint64_t>(piece.size(), need - prefix_.size()));
      prefix_.append(piece.substr(0, take));
      piece.remove_prefix(take);
    }
    return Status::Ok();
  }

  void Finish() override {
    if (!prefix_checked_) {
      // The whole file is shorter than its header and section table.
      Status s =
          images::CheckXclbinPrefix(PrefixSpan(), blob_->size(), registry_.validation_options());
      if (s.ok())
        s = InvalidArgumentError("the file is too short to be an xclbin", "XCLBIN_TRUNCATED");
      blob_->Discard();
      return respond_(http::ErrorResponse(s, request_id_));
    }
    // Committing fsyncs: off the I/O thread. The sink is destroyed when Finish returns, so
    // what the job needs moves into it.
    pool_.Post([&registry = registry_, owner = std::move(owner_), name = std::move(name_),
                description = std::move(description_), blob = std::move(blob_),
                respond = std::move(respond_), request_id = std::move(request_id_)]() mutable {
      StatusOr<ImageRecord> r =
          registry.Register(owner, std::move(name), std::move(description), std::move(blob));
      if (!r.ok()) return respond(http::ErrorResponse(r.status(), request_id));
      respond(http::JsonResponse(r->ToJson(true).dump(), 202));
    });
  }

  void Abort(const Status&) override { blob_->Discard(); }

 private:
  std::span<const uint8_t> PrefixSpan() const {
    return {reinterpret_cast<const uint8_t*>(prefix_.data()), prefix_.size()};
  }

  ImageRegistry& registry_;
  ThreadPool& pool_;
  Principal owner_;
  std::string name_;
  std::string description_;
  std::optional<uint64_t> declared_size_;
  std::unique_ptr<images::BlobWriter> blob_;
  http::Responder respond_;
  std::string request_id_;
  std::string prefix_;
  bool prefix_checked_ = false;
};

std::optional<uint64_t> DeclaredSize(const http::Request& req) {
  std::string_view v = req.Header("content-length");
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
  return n;
}

StatusOr<ImagePermissions> ParsePermissions(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseJsonObject(body));
  RETURN_IF_ERROR(CheckKnownFields(j, {"public", "tenants"}));
  ImagePermissions p;
  ASSIGN_OR_RETURN(std::optional<bool> pub, GetOptionalField<bool>(j, "public"));
  p.is_public = pub.value_or(false);
  ASSIGN_OR_RETURN(std::optional<Json> tenants, GetOptionalField<Json>(j, "tenants"));
  if (tenants) {
    if (!tenants->is_array()) {
      return InvalidArgumentError("field 'tenants' must be an array of tenant names",
                                  "INVALID_FIELD");
    }
    for (const Json& t : *tenants) {
      if (!t.is_string()) {
        return InvalidArgumentError("field 'tenants' must be an array of tenant names",
                                    "INVALID_FIELD");
      }
      p.tenants.push_back(t.get<std::string>());
    }
  }
  return p;
}

Json PermissionsJson(const ImagePermissions& p) {
  return {{"public", p.is_public}, {"tenants", p.tenants}};
}

}  // namespace

void RegisterImageRoutes(http::Router& router, ApiContext& ctx, ImageRegistry& registry,
                         images::BlobStore& blobs) {
  http::RouteOptions upload;
  upload.max_body_bytes = registry.validation_options().max_size;
  router.AddStreaming(
      "POST", "/v1/images",
      [&ctx, &registry, &blobs](http::Request& req,
                                http::Responder respond) -> std::unique_ptr<http::BodySink> {
        auto refuse = [&](const Status& s) {
          respond(http::ErrorResponse(s, req.request_id));
          return nullptr;
        };
        StatusOr<Principal> who = ctx.auth.Authenticate(req.Header("authorization"));
        if (!who.ok()) return refuse(who.status());
        std::string name = req.query.count("name") ? req.query["name"] : "";
        std::string description = req.query.count("description") ? req.query["description"] : "";
        Status s = ImageRegistry::CheckName(name);
        if (!s.ok()) {
          return refuse(InvalidArgumentError(
              "query parameter 'name' must be 1 to 128 printable characters", "INVALID_NAME"));
        }
        s = ImageRegistry::CheckDescription(description);
        if (!s.ok()) {
          return refuse(InvalidArgumentError(
              "query parameter 'description' must be at most 1024 printable characters",
              "INVALID_DESCRIPTION"));
        }
        for (const auto& [key, value] : req.query) {
          if (key != "name" && key != "description") {
            return refuse(InvalidArgumentError(
                fmt::format("unknown query parameter '{}' (name, description)", key),
                "UNKNOWN_FIELD"));
          }
        }
        StatusOr<std::unique_ptr<images::BlobWriter>> blob = blobs.NewWriter();
        if (!blob.ok()) return refuse(blob.status());
        return std::make_unique<UploadSink>(registry, ctx.blocking, *who, std::move(name),
                                            std::move(description), DeclaredSize(req),
                                            std::move(*blob), std::move(respond), req.request_id);
      },
      upload);

  router.Add(
      "GET", "/v1/images",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, const Principal& who, http::Responder respond) {
               RespondFromPool(
                   ctx.blocking, req, std::move(respond), [&registry, who]() -> StatusOr<Json> {
                     ASSIGN_OR_RETURN(auto list, registry.List(who));
                     Json out = Json::array();
                     for (const auto& r : list) {
                       out.push_back(
                           r.ToJson(who.role == Role::kOperator || r.owner == who.tenant));
                     }
                     return Json{{"images", out}};
                   });
             }));

  router.Add(
      "GET", "/v1/images/{id}",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, const Principal& who, http::Responder respond) {
               RespondFromPool(
                   ctx.blocking, req, std::move(respond),
                   [&registry, who, id = req.params["id"]]() -> StatusOr<Json> {
                     ASSIGN_OR_RETURN(ImageRecord r, registry.Get(who, id));
                     return r.ToJson(who.role == Role::kOperator || r.owner == who.tenant);
                   });
             }));

  router.Add(
      "DELETE", "/v1/images/{id}",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, const Principal& who, http::Responder respond) {
               RespondFromPool(ctx.blocking, req, std::move(respond),
                               [&registry, who, id = req.params["id"]]() -> StatusOr<Json> {
                                 ASSIGN_OR_RETURN(ImageRecord r, registry.Delete(who, id));
                                 return r.ToJson(true);
                               });
             }));

  router.Add(
      "GET", "/v1/images/{id}/permissions",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, const Principal& who, http::Responder respond) {
               RespondFromPool(ctx.blocking, req, std::move(respond),
                               [&registry, who, id = req.params["id"]]() -> StatusOr<Json> {
                                 ASSIGN_OR_RETURN(ImagePermissions p,
                                                  registry.GetPermissions(who, id));
                                 return PermissionsJson(p);
                               });
             }));

  router.Add(
      "PUT", "/v1/images/{id}/permissions",
      Authed(ctx.auth, Role::kCustomer,
             [&ctx, &registry](http::Request& req, const Principal& who, http::Responder respond) {
               StatusOr<ImagePermissions> wanted = ParsePermissions(req.body);
               if (!wanted.ok()) {
                 return respond(http::ErrorResponse(wanted.status(), req.request_id));
               }
               RespondFromPool(
                   ctx.blocking, req, std::move(respond),
                   [&registry, who, id = req.params["id"], p = *wanted]() -> StatusOr<Json> {
                     ASSIGN_OR_RETURN(ImagePermissions now, registry.SetPermissions(who, id, p));
                     return PermissionsJson(now);
                   });
             }));
}

}  // namespace fpgahost::api
