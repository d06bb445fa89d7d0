#include "host/images/image_registry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "common/ids.h"
#include "host/store/events.h"
#include "images/xclbin_file.h"

namespace fpgahost {
namespace {

constexpr std::string_view kColumns =
    "id, name, description, owner, state, error_code, error_message, sha256, size, details, "
    "public, created_at, updated_at";

ImageRecord ReadRecord(const Statement& q) {
  ImageRecord r;
  r.id = q.ColumnText(0);
  r.name = q.ColumnText(1);
  r.description = q.ColumnText(2);
  r.owner = q.ColumnText(3);
  r.state = q.ColumnText(4);
  r.error_code = q.ColumnText(5);
  r.error_message = q.ColumnText(6);
  r.sha256 = q.ColumnText(7);
  r.size = static_cast<uint64_t>(q.ColumnInt64(8));
  r.details = Json::parse(q.ColumnText(9), nullptr, false);
  if (r.details.is_discarded()) r.details = Json::object();
  r.is_public = q.ColumnInt64(10) != 0;
  r.created_at = q.ColumnText(11);
  r.updated_at = q.ColumnText(12);
  return r;
}

Json DetailsOf(const images::ValidatedXclbin& v) {
  const images::Xclbin& x = v.xclbin;
  Json warnings = Json::array();
  for (const auto& w : v.warnings) warnings.push_back({{"code", w.code}, {"message", w.message}});
  Json d = {{"xclbin_uuid", images::FormatUuid(x.header.uuid)},
            {"interface_uuid", images::FormatUuid(x.header.interface_uuid)},
            {"vbnv", x.header.platform_vbnv},
            {"shell", v.shell},
            {"mode", images::XclbinModeName(x.header.mode)},
            {"kernels", x.KernelNames()},
            {"compute_units", x.ComputeUnitNames()},
            {"sections", x.sections.size()},
            {"signature", std::string(images::SignatureStateName(v.signature))},
            {"warnings", warnings}};
  if (v.signer) d["signer"] = v.signer->subject;
  return d;
}

bool IsPrintable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

Json ImageRecord::ToJson(bool with_permissions) const {
  Json j = {{"id", id},
            {"name", name},
            {"description", description},
            {"owner", owner},
            {"state", state},
            {"sha256", sha256},
            {"size", size},
            {"created_at", created_at},
            {"updated_at", updated_at}};
  j["error"] =
      state == "failed" ? Json{{"code", error_code}, {"message", error_message}} : Json(nullptr);
  for (const auto& [k, v] : details.items()) j[k] = v;
  if (with_permissions) j["permissions"] = {{"public", is_public}, {"tenants", shared_with}};
  return j;
}

ImageRegistry::ImageRegistry(StateStore& store, images::BlobStore& blobs, const Clock& clock,
                             ThreadPool& pool, images::XclbinValidationOptions options)
    : store_(store), blobs_(blobs), clock_(clock), pool_(pool), options_(std::move(options)) {}

Status ImageRegistry::CheckName(std::string_view name) {
  if (name.empty() || name.size() > 128 || !IsPrintable(name)) {
    return InvalidArgumentError("name must be 1 to 128 printable characters", "INVALID_NAME");
  }
  return Status::Ok();
}

Status ImageRegistry::CheckDescription(std::string_view description) {
  if (description.size() > 1024 || !IsPrintable(description)) {
    return InvalidArgumentError("description must be at most 1024 printable characters",
                                "INVALID_DESCRIPTION");
  }
  return Status::Ok();
}

StatusOr<ImageRecord> ImageRegistry::Load(std::string_view id) const {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare(fmt::format(
                       "SELECT {} FROM images WHERE id = ?1 AND state != 'deleted'", kColumns)));
  q.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFoundError(fmt::format("image {} not found", id), "IMAGE_NOT_FOUND");
  ImageRecord r = ReadRecord(q);
  ASSIGN_OR_RETURN(Statement p, store_.db().Prepare("SELECT tenant FROM image_permissions "
                                                    "WHERE image_id = ?1 ORDER BY tenant"));
  p.Bind(1, id);
  while (true) {
    ASSIGN_OR_RETURN(bool more, p.Step());
    if (!more) break;
    r.shared_with.push_back(p.ColumnText(0));
  }
  return r;
}

StatusOr<ImageRecord> ImageRegistry::LoadVisible(const Principal& who, std::string_view id) const {
  ASSIGN_OR_RETURN(ImageRecord r, Load(id));
  bool visible =
      who.role == Role::kOperator || r.owner == who.tenant || r.is_public ||
      std::find(r.shared_with.begin(), r.shared_with.end(), who.tenant) != r.shared_with.end();
  // Someone else's private image is indistinguishable from no image.
  if (!visible) return NotFoundError(fmt::format("image {} not found", id), "IMAGE_NOT_FOUND");
  return r;
}

StatusOr<ImageRecord> ImageRegistry::LoadOwned(const Principal& who, std::string_view id) const {
  ASSIGN_OR_RETURN(ImageRecord r, LoadVisible(who, id));
  if (who.role != Role::kOperator && r.owner != who.tenant) {
    return PermissionDeniedError(
        fmt::format("image {} belongs to tenant {}; only its owner may do this", id, r.owner),
        "NOT_IMAGE_OWNER");
  }
  return r;
}

StatusOr<ImageRecord> ImageRegistry::Register(const Principal& owner, std::string name,
                                              std::string description,
                                              std::unique_ptr<images::BlobWriter> blob) {
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckDescription(description));
  ImageRecord r;
  r.id = NewId("img");
  r.name = std::move(name);
  r.description = std::move(description);
  r.owner = owner.tenant;
  r.state = "pending";
  r.size = blob->size();
  r.created_at = r.updated_at = FormatRfc3339(clock_.Now());
  {
    MutexLock lock(blob_mu_);
    ASSIGN_OR_RETURN(r.sha256, blob->Commit());
    Status s = store_.InTransaction([&](SqliteDb& db) {
      ASSIGN_OR_RETURN(Statement insert,
                       db.Prepare("INSERT INTO images (id, name, description, owner, state, "
                                  "sha256, size, created_at, updated_at) "
                                  "VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?7)"));
      insert.Bind(1, r.id)
          .Bind(2, r.name)
          .Bind(3, r.description)
          .Bind(4, r.owner)
          .Bind(5, r.sha256)
          .Bind(6, static_cast<int64_t>(r.size))
          .Bind(7, r.created_at);
      RETURN_IF_ERROR(insert.Run());
      return AppendEvent(db, clock_, "image.uploaded", r.id,
                         {{"owner", r.owner}, {"sha256", r.sha256}, {"size", r.size}});
    });
    if (!s.ok()) {
      CollectBlob(r.sha256).IgnoreError();
      return s;
    }
  }
  QueueValidation(r.id);
  return r;
}

