#include "host/functions/idempotency.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <optional>
#include <system_error>
#include <utility>

#include "common/digest.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;

Status BadField(const std::string& message) {
  return InvalidArgumentError(message, "INVALID_FIELD");
}

StatusOr<std::vector<std::string>> StringList(const Json& j, const char* field) {
  std::vector<std::string> out;
  if (!j.contains(field) || j.at(field).is_null()) return out;
  const Json& list = j.at(field);
  if (!list.is_array()) return BadField(fmt::format("{} must be an array of strings", field));
  if (list.size() > kMaxDependencies) {
    return BadField(
        fmt::format("{} lists {} entries; at most {}", field, list.size(), kMaxDependencies));
  }
  for (const Json& item : list) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return BadField(fmt::format("{} must be an array of non-empty strings", field));
    }
    out.push_back(item.get<std::string>());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status CheckRelativePath(const std::string& path) {
  fs::path p(path);
  bool escapes = std::any_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
  if (path.size() > 1024 || p.is_absolute() || escapes || path.find('\0') != std::string::npos) {
    return BadField(fmt::format(
        "files: '{}' must be a relative path under the tenant's data root, without '..'", path));
  }
  return Status::Ok();
}

// One line per entry: its path (relative to the tenant's root) and what lstat says of it.
void StatLine(const fs::path& full, const std::string& shown, std::string& out) {
  struct stat st {};
  if (::lstat(full.c_str(), &st) != 0) {
    out += fmt::format("{}\tabsent\n", shown);
    return;
  }
  out += fmt::format("{}\t{:o}\t{}\t{}.{}\t{}.{}\t{}\n", shown, st.st_mode, st.st_size,
                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
                     st.st_ino);
}

}  // namespace

Json IdempotencySpec::ToJson() const {
  return Json{
      {"files", files}, {"images", images}, {"functions", functions}, {"ttl_seconds", ttl.count()}};
}

StatusOr<IdempotencySpec> IdempotencySpec::FromJson(const Json& j) {
  if (!j.is_object()) return BadField("idempotency must be a JSON object");
  RETURN_IF_ERROR(CheckKnownFields(j, {"files", "images", "functions", "ttl_seconds"}));
  IdempotencySpec spec;
  ASSIGN_OR_RETURN(spec.files, StringList(j, "files"));
  ASSIGN_OR_RETURN(spec.images, StringList(j, "images"));
  ASSIGN_OR_RETURN(spec.functions, StringList(j, "functions"));
  for (const std::string& f : spec.files) RETURN_IF_ERROR(CheckRelativePath(f));
  for (const std::string& i : spec.images) {
    if (!i.starts_with("img-") || i.size() > 64) {
      return BadField(fmt::format("images: '{}' is not an image id (img-...)", i));
    }
  }
  for (const std::string& f : spec.functions) {
    bool valid = f.size() <= 64 && std::all_of(f.begin(), f.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                 });
    if (!valid) return BadField(fmt::format("functions: '{}' is not a function name", f));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> ttl, GetOptionalField<int64_t>(j, "ttl_seconds"));
  if (ttl) {
    if (*ttl < 1 || *ttl > kMaxReuseTtlSeconds) {
      return BadField(
          fmt::format("ttl_seconds must be from 1 to {}, not {}", kMaxReuseTtlSeconds, *ttl));
    }
    spec.ttl = std::chrono::seconds(*ttl);
  }
  return spec;
}

StatusOr<std::string> DependencyDigest(const IdempotencySpec& spec, std::string_view tenant,
                                       const DependencySources& sources) {
  std::string state;
  size_t entries = 0;
  fs::path root = sources.data_root / std::string(tenant);
  for (const std::string& file : spec.files) {
    fs::path full = root / file;
    StatLine(full, file, state);
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(full, ec))) continue;
    // Sorted, so the same tree gives the same digest whatever order readdir returns.
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(full, fs::directory_options::none, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (++entries > kMaxDependencyEntries) {
        return InternalError(fmt::format("files: more than {} entries under the dependencies",
                                         kMaxDependencyEntries));
      }
      found.push_back(it->path().lexically_relative(root).string());
    }
    // An entry removed during the walk is a change the next call sees; anything else is not
    // a state we can name.
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return InternalError(fmt::format("files: cannot walk {}: {}", file, ec.message()));
    }
    std::sort(found.begin(), found.end());
    for (const std::string& f : found) StatLine(root / f, f, state);
  }
  for (const std::string& image : spec.images) {
    std::string s = sources.image_state ? sources.image_state(tenant, image) : "";
    state += fmt::format("image\t{}\t{}\n", image, s.empty() ? "absent" : s);
  }
  for (const std::string& function : spec.functions) {
    std::string v = sources.function_version ? sources.function_version(tenant, function) : "";
    state += fmt::format("function\t{}\t{}\n", function, v.empty() ? "absent" : v);
  }
  return Sha256Hex(state);
}

std::string ReuseKey(std::string_view version, std::string_view payload,
                     std::string_view dependency_digest) {
  Sha256 h;
  // Lengths first, so no two different triples hash the same bytes.
  h.Update(fmt::format("{}:{}:{}\n", version.size(), payload.size(), dependency_digest.size()));
  h.Update(version);
  h.Update(payload);
  h.Update(dependency_digest);
  return h.FinishHex();
}

ReuseCache::Outcome ReuseCache::Begin(const std::string& key, Result* result, Waiter waiter) {
  MutexLock lock(mu_);
  auto it = stored_.find(key);
  if (it != stored_.end()) {
    if (clock_.SteadyNow() < it->second.expires) {
      *result = it->second.result;
      return Outcome::kReused;
    }
    Drop(it);
  }
  auto running = running_.find(key);
  if (running != running_.end()) {
    running->second.push_back(std::move(waiter));
    return Outcome::kJoined;
  }
  running_.emplace(key, std::vector<Waiter>());
  return Outcome::kRun;
}

void ReuseCache::Complete(const std::string& key, const Result& result, std::chrono::seconds ttl) {
  std::vector<Waiter> waiters;
  {
    MutexLock lock(mu_);
    auto running = running_.find(key);
    if (running != running_.end()) {
      waiters = std::move(running->second);
      running_.erase(running);
    }
    size_t bytes = result.payload.size() + key.size();
    if (result.status.ok() && result.function_error.empty() && bytes <= options_.max_bytes) {
      if (auto old = stored_.find(key); old != stored_.end()) Drop(old);
      order_.push_back(key);
      stored_.emplace(key, Entry{result, clock_.SteadyNow() + ttl, std::prev(order_.end())});
      bytes_ += bytes;
      while (stored_.size() > options_.max_entries || bytes_ > options_.max_bytes) {
        Drop(stored_.find(order_.front()));
      }
    }
  }
  for (const Waiter& w : waiters) w(result);
}

void ReuseCache::Drop(std::map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.result.payload.size() + it->first.size();
  order_.erase(it->second.order);
  stored_.erase(it);
}

size_t ReuseCache::size() const {
  MutexLock lock(mu_);
  return stored_.size();
}

}  // namespace fpgahost::functions
