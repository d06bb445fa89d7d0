#include "host/functions/invoker.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <condition_variable>
#include <iterator>
#include <list>
#include <optional>
#include <set>
#include <utility>

#include "common/digest.h"
#include "common/ids.h"
#include "host/functions/sandbox_bwrap.h"

namespace fpgahost::functions {
namespace {

namespace asio = boost::asio;
using std::chrono::steady_clock;

// Lambda's ratio of CPU to memory: 1,769 MB is one vCPU.
constexpr int64_t kMibPerVcpu = 1769;
constexpr char kCapacityOwner[] = "functions";
// fpgahost's Reason for a call that waited its function's timeout for a slot the host could
// not make room for (Lambda has no equivalent: it never queues synchronous calls).
constexpr char kHostCapacityExceeded[] = "HostCapacityExceeded";
constexpr char kServiceException[] = "ServiceException";
// How long a tenant sidecar's extensions may take over one INVOKE event before their sandbox is
// killed (as a slot's is at its function's timeout).
constexpr auto kSidecarEventTimeout = std::chrono::seconds(60);
constexpr size_t kSidecarLogBytes = 16 * 1024;
// Where an FPGA function's slot finds its image's xclbin.
constexpr char kSandboxXclbin[] = "/opt/fpga/image.xclbin";

std::string NewRequestId() {
  // A version-4 UUID, as Lambda's request ids are.
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20));
}

// Slots are shared by calls of the same function version: same code and the same settings
// the sandbox is made with.
std::string VersionKey(const FunctionConfig& f) {
  Json settings = {{"memory", f.memory_mib},     {"timeout", f.timeout_seconds},
                   {"handler", f.handler},       {"environment", f.environment},
                   {"fpga_image", f.fpga_image}, {"tenant_sidecars", f.tenant_sidecars}};
  return fmt::format("{}/{}@{}:{}", f.tenant, f.name, f.code_sha256_hex,
                     Sha256Hex(settings.dump()).substr(0, 16));
}

std::string FunctionPrefix(std::string_view tenant, std::string_view function) {
  return fmt::format("{}/{}@", tenant, function);
}

double Ms(std::chrono::microseconds d) { return static_cast<double>(d.count()) / 1000.0; }
double Ms(steady_clock::duration d) {
  return Ms(std::chrono::duration_cast<std::chrono::microseconds>(d));
}

std::string Tail(const std::string& log, size_t bytes) {
  return log.size() <= bytes ? log : log.substr(log.size() - bytes);
}

}  // namespace

struct Invoker::Call {
  InvokeRequest request;
  std::string request_id;
  std::shared_ptr<const FunctionConfig> fn;
  std::string key;
  ConcurrencyLimiter::Lease lease;
  std::function<void(InvokeResponse)> done;  // null for asynchronous events
  steady_clock::time_point accepted;         // this attempt entered the queue
  steady_clock::time_point wait_deadline;
  std::chrono::system_clock::time_point started_at;
  int attempt = 1;
  bool cold = false;
  bool prewarmed = false;
  std::string affinity;   // see InvocationRecord::affinity
  std::string reuse_key;  // an idempotent call that runs: where its result goes
  std::chrono::seconds reuse_ttl{0};
  std::shared_ptr<Slot> waiting_on;  // the busy affine slot it waits for
};

struct Invoker::Slot {
  std::string name;
  std::string key;
  std::shared_ptr<const FunctionConfig> fn;
  std::shared_ptr<FunctionSlot> slot;  // null while starting
  std::optional<LentCard> card;        // an FPGA function's, once lent
  std::shared_ptr<Sidecar> sidecar;    // its tenant's sidecar sandbox, when it declares one
  int64_t memory_mib = 0;
  int64_t milli_vcpus = 0;
  bool busy = false;
  bool removed = false;
  bool used = false;       // has run an invocation: the next one is warm
  bool ready = false;      // its runtime finished initialising (asked for its first event)
  bool prewarmed = false;  // started ahead of calls by a pre-warm notification
  uint64_t served = 0;
  steady_clock::time_point idle_since;
  steady_clock::time_point keep_until;  // a pre-warmed slot is not retired for idleness before
  // Calls whose routing key this slot served last, waiting for it to free up (it is busy).
  std::deque<std::shared_ptr<Call>> waiters;
};

struct Invoker::Pool {
  std::deque<std::shared_ptr<Call>> queue;
  std::vector<std::shared_ptr<Slot>> idle;  // most recently used last
  std::vector<std::shared_ptr<Slot>> slots;
  int starting = 0;
  // Pre-warm: slots still to start, for this configuration, until the deadline.
  int prewarm_pending = 0;
  std::shared_ptr<const FunctionConfig> prewarm_fn;
  steady_clock::time_point prewarm_deadline;
  // Routing key -> the slot that served it last; least recently routed keys first in `lru`.
  struct Route {
    std::weak_ptr<Slot> slot;
    std::list<std::string>::iterator lru;
  };
  std::map<std::string, Route, std::less<>> routes;
  std::list<std::string> lru;
};

struct Invoker::Sidecar {
  std::string key;
  std::string name;
  std::string tenant;
  std::vector<std::string> extensions;
  std::shared_ptr<FunctionSlot> slot;  // null while starting, and when it could not start
  bool started = false;                // the start is over, whether it worked or not
  Status failure = Status::Ok();
  bool retired = false;  // its last user went
  int users = 0;         // slots using it (or starting to)
  bool busy = false;     // an INVOKE event is with its extensions
  std::deque<Invocation> backlog;
  uint64_t events = 0;
  uint64_t dropped = 0;
  std::string log;  // the latest of its extensions' output
};

// Timers and the callbacks in flight on I/O threads, so Stop can wait for them.
struct Invoker::Timers {
  explicit Timers(asio::io_context& context) : tick(context) {}
  asio::steady_timer tick;
  std::set<std::shared_ptr<asio::steady_timer>> pending;
  int callbacks = 0;
  std::condition_variable_any idle;
};

Invoker::Invoker(InvokerDeps deps, InvokerOptions options)
    : deps_(deps),
      options_(std::move(options)),
      instance_(RandomHex(3)),
      reuse_(deps_.clock, {}),
      starters_(2),
      reaper_(2) {
  {
    MutexLock lock(mu_);
    timers_ = std::make_unique<Timers>(deps_.io.context());
  }
  ArmTick();
}

Invoker::~Invoker() {
  Stop();
  // Slots still starting finish (and are killed), then kills finish.
  starters_.Shutdown();
  reaper_.Shutdown();
  std::unique_lock<Mutex> lock(mu_);
  timers_->idle.wait(lock, [this]() NO_THREAD_SAFETY_ANALYSIS { return timers_->callbacks == 0; });
}

