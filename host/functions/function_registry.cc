#include "host/functions/function_registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <system_error>

#include "common/digest.h"
#include "common/ids.h"
#include "common/logging.h"
#include "host/store/events.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;

constexpr char kColumns[] = "tenant, name, config, code_sha256, updated_at";
constexpr size_t kMaxEnvironmentBytes = 4096;  // Lambda's limit for all variables together

Status Invalid(std::string message) {
  return InvalidArgumentError(std::move(message), kInvalidParameterValue);
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

bool ValidEnvKey(std::string_view key) {
  if (key.empty() || !((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z'))) {
    return false;
  }
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Lambda reserves these for the runtime's own use.
bool ReservedEnvKey(std::string_view key) {
  static constexpr std::string_view kReserved[] = {"_HANDLER",
                                                   "_X_AMZN_TRACE_ID",
                                                   "AWS_DEFAULT_REGION",
                                                   "AWS_REGION",
                                                   "AWS_EXECUTION_ENV",
                                                   "AWS_LAMBDA_FUNCTION_NAME",
                                                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                                   "AWS_LAMBDA_FUNCTION_VERSION",
                                                   "AWS_LAMBDA_INITIALIZATION_TYPE",
                                                   "AWS_LAMBDA_LOG_GROUP_NAME",
                                                   "AWS_LAMBDA_LOG_STREAM_NAME",
                                                   "AWS_ACCESS_KEY",
                                                   "AWS_ACCESS_KEY_ID",
                                                   "AWS_SECRET_ACCESS_KEY",
                                                   "AWS_SESSION_TOKEN",
                                                   "AWS_LAMBDA_RUNTIME_API",
                                                   "LAMBDA_TASK_ROOT",
                                                   "LAMBDA_RUNTIME_DIR"};
  return std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved);
}

Status CheckConfig(const FunctionConfig& f) {
  if (!ValidName(f.name)) {
    return Invalid(fmt::format(
        "FunctionName '{}' must be 1-64 characters of letters, digits, '-' and '_'", f.name));
  }
  if (f.runtime != "provided" && f.runtime != "provided.al2" && f.runtime != "provided.al2023") {
    return Invalid(fmt::format(
        "Runtime '{}' is not supported: fpgahost runs the bootstrap of provided, provided.al2 "
        "and provided.al2023 bundles",
        f.runtime));
  }
  if (f.memory_mib < 128 || f.memory_mib > 10240) {
    return Invalid(fmt::format("MemorySize {} must be between 128 and 10240 MB", f.memory_mib));
  }
  if (f.timeout_seconds < 1 || f.timeout_seconds > 900) {
    return Invalid(fmt::format("Timeout {} must be between 1 and 900 seconds", f.timeout_seconds));
  }
  if (f.handler.size() > 128) return Invalid("Handler must be at most 128 characters");
  if (f.description.size() > 256) return Invalid("Description must be at most 256 characters");
  size_t env_bytes = 0;
  for (const auto& [k, v] : f.environment) {
    if (!ValidEnvKey(k)) {
      return Invalid(fmt::format(
          "Environment variable name '{}' must start with a letter and hold only letters, "
          "digits and '_'",
          k));
    }
    if (ReservedEnvKey(k)) {
      return Invalid(fmt::format(
          "Environment variable name '{}' is reserved by the Lambda runtime environment", k));
    }
    env_bytes += k.size() + v.size();
  }
  if (env_bytes > kMaxEnvironmentBytes) {
    return Invalid(fmt::format("Environment variables take {} bytes; the limit is {}", env_bytes,
                               kMaxEnvironmentBytes));
  }
  if (!f.fpga_image.empty() && !IsValidId(f.fpga_image, "img")) {
    return Invalid(fmt::format("FpgaImage must be an image id (img-...), not '{}'", f.fpga_image));
  }
  if (f.reserved_concurrency && *f.reserved_concurrency < 0) {
    return Invalid("ReservedConcurrentExecutions must be 0 or more");
  }
  return Status::Ok();
}

Json ConfigToJson(const FunctionConfig& f) {
  Json j = {{"description", f.description},
            {"runtime", f.runtime},
            {"handler", f.handler},
            {"role", f.role},
            {"memory_mib", f.memory_mib},
            {"timeout_seconds", f.timeout_seconds},
            {"environment", f.environment},
            {"code_sha256_base64", f.code_sha256_base64},
            {"code_size", f.code_size},
            {"last_modified", f.last_modified},
            {"cpu_features", f.cpu_features},
            {"fpga_image", f.fpga_image},
            {"tenant_sidecars", f.tenant_sidecars}};
  j["reserved_concurrency"] =
      f.reserved_concurrency ? Json(*f.reserved_concurrency) : Json(nullptr);
  j["idempotency"] = f.idempotency ? f.idempotency->ToJson() : Json(nullptr);
  return j;
}

FunctionConfig ConfigFromRow(const Statement& q) {
  FunctionConfig f;
  f.tenant = q.ColumnText(0);
  f.name = q.ColumnText(1);
  Json j = Json::parse(q.ColumnText(2), nullptr, false);
  if (j.is_object()) {
    f.description = j.value("description", "");
    f.runtime = j.value("runtime", f.runtime);
    f.handler = j.value("handler", "");
    f.role = j.value("role", "");
    f.memory_mib = j.value("memory_mib", f.memory_mib);
    f.timeout_seconds = j.value("timeout_seconds", f.timeout_seconds);
    if (j.contains("environment") && j["environment"].is_object()) {
      f.environment = j["environment"].get<std::map<std::string, std::string>>();
    }
    f.code_sha256_base64 = j.value("code_sha256_base64", "");
    f.code_size = j.value("code_size", uint64_t{0});
    f.last_modified = j.value("last_modified", "");
    f.fpga_image = j.value("fpga_image", "");
    if (j.contains("tenant_sidecars") && j["tenant_sidecars"].is_array()) {
      for (const Json& name : j["tenant_sidecars"]) {
        if (name.is_string()) f.tenant_sidecars.push_back(name.get<std::string>());
      }
    }
    if (j.contains("reserved_concurrency") && j["reserved_concurrency"].is_number_integer()) {
      f.reserved_concurrency = j["reserved_concurrency"].get<int>();
    }
    if (j.contains("idempotency") && j["idempotency"].is_object()) {
      StatusOr<IdempotencySpec> spec = IdempotencySpec::FromJson(j["idempotency"]);
      if (spec.ok()) f.idempotency = *std::move(spec);
    }
    // Absent from rows written before CPU features were recorded: none known.
    if (j.contains("cpu_features") && j["cpu_features"].is_array()) {
      for (const Json& feature : j["cpu_features"]) {
        if (feature.is_string()) f.cpu_features.push_back(feature.get<std::string>());
      }
    }
  }
  f.code_sha256_hex = q.ColumnText(3);
  return f;
}

Status NotFound(std::string_view name) {
  return NotFoundError(fmt::format("Function not found: {}", name), kResourceNotFound);
}

// Lambda writes times as 2026-11-28T10:52:40.784+0000.
std::string LambdaTime(std::chrono::system_clock::time_point t) {
  std::string s = FormatRfc3339(t);
  if (!s.empty() && s.back() == 'Z') s.replace(s.size() - 1, 1, "+0000");
  return s;
}

}  // namespace

std::string LambdaAccountId(std::string_view tenant) {
  // Stable per tenant: twelve decimal digits taken from the SHA-256 of its name.
  std::string hex = Sha256Hex(tenant);
  std::string digits;
  for (size_t i = 0; digits.size() < 12; ++i) {
    digits += static_cast<char>('0' + std::stoi(hex.substr(i * 2, 2), nullptr, 16) % 10);
  }
  return digits;
}

std::string FunctionArn(const FunctionConfig& f, std::string_view region) {
  return fmt::format("arn:aws:lambda:{}:{}:function:{}", region, LambdaAccountId(f.tenant), f.name);
}

Json FunctionConfigurationJson(const FunctionConfig& f, std::string_view region,
                               std::string_view account) {
  Json variables = Json::object();
  for (const auto& [k, v] : f.environment) variables[k] = v;
  return {{"FunctionName", f.name},
          {"FunctionArn", fmt::format("arn:aws:lambda:{}:{}:function:{}", region, account, f.name)},
          {"Runtime", f.runtime},
          {"Role", f.role},
          {"Handler", f.handler},
          {"CodeSize", f.code_size},
          {"Description", f.description},
          {"Timeout", f.timeout_seconds},
          {"MemorySize", f.memory_mib},
          {"LastModified", f.last_modified},
          {"CodeSha256", f.code_sha256_base64},
          {"Version", "$LATEST"},
          {"Environment", {{"Variables", std::move(variables)}}},
          {"State", "Active"},
          {"LastUpdateStatus", "Successful"},
          {"PackageType", "Zip"},
          {"Architectures", {"x86_64"}},
          {"CpuFeatures", f.cpu_features},
          {"FpgaImage", f.fpga_image.empty() ? Json(nullptr) : Json(f.fpga_image)},
          {"TenantSidecars", f.tenant_sidecars},
          // fpgahost's own: null unless the function was declared idempotent.
          {"Idempotency", f.idempotency ? f.idempotency->ToJson() : Json(nullptr)}};
}

FunctionRegistry::FunctionRegistry(StateStore& store, fs::path code_root, const Clock& clock,
                                   BundleLimits limits, HostCpu host_cpu, CpuScanLimits scan_limits)
    : store_(store),
      code_root_(std::move(code_root)),
      clock_(clock),
      limits_(limits),
      host_cpu_(std::move(host_cpu)),
      scan_limits_(scan_limits) {}

fs::path FunctionRegistry::CodeDir(const FunctionConfig& f) const {
  return code_root_ / f.code_sha256_hex;
}

Status FunctionRegistry::Save(SqliteDb& db, const FunctionConfig& f) const {
  ASSIGN_OR_RETURN(
      Statement upsert,
      db.Prepare(fmt::format("INSERT OR REPLACE INTO functions ({}) VALUES (?1, ?2, ?3, ?4, ?5)",
                             kColumns)));
  upsert.Bind(1, f.tenant)
      .Bind(2, f.name)
      .Bind(3, ConfigToJson(f).dump())
      .Bind(4, f.code_sha256_hex)
      .Bind(5, FormatRfc3339(clock_.Now()));
  return upsert.Run();
}

StatusOr<FunctionConfig> FunctionRegistry::Create(FunctionConfig config,
                                                  std::string_view zip_bytes) {
  RETURN_IF_ERROR(CheckConfig(config));
  StatusOr<BundleInfo> inspected = InspectBundle(zip_bytes, limits_);
  if (!inspected.ok()) {
    Status s = inspected.status();
    std::string message = fmt::format("Code.ZipFile: {} ({})", s.message(), s.reason());
    if (s.code() == StatusCode::kPayloadTooLarge) {
      return PayloadTooLargeError(std::move(message), kRequestTooLarge);
    }
    return Invalid(std::move(message));
  }
  config.code_sha256_hex = inspected->sha256_hex;
  config.code_sha256_base64 = inspected->code_sha256_base64;
  config.code_size = inspected->zip_bytes;
  config.last_modified = LambdaTime(clock_.Now());

  MutexLock lock(mu_);
  if (Get(config.tenant, config.name).ok()) {
    return ConflictError(fmt::format("Function already exist: {}", config.name), kResourceConflict);
  }
  fs::path dir = CodeDir(config);
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    StatusOr<BundleInfo> extracted = ExtractBundle(zip_bytes, dir, limits_);
    if (!extracted.ok()) return extracted.status().WithContext("storing the code");
  }
  // Scanned even when the code was there already: the host's CPU may differ from the one that
  // accepted it, and the scan is bounded by scan_limits_.
  StatusOr<std::vector<std::string>> features = CheckCpuFeatures(dir);
  if (!features.ok()) {
    CollectCode(config.code_sha256_hex);
    return features.status();
  }
  config.cpu_features = *std::move(features);
  // Tenant sidecars are extensions of this bundle.
  for (const std::string& name : config.tenant_sidecars) {
    if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos ||
        !fs::is_regular_file(dir / "extensions" / name, ec)) {
      CollectCode(config.code_sha256_hex);
      return Invalid(fmt::format(
          "TenantSidecars: '{}' is not an extension of the bundle (a file in extensions/)", name));
    }
  }
  Status saved = store_.InTransaction([&](SqliteDb& db) -> Status {
    RETURN_IF_ERROR(Save(db, config));
    return AppendEvent(db, clock_, "function.created", config.tenant + "/" + config.name,
                       {{"code_sha256", config.code_sha256_base64},
                        {"memory_mib", config.memory_mib},
                        {"cpu_features", config.cpu_features}});
  });
  if (!saved.ok()) {
    CollectCode(config.code_sha256_hex);
    return saved;
  }
  Cache(config);
  return config;
}