void ImageRegistry::QueueValidation(const std::string& id) {
  {
    MutexLock lock(mu_);
    ++running_;
  }
  pool_.Post([this, id] {
    Status s = ValidatePending(id);
    if (!s.ok()) spdlog::error("validation of {} could not finish: {}", id, s.ToString());
    MutexLock lock(mu_);
    if (--running_ == 0) idle_.notify_all();
  });
}

void ImageRegistry::WaitIdle() {
  std::unique_lock<Mutex> lock(mu_);
  idle_.wait(lock, [this]() NO_THREAD_SAFETY_ANALYSIS { return running_ == 0; });
}

Status ImageRegistry::ValidatePending(const std::string& id) {
  ASSIGN_OR_RETURN(ImageRecord r, Load(id));
  if (r.state != "pending") return Status::Ok();
  StatusOr<images::XclbinFileResult> file =
      images::ValidateXclbinFile(blobs_.PathOf(r.sha256), options_);
  if (!file.ok()) {
    return Finish(id, DataLossError(fmt::format("the stored file of the image is unreadable: {}",
                                                file.status().message()),
                                    "IMAGE_STORE_ERROR"));
  }
  // The blob is named by its digest: a mismatch means the disk changed it under us.
  if (file->sha256 != r.sha256) {
    return Finish(id, DataLossError(fmt::format("the stored file of the image no longer matches "
                                                "its SHA-256 ({})",
                                                r.sha256),
                                    "IMAGE_STORE_ERROR"));
  }
  return Finish(id, file->validated);
}

Status ImageRegistry::Finish(const std::string& id,
                             const StatusOr<images::ValidatedXclbin>& result) {
  std::string now = FormatRfc3339(clock_.Now());
  MutexLock lock(blob_mu_);
  std::string sha;
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) {
    ASSIGN_OR_RETURN(Statement q, db.Prepare("SELECT sha256 FROM images WHERE id = ?1 AND "
                                             "state = 'pending'"));
    q.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return Status::Ok();  // deleted meanwhile
    sha = q.ColumnText(0);
    ASSIGN_OR_RETURN(Statement update,
                     db.Prepare("UPDATE images SET state = ?2, error_code = ?3, "
                                "error_message = ?4, details = ?5, updated_at = ?6 "
                                "WHERE id = ?1"));
    update.Bind(1, id).Bind(6, now);
    Json event;
    if (result.ok()) {
      Json details = DetailsOf(*result);
      update.Bind(2, "available").Bind(3, "").Bind(4, "").Bind(5, details.dump());
      event = {{"state", "available"}};
    } else {
      update.Bind(2, "failed")
          .Bind(3, result.status().reason())
          .Bind(4, result.status().message())
          .Bind(5, "{}");
      event = {{"state", "failed"}, {"code", std::string(result.status().reason())}};
    }
    RETURN_IF_ERROR(update.Run());
    return AppendEvent(db, clock_, "image.validated", id, event);
  }));
  // A failed image keeps no bytes: nothing can ever load it.
  if (!result.ok() && !sha.empty()) return CollectBlob(sha);
  return Status::Ok();
}

