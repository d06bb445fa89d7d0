// AWS-style access keys of tenants, for clients that sign their requests with SigV4
// (host/auth/sigv4.h) — the AWS CLI and SDKs calling the Lambda-compatible API.
//
// An access key is an id ("AKIA" + 16 characters of A-Z2-7, safe to show and log) and a
// secret access key (40 characters of base64, shown once, when it is created). Unlike an
// API token, whose SHA-256 is enough to check it, the secret itself is needed to verify a
// signature (an HMAC keyed by it), so the store keeps it as it is — as AWS does. A tenant
// has at most kMaxKeysPerTenant keys, AWS's limit per IAM user, so keys can be rotated.
//
// Keys are cached in memory: Lookup does no I/O and runs on every signed request. Create,
// List and Delete touch the store: call them off the I/O threads. Thread-safe.
#pragma once

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

struct AccessKey {
  std::string access_key_id;
  std::string tenant;
  std::string description;
  std::string created_at;  // RFC 3339
};

struct IssuedAccessKey {
  AccessKey key;
  std::string secret_access_key;  // returned only here
};

class CredentialStore {
 public:
  static constexpr int kMaxKeysPerTenant = 2;
  static constexpr size_t kMaxDescriptionBytes = 256;

  CredentialStore(StateStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Loads the keys from the store into memory.
  Status Load() EXCLUDES(mu_);

  // Issues a key for an existing tenant. Errors: NotFound (TENANT_NOT_FOUND);
  // InvalidArgument (INVALID_FIELD) for a description over kMaxDescriptionBytes;
  // FailedPrecondition (ACCESS_KEY_LIMIT_EXCEEDED, HTTP 409) when the tenant has
  // kMaxKeysPerTenant keys already.
  StatusOr<IssuedAccessKey> Create(std::string_view tenant, std::string_view description)
      EXCLUDES(mu_);

  struct Secret {
    std::string tenant;
    std::string secret_access_key;
  };
  // The tenant and secret of a key, or nullopt when there is no such key. No I/O.
  std::optional<Secret> Lookup(std::string_view access_key_id) const EXCLUDES(mu_);

  // The tenant's keys in the order they were created, without secrets.
  StatusOr<std::vector<AccessKey>> List(std::string_view tenant) const;

  // Deletes one of the tenant's keys; NotFound (ACCESS_KEY_NOT_FOUND) when the tenant has no
  // such key (another tenant's key included).
  Status Delete(std::string_view tenant, std::string_view access_key_id) EXCLUDES(mu_);

 private:
  StateStore& store_;
  const Clock& clock_;
  mutable Mutex mu_;
  std::map<std::string, Secret, std::less<>> by_id_ GUARDED_BY(mu_);
};

}  // namespace fpgahost
