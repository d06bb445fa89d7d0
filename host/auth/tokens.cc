#include "host/auth/tokens.h"

#include <fmt/format.h>

#include "common/digest.h"
#include "common/ids.h"
#include "host/store/events.h"

namespace fpgahost {
namespace {

constexpr std::string_view kTokenPrefix = "fph_";

// With `must_be_new`, an existing tenant is TENANT_EXISTS; otherwise it is kept as it is.
Status InsertTenant(SqliteDb& db, std::string_view tenant, const Clock& clock, bool must_be_new) {
  ASSIGN_OR_RETURN(Statement insert,
                   db.Prepare(must_be_new ? "INSERT INTO tenants (name, created_at) VALUES (?1, ?2)"
                                          : "INSERT OR IGNORE INTO tenants (name, created_at) "
                                            "VALUES (?1, ?2)"));
  insert.Bind(1, tenant).Bind(2, FormatRfc3339(clock.Now()));
  Status s = insert.Run();
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError(fmt::format("tenant '{}' already exists", tenant), "TENANT_EXISTS");
  }
  RETURN_IF_ERROR(s);
  if (must_be_new) return AppendEvent(db, clock, "tenant.created", tenant, Json::object());
  return Status::Ok();
}

}  // namespace

std::string_view RoleName(Role role) { return role == Role::kOperator ? "operator" : "customer"; }

StatusOr<Role> ParseRole(std::string_view name) {
  if (name == "customer") return Role::kCustomer;
  if (name == "operator") return Role::kOperator;
  return InvalidArgumentError(fmt::format("role '{}' is not customer or operator", name));
}

Status TokenAuthenticator::CheckTenantName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 63 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return InvalidArgumentError(
        fmt::format("tenant name '{}' must be 1-63 characters of a-z, 0-9 and '-', starting "
                    "with a letter",
                    name),
        "INVALID_TENANT_NAME");
  }
  return Status::Ok();
}

Status TokenAuthenticator::Load() {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare("SELECT id, tenant, role, sha256 FROM api_tokens"));
  std::map<std::string, Principal, std::less<>> loaded;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(Role role, ParseRole(q.ColumnText(2)));
    loaded[q.ColumnText(3)] = Principal{q.ColumnText(1), role, q.ColumnText(0)};
  }
  MutexLock lock(mu_);
  by_hash_ = std::move(loaded);
  return Status::Ok();
}

bool TokenAuthenticator::HasTokens() const {
  MutexLock lock(mu_);
  return !by_hash_.empty();
}

StatusOr<std::vector<IssuedToken>> TokenAuthenticator::IssueTokens(
    const std::vector<TokenRequest>& requests, const BeforeCommit& before_commit,
    bool new_tenants) {
  std::vector<IssuedToken> tokens;
  std::vector<std::string> hashes;
  for (const TokenRequest& r : requests) {
    RETURN_IF_ERROR(CheckTenantName(r.tenant));
    IssuedToken token;
    token.id = NewId("tok");
    token.secret = std::string(kTokenPrefix) + RandomHex(32);
    token.principal = Principal{r.tenant, r.role, token.id};
    hashes.push_back(Sha256Hex(token.secret));
    tokens.push_back(std::move(token));
  }
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const IssuedToken& token = tokens[i];
      const TokenRequest& r = requests[i];
      RETURN_IF_ERROR(InsertTenant(db, r.tenant, clock_, new_tenants));
      ASSIGN_OR_RETURN(Statement insert,
                       db.Prepare("INSERT INTO api_tokens (id, tenant, role, description, "
                                  "sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      insert.Bind(1, token.id)
          .Bind(2, r.tenant)
          .Bind(3, RoleName(r.role))
          .Bind(4, r.description)
          .Bind(5, hashes[i])
          .Bind(6, FormatRfc3339(clock_.Now()));
      RETURN_IF_ERROR(insert.Run());
      RETURN_IF_ERROR(AppendEvent(db, clock_, "token.created", token.id,
                                  {{"tenant", r.tenant}, {"role", RoleName(r.role)}}));
      if (before_commit) RETURN_IF_ERROR(before_commit(token));
    }
    return Status::Ok();
  }));
  MutexLock lock(mu_);
  for (size_t i = 0; i < tokens.size(); ++i) by_hash_[hashes[i]] = tokens[i].principal;
  return tokens;
}

StatusOr<IssuedToken> TokenAuthenticator::IssueToken(std::string_view tenant, Role role,
                                                     std::string_view description) {
  ASSIGN_OR_RETURN(auto tokens,
                   IssueTokens({{std::string(tenant), role, std::string(description)}}));
  return std::move(tokens.front());
}

StatusOr<IssuedToken> TokenAuthenticator::CreateTenant(std::string_view tenant) {
  ASSIGN_OR_RETURN(auto tokens,
                   IssueTokens({{std::string(tenant), Role::kCustomer, "first token"}}, nullptr,
                               /*new_tenants=*/true));
  return std::move(tokens.front());
}

StatusOr<std::vector<TenantInfo>> TokenAuthenticator::ListTenants() const {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare("SELECT name, created_at FROM tenants ORDER BY name"));
  std::vector<TenantInfo> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.ColumnText(0), q.ColumnText(1)});
  }
  return out;
}

StatusOr<Principal> TokenAuthenticator::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) {
    return UnauthenticatedError("this call needs a token: send 'Authorization: Bearer <token>'",
                                "MISSING_TOKEN");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) {
    return UnauthenticatedError("the Authorization header must be 'Bearer <token>'",
                                "INVALID_TOKEN");
  }
  std::string_view secret = authorization.substr(kBearer.size());
  // The map is keyed by the secret's digest, so the lookup reveals nothing through timing
  // about any stored token.
  std::string hash = Sha256Hex(secret);
  MutexLock lock(mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) {
    return UnauthenticatedError("the token is not valid", "INVALID_TOKEN");
  }
  return it->second;
}

}  // namespace fpgahost