Status ImageRegistry::CollectBlob(const std::string& sha256) {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare("SELECT count(*) FROM images WHERE sha256 = ?1 AND "
                                       "state IN ('pending', 'available')"));
  q.Bind(1, sha256);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (row && q.ColumnInt64(0) > 0) return Status::Ok();
  return blobs_.Remove(sha256);
}

StatusOr<ImageRecord> ImageRegistry::Get(const Principal& who, std::string_view id) const {
  return LoadVisible(who, id);
}

StatusOr<std::vector<ImageRecord>> ImageRegistry::List(const Principal& who) const {
  std::string sql = fmt::format("SELECT {} FROM images WHERE state != 'deleted'", kColumns);
  if (who.role != Role::kOperator) {
    sql +=
        " AND (owner = ?1 OR public = 1 OR id IN (SELECT image_id FROM image_permissions "
        "WHERE tenant = ?1))";
  }
  sql += " ORDER BY created_at, id";
  ASSIGN_OR_RETURN(Statement q, store_.db().Prepare(sql));
  if (who.role != Role::kOperator) q.Bind(1, who.tenant);
  std::vector<ImageRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadRecord(q));
  }
  for (ImageRecord& r : out) {
    if (who.role != Role::kOperator && r.owner != who.tenant) continue;
    ASSIGN_OR_RETURN(ImageRecord full, Load(r.id));
    r.shared_with = std::move(full.shared_with);
  }
  return out;
}

StatusOr<ImageRecord> ImageRegistry::Delete(const Principal& who, std::string_view id) {
  ASSIGN_OR_RETURN(ImageRecord r, LoadOwned(who, id));
  MutexLock lock(blob_mu_);
  std::string now = FormatRfc3339(clock_.Now());
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) {
    ASSIGN_OR_RETURN(Statement update,
                     db.Prepare("UPDATE images SET state = 'deleted', updated_at = ?2 "
                                "WHERE id = ?1"));
    update.Bind(1, id).Bind(2, now);
    RETURN_IF_ERROR(update.Run());
    ASSIGN_OR_RETURN(Statement drop, db.Prepare("DELETE FROM image_permissions WHERE "
                                                "image_id = ?1"));
    drop.Bind(1, id);
    RETURN_IF_ERROR(drop.Run());
    return AppendEvent(db, clock_, "image.deleted", id, {{"by", who.tenant}});
  }));
  RETURN_IF_ERROR(CollectBlob(r.sha256));
  r.state = "deleted";
  r.updated_at = now;
  return r;
}

StatusOr<ImagePermissions> ImageRegistry::GetPermissions(const Principal& who,
                                                         std::string_view id) const {
  ASSIGN_OR_RETURN(ImageRecord r, LoadOwned(who, id));
  return ImagePermissions{r.is_public, r.shared_with};
}

StatusOr<ImagePermissions> ImageRegistry::SetPermissions(const Principal& who, std::string_view id,
                                                         const ImagePermissions& permissions) {
  ASSIGN_OR_RETURN(ImageRecord r, LoadOwned(who, id));
  if (r.state != "available") {
    return FailedPreconditionError(
        fmt::format("image {} is {}; permissions change only while it is available", id, r.state),
        "IMAGE_NOT_AVAILABLE");
  }
  for (const std::string& t : permissions.tenants) {
    RETURN_IF_ERROR(TokenAuthenticator::CheckTenantName(t));
  }
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) {
    ASSIGN_OR_RETURN(Statement pub, db.Prepare("UPDATE images SET public = ?2, updated_at = ?3 "
                                               "WHERE id = ?1"));
    pub.Bind(1, id).Bind(2, int64_t{permissions.is_public}).Bind(3, FormatRfc3339(clock_.Now()));
    RETURN_IF_ERROR(pub.Run());
    ASSIGN_OR_RETURN(Statement drop, db.Prepare("DELETE FROM image_permissions WHERE "
                                                "image_id = ?1"));
    drop.Bind(1, id);
    RETURN_IF_ERROR(drop.Run());
    for (const std::string& t : permissions.tenants) {
      ASSIGN_OR_RETURN(Statement add, db.Prepare("INSERT OR IGNORE INTO image_permissions "
                                                 "(image_id, tenant) VALUES (?1, ?2)"));
      add.Bind(1, id).Bind(2, t);
      RETURN_IF_ERROR(add.Run());
    }
    return AppendEvent(db, clock_, "image.permissions", id,
                       {{"public", permissions.is_public}, {"tenants", permissions.tenants}});
  }));
  ASSIGN_OR_RETURN(ImageRecord updated, Load(id));
  return ImagePermissions{updated.is_public, updated.shared_with};
}

Status ImageRegistry::Recover() {
  std::vector<std::string> pending;
  {
    ASSIGN_OR_RETURN(Statement q,
                     store_.db().Prepare("SELECT id FROM images WHERE state = 'pending'"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      pending.push_back(q.ColumnText(0));
    }
  }
  for (const std::string& id : pending) {
    spdlog::info("image {} was pending at the last stop; validating it again", id);
    QueueValidation(id);
  }
  return Status::Ok();
}

}  // namespace fpgahost
