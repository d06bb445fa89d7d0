#include "host/auth/credentials.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "common/base64.h"
#include "host/store/events.h"

namespace fpgahost {
namespace {

template <size_t N>
std::array<unsigned char, N> RandomBytes() {
  std::array<unsigned char, N> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(N)) != 1) {
    std::fputs("fatal: RAND_bytes failed: no entropy for access keys\n", stderr);
    std::abort();
  }
  return raw;
}

// "AKIA" and 80 random bits as 16 characters of RFC 4648 base32 (A-Z, 2-7), the shape of
// AWS's long-term access key ids.
std::string NewAccessKeyId() {
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::array<unsigned char, 10> raw = RandomBytes<10>();
  std::string id = "AKIA";
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned char b : raw) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      id.push_back(kBase32[(buffer >> bits) & 31]);
    }
  }
  return id;
}

// 240 random bits as 40 characters of base64, the shape of AWS's secret access keys.
std::string NewSecret() {
  std::array<unsigned char, 30> raw = RandomBytes<30>();
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

Status AccessKeyNotFound(std::string_view id) {
  return NotFoundError(fmt::format("access key '{}' not found", id), "ACCESS_KEY_NOT_FOUND");
}

}  // namespace

Status CredentialStore::Load() {
  ASSIGN_OR_RETURN(Statement q, store_.db().Prepare("SELECT id, tenant, secret FROM access_keys"));
  std::map<std::string, Secret, std::less<>> loaded;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    loaded[q.ColumnText(0)] = Secret{q.ColumnText(1), q.ColumnText(2)};
  }
  MutexLock lock(mu_);
  by_id_ = std::move(loaded);
  return Status::Ok();
}

StatusOr<IssuedAccessKey> CredentialStore::Create(std::string_view tenant,
                                                  std::string_view description) {
  if (description.size() > kMaxDescriptionBytes) {
    return InvalidArgumentError(
        fmt::format("description is {} bytes long, more than the {} allowed", description.size(),
                    kMaxDescriptionBytes),
        "INVALID_FIELD");
  }
  IssuedAccessKey issued;
  issued.key = AccessKey{NewAccessKeyId(), std::string(tenant), std::string(description),
                         FormatRfc3339(clock_.Now())};
  issued.secret_access_key = NewSecret();
  const AccessKey& key = issued.key;
  // The count and the insert share one write transaction, so two concurrent creates cannot
  // both slip under the limit.
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) -> Status {
    ASSIGN_OR_RETURN(Statement exists, db.Prepare("SELECT 1 FROM tenants WHERE name = ?1"));
    exists.Bind(1, tenant);
    ASSIGN_OR_RETURN(bool tenant_exists, exists.Step());
    if (!tenant_exists) {
      return NotFoundError(fmt::format("tenant '{}' does not exist", tenant), "TENANT_NOT_FOUND");
    }
    ASSIGN_OR_RETURN(Statement count,
                     db.Prepare("SELECT COUNT(*) FROM access_keys WHERE tenant = ?1"));
    count.Bind(1, tenant);
    ASSIGN_OR_RETURN(bool counted, count.Step());
    if (counted && count.ColumnInt64(0) >= kMaxKeysPerTenant) {
      return FailedPreconditionError(
          fmt::format("tenant '{}' already has {} access keys, the most a tenant may have (as "
                      "for an AWS IAM user); delete one first",
                      tenant, kMaxKeysPerTenant),
          "ACCESS_KEY_LIMIT_EXCEEDED");
    }
    ASSIGN_OR_RETURN(Statement insert,
                     db.Prepare("INSERT INTO access_keys (id, tenant, secret, description, "
                                "created_at) VALUES (?1, ?2, ?3, ?4, ?5)"));
    insert.Bind(1, key.access_key_id)
        .Bind(2, key.tenant)
        .Bind(3, issued.secret_access_key)
        .Bind(4, key.description)
        .Bind(5, key.created_at);
    RETURN_IF_ERROR(insert.Run());
    return AppendEvent(db, clock_, "access_key.created", key.access_key_id,
                       {{"tenant", key.tenant}});
  }));
  MutexLock lock(mu_);
  by_id_[key.access_key_id] = Secret{key.tenant, issued.secret_access_key};
  return issued;
}

std::optional<CredentialStore::Secret> CredentialStore::Lookup(
    std::string_view access_key_id) const {
  MutexLock lock(mu_);
  auto it = by_id_.find(access_key_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

StatusOr<std::vector<AccessKey>> CredentialStore::List(std::string_view tenant) const {
  ASSIGN_OR_RETURN(Statement q, store_.db().Prepare(
                                    "SELECT id, tenant, description, created_at FROM access_keys "
                                    "WHERE tenant = ?1 ORDER BY rowid"));
  q.Bind(1, tenant);
  std::vector<AccessKey> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.ColumnText(0), q.ColumnText(1), q.ColumnText(2), q.ColumnText(3)});
  }
  return out;
}

Status CredentialStore::Delete(std::string_view tenant, std::string_view access_key_id) {
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) -> Status {
    ASSIGN_OR_RETURN(Statement owned,
                     db.Prepare("SELECT 1 FROM access_keys WHERE id = ?1 AND tenant = ?2"));
    owned.Bind(1, access_key_id).Bind(2, tenant);
    ASSIGN_OR_RETURN(bool found, owned.Step());
    if (!found) return AccessKeyNotFound(access_key_id);
    ASSIGN_OR_RETURN(Statement del, db.Prepare("DELETE FROM access_keys WHERE id = ?1"));
    del.Bind(1, access_key_id);
    RETURN_IF_ERROR(del.Run());
    return AppendEvent(db, clock_, "access_key.deleted", access_key_id,
                       {{"tenant", std::string(tenant)}});
  }));
  MutexLock lock(mu_);
  auto it = by_id_.find(access_key_id);
  if (it != by_id_.end()) by_id_.erase(it);
  return Status::Ok();
}

}  // namespace fpgahost
