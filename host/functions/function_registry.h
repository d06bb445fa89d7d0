// The function registry: tenants' Lambda-style functions (configuration and code), as Lambda's
// control plane keeps them. A function is a code bundle (host/functions/bundle.h) with a
// `bootstrap`, run by the `provided` runtimes, plus its configuration: handler, memory size,
// timeout, environment variables, reserved concurrency.
//
// Code is stored once per digest: <code_root>/<sha256 of the zip>/ holds the extracted bundle,
// read-only to slots, shared by every function (and version) with the same bytes, removed when
// no function refers to it any more. The version is the code digest ("$LATEST" in Lambda's
// terms, with CodeSha256 telling versions apart).
//
// CPU features: at create, the extracted bundle is scanned for the instruction-set extensions
// its binaries use (host/functions/cpu_features.h), which are recorded on the function as
// /proc/cpuinfo flag names. A function that uses a feature the host's CPU lacks is refused
// (InvalidParameterValueException naming the missing features and the files that use them) and
// its extracted code removed; the record is what a multi-host scheduler places functions by.
//
// Names are per tenant: two tenants may both have a function "echo"; a tenant never sees
// another's (ResourceNotFoundException, as if it did not exist).
//
// Errors carry Lambda's exception names as reasons, so the Lambda-compatible API answers as
// Lambda does: InvalidParameterValueException (400, naming the parameter),
// ResourceNotFoundException (404), ResourceConflictException (409, the name is taken),
// RequestTooLargeException (413); the bundle's own reason (NO_BOOTSTRAP, ZIP_BOMB, ...) is in
// the message.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "host/functions/bundle.h"
#include "host/functions/cpu_features.h"
#include "host/functions/idempotency.h"
#include "host/store/state_store.h"

namespace fpgahost::functions {

inline constexpr char kInvalidParameterValue[] = "InvalidParameterValueException";
inline constexpr char kResourceNotFound[] = "ResourceNotFoundException";
inline constexpr char kResourceConflict[] = "ResourceConflictException";
inline constexpr char kRequestTooLarge[] = "RequestTooLargeException";

struct FunctionConfig {
  std::string tenant;
  std::string name;
  std::string description;
  std::string runtime = "provided.al2023";
  std::string handler;
  std::string role;  // accepted and kept, as Lambda requires one; fpgahost does not use it
  int memory_mib = 128;
  int timeout_seconds = 3;
  std::map<std::string, std::string> environment;
  std::optional<int> reserved_concurrency;
  // Declared idempotent: calls whose version, input and dependencies match an earlier success
  // reuse its result (host/functions/idempotency.h). fpgahost's own; Lambda has none.
  std::optional<IdempotencySpec> idempotency;

  // An FPGA function: the image (img-...) its slots run with, each on a card lent to it with
  // that image loaded (host/functions/card_lender.h). Empty for a CPU-only function.
  // fpgahost's own, set at create ("FpgaImage"); the caller must be able to load the image.
  std::string fpga_image;
  // Sidecars per tenant: names of the bundle's extensions (extensions/<name>) that run once per
  // tenant, in a sandbox of their own beside the tenant's slots, instead of in every slot; they
  // hear INVOKE for every call of the functions that declare them and SHUTDOWN when the last
  // such slot goes. fpgahost's own ("TenantSidecars"); the other extensions run per slot.
  std::vector<std::string> tenant_sidecars;

