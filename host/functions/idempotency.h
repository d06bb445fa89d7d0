// Idempotent reuse of function results (issue 7): a function declared idempotent lists what its
// result depends on besides its code and its input — files under the tenant's data root,
// fpgahost images, the tenant's other functions. A call whose code version, input and
// dependencies' state all match an earlier successful call's gets that call's result without
// running (recorded as `reused`, naming the original request id). Identical calls that arrive
// while one runs wait for it and share its result, whatever it is (Lambda Powertools'
// idempotency utility answers them with an error instead). Results expire after the
// declared time-to-live.
//
// The state of a file dependency is its type, size, modification and change times and inode,
// read with lstat (a directory: every entry under it, walked, at most kMaxDependencyEntries):
// any write, replacement, removal or addition changes it; contents are not hashed, so a call
// stays cheap whatever the files weigh. An image's state is its lifecycle state and digest; a
// function's is its code digest and settings. A missing dependency has a state too ("absent"),
// so creating it later runs the function again.
//
// Results are kept in memory (bounded by count and bytes, the oldest dropped first): a restart
// of fpgahostd forgets them, which costs one run each, never a wrong answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace fpgahost::functions {

inline constexpr size_t kMaxDependencies = 64;           // of each kind
inline constexpr size_t kMaxDependencyEntries = 10'000;  // files walked per call, in all
inline constexpr int64_t kMaxReuseTtlSeconds = 7 * 24 * 3600;

struct IdempotencySpec {
  // Relative paths under <function-data-root>/<tenant>/, files or directories.
  std::vector<std::string> files;
  std::vector<std::string> images;     // img-...
  std::vector<std::string> functions;  // names of the tenant's functions
  std::chrono::seconds ttl{3600};

  // {"files": [...], "images": [...], "functions": [...], "ttl_seconds": N}
  Json ToJson() const;
  // Checks what ToJson writes; errors name the field (InvalidArgument, reason INVALID_FIELD,
  // UNKNOWN_FIELD or MISSING_FIELD). A path must be relative, without "..", at most 1,024 bytes.
  static StatusOr<IdempotencySpec> FromJson(const Json& j);
};

// Where dependencies' states come from.
struct DependencySources {
  std::filesystem::path data_root;  // a tenant's files are under <data_root>/<tenant>/
  // "<state>:<sha256>" of the image as `tenant` sees it; empty when it does not exist for them.
  std::function<std::string(std::string_view tenant, std::string_view image_id)> image_state;
  // The version of the tenant's function (code digest and settings); empty when it does not
  // exist.
  std::function<std::string(std::string_view tenant, std::string_view function)> function_version;
};

// A digest of the current state of `spec`'s dependencies for `tenant`. Errors: Internal, when a
// directory walk fails other than by a missing entry, or exceeds kMaxDependencyEntries.
StatusOr<std::string> DependencyDigest(const IdempotencySpec& spec, std::string_view tenant,
                                       const DependencySources& sources);

// The key a call's result is kept under: its function version, input and dependencies' state.
std::string ReuseKey(std::string_view version, std::string_view payload,
                     std::string_view dependency_digest);

// Results of idempotent calls, and the calls running for a key. Thread-safe; waiters are called
// without the lock held, on the thread that completes the run.
class ReuseCache {
 public:
  struct Result {
    Status status = Status::Ok();  // not OK: the call was not run (throttled, host failure)
    std::string throttle_reason;
    std::string payload;
    std::string function_error;  // "Unhandled" for a function error
    std::string request_id;      // of the call that ran
  };
  using Waiter = std::function<void(const Result&)>;
  enum class Outcome {
    kReused,  // `*result` holds a stored result
    kJoined,  // an identical call is running: `waiter` gets its result
    kRun,     // the caller runs it, and calls Complete with the result
  };
  struct Options {
    size_t max_entries = 10'000;
    size_t max_bytes = 64 << 20;
  };

  ReuseCache(const Clock& clock, Options options) : clock_(clock), options_(options) {}

  Outcome Begin(const std::string& key, Result* result, Waiter waiter) EXCLUDES(mu_);
  // The run of `key` ended. A success (status OK, no function error) is kept for `ttl`; every
  // waiter gets `result` either way.
  void Complete(const std::string& key, const Result& result, std::chrono::seconds ttl)
      EXCLUDES(mu_);

  size_t size() const EXCLUDES(mu_);

 private:
  struct Entry {
    Result result;
    std::chrono::steady_clock::time_point expires;
    std::list<std::string>::iterator order;
  };
  void Drop(std::map<std::string, Entry>::iterator it) REQUIRES(mu_);

  const Clock& clock_;
  const Options options_;
  mutable Mutex mu_;
  std::map<std::string, Entry> stored_ GUARDED_BY(mu_);
  std::list<std::string> order_ GUARDED_BY(mu_);  // oldest stored first
  size_t bytes_ GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Waiter>> running_ GUARDED_BY(mu_);
};

}  // namespace fpgahost::functions
