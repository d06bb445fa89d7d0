// Invocation records (DESIGN.md: invocation `queued -> running -> succeeded | failed |
// timed_out`, or `throttled`): one per invocation of a function, with what a customer asks
// about afterwards — which slot ran it, cold or warm, how long it queued, initialised and
// ran, how it ended — and the runtime's output during it. Served by GET /v1/invocations and
// `fpgahost function logs`.
//
// Records are written after the fact and in batches (one transaction per batch), off the
// invocation's path: a warm invocation costs well under a millisecond, an fsynced commit
// several. So the last batch (at most `flush_interval` old) can be lost in a crash; records
// are observations, not state anything is rebuilt from. Query flushes first, so a caller
// sees its own finished invocations. The oldest records beyond `max_records` are pruned.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "host/store/state_store.h"

namespace fpgahost::functions {

struct InvocationRecord {
  std::string request_id;
  std::string tenant;
  std::string function;
  std::string version;          // the code's CodeSha256
  std::string invocation_type;  // RequestResponse or Event
  std::string slot;             // empty when it never reached one (throttled)
  bool cold = false;
  bool prewarmed = false;  // the first call on a slot started ahead by a pre-warm notification
  std::string routing_key;
  // For a call with a routing key: "hit" (its slot was idle), "waited" (for its slot to free
  // up), "missed" (its slot stayed busy or retired: another served it), "new" (no slot had
  // served the key).
  std::string affinity;
  // An idempotent call answered without running: the request id whose result it got.
  std::string reused_from;
  // succeeded, failed (a function error), timed_out, throttled, or error (the host could not
  // run it: no slot could be started).
  std::string state;
  std::string error_type;  // Lambda's, when not succeeded
  int attempt = 1;         // asynchronous retries count up
  int memory_mib = 0;
  double queued_ms = 0;  // accepted to handed to a slot
  double init_ms = 0;    // a cold slot's start to its runtime's first `next`
  double duration_ms = 0;
  // An FPGA function's call: the card its slot holds, and for the slot's first call the time
  // its image took to load onto that card for it (0 when the card held the image already).
  std::string fpga_card;
  double image_load_ms = 0;
  std::chrono::system_clock::time_point started_at;
  std::chrono::system_clock::time_point finished_at;

  Json ToJson() const;
};

struct InvocationQuery {
  std::string tenant;    // required: a tenant sees its own
  std::string function;  // empty: every function
  std::string request_id;
  int limit = 50;
  bool with_logs = false;
};

class InvocationRecords {
 public:
  struct Options {
    size_t max_records = 100'000;
    std::chrono::milliseconds flush_interval{200};
  };

  InvocationRecords(StateStore& store, Options options);
  ~InvocationRecords();  // flushes what is pending
  InvocationRecords(const InvocationRecords&) = delete;
  InvocationRecords& operator=(const InvocationRecords&) = delete;

  void Add(InvocationRecord record, std::string log) EXCLUDES(mu_);
  // Newest first; each is record.ToJson() plus "log" when asked for.
  StatusOr<std::vector<Json>> Query(const InvocationQuery& query) EXCLUDES(mu_);
  // Writes what is pending now.
  Status Flush() EXCLUDES(mu_, flush_mu_);

 private:
  struct Pending {
    InvocationRecord record;
    std::string log;
  };
  void Run();
  Status Write(std::vector<Pending> batch) EXCLUDES(mu_) REQUIRES(flush_mu_);

  StateStore& store_;
  const Options options_;
  // Orders batches: a Query's flush waits for the writer's batch in progress.
  Mutex flush_mu_ ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  std::condition_variable_any wake_;
  std::vector<Pending> pending_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  uint64_t written_ GUARDED_BY(flush_mu_) = 0;
  std::thread writer_;
};

}  // namespace fpgahost::functions