void Invoker::Invoke(InvokeRequest request, std::function<void(InvokeResponse)> done) {
  InvokeResponse response;
  std::shared_ptr<const FunctionConfig> fn = deps_.registry.Find(request.tenant, request.function);
  if (!fn) {
    response.status = NotFoundError(
        fmt::format("Function not found: arn:aws:lambda:{}:{}:function:{}", options_.region,
                    LambdaAccountId(request.tenant), request.function),
        kResourceNotFound);
    return done(std::move(response));
  }
  bool async = request.type == InvocationType::kEvent;
  size_t limit = async ? kMaxAsyncPayloadBytes : kMaxSyncPayloadBytes;
  if (request.payload.size() > limit) {
    response.status = PayloadTooLargeError(
        fmt::format("{} byte payload is too large for the {} invocation type (limit {} bytes)",
                    request.payload.size(), async ? "Event" : "RequestResponse", limit),
        kRequestTooLarge);
    return done(std::move(response));
  }
  if (!fn->fpga_image.empty() && !deps_.cards) {
    response.status = UnavailableError(
        fmt::format("function {} needs FPGA image {}, and this host lends no cards to functions",
                    fn->name, fn->fpga_image),
        kServiceException);
    return done(std::move(response));
  }
  if (request.type == InvocationType::kDryRun) {
    response.http_status = 204;
    return done(std::move(response));
  }
  if (!request.payload.empty() && !Json::accept(request.payload)) {
    response.status = InvalidArgumentError(
        "Could not parse request body into json: the payload "
        "is not valid JSON",
        "InvalidRequestContentException");
    return done(std::move(response));
  }

  auto call = std::make_shared<Call>();
  call->request_id = NewRequestId();
  call->fn = fn;
  call->key = VersionKey(*fn);
  call->started_at = deps_.clock.Now();
  call->request = std::move(request);
  if (call->request.payload.empty()) call->request.payload = "{}";

  if (async) {
    {
      MutexLock lock(mu_);
      if (async_queued_ >= options_.max_async_queue) {
        response.status = ResourceExhaustedError(
            fmt::format("the asynchronous queue of this host is full ({} events)",
                        options_.max_async_queue),
            kTooManyRequests);
        response.throttle_reason = kHostCapacityExceeded;
        done(std::move(response));
        return;
      }
      ++async_queued_;
    }
    response.request_id = call->request_id;
    response.http_status = 202;
    done(std::move(response));
    SubmitAsync(std::move(call), std::chrono::milliseconds(0));
    return;
  }

  if (fn->idempotency) {
    // Checked before the concurrency limit: a reused result runs nothing.
    StatusOr<std::string> state =
        DependencyDigest(*fn->idempotency, call->request.tenant, deps_.dependencies);
    if (!state.ok()) {
      spdlog::warn("functions: {}/{}: dependencies unreadable, result not reused: {}",
                   call->request.tenant, call->request.function, state.status().ToString());
    } else {
      std::string key = ReuseKey(call->key, call->request.payload, *state);
      ReuseCache::Result stored;
      switch (reuse_.Begin(key, &stored, [this, call, done](const ReuseCache::Result& r) {
        AnswerReused(*call, r, done, true);
      })) {
        case ReuseCache::Outcome::kReused:
          return AnswerReused(*call, stored, done, false);
        case ReuseCache::Outcome::kJoined:
          return;
        case ReuseCache::Outcome::kRun:
          call->reuse_key = std::move(key);
          call->reuse_ttl = fn->idempotency->ttl;
          break;
      }
    }
  }

  ConcurrencyLimiter::Throttle throttle;
  StatusOr<ConcurrencyLimiter::Lease> lease = deps_.limiter.Acquire(
      call->request.tenant, call->request.function, fn->reserved_concurrency, &throttle);
  if (!lease.ok()) {
    Throttled(call->request, call->request_id, throttle.reason);
    response.status = lease.status();
    response.throttle_reason = std::string(throttle.reason);
    response.request_id = call->request_id;
    CompleteReuse(*call, response);
    return done(std::move(response));
  }
  call->lease = *std::move(lease);
  call->done = std::move(done);
  Submit(std::move(call));
}

void Invoker::Throttled(const InvokeRequest& request, std::string request_id,
                        std::string_view reason) {
  InvocationRecord r;
  r.request_id = std::move(request_id);
  r.tenant = request.tenant;
  r.function = request.function;
  r.invocation_type = request.type == InvocationType::kEvent ? "Event" : "RequestResponse";
  r.state = "throttled";
  r.error_type = std::string(reason);
  r.started_at = r.finished_at = deps_.clock.Now();
  deps_.records.Add(std::move(r), "");
}

void Invoker::AnswerReused(const Call& call, const ReuseCache::Result& result,
                           const std::function<void(InvokeResponse)>& done, bool shared) {
  InvokeResponse response;
  response.request_id = call.request_id;
  response.status = result.status;
  response.throttle_reason = result.throttle_reason;
  response.payload = result.payload;
  response.function_error = result.function_error;
  response.reused_from = result.request_id;

  InvocationRecord r;
  r.request_id = call.request_id;
  r.tenant = call.request.tenant;
  r.function = call.request.function;
  r.version = call.fn->code_sha256_base64;
  r.memory_mib = call.fn->memory_mib;
  r.invocation_type = "RequestResponse";
  r.reused_from = result.request_id;
  if (!result.status.ok()) {
    r.state = result.throttle_reason.empty() ? "error" : "throttled";
    r.error_type = std::string(result.status.reason());
  } else if (!result.function_error.empty()) {
    r.state = "failed";
    r.error_type = result.function_error;
  } else {
    r.state = "succeeded";
  }
  r.started_at = call.started_at;
  r.finished_at = deps_.clock.Now();
  std::string log = fmt::format(
      "START RequestId: {} Version: $LATEST\n"
      "fpgahost: {} the result of {}: same code, input and dependencies\n"
      "END RequestId: {}\n"
      "REPORT RequestId: {}\tDuration: 0.00 ms\tBilled Duration: 0 ms\tMemory Size: {} MB\t\n",
      call.request_id, shared ? "waited for and shares" : "reused", result.request_id,
      call.request_id, call.request_id, call.fn->memory_mib);
  if (call.request.log_tail) response.log_tail = Tail(log, kLogTailBytes);
  deps_.records.Add(std::move(r), std::move(log));
  done(std::move(response));
}

void Invoker::CompleteReuse(const Call& call, const InvokeResponse& response) {
  if (call.reuse_key.empty()) return;
  ReuseCache::Result result;
  result.status = response.status;
  result.throttle_reason = response.throttle_reason;
  result.payload = response.payload;
  result.function_error = response.function_error;
  result.request_id = call.request_id;
  reuse_.Complete(call.reuse_key, result, call.reuse_ttl);
}

void Invoker::After(std::chrono::milliseconds delay, std::function<void()> fire,
                    std::function<void()> cancelled) {
  {
    MutexLock lock(mu_);
    if (!stopping_) {
      auto timer = std::make_shared<asio::steady_timer>(deps_.io.context(), delay);
      timers_->pending.insert(timer);
      // Counted until the handler has run (cancelled or not), so the destructor can wait.
      ++timers_->callbacks;
      timer->async_wait([this, timer, fire = std::move(fire),
                         cancelled = std::move(cancelled)](const boost::system::error_code& ec) {
        bool run = false;
        {
          MutexLock fired(mu_);
          timers_->pending.erase(timer);
          run = !ec && !stopping_;
        }
        if (run) {
          fire();
        } else if (cancelled) {
          cancelled();
        }
        MutexLock done(mu_);
        if (--timers_->callbacks == 0) timers_->idle.notify_all();
      });
      return;
    }
  }
  if (cancelled) cancelled();
}

