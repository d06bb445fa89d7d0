// The invoker: runs invocations of tenants' functions in warm function slots (DESIGN.md,
// "Function slots"), Lambda's way.
//
// A synchronous invocation (RequestResponse) is admitted by the concurrency limiter (429
// TooManyRequestsException with Lambda's Reason when refused), then handed to an idle warm
// slot of the same function version, or queued for one: the function's bounded queue. Slots
// are started for queued calls while the host's capacity account (shared with instances) has
// the memory and vCPUs, at most `max_concurrent_starts` at once and `max_slots` in all; when
// it has not, an idle slot of another function is retired to make room, else the call waits
// for a slot of its own function to free up, at most its function's timeout.
//
// After an invocation the slot stays warm for the next call of that version; idle slots
// retire after `idle_timeout`, through Lambda's Shutdown phase (FunctionSlot::Shutdown: the
// function's extensions hear SHUTDOWN first). A timed-out invocation kills its slot (Task timed
// out); a runtime that exits or crashes fails its invocation with Runtime.ExitError and is retired;
// neither affects anything else.
//
// A call may carry a routing key (header X-Fpgahost-Routing-Key): it goes to the slot that
// last served that key while that slot is idle, or waits up to `affinity_wait` for it to free
// up; otherwise (or when the slot retired) to any slot. State a function keeps in a slot (its
// /tmp, its memory) is thus seen again by the key's next call, as long as the slot lives.
//
// A pre-trigger notification (Prewarm) starts slots ahead of calls that are announced, within
// the free capacity; their first calls are recorded with start "prewarmed".
//
// A synchronous call of a function declared idempotent (host/functions/idempotency.h) whose
// version, payload and dependencies' state match an earlier success is answered with that
// success's result without running (start "reused"); identical calls arriving while one runs
// share its result. Asynchronous events always run.
//
// An FPGA function (one declaring an image) runs in slots that each hold a card lent by
// `deps.cards` (host/functions/card_lender.h) with the image loaded: one already holding the
// image is preferred, else the image is loaded on a free card as the slot starts (its first
// call waits for the load: `image_load_ms` in its record), else the call waits in the queue as
// for any capacity, and a call in hand may retire another function's idle FPGA slot to take its
// card. A pre-warm notification starts such slots too, so the load happens before the calls
// come. The slot's runtime finds the card in its environment (FPGAHOST_FPGA_DEVICE: the user
// PF's BDF; FPGAHOST_XCLBIN: the image's xclbin, bound read-only at /opt/fpga/image.xclbin;
// FPGAHOST_CARD_ID, FPGAHOST_IMAGE_ID, FPGAHOST_XCLBIN_UUID). The card goes back once the
// slot's sandbox is gone, or sooner when the card is drained or turns unhealthy: a slot on such a
// card retires at the first tick that finds it idle.
//
// Tenant sidecars: a function may run some of its bundle's extensions once per tenant instead of
// in every slot (FunctionConfig::tenant_sidecars). They run in a sandbox of their own, the
// tenant's sidecar sandbox (one per tenant and bundle), started before the first slot that uses
// it, whose runtime is fpgahost-slot-init's relay; they speak Lambda's Extensions API unchanged:
// INVOKE for every call of the tenant's functions that declare them (one at a time, in order,
// at most kMaxSidecarBacklog waiting), SHUTDOWN when the last slot using them retires. Another
// tenant's calls never reach them, and their sandbox is not the slots' (no shared processes,
// /tmp or network). Its memory (kSidecarMemoryMib) is held in the capacity account.
//
// An asynchronous invocation (Event) is accepted (202) into an in-memory queue and run as
// above; one that ends in a function error or timeout is retried `async_retries` times (Lambda:
// twice), after `async_retry_delay` and twice that (Lambda: one and two minutes). Throttled
// ones are retried until they run. The queue does not survive a restart of fpgahostd.
//
// Every invocation that was admitted or throttled leaves an InvocationRecord with the
// runtime's output during it, formatted as Lambda's logs are (START, output, END, REPORT);
// the last 4 KB are returned with the response when the caller asks (--log-type Tail).
//
// Slots' resources: memory as configured; CPU in proportion to memory as on Lambda (1,769 MB
// = one vCPU); vCPUs are held in the capacity account, under the owner "functions", rounded
// up over all slots.
//
// Thread-safe. Invoke never blocks: `done` runs later on an I/O thread or an internal thread,
// and must not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/thread_pool.h"
#include "host/capacity/capacity_account.h"
#include "host/functions/card_lender.h"
#include "host/functions/concurrency_limiter.h"
#include "host/functions/function_registry.h"
#include "host/functions/function_slot.h"
#include "host/functions/idempotency.h"
#include "host/functions/invocation_records.h"
#include "host/functions/sandbox.h"