std::shared_ptr<const FunctionConfig> FunctionRegistry::Find(std::string_view tenant,
                                                             std::string_view name) const {
  std::string key = fmt::format("{}/{}", tenant, name);
  MutexLock lock(cache_mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  // Read under the lock, so a change committed meanwhile cannot be overwritten by this read.
  StatusOr<FunctionConfig> f = Get(tenant, name);
  if (!f.ok()) return nullptr;
  auto shared = std::make_shared<const FunctionConfig>(*std::move(f));
  cache_.emplace(std::move(key), shared);
  return shared;
}

void FunctionRegistry::Cache(const FunctionConfig& f) {
  MutexLock lock(cache_mu_);
  cache_.insert_or_assign(fmt::format("{}/{}", f.tenant, f.name),
                          std::make_shared<const FunctionConfig>(f));
}

void FunctionRegistry::Uncache(std::string_view tenant, std::string_view name) {
  MutexLock lock(cache_mu_);
  auto it = cache_.find(fmt::format("{}/{}", tenant, name));
  if (it != cache_.end()) cache_.erase(it);
}

StatusOr<FunctionConfig> FunctionRegistry::Get(std::string_view tenant,
                                               std::string_view name) const {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare(fmt::format(
                       "SELECT {} FROM functions WHERE tenant = ?1 AND name = ?2", kColumns)));
  q.Bind(1, tenant).Bind(2, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound(name);
  return ConfigFromRow(q);
}

StatusOr<std::vector<FunctionConfig>> FunctionRegistry::List(std::string_view tenant) const {
  ASSIGN_OR_RETURN(Statement q,
                   store_.db().Prepare(fmt::format("SELECT {} FROM functions WHERE ?1 = '' OR "
                                                   "tenant = ?1 ORDER BY tenant, name",
                                                   kColumns)));
  q.Bind(1, tenant);
  std::vector<FunctionConfig> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ConfigFromRow(q));
  }
  return out;
}