void Invoker::SubmitAsync(std::shared_ptr<Call> call, std::chrono::milliseconds delay) {
  if (delay.count() > 0) {
    After(
        delay, [this, call] { SubmitAsync(call, std::chrono::milliseconds(0)); },
        [this] {
          MutexLock lock(mu_);
          --async_queued_;
        });
    return;
  }
  // The function may have changed or gone while the event waited.
  std::shared_ptr<const FunctionConfig> fn =
      deps_.registry.Find(call->request.tenant, call->request.function);
  if (!fn) {
    InvocationRecord r;
    r.request_id = call->request_id;
    r.tenant = call->request.tenant;
    r.function = call->request.function;
    r.invocation_type = "Event";
    r.attempt = call->attempt;
    r.state = "error";
    r.error_type = kResourceNotFound;
    r.started_at = call->started_at;
    r.finished_at = deps_.clock.Now();
    deps_.records.Add(std::move(r), "");
    MutexLock lock(mu_);
    --async_queued_;
    return;
  }
  call->fn = fn;
  call->key = VersionKey(*fn);
  StatusOr<ConcurrencyLimiter::Lease> lease =
      deps_.limiter.Acquire(call->request.tenant, call->request.function, fn->reserved_concurrency);
  if (!lease.ok()) {
    // Lambda keeps a throttled event and tries again later.
    SubmitAsync(std::move(call), options_.async_throttle_delay);
    return;
  }
  call->lease = *std::move(lease);
  Submit(std::move(call));
}

std::shared_ptr<Invoker::Slot> Invoker::AffineSlot(Pool& pool, const Call& call) {
  if (call.request.routing_key.empty()) return nullptr;
  auto it = pool.routes.find(call.request.routing_key);
  if (it == pool.routes.end()) return nullptr;
  std::shared_ptr<Slot> slot = it->second.slot.lock();
  if (!slot || slot->removed || !slot->slot) return nullptr;
  return slot;
}

void Invoker::Assign(Pool& pool, const std::shared_ptr<Slot>& slot, Call& call, bool ready) {
  bool first = !slot->used;
  slot->used = true;
  slot->busy = true;
  // A pre-warmed slot's first call finds it initialised: not a cold start, as on Lambda with
  // provisioned concurrency.
  call.prewarmed = first && ready && slot->prewarmed;
  call.cold = first && !call.prewarmed;
  const std::string& key = call.request.routing_key;
  if (key.empty()) return;
  auto it = pool.routes.find(key);
  if (it != pool.routes.end()) {
    it->second.slot = slot;
    pool.lru.splice(pool.lru.end(), pool.lru, it->second.lru);
    return;
  }
  pool.lru.push_back(key);
  pool.routes.emplace(key, Pool::Route{slot, std::prev(pool.lru.end())});
  if (pool.routes.size() > options_.max_routing_keys) {
    pool.routes.erase(pool.lru.front());
    pool.lru.pop_front();
  }
}

std::shared_ptr<Invoker::Slot> Invoker::Place(const std::shared_ptr<Call>& call, Pool& pool,
                                              Starts& starts, InvokeResponse& refused) {
  if (!pool.idle.empty()) {
    std::shared_ptr<Slot> slot = pool.idle.back();
    pool.idle.pop_back();
    return slot;
  }
  if (pool.queue.size() >= options_.max_queue_per_function) {
    refused.status = ResourceExhaustedError(
        fmt::format("{} calls of this function already wait for a slot", pool.queue.size()),
        kTooManyRequests);
    refused.throttle_reason = kHostCapacityExceeded;
    return nullptr;
  }
  pool.queue.push_back(call);
  PlanStarts(call->key, pool, starts);
  return nullptr;
}

void Invoker::Submit(std::shared_ptr<Call> call) {
  Starts starts;
  std::shared_ptr<Slot> slot;
  InvokeResponse refused;
  bool waits = false;
  {
    MutexLock lock(mu_);
    call->accepted = steady_clock::now();
    call->wait_deadline = call->accepted + std::chrono::seconds(call->fn->timeout_seconds);
    if (stopping_) {
      refused.status = UnavailableError("fpgahostd is shutting down", kServiceException);
    } else {
      std::unique_ptr<Pool>& pool = pools_[call->key];
      if (!pool) pool = std::make_unique<Pool>();
      std::shared_ptr<Slot> affine = AffineSlot(*pool, *call);
      if (affine && !affine->busy) {
        std::erase(pool->idle, affine);
        slot = affine;
        call->affinity = "hit";
      } else if (affine && options_.affinity_wait.count() > 0) {
        affine->waiters.push_back(call);
        call->waiting_on = affine;
        call->affinity = "waited";
        waits = true;
      } else {
        if (!call->request.routing_key.empty()) call->affinity = affine ? "missed" : "new";
        slot = Place(call, *pool, starts, refused);
      }
      if (slot) Assign(*pool, slot, *call, true);
    }
  }
  if (!refused.status.ok()) return Refuse(std::move(call), std::move(refused));
  if (waits) {
    After(
        options_.affinity_wait, [this, call] { OnAffinityWaitOver(call); }, nullptr);
  }
  RunStarts(std::move(starts));
  if (slot) Dispatch(std::move(slot), std::move(call));
}

void Invoker::OnAffinityWaitOver(std::shared_ptr<Call> call) {
  Starts starts;
  std::shared_ptr<Slot> slot;
  InvokeResponse refused;
  {
    MutexLock lock(mu_);
    std::shared_ptr<Slot> affine = std::move(call->waiting_on);
    if (!affine) return;  // its slot freed up (or retired) in time
    std::erase(affine->waiters, call);
    call->affinity = "missed";
    // The slot is not removed (that would have emptied its waiters): its pool is there.
    Pool& pool = *pools_.at(call->key);
    slot = Place(call, pool, starts, refused);
    if (slot) Assign(pool, slot, *call, true);
  }
  if (!refused.status.ok()) return Refuse(std::move(call), std::move(refused));
  RunStarts(std::move(starts));
  if (slot) Dispatch(std::move(slot), std::move(call));
}

void Invoker::Refuse(std::shared_ptr<Call> call, InvokeResponse refused) {
  refused.request_id = call->request_id;
  call->lease.Release();
  CompleteReuse(*call, refused);
  if (call->done) {
    call->done(std::move(refused));
  } else {
    MutexLock lock(mu_);
    --async_queued_;
  }
}

StatusOr<PrewarmResult> Invoker::Prewarm(std::string_view tenant, std::string_view function,
                                         int count, std::chrono::seconds within) {
  std::shared_ptr<const FunctionConfig> fn = deps_.registry.Find(tenant, function);
  if (!fn) {
    return NotFoundError(fmt::format("Function not found: arn:aws:lambda:{}:{}:function:{}",
                                     options_.region, LambdaAccountId(tenant), function),
                         kResourceNotFound);
  }
  std::string key = VersionKey(*fn);
  PrewarmResult result;
  result.requested = count;
  Starts starts;
  {
    MutexLock lock(mu_);
    if (stopping_) return UnavailableError("fpgahostd is shutting down", kServiceException);
    std::unique_ptr<Pool>& pool = pools_[key];
    if (!pool) pool = std::make_unique<Pool>();
    result.existing = static_cast<int>(pool->slots.size());
    auto deadline = steady_clock::now() + within;
    // Slots already there count, and so does an earlier notification's pending remainder.
    pool->prewarm_pending = std::max(pool->prewarm_pending, count - result.existing);
    pool->prewarm_deadline = std::max(pool->prewarm_deadline, deadline);
    pool->prewarm_fn = fn;
    for (const std::shared_ptr<Slot>& s : pool->slots) {
      if (s->prewarmed) s->keep_until = std::max(s->keep_until, deadline);
    }
    PlanStarts(key, *pool, starts);
    result.starting = static_cast<int>(starts.size());
    result.deferred = pool->prewarm_pending;
    DropIfUnused(key);
  }
  spdlog::info("functions: pre-warm {}/{}: {} wanted, {} there, {} starting, {} deferred", tenant,
               function, result.requested, result.existing, result.starting, result.deferred);
  RunStarts(std::move(starts));
  return result;
}