namespace boost::asio {
class io_context;
}

namespace fpgahost::functions {

// Lambda's payload limits: 6 MB for a synchronous request and response, 1 MB for an
// asynchronous event (raised from 256 KB in 2025).
inline constexpr size_t kMaxSyncPayloadBytes = 6 * 1024 * 1024;
inline constexpr size_t kMaxAsyncPayloadBytes = 1024 * 1024;
// The log tail returned with --log-type Tail.
inline constexpr size_t kLogTailBytes = 4096;

enum class InvocationType { kRequestResponse, kEvent, kDryRun };

struct InvokeRequest {
  std::string tenant;
  std::string function;
  std::string payload;
  InvocationType type = InvocationType::kRequestResponse;
  bool log_tail = false;
  std::string client_context;  // JSON, from X-Amz-Client-Context (already decoded)
  std::string trace_id;
  std::string routing_key;  // affinity: see above; empty for none
};

// A tenant sidecar sandbox's memory, and how many INVOKE events may wait for it.
inline constexpr int64_t kSidecarMemoryMib = 128;
inline constexpr size_t kMaxSidecarBacklog = 1000;

// The longest routing key accepted.
inline constexpr size_t kMaxRoutingKeyBytes = 256;

struct InvokeResponse {
  // Not OK when the invocation was not run: unknown function (ResourceNotFoundException),
  // payload too large (RequestTooLargeException), throttled (TooManyRequestsException with
  // `throttle_reason`), host failure (ServiceException).
  Status status = Status::Ok();
  std::string throttle_reason;
  std::string request_id;
  std::string version = "$LATEST";
  // "Unhandled" when the function failed: `payload` then holds the error.
  std::string function_error;
  std::string payload;
  std::string log_tail;  // raw bytes; the API base64-encodes them
  // For an idempotent function's call answered without running: the request id of the call
  // whose result it is.
  std::string reused_from;
  // 200 for RequestResponse, 202 for Event, 204 for DryRun.
  unsigned http_status = 200;
};

struct InvokerOptions {
  int max_slots = 64;
  int max_concurrent_starts = 4;
  std::chrono::milliseconds idle_timeout{10 * 60 * 1000};
  // Calls waiting for a slot, per function version.
  size_t max_queue_per_function = 1000;
  size_t max_async_queue = 100'000;
  int async_retries = 2;
  std::chrono::milliseconds async_retry_delay{60'000};
  // Delay before an asynchronous event that was throttled is tried again.
  std::chrono::milliseconds async_throttle_delay{1'000};
  // How long a call with a routing key waits for the busy slot that last served its key
  // before it goes to any slot.
  std::chrono::milliseconds affinity_wait{100};
  // Routing keys remembered per function version; the least recently used are forgotten.
  size_t max_routing_keys = 10'000;
  std::string region = "us-east-1";
  int max_pids = 256;
  int64_t tmp_mib = 512;
};

struct PrewarmResult {
  int requested = 0;  // slots wanted ready
  int existing = 0;   // slots the function's version had (idle, busy or starting)
  int starting = 0;   // slots started now
  int deferred = 0;   // still to start, when capacity frees up before the window ends
};

struct InvokerDeps {
  FunctionRegistry& registry;
  Sandbox& sandbox;
  CapacityAccount& capacity;
  ConcurrencyLimiter& limiter;
  InvocationRecords& records;
  http::IoThreads& io;
  const Clock& clock;
  // The states of idempotent functions' dependencies.
  DependencySources dependencies;
  // Where FPGA functions' slots get their cards; null on a host without cards for functions
  // (their calls then fail with ServiceException).
  CardLender* cards = nullptr;
};

class Invoker {
 public:
  Invoker(InvokerDeps deps, InvokerOptions options);
  ~Invoker();  // Stop()
  Invoker(const Invoker&) = delete;
  Invoker& operator=(const Invoker&) = delete;

  void Invoke(InvokeRequest request, std::function<void(InvokeResponse)> done) EXCLUDES(mu_);

  // A pre-trigger notification: about `count` calls of the function are coming within
  // `within`. Starts slots until its current version has `count`, within the capacity that is
  // free (never retiring other functions' slots for it), at most `max_concurrent_starts` at a
  // time; what cannot start now is tried again until the window ends. The slots run with
  // AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency, are kept at least until the window
  // ends, and then retire after the idle timeout. Errors: ResourceNotFoundException.
  StatusOr<PrewarmResult> Prewarm(std::string_view tenant, std::string_view function, int count,
                                  std::chrono::seconds within) EXCLUDES(mu_);

  // Retires the idle slots of `function` (after it was deleted or changed); busy ones retire
  // when they finish, since their version no longer matches.
  void Forget(std::string_view tenant, std::string_view function) EXCLUDES(mu_);

  // The slots of `tenant` (every tenant's when empty): name, function, state, isolation,
  // invocations served.
  Json SlotsView(std::string_view tenant) const EXCLUDES(mu_);

  // Kills every slot, fails queued calls (ServiceException), drops the async queue. Idempotent.
  void Stop() EXCLUDES(mu_);

 private:
  struct Call;
  struct Slot;
  struct Pool;
  struct Sidecar;
  // Slots to start, with their version keys.
  using Starts = std::vector<std::pair<std::string, std::shared_ptr<Slot>>>;

  void Submit(std::shared_ptr<Call> call) EXCLUDES(mu_);
  void SubmitAsync(std::shared_ptr<Call> call, std::chrono::milliseconds delay) EXCLUDES(mu_);
  void OnAsyncDone(std::shared_ptr<Call> call, const InvokeResponse& response) EXCLUDES(mu_);
  // Plans slots for `pool`'s waiting calls, then for its pending pre-warm, as far as limits
  // allow, into `starts`.
  void PlanStarts(const std::string& key, Pool& pool, Starts& starts) REQUIRES(mu_);
  // Plans starts for every pool with waiting calls or pending pre-warm (capacity was freed).
  void PlanAllStarts(Starts& starts) REQUIRES(mu_);
  void RunStarts(Starts starts) EXCLUDES(mu_);
  // Hands `call` an idle slot of `pool` (returned), or queues it and plans starts for it (null
  // returned); `refused` is set instead when the queue is full.
  std::shared_ptr<Slot> Place(const std::shared_ptr<Call>& call, Pool& pool, Starts& starts,
                              InvokeResponse& refused) REQUIRES(mu_);
  // Marks `slot` busy with `call`: cold, warm or pre-warmed; remembers its routing key. `ready`:
  // the slot had started before the call reached it.
  void Assign(Pool& pool, const std::shared_ptr<Slot>& slot, Call& call, bool ready) REQUIRES(mu_);
  // The live slot that last served `call`'s routing key, if any.
  std::shared_ptr<Slot> AffineSlot(Pool& pool, const Call& call) REQUIRES(mu_);
  // A call waiting for its affine slot waited long enough: any slot will do.
  void OnAffinityWaitOver(std::shared_ptr<Call> call) EXCLUDES(mu_);
  // Answers a call that was refused before it ran.
  void Refuse(std::shared_ptr<Call> call, InvokeResponse refused) EXCLUDES(mu_);
  // Runs `fire` on an I/O thread after `delay`, or `cancelled` (if any) when the invoker
  // stops first.
  void After(std::chrono::milliseconds delay, std::function<void()> fire,
             std::function<void()> cancelled) EXCLUDES(mu_);
  // Drops the pool at `key` when nothing is in it or planned for it.
  void DropIfUnused(const std::string& key) REQUIRES(mu_);
  void StartSlot(std::string key, std::shared_ptr<Slot> slot) EXCLUDES(mu_);
  void Dispatch(std::shared_ptr<Slot> slot, std::shared_ptr<Call> call) EXCLUDES(mu_);
  void OnOutcome(std::shared_ptr<Slot> slot, std::shared_ptr<Call> call, SlotOutcome outcome)
      EXCLUDES(mu_);
  // Removes a slot that ended, giving back its resources.
  void RemoveSlot(const std::shared_ptr<Slot>& slot) REQUIRES(mu_);
  // Retires the least recently used idle slot not of `key` (one holding a card when
  // `holding_card`); false when there is none.
  bool EvictIdle(const std::string& key, bool holding_card = false) REQUIRES(mu_);
  // Whether a card can be planned for a slot of FPGA function `fn` (evicting another function's
  // idle FPGA slot when `may_evict`).
  bool PlanCard(const std::string& key, const FunctionConfig& fn, bool may_evict) REQUIRES(mu_);
  // Lends the slot its card (blocking); false when it must not start (the error in `failure`;
  // `retry`: no card was free after all, its calls wait on).
  bool LendCard(Slot& slot, Status& failure, bool& retry) EXCLUDES(mu_);
  // The tenant sidecar sandbox `fn`'s slots use, started (blocking) when it is not running;
  // null (and `failure`) when it cannot start. Each call is matched by one ReleaseSidecar.
  std::shared_ptr<Sidecar> AcquireSidecar(const std::shared_ptr<const FunctionConfig>& fn,
                                          Status& failure) EXCLUDES(mu_);
  void ReleaseSidecar(const std::shared_ptr<Sidecar>& sidecar) REQUIRES(mu_);
  // Hands the sidecar its next INVOKE event when it is free.
  void PumpSidecar(const std::shared_ptr<Sidecar>& sidecar) EXCLUDES(mu_);
  // A slot's sandbox is gone: its card goes back, and starts that wait for one are planned.
  void ReturnCard(const LentCard& card, const std::string& slot_name) EXCLUDES(mu_);
  Status Hold(int64_t memory_mib, int64_t milli_vcpus) REQUIRES(mu_);
  void Finish(std::shared_ptr<Call> call, InvokeResponse response, InvocationRecord record,
              std::string log) EXCLUDES(mu_);
  void Throttled(const InvokeRequest& request, std::string request_id, std::string_view reason);
  // An idempotent call answered with the result of the call that ran (`shared`: it waited for
  // that call, which was running).
  void AnswerReused(const Call& call, const ReuseCache::Result& result,
                    const std::function<void(InvokeResponse)>& done, bool shared);
  // The call that ran for an idempotent key ended: its result is kept and shared.
  void CompleteReuse(const Call& call, const InvokeResponse& response);
  void Tick() EXCLUDES(mu_);
  // Retires idle FPGA slots whose cards the operator drains or that turned unhealthy.
  void RetireFromUnfitCards() EXCLUDES(mu_);
  void ArmTick() EXCLUDES(mu_);
  SandboxSpec SpecFor(const FunctionConfig& f, const Slot& slot) const;

  InvokerDeps deps_;
  const InvokerOptions options_;
  // In every slot's name: the sandboxes' cgroups of two daemons in one cgroup (tests, a laptop)
  // must not share names.
  const std::string instance_;
  // Slots start on these threads, which live as long as the invoker: a sandbox dies with
  // the thread that started it.
  ReuseCache reuse_;
  ThreadPool starters_;
  // Where slots are killed.
  ThreadPool reaper_;

  mutable Mutex mu_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Pool>, std::less<>> pools_ GUARDED_BY(mu_);
  int slots_ GUARDED_BY(mu_) = 0;  // started or starting
  int starting_ GUARDED_BY(mu_) = 0;
  uint64_t next_slot_ GUARDED_BY(mu_) = 1;
  // What the slots hold in the capacity account.
  int64_t held_memory_mib_ GUARDED_BY(mu_) = 0;
  int64_t held_milli_vcpus_ GUARDED_BY(mu_) = 0;
  size_t async_queued_ GUARDED_BY(mu_) = 0;
  // Starts planned for FPGA slots whose cards are not lent yet, and retired FPGA slots whose
  // cards are not back yet.
  int cards_planned_ GUARDED_BY(mu_) = 0;
  int cards_returning_ GUARDED_BY(mu_) = 0;
  // Retired slots whose extensions may still be in their shutdown grace.
  std::vector<std::weak_ptr<FunctionSlot>> shutting_down_ GUARDED_BY(mu_);
  // Tenant sidecar sandboxes, by tenant, code and names.
  std::map<std::string, std::shared_ptr<Sidecar>, std::less<>> sidecars_ GUARDED_BY(mu_);
  uint64_t next_sidecar_ GUARDED_BY(mu_) = 1;
  std::condition_variable_any sidecar_started_;
  struct Timers;
  std::unique_ptr<Timers> timers_ GUARDED_BY(mu_);
};

}  // namespace fpgahost::functions