Status FunctionRegistry::Delete(std::string_view tenant, std::string_view name) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(FunctionConfig f, Get(tenant, name));
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) -> Status {
    ASSIGN_OR_RETURN(Statement del,
                     db.Prepare("DELETE FROM functions WHERE tenant = ?1 AND name = ?2"));
    del.Bind(1, tenant).Bind(2, name);
    RETURN_IF_ERROR(del.Run());
    return AppendEvent(db, clock_, "function.deleted", f.tenant + "/" + f.name, Json::object());
  }));
  Uncache(tenant, name);
  CollectCode(f.code_sha256_hex);
  return Status::Ok();
}

StatusOr<FunctionConfig> FunctionRegistry::SetReservedConcurrency(std::string_view tenant,
                                                                  std::string_view name,
                                                                  std::optional<int> value) {
  if (value && *value < 0) return Invalid("ReservedConcurrentExecutions must be 0 or more");
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(FunctionConfig f, Get(tenant, name));
  f.reserved_concurrency = value;
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) { return Save(db, f); }));
  Cache(f);
  return f;
}

StatusOr<FunctionConfig> FunctionRegistry::SetIdempotency(std::string_view tenant,
                                                          std::string_view name,
                                                          std::optional<IdempotencySpec> spec) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(FunctionConfig f, Get(tenant, name));
  f.idempotency = std::move(spec);
  RETURN_IF_ERROR(store_.InTransaction([&](SqliteDb& db) { return Save(db, f); }));
  Cache(f);
  return f;
}