Status Invoker::Hold(int64_t memory_mib, int64_t milli_vcpus) {
  ComputeResources want{static_cast<int>((milli_vcpus + 999) / 1000), memory_mib};
  RETURN_IF_ERROR(deps_.capacity.Resize(kCapacityOwner, want));
  held_memory_mib_ = memory_mib;
  held_milli_vcpus_ = milli_vcpus;
  return Status::Ok();
}

void Invoker::PlanStarts(const std::string& key, Pool& pool, Starts& starts) {
  while (!stopping_ && starting_ < options_.max_concurrent_starts) {
    // Slots starting serve waiting calls first; beyond those, pre-warm.
    bool for_calls = pool.starting < static_cast<int>(pool.queue.size());
    if (!for_calls && pool.prewarm_pending <= 0) return;
    std::shared_ptr<const FunctionConfig> fn = for_calls ? pool.queue.back()->fn : pool.prewarm_fn;
    int64_t memory = fn->memory_mib;
    int64_t milli = (memory * 1000 + kMibPerVcpu - 1) / kMibPerVcpu;
    bool fpga = !fn->fpga_image.empty();
    if (fpga && !PlanCard(key, *fn, for_calls)) return;
    while (slots_ >= options_.max_slots ||
           !Hold(held_memory_mib_ + memory, held_milli_vcpus_ + milli).ok()) {
      // A call in hand may push out another function's idle slot; an announcement may not.
      if (!for_calls || !EvictIdle(key)) return;
    }
    auto slot = std::make_shared<Slot>();
    slot->name = fmt::format("fn-{}-{}-{}", instance_, next_slot_++, fn->name.substr(0, 40));
    slot->key = key;
    slot->fn = fn;
    slot->memory_mib = memory;
    slot->milli_vcpus = milli;
    if (!for_calls) {
      --pool.prewarm_pending;
      slot->prewarmed = true;
      slot->keep_until = pool.prewarm_deadline;
    }
    ++pool.starting;
    ++starting_;
    ++slots_;
    if (fpga) ++cards_planned_;
    pool.slots.push_back(slot);
    starts.emplace_back(key, std::move(slot));
  }
}

void Invoker::PlanAllStarts(Starts& starts) {
  for (auto& [key, pool] : pools_) {
    if (!pool->queue.empty() || pool->prewarm_pending > 0) PlanStarts(key, *pool, starts);
  }
}

bool Invoker::PlanCard(const std::string& key, const FunctionConfig& fn, bool may_evict) {
  if (!deps_.cards) return false;
  while (deps_.cards->Available(fn.tenant, fn.fpga_image) - cards_planned_ <= 0) {
    // A card on its way back will do: its return plans the starts again.
    if (cards_returning_ > 0 || !may_evict || !EvictIdle(key, /*holding_card=*/true)) return false;
  }
  return true;
}

bool Invoker::EvictIdle(const std::string& key, bool holding_card) {
  std::shared_ptr<Slot> oldest;
  for (auto& [k, pool] : pools_) {
    if (k == key) continue;
    // idle is ordered by time: the pool's least recently used come first.
    for (const std::shared_ptr<Slot>& s : pool->idle) {
      if (holding_card && !s->card) continue;
      if (!oldest || s->idle_since < oldest->idle_since) oldest = s;
      break;
    }
  }
  if (!oldest) return false;
  spdlog::debug("functions: retiring idle slot {} to make room", oldest->name);
  RemoveSlot(oldest);
  return true;
}

void Invoker::DropIfUnused(const std::string& key) {
  auto it = pools_.find(key);
  if (it == pools_.end()) return;
  const Pool& pool = *it->second;
  if (pool.slots.empty() && pool.queue.empty() && pool.starting == 0 && pool.prewarm_pending <= 0) {
    pools_.erase(it);
  }
}

void Invoker::RemoveSlot(const std::shared_ptr<Slot>& slot) {
  if (slot->removed) return;
  slot->removed = true;
  --slots_;
  Hold(held_memory_mib_ - slot->memory_mib, held_milli_vcpus_ - slot->milli_vcpus)
      .IgnoreError();  // shrinking always fits
  auto it = pools_.find(slot->key);
  if (it != pools_.end()) {
    Pool& pool = *it->second;
    std::erase(pool.idle, slot);
    std::erase(pool.slots, slot);
    // Calls waiting for this slot by affinity wait for any, ahead of the others.
    for (auto w = slot->waiters.rbegin(); w != slot->waiters.rend(); ++w) {
      (*w)->waiting_on.reset();
      (*w)->affinity = "missed";
      pool.queue.push_front(*w);
    }
    slot->waiters.clear();
    DropIfUnused(slot->key);
  }
  if (slot->sidecar) {
    ReleaseSidecar(slot->sidecar);
    slot->sidecar.reset();
  }
  // The card goes back once the sandbox is gone (FunctionSlot's on_stopped).
  if (slot->card && slot->slot) ++cards_returning_;
  if (!slot->slot) return;
  // Retiring a slot is Lambda's Shutdown phase: its extensions hear SHUTDOWN and get up to two
  // seconds (a slot without them, or one that failed, is killed at once). fpgahostd stopping
  // does not wait.
  if (stopping_) {
    slot->slot->Kill();
  } else {
    slot->slot->Shutdown();
    // Until its grace ends, for Stop to cut it short.
    std::erase_if(shutting_down_, [](const auto& s) { return s.expired(); });
    shutting_down_.push_back(slot->slot);
  }
}

void Invoker::RunStarts(Starts starts) {
  for (auto& [key, slot] : starts) {
    starters_.Post([this, key = std::move(key), slot = std::move(slot)]() mutable {
      StartSlot(std::move(key), std::move(slot));
    });
  }
}