  // Code, filled in by the registry.
  std::string code_sha256_hex;
  std::string code_sha256_base64;
  uint64_t code_size = 0;
  std::string last_modified;  // Lambda's format: 2026-11-28T10:52:40.784+0000
  // The CPU features the code needs (/proc/cpuinfo flag names, sorted, unique): found by
  // scanning its binaries, or declared by the bundle (cpu_features.h). Empty for functions
  // created before the scan existed.
  std::vector<std::string> cpu_features;
};

// The 12-digit AWS account id a tenant's ARNs carry: stable, derived from its name.
std::string LambdaAccountId(std::string_view tenant);

// arn:aws:lambda:<region>:<account>:function:<name>
std::string FunctionArn(const FunctionConfig& f, std::string_view region);

// Lambda's FunctionConfiguration shape, with `region` and `account` in the ARN, plus
// fpgahost's own "CpuFeatures" (the recorded CPU features), "FpgaImage" and "Idempotency"
// (Lambda clients ignore fields they do not know).
Json FunctionConfigurationJson(const FunctionConfig& f, std::string_view region,
                               std::string_view account);

class FunctionRegistry {
 public:
  // `code_root` is created when missing. Functions are checked against `host_cpu` (this
  // machine's by default; tests pass a made-up one).
  FunctionRegistry(StateStore& store, std::filesystem::path code_root, const Clock& clock,
                   BundleLimits limits = {}, HostCpu host_cpu = ThisHostCpu(),
                   CpuScanLimits scan_limits = {});

  // Checks the configuration as Lambda does (name 1-64 of [A-Za-z0-9_-], memory 128-10240 MiB,
  // timeout 1-900 s, environment at most 4 KB, runtime one of provided, provided.al2,
  // provided.al2023), validates and stores the code, finds the CPU features it needs and
  // refuses it when the host lacks any, records the function.
  StatusOr<FunctionConfig> Create(FunctionConfig config, std::string_view zip_bytes) EXCLUDES(mu_);
  StatusOr<FunctionConfig> Get(std::string_view tenant, std::string_view name) const;
  // Every function of `tenant` (every tenant's when empty), by name.
  StatusOr<std::vector<FunctionConfig>> List(std::string_view tenant) const;
  // Removes the function, and its code when nothing else uses it.
  Status Delete(std::string_view tenant, std::string_view name) EXCLUDES(mu_);
  // Reserved concurrency: 0 stops the function; nullopt removes the reservation.
  StatusOr<FunctionConfig> SetReservedConcurrency(std::string_view tenant, std::string_view name,
                                                  std::optional<int> value);
  // Declares the function idempotent with `spec`'s dependencies, or (nullopt) no longer.
  StatusOr<FunctionConfig> SetIdempotency(std::string_view tenant, std::string_view name,
                                          std::optional<IdempotencySpec> spec);

  // The function's configuration from memory, kept in step with the table: the lookup on
  // every invocation, where an SQLite read would cost more than the rest. Null when there is
  // no such function.
  std::shared_ptr<const FunctionConfig> Find(std::string_view tenant, std::string_view name) const
      EXCLUDES(cache_mu_);

  // Where the function's extracted bundle is (mounted at /var/task in its slots).
  std::filesystem::path CodeDir(const FunctionConfig& f) const;

 private:
  Status Save(SqliteDb& db, const FunctionConfig& f) const;
  // Removes <code_root>/<sha256> when no function refers to it. Caller holds mu_.
  void CollectCode(const std::string& sha256) REQUIRES(mu_);
  // The CPU features of the code extracted at `dir`, or why the function cannot be created.
  StatusOr<std::vector<std::string>> CheckCpuFeatures(const std::filesystem::path& dir) const;

  StateStore& store_;
  const std::filesystem::path code_root_;
  const Clock& clock_;
  const BundleLimits limits_;
  const HostCpu host_cpu_;
  const CpuScanLimits scan_limits_;
  // Orders code extraction and collection against each other.
  Mutex mu_ ACQUIRED_BEFORE(cache_mu_);
  // Find's cache: "tenant/name" -> configuration. Changes update it after they commit.
  mutable Mutex cache_mu_;
  mutable std::map<std::string, std::shared_ptr<const FunctionConfig>, std::less<>> cache_
      GUARDED_BY(cache_mu_);
  void Cache(const FunctionConfig& f) EXCLUDES(cache_mu_);
  void Uncache(std::string_view tenant, std::string_view name) EXCLUDES(cache_mu_);
};

}  // namespace fpgahost::functions