StatusOr<std::vector<std::string>> FunctionRegistry::CheckCpuFeatures(const fs::path& dir) const {
  StatusOr<CpuFeatureReport> report = ScanBundle(dir, scan_limits_);
  if (!report.ok()) {
    Status s = report.status();
    if (s.code() != StatusCode::kInvalidArgument) return s.WithContext("scanning the code");
    return Invalid(fmt::format("Code.ZipFile: {} ({})", s.message(), s.reason()));
  }
  if (!report->skipped.empty()) {
    spdlog::warn("functions: {} not scanned for CPU features: over {} bytes of code in all",
                 fmt::join(report->skipped, ", "), scan_limits_.max_code_bytes);
  }
  std::vector<std::string> missing = MissingFeatures(report->features, host_cpu_);
  if (missing.empty()) return std::move(report->features);
  // Which files need which of the missing features, so the user knows what to rebuild.
  std::vector<std::string> uses;
  for (const FileCpuFeatures& file : report->files) {
    std::vector<std::string> lacking = MissingFeatures(file.features, host_cpu_);
    if (!lacking.empty()) {
      uses.push_back(fmt::format("{}: {}", file.path, fmt::join(lacking, ", ")));
    }
  }
  return Invalid(fmt::format("the function's code uses CPU features this host lacks: {} ({})",
                             fmt::join(missing, ", "), fmt::join(uses, "; ")));
}

void FunctionRegistry::CollectCode(const std::string& sha256) {
  StatusOr<Statement> q =
      store_.db().Prepare("SELECT COUNT(*) FROM functions WHERE code_sha256 = ?1");
  if (!q.ok()) return;
  q->Bind(1, sha256);
  StatusOr<bool> row = q->Step();
  if (!row.ok() || !*row || q->ColumnInt64(0) != 0) return;
  std::error_code ec;
  fs::remove_all(code_root_ / sha256, ec);
  if (ec) spdlog::warn("functions: cannot remove unused code {}: {}", sha256, ec.message());
}

}  // namespace fpgahost::functions