SandboxSpec Invoker::SpecFor(const FunctionConfig& f, const Slot& slot) const {
  const std::string& slot_name = slot.name;
  SandboxSpec spec;
  spec.name = slot_name;
  spec.task_dir = deps_.registry.CodeDir(f);
  spec.argv = {"/var/task/bootstrap"};
  spec.extensions_except = f.tenant_sidecars;  // they run in the tenant's sidecar sandbox
  // The function's variables, then Lambda's own (which a function cannot override).
  for (const auto& [k, v] : f.environment) spec.env.emplace_back(k, v);
  std::string day = FormatRfc3339(deps_.clock.Now()).substr(0, 10);
  std::replace(day.begin(), day.end(), '-', '/');
  const std::pair<std::string, std::string> lambda[] = {
      {"AWS_LAMBDA_FUNCTION_NAME", f.name},
      {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
      {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", std::to_string(f.memory_mib)},
      // Lambda's name for slots initialised ahead of calls.
      {"AWS_LAMBDA_INITIALIZATION_TYPE", slot.prewarmed ? "provisioned-concurrency" : "on-demand"},
      {"AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/" + f.name},
      {"AWS_LAMBDA_LOG_STREAM_NAME", fmt::format("{}/[$LATEST]{}", day, slot_name)},
      {"AWS_REGION", options_.region},
      {"AWS_DEFAULT_REGION", options_.region},
      {"_HANDLER", f.handler},
      {"LAMBDA_TASK_ROOT", "/var/task"},
      {"LAMBDA_RUNTIME_DIR", "/var/runtime"},
      {"LANG", "en_US.UTF-8"},
      {"TZ", ":UTC"},
      {"PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"},
      {"LD_LIBRARY_PATH", "/var/task:/var/task/lib:/opt/lib"},
  };
  for (const auto& entry : lambda) {
    std::erase_if(spec.env, [&](const auto& e) { return e.first == entry.first; });
    spec.env.push_back(entry);
  }
  spec.memory_mib = f.memory_mib;
  spec.cpus = static_cast<double>(f.memory_mib) / kMibPerVcpu;
  // Building the sandbox and initialising the runtime run with at least one vCPU; the
  // proportional share applies from the runtime's first `next` on.
  spec.init_cpus = std::max(1.0, spec.cpus);
  spec.max_pids = options_.max_pids;
  spec.tmp_mib = options_.tmp_mib;
  if (slot.card) {
    const LentCard& card = *slot.card;
    spec.ro_binds.emplace_back(card.xclbin, kSandboxXclbin);
    const std::pair<std::string, std::string> fpga[] = {{"FPGAHOST_FPGA_DEVICE", card.user_bdf},
                                                        {"FPGAHOST_XCLBIN", kSandboxXclbin},
                                                        {"FPGAHOST_CARD_ID", card.card_id},
                                                        {"FPGAHOST_IMAGE_ID", card.image_id},
                                                        {"FPGAHOST_XCLBIN_UUID", card.xclbin_uuid}};
    for (const auto& entry : fpga) {
      std::erase_if(spec.env, [&](const auto& e) { return e.first == entry.first; });
      spec.env.push_back(entry);
    }
  }
  return spec;
}

bool Invoker::LendCard(Slot& slot, Status& failure, bool& retry) {
  StatusOr<LentCard> lent = deps_.cards->Lend(slot.fn->tenant, slot.fn->fpga_image, slot.name);
  MutexLock lock(mu_);
  --cards_planned_;
  if (!lent.ok()) {
    failure = lent.status();
    // Taken meanwhile (by an instance, say): the calls wait for the next card.
    retry = failure.reason() == kReasonInsufficientCapacity;
    return false;
  }
  slot.card = *std::move(lent);
  return true;
}

// std::unique_lock (which the condition variable needs) carries no thread-safety annotations.
std::shared_ptr<Invoker::Sidecar> Invoker::AcquireSidecar(
    const std::shared_ptr<const FunctionConfig>& fn, Status& failure) NO_THREAD_SAFETY_ANALYSIS {
  std::vector<std::string> names = fn->tenant_sidecars;
  std::sort(names.begin(), names.end());
  std::string key = fmt::format("{}/{}:{}", fn->tenant, fn->code_sha256_hex, fmt::join(names, ","));
  std::shared_ptr<Sidecar> sidecar;
  {
    std::unique_lock<Mutex> lock(mu_);
    if (stopping_) {
      failure = UnavailableError("fpgahostd is shutting down", kServiceException);
      return nullptr;
    }
    std::shared_ptr<Sidecar>& entry = sidecars_[key];
    if (entry) {
      sidecar = entry;
      ++sidecar->users;
      sidecar_started_.wait(lock, [&] { return sidecar->started; });
      if (sidecar->slot) return sidecar;
      --sidecar->users;
      failure = sidecar->failure;
      return nullptr;
    }
    Status held = Hold(held_memory_mib_ + kSidecarMemoryMib, held_milli_vcpus_);
    if (!held.ok()) {
      sidecars_.erase(key);
      failure = held.WithContext("the tenant's sidecar sandbox");
      return nullptr;
    }
    entry = std::make_shared<Sidecar>();
    sidecar = entry;
    sidecar->key = key;
    sidecar->tenant = fn->tenant;
    sidecar->extensions = names;
    sidecar->name =
        fmt::format("fn-{}-sc{}-{}", instance_, next_sidecar_++, fn->tenant.substr(0, 40));
    sidecar->users = 1;
  }
  SandboxSpec spec;
  spec.name = sidecar->name;
  spec.task_dir = deps_.registry.CodeDir(*fn);
  spec.argv = {kSandboxLauncherPath, "relay"};
  spec.extensions_only = names;
  spec.env = {{"AWS_LAMBDA_FUNCTION_NAME", "fpgahost-tenant-sidecars"},
              {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
              {"AWS_REGION", options_.region},
              {"FPGAHOST_TENANT", fn->tenant},
              {"LANG", "en_US.UTF-8"},
              {"TZ", ":UTC"},
              {"PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"}};
  spec.memory_mib = kSidecarMemoryMib;
  spec.cpus = static_cast<double>(kSidecarMemoryMib) / kMibPerVcpu;
  spec.init_cpus = 1.0;
  spec.max_pids = options_.max_pids;
  spec.tmp_mib = 64;
  std::weak_ptr<Sidecar> weak = sidecar;
  FunctionSlot::Hooks hooks;
  hooks.on_retired = [weak] {
    if (auto s = weak.lock()) spdlog::warn("functions: tenant sidecar sandbox {} ended", s->name);
  };
  StatusOr<std::shared_ptr<FunctionSlot>> started =
      FunctionSlot::Start(deps_.sandbox, spec, deps_.io, reaper_, std::move(hooks));
  {
    MutexLock lock(mu_);
    sidecar->started = true;
    if (!started.ok()) {
      failure = started.status().WithContext("the tenant's sidecar sandbox did not start");
      sidecar->failure = failure;
      --sidecar->users;
      auto it = sidecars_.find(key);
      if (it != sidecars_.end() && it->second == sidecar) sidecars_.erase(it);
      Hold(held_memory_mib_ - kSidecarMemoryMib, held_milli_vcpus_).IgnoreError();
      sidecar = nullptr;
    } else {
      sidecar->slot = *started;
      spdlog::info("functions: tenant sidecar sandbox {} for {} runs {}", sidecar->name,
                   sidecar->tenant, fmt::join(names, ", "));
      if (stopping_) sidecar->slot->Kill();
    }
  }
  sidecar_started_.notify_all();
  if (sidecar) PumpSidecar(sidecar);
  return sidecar;
}

void Invoker::ReleaseSidecar(const std::shared_ptr<Sidecar>& sidecar) {
  if (--sidecar->users > 0) return;
  sidecar->retired = true;
  auto it = sidecars_.find(sidecar->key);
  if (it != sidecars_.end() && it->second == sidecar) sidecars_.erase(it);
  Hold(held_memory_mib_ - kSidecarMemoryMib, held_milli_vcpus_).IgnoreError();
  if (!sidecar->slot) return;
  // Its extensions hear SHUTDOWN, as a slot's do.
  if (stopping_) {
    sidecar->slot->Kill();
  } else {
    sidecar->slot->Shutdown();
    shutting_down_.push_back(sidecar->slot);
  }
}

void Invoker::PumpSidecar(const std::shared_ptr<Sidecar>& sidecar) {
  Invocation event;
  std::shared_ptr<FunctionSlot> target;
  {
    MutexLock lock(mu_);
    if (sidecar->busy || !sidecar->slot || sidecar->retired || sidecar->backlog.empty()) return;
    event = std::move(sidecar->backlog.front());
    sidecar->backlog.pop_front();
    sidecar->busy = true;
    target = sidecar->slot;
  }
  Status s =
      target->Invoke(std::move(event), kSidecarEventTimeout, [this, sidecar](SlotOutcome outcome) {
        {
          MutexLock lock(mu_);
          sidecar->busy = false;
          ++sidecar->events;
          sidecar->log = Tail(sidecar->log + outcome.log, kSidecarLogBytes);
        }
        PumpSidecar(sidecar);
      });
  if (!s.ok()) {
    spdlog::warn("functions: tenant sidecar sandbox {} takes no more events: {}", sidecar->name,
                 s.ToString());
    MutexLock lock(mu_);
    sidecar->busy = false;
    sidecar->dropped += 1 + sidecar->backlog.size();
    sidecar->backlog.clear();
  }
}

void Invoker::ReturnCard(const LentCard& card, const std::string& slot_name) {
  deps_.cards->GiveBack(card, slot_name);
  Starts starts;
  {
    MutexLock lock(mu_);
    --cards_returning_;
    PlanAllStarts(starts);
  }
  RunStarts(std::move(starts));
}

void Invoker::StartSlot(std::string key, std::shared_ptr<Slot> slot) {
  Status card_failure;
  bool card_retry = false;
  bool card_ok = slot->fn->fpga_image.empty() || LendCard(*slot, card_failure, card_retry);
  if (card_ok && !slot->fn->tenant_sidecars.empty()) {
    // Started before the slot's runtime, as the slot's own extensions are.
    std::shared_ptr<Sidecar> sidecar = AcquireSidecar(slot->fn, card_failure);
    card_ok = sidecar != nullptr;
    MutexLock lock(mu_);
    if (sidecar && slot->removed) {
      ReleaseSidecar(sidecar);
    } else {
      slot->sidecar = std::move(sidecar);
    }
  }
  std::weak_ptr<Slot> weak = slot;
  FunctionSlot::Hooks hooks;
  hooks.on_ready = [this, weak] {
    std::shared_ptr<Slot> s = weak.lock();
    if (!s) return;
    MutexLock lock(mu_);
    s->ready = true;
  };
  hooks.on_retired = [this, weak] {
    std::shared_ptr<Slot> s = weak.lock();
    if (!s) return;
    Starts starts;
    {
      MutexLock lock(mu_);
      // A busy slot is removed when its invocation's outcome arrives.
      if (s->busy) return;
      RemoveSlot(s);
      PlanAllStarts(starts);
    }
    RunStarts(std::move(starts));
  };
  if (slot->card) {
    hooks.on_stopped = [this, card = *slot->card, name = slot->name] { ReturnCard(card, name); };
  }
  StatusOr<std::shared_ptr<FunctionSlot>> started =
      card_ok ? FunctionSlot::Start(deps_.sandbox, SpecFor(*slot->fn, *slot), deps_.io, reaper_,
                                    std::move(hooks))
              : StatusOr<std::shared_ptr<FunctionSlot>>(card_failure);
  if (!started.ok()) {
    spdlog::warn("functions: slot {} for {} did not start: {}", slot->name, slot->fn->name,
                 started.status().ToString());
    // Never started, so never stopped: its card goes back here.
    if (slot->card) deps_.cards->GiveBack(*slot->card, slot->name);
  }

  Starts starts;
  std::vector<std::shared_ptr<Call>> failed;
  std::shared_ptr<Call> next;
  {
    MutexLock lock(mu_);
    --starting_;
    auto it = pools_.find(key);
    Pool* pool = it == pools_.end() ? nullptr : it->second.get();
    if (pool) --pool->starting;
    if (started.ok()) slot->slot = *started;
    if (stopping_ || !pool || slot->removed) {
      RemoveSlot(slot);
    } else if (card_retry) {
      RemoveSlot(slot);
      if (slot->prewarmed) ++pool->prewarm_pending;
    } else if (!started.ok()) {
      RemoveSlot(slot);
      // With no other slot to serve them, the waiting calls fail; else only the oldest does
      // (the next start may well work).
      bool others = std::any_of(pool->slots.begin(), pool->slots.end(),
                                [](const auto& s) { return s->slot != nullptr; });
      while (!pool->queue.empty()) {
        failed.push_back(pool->queue.front());
        pool->queue.pop_front();
        if (others) break;
      }
      PlanAllStarts(starts);
    } else if (!pool->queue.empty()) {
      next = pool->queue.front();
      pool->queue.pop_front();
      Assign(*pool, slot, *next, false);
    } else {
      slot->idle_since = steady_clock::now();
      pool->idle.push_back(slot);
    }
    // A start permit is free again: calls or pre-warm of any function may be waiting for it.
    PlanAllStarts(starts);
  }
  for (std::shared_ptr<Call>& call : failed) {
    InvokeResponse response;
    response.request_id = call->request_id;
    response.status = InternalError(
        fmt::format("no function slot could be started: {}", started.status().message()),
        kServiceException);
    InvocationRecord record;
    record.state = "error";
    record.error_type = kServiceException;
    Finish(std::move(call), std::move(response), std::move(record), "");
  }
  RunStarts(std::move(starts));
  if (next) Dispatch(slot, std::move(next));
}

void Invoker::Dispatch(std::shared_ptr<Slot> slot, std::shared_ptr<Call> call) {
  const FunctionConfig& fn = *call->fn;
  Invocation invocation;
  invocation.request_id = call->request_id;
  invocation.payload = call->request.payload;
  invocation.deadline = deps_.clock.Now() + std::chrono::seconds(fn.timeout_seconds);
  invocation.function_arn = FunctionArn(fn, options_.region);
  invocation.trace_id = call->request.trace_id;
  invocation.client_context = call->request.client_context;
  Status s = slot->slot->Invoke(
      std::move(invocation), std::chrono::seconds(fn.timeout_seconds),
      [this, slot, call](SlotOutcome outcome) { OnOutcome(slot, call, std::move(outcome)); });
  if (s.ok()) {
    if (fn.tenant_sidecars.empty()) return;  // the common case takes no lock here
    std::shared_ptr<Sidecar> sidecar;
    {
      MutexLock lock(mu_);
      sidecar = slot->sidecar;
      if (sidecar && !sidecar->retired) {
        // What Lambda's INVOKE event carries: not the payload.
        Invocation event;
        event.request_id = call->request_id;
        event.payload = "{}";
        event.deadline = deps_.clock.Now() + std::chrono::seconds(fn.timeout_seconds);
        event.function_arn = FunctionArn(fn, options_.region);
        event.trace_id = call->request.trace_id;
        if (sidecar->backlog.size() >= kMaxSidecarBacklog) {
          sidecar->backlog.pop_front();
          ++sidecar->dropped;
        }
        sidecar->backlog.push_back(std::move(event));
      }
    }
    if (sidecar) PumpSidecar(sidecar);
    return;
  }
  // The slot ended between being chosen and being handed the call: queue it again.
  spdlog::debug("functions: slot {} refused {}: {}", slot->name, call->request_id, s.ToString());
  Starts starts;
  {
    MutexLock lock(mu_);
    slot->busy = false;
    RemoveSlot(slot);
    auto it = pools_.find(call->key);
    if (it == pools_.end()) it = pools_.emplace(call->key, std::make_unique<Pool>()).first;
    it->second->queue.push_front(call);
    PlanStarts(call->key, *it->second, starts);
  }
  RunStarts(std::move(starts));
}

void Invoker::OnOutcome(std::shared_ptr<Slot> slot, std::shared_ptr<Call> call,
                        SlotOutcome outcome) {
  const FunctionConfig& fn = *call->fn;
  InvokeResponse response;
  response.request_id = call->request_id;
  InvocationRecord record;
  record.slot = slot->name;
  record.cold = call->cold;
  if (call->cold) record.init_ms = Ms(slot->slot->init_duration());
  if (slot->card) {
    record.fpga_card = slot->card->card_id;
    // The first call on a slot that was not pre-warmed waited for its image to load.
    if (call->cold && slot->card->loaded) {
      record.image_load_ms = static_cast<double>(slot->card->load_time.count());
    }
  }
  record.duration_ms = Ms(outcome.duration);
  record.state = "succeeded";
  std::string failure_line;
  std::visit(
      [&](auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, InvocationResponse>) {
          response.payload = std::move(r.payload);
        } else if constexpr (std::is_same_v<T, FunctionError> || std::is_same_v<T, InitError>) {
          response.function_error = "Unhandled";
          response.payload = std::move(r.body);
          record.state = "failed";
          record.error_type = r.error_type.empty() ? "Unhandled" : r.error_type;
        } else {
          response.function_error = "Unhandled";
          response.payload = Json{{"errorType", r.error_type}, {"errorMessage", r.message}}.dump();
          record.state = r.error_type == kErrorTypeTimeout ? "timed_out" : "failed";
          record.error_type = r.error_type;
          failure_line = fmt::format("{} {} {}\n", FormatRfc3339(deps_.clock.Now()),
                                     call->request_id, r.message);
        }
      },
      outcome.result);

  // Lambda's log lines around the runtime's own output.
  std::string log = fmt::format("START RequestId: {} Version: $LATEST\n", call->request_id);
  if (outcome.log_truncated) log += "[fpgahost: earlier output of this invocation dropped]\n";
  log += outcome.log;
  if (!outcome.log.empty() && outcome.log.back() != '\n') log += '\n';
  log += failure_line;
  log += fmt::format("END RequestId: {}\n", call->request_id);
  log += fmt::format(
      "REPORT RequestId: {}\tDuration: {:.2f} ms\tBilled Duration: {} ms\t"
      "Memory Size: {} MB\t",
      call->request_id, record.duration_ms, static_cast<int64_t>(std::ceil(record.duration_ms)),
      fn.memory_mib);
  if (call->cold) log += fmt::format("Init Duration: {:.2f} ms\t", record.init_ms);
  log += '\n';
  if (call->request.log_tail) response.log_tail = Tail(log, kLogTailBytes);

  Starts starts;
  std::shared_ptr<Call> next;
  {
    MutexLock lock(mu_);
    slot->busy = false;
    ++slot->served;
    bool current = false;
    if (!slot->removed && outcome.slot_reusable && !stopping_) {
      // A slot of a version that changed meanwhile is not reused.
      std::shared_ptr<const FunctionConfig> now =
          deps_.registry.Find(slot->fn->tenant, slot->fn->name);
      current = now && VersionKey(*now) == slot->key;
    }
    if (!current) {
      RemoveSlot(slot);
      PlanAllStarts(starts);
    } else {
      Pool& pool = *pools_.at(slot->key);
      // Calls that wait for this very slot by affinity come first.
      if (!slot->waiters.empty()) {
        next = slot->waiters.front();
        slot->waiters.pop_front();
        next->waiting_on.reset();
        Assign(pool, slot, *next, true);
      } else if (!pool.queue.empty()) {
        next = pool.queue.front();
        pool.queue.pop_front();
        Assign(pool, slot, *next, true);
      } else {
        slot->idle_since = steady_clock::now();
        pool.idle.push_back(slot);
      }
    }
  }
  RunStarts(std::move(starts));
  if (next) Dispatch(slot, std::move(next));
  Finish(std::move(call), std::move(response), std::move(record), std::move(log));
}

void Invoker::Finish(std::shared_ptr<Call> call, InvokeResponse response, InvocationRecord record,
                     std::string log) {
  call->lease.Release();
  auto now = steady_clock::now();
  record.request_id = call->request_id;
  record.tenant = call->request.tenant;
  record.function = call->request.function;
  record.version = call->fn->code_sha256_base64;
  record.memory_mib = call->fn->memory_mib;
  record.invocation_type =
      call->request.type == InvocationType::kEvent ? "Event" : "RequestResponse";
  record.attempt = call->attempt;
  record.prewarmed = call->prewarmed;
  record.routing_key = call->request.routing_key;
  record.affinity = call->affinity;
  record.queued_ms = std::max(
      0.0, Ms(now - call->accepted) - record.duration_ms - record.init_ms - record.image_load_ms);
  record.started_at = call->started_at;
  record.finished_at = deps_.clock.Now();
  deps_.records.Add(std::move(record), std::move(log));
  CompleteReuse(*call, response);
  if (call->done) {
    call->done(std::move(response));
  } else {
    OnAsyncDone(std::move(call), response);
  }
}

void Invoker::OnAsyncDone(std::shared_ptr<Call> call, const InvokeResponse& response) {
  bool retry = response.status.ok() && !response.function_error.empty() &&
               call->attempt <= options_.async_retries;
  if (!retry) {
    MutexLock lock(mu_);
    --async_queued_;
    return;
  }
  // Lambda waits one minute, then two, between attempts.
  std::chrono::milliseconds delay = options_.async_retry_delay * call->attempt;
  ++call->attempt;
  call->cold = false;
  call->started_at = deps_.clock.Now();
  SubmitAsync(std::move(call), delay);
}

void Invoker::ArmTick() {
  MutexLock lock(mu_);
  if (stopping_) return;
  ++timers_->callbacks;
  timers_->tick.expires_after(std::chrono::milliseconds(250));
  timers_->tick.async_wait([this](const boost::system::error_code& ec) {
    bool run = false;
    {
      MutexLock fired(mu_);
      run = !ec && !stopping_;
    }
    if (run) {
      Tick();
      ArmTick();
    }
    MutexLock done(mu_);
    if (--timers_->callbacks == 0) timers_->idle.notify_all();
  });
}

void Invoker::RetireFromUnfitCards() {
  if (!deps_.cards) return;
  std::vector<std::shared_ptr<Slot>> holding;
  {
    MutexLock lock(mu_);
    for (auto& [key, pool] : pools_) {
      for (const std::shared_ptr<Slot>& s : pool->idle) {
        if (s->card) holding.push_back(s);
      }
    }
  }
  // Asked without the lock: the card manager has its own.
  std::erase_if(holding, [this](const auto& s) { return deps_.cards->StillFit(*s->card); });
  if (holding.empty()) return;
  Starts starts;
  {
    MutexLock lock(mu_);
    for (const std::shared_ptr<Slot>& s : holding) {
      if (s->busy || s->removed) continue;
      spdlog::info("functions: retiring slot {}: card {} is drained, unhealthy or gone", s->name,
                   s->card->card_id);
      RemoveSlot(s);
    }
    PlanAllStarts(starts);
  }
  RunStarts(std::move(starts));
}

void Invoker::Tick() {
  RetireFromUnfitCards();
  std::vector<std::shared_ptr<Call>> expired;
  Starts starts;
  {
    MutexLock lock(mu_);
    auto now = steady_clock::now();
    std::vector<std::shared_ptr<Slot>> retire;
    std::vector<std::string> announced;
    for (auto& [key, pool] : pools_) {
      for (const std::shared_ptr<Slot>& s : pool->idle) {
        if (now - s->idle_since >= options_.idle_timeout && now >= s->keep_until) {
          retire.push_back(s);
        }
      }
      while (!pool->queue.empty() && pool->queue.front()->wait_deadline <= now) {
        expired.push_back(pool->queue.front());
        pool->queue.pop_front();
      }
      if (pool->prewarm_pending > 0 && now >= pool->prewarm_deadline) {
        spdlog::info("functions: pre-warm of {}: {} slots did not fit before the window ended", key,
                     pool->prewarm_pending);
        pool->prewarm_pending = 0;
        announced.push_back(key);
      }
    }
    for (const std::shared_ptr<Slot>& s : retire) RemoveSlot(s);
    for (const std::string& key : announced) DropIfUnused(key);
    // Capacity may have been given back outside the invoker too (an instance ended).
    PlanAllStarts(starts);
  }
  RunStarts(std::move(starts));
  for (std::shared_ptr<Call>& call : expired) {
    InvokeResponse response;
    response.request_id = call->request_id;
    response.status = ResourceExhaustedError(
        fmt::format("no function slot became free within the function's timeout ({} s): this "
                    "host's slots and capacity are in use",
                    call->fn->timeout_seconds),
        kTooManyRequests);
    response.throttle_reason = kHostCapacityExceeded;
    InvocationRecord record;
    record.state = "throttled";
    record.error_type = kHostCapacityExceeded;
    if (!call->done) {
      // An event waits on: Lambda keeps it until it runs.
      call->lease.Release();
      SubmitAsync(std::move(call), options_.async_throttle_delay);
      continue;
    }
    Finish(std::move(call), std::move(response), std::move(record), "");
  }
}

void Invoker::Forget(std::string_view tenant, std::string_view function) {
  std::string prefix = FunctionPrefix(tenant, function);
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<Slot>> retire;
  std::vector<std::string> keys;
  for (auto& [key, pool] : pools_) {
    if (!key.starts_with(prefix)) continue;
    retire.insert(retire.end(), pool->idle.begin(), pool->idle.end());
    pool->prewarm_pending = 0;
    keys.push_back(key);
  }
  for (const std::shared_ptr<Slot>& s : retire) RemoveSlot(s);
  for (const std::string& key : keys) DropIfUnused(key);
}

Json Invoker::SlotsView(std::string_view tenant) const {
  MutexLock lock(mu_);
  Json out = Json::array();
  for (const auto& [key, pool] : pools_) {
    for (const std::shared_ptr<Slot>& s : pool->slots) {
      if (!tenant.empty() && s->fn->tenant != tenant) continue;
      // A started slot whose runtime is still initialising takes calls (they wait for the
      // initialisation, which is sooner than a new slot), but is not warm yet.
      std::string state = "starting";
      if (s->slot) state = s->busy ? "busy" : s->ready ? "idle" : "initialising";
      Json j = {{"name", s->name},
                {"kind", "function"},
                {"tenant", s->fn->tenant},
                {"function", s->fn->name},
                {"version", s->fn->code_sha256_base64},
                {"state", state},
                {"memory_mib", s->memory_mib},
                {"invocations", s->served},
                {"prewarmed", s->prewarmed}};
      if (s->card) {
        j["fpga"] = {{"card", s->card->card_id},           {"device", s->card->user_bdf},
                     {"image_id", s->card->image_id},      {"xclbin_uuid", s->card->xclbin_uuid},
                     {"loaded_for_slot", s->card->loaded}, {"load_ms", s->card->load_time.count()}};
      }
      if (s->slot) {
        j["isolation"] = s->slot->isolation().ToJson();
        j["init_ms"] = Ms(s->slot->init_duration());
      }
      out.push_back(std::move(j));
    }
  }
  for (const auto& [key, sidecar] : sidecars_) {
    if (!tenant.empty() && sidecar->tenant != tenant) continue;
    std::string state = sidecar->slot ? (sidecar->busy ? "busy" : "idle") : "starting";
    Json extensions = Json::array();
    if (sidecar->slot) {
      if (sidecar->slot->state() == FunctionSlot::State::kRetired) state = "retired";
      for (const ExtensionStatus& e : sidecar->slot->extensions()) {
        extensions.push_back({{"name", e.name}, {"state", e.state}});
      }
    }
    out.push_back({{"name", sidecar->name},
                   {"kind", "tenant-sidecar"},
                   {"tenant", sidecar->tenant},
                   {"state", state},
                   {"extensions", std::move(extensions)},
                   {"slots_using", sidecar->users},
                   {"events", sidecar->events},
                   {"events_waiting", sidecar->backlog.size()},
                   {"events_dropped", sidecar->dropped},
                   {"log_tail", sidecar->log}});
  }
  return out;
}

void Invoker::Stop() {
  std::vector<std::shared_ptr<Call>> queued;
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    timers_->tick.cancel();
    for (const auto& t : timers_->pending) t->cancel();
    timers_->pending.clear();
    std::vector<std::shared_ptr<Slot>> all;
    for (auto& [key, pool] : pools_) {
      all.insert(all.end(), pool->slots.begin(), pool->slots.end());
    }
    // Calls waiting by affinity join their pools' queues as their slots go.
    for (const std::shared_ptr<Slot>& s : all) RemoveSlot(s);
    // Slots in their shutdown grace are killed now: their kills need reaper_.
    for (const std::weak_ptr<FunctionSlot>& s : shutting_down_) {
      if (std::shared_ptr<FunctionSlot> live = s.lock()) live->Kill();
    }
    shutting_down_.clear();
    for (auto& [key, pool] : pools_) {
      for (auto& c : pool->queue) queued.push_back(c);
      pool->queue.clear();
    }
  }
  for (std::shared_ptr<Call>& call : queued) {
    InvokeResponse response;
    response.request_id = call->request_id;
    response.status = UnavailableError("fpgahostd is shutting down", kServiceException);
    InvocationRecord record;
    record.state = "error";
    record.error_type = kServiceException;
    Finish(std::move(call), std::move(response), std::move(record), "");
  }
}

}  // namespace fpgahost::functions
