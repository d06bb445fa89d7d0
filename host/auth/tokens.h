// Bearer-token authentication. A token maps to a tenant and a role; the store keeps only
// its SHA-256, so a leaked database reveals no usable token. Tokens are 256-bit random
// secrets ("fph_" + 64 hex), which is why a fast hash is enough.
//
// Tokens are cached in memory, so Authenticate does no I/O and can run on the request path.
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "host/store/state_store.h"

namespace fpgahost {

enum class Role { kCustomer, kOperator };

std::string_view RoleName(Role role);
StatusOr<Role> ParseRole(std::string_view name);

// Who is calling.
struct Principal {
  std::string tenant;
  Role role = Role::kCustomer;
  std::string token_id;
};

struct IssuedToken {
  std::string id;      // tok-..., safe to show and log
  std::string secret;  // shown once, never stored
  Principal principal;
};

struct TenantInfo {
  std::string name;
  std::string created_at;
};

class TokenAuthenticator {
 public:
  TokenAuthenticator(StateStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Loads the token hashes from the store into memory.
  Status Load() EXCLUDES(mu_);

  bool HasTokens() const EXCLUDES(mu_);

  // Tenant names are 1-63 characters of [a-z0-9-], starting with a letter.
  static Status CheckTenantName(std::string_view name);

  struct TokenRequest {
    std::string tenant;
    Role role = Role::kCustomer;
    std::string description;
  };
  // Runs inside the store transaction that records a new token, before it commits: if it
  // fails, the token is not created. The daemon uses it to write token files first.
  using BeforeCommit = std::function<Status(const IssuedToken&)>;

  // Creates each tenant that does not exist yet and issues the tokens, all or none. With
  // `new_tenants`, a tenant that exists already is an error (TENANT_EXISTS).
  StatusOr<std::vector<IssuedToken>> IssueTokens(const std::vector<TokenRequest>& requests,
                                                 const BeforeCommit& before_commit = nullptr,
                                                 bool new_tenants = false) EXCLUDES(mu_);
  StatusOr<IssuedToken> IssueToken(std::string_view tenant, Role role, std::string_view description)
      EXCLUDES(mu_);

  // Creates a tenant and its first customer token together, all or nothing; AlreadyExists
  // (TENANT_EXISTS) if the tenant exists.
  StatusOr<IssuedToken> CreateTenant(std::string_view tenant) EXCLUDES(mu_);
  StatusOr<std::vector<TenantInfo>> ListTenants() const;

  // Checks an Authorization header value ("Bearer <token>"). Unauthenticated with reason
  // MISSING_TOKEN when there is none, INVALID_TOKEN when it is unknown or malformed.
  StatusOr<Principal> Authenticate(std::string_view authorization) const EXCLUDES(mu_);

 private:
  StateStore& store_;
  const Clock& clock_;
  mutable Mutex mu_;
  std::map<std::string, Principal, std::less<>> by_hash_ GUARDED_BY(mu_);
};

}  // namespace fpgahost
