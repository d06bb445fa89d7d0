// The concurrency limiter for invocations of Lambda-compatible functions: who may start one
// more execution now, as AWS Lambda decides it ("Lambda function scaling").
//
// Each tenant (Lambda's "account") may run at most `max_concurrency` executions at once.
// A function may have reserved concurrency r: it gets at most r concurrent executions, and
// those r are always available to it, set aside from the tenant's pool; r = 0 stops the
// function. Functions without a reservation share the tenant's unreserved pool,
// max_concurrency - (sum of reservations). PutFunctionConcurrency must leave at least
// `min_unreserved` of the pool (CheckReservation).
//
// The unreserved pool is further capped by an adaptive temporary limit, Lambda's scaling rate
// scaled down: a tenant starts at `initial_limit`; the limit rises by `step`, at most once per
// `step_interval`, while requests keep hitting it, up to max_concurrency; it falls back by
// `step` per quiet `decay_interval`, never below initial_limit. Precisely, evaluated on every
// Acquire and Release (there are no timers):
//   - rise: when at least step_interval has passed since the last rise (or since the tenant's
//     first request), and within the last step_interval an invocation was refused because
//     the unreserved pool's in-flight count reached the temporary limit while the pool itself
//     had room (the temporary limit, not the reservations, was what refused it). So after a
//     quiet spell the first refused request raises the limit for the next one;
//   - fall: time is cut into decay_interval windows (restarted by each rise); at the end of a
//     window whose peak unreserved in-flight count stayed below the next lower limit,
//     max(initial_limit, limit - step), the limit drops to it. Windows that passed with no
//     calls at all count with the in-flight count of the time, so an idle tenant falls back
//     one step per window.
// Reserved concurrency is not subject to the temporary limit: it is guaranteed.
//
// Refusals, as Lambda's Invoke answers them (HTTP 429): a Status with code kResourceExhausted,
// reason "TooManyRequestsException" (kTooManyRequests) and message "Rate Exceeded.". Lambda's
// `Reason` field, which tells the two kinds apart, is given through the optional Throttle
// out-parameter of Acquire (it is not encoded in the Status, so the message stays Lambda's):
//   - "ReservedFunctionConcurrentInvocationLimitExceeded": a function with reserved
//     concurrency is at its reservation (always for r = 0);
//   - "ConcurrentInvocationLimitExceeded": the tenant's unreserved pool is at its limit
//     (temporary or not).
//
// Reservations are the function registry's: the limiter is told of them by SetReservation (at
// start-up for every function that has one, after each PutFunctionConcurrency /
// DeleteFunctionConcurrency, and with nullopt when a function is deleted), and each Acquire
// passes the function's current reservation too, which the limiter adopts. A change applies to
// invocations that start after it; running ones finish under the rule they started with.
//
// Per-tenant state is created on first use and kept; per-function state exists only while a
// function has a reservation or executions it started while it had one.
//
// Thread-safe. Acquire and Release take one mutex for a few map look-ups and allocate nothing
// once the tenant (and a reserved function) is known. A Lease must not outlive its limiter.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace fpgahost::functions {

inline constexpr char kTooManyRequests[] = "TooManyRequestsException";
inline constexpr char kThrottleMessage[] = "Rate Exceeded.";
inline constexpr char kReservedFunctionConcurrentInvocationLimitExceeded[] =
    "ReservedFunctionConcurrentInvocationLimitExceeded";
inline constexpr char kConcurrentInvocationLimitExceeded[] = "ConcurrentInvocationLimitExceeded";

struct ConcurrencyLimits {
  // A tenant's concurrency limit (Lambda's account default).
  int max_concurrency = 1000;
  // What reservations must leave to unreserved functions (Lambda's minimum).
  int min_unreserved = 100;
  // The adaptive temporary limit on the unreserved pool: start, step, and how often it may
  // rise or must fall. initial_limit is clamped to [0, max_concurrency], step to >= 1.
  int initial_limit = 100;
  int step = 100;
  std::chrono::steady_clock::duration step_interval = std::chrono::seconds(10);
  std::chrono::steady_clock::duration decay_interval = std::chrono::seconds(60);
};

class ConcurrencyLimiter {
 public:
  class Lease;

  // Why an invocation was refused, for the API's TooManyRequestsException body: Lambda's
  // `Reason` (one of the k...LimitExceeded constants) and `message`. Static strings.
  struct Throttle {
    std::string_view reason;
    std::string_view message;
  };

  explicit ConcurrencyLimiter(const Clock& clock, ConcurrencyLimits limits = {});

  // Admits one execution of `function` of `tenant`, whose current reserved concurrency is
  // `reserved` (nullopt: none). The execution counts until the Lease is released or destroyed.
  // Refused with ResourceExhausted (kTooManyRequests, "Rate Exceeded."); `throttle`, when
  // given, then receives Lambda's Reason.
  StatusOr<Lease> Acquire(std::string_view tenant, std::string_view function,
                          std::optional<int> reserved, Throttle* throttle = nullptr) EXCLUDES(mu_);

  // PutFunctionConcurrency's check: may `function` of `tenant` reserve `new_value` (nullopt:
  // remove its reservation), given the tenant's current reservations (function name -> r; the
  // entry for `function`, if any, is the value being replaced)? Refuses with InvalidArgument
  // (InvalidParameterValueException, Lambda's message) a negative value, and a value that
  // grows the function's reservation while leaving the tenant's unreserved concurrency,
  // max_concurrency - sum of reservations, below min_unreserved. Judged against
  // max_concurrency, not the temporary limit. Records nothing: see SetReservation.
  Status CheckReservation(std::string_view tenant, std::string_view function,
                          std::optional<int> new_value,
                          const std::map<std::string, int, std::less<>>& current) const;

  // Records `function`'s reserved concurrency (nullopt: none), so that the tenant's unreserved
  // pool leaves it aside. Not checked: the registry has accepted it.
  void SetReservation(std::string_view tenant, std::string_view function, std::optional<int> value)
      EXCLUDES(mu_);

  // For operators: {"limit": temporary limit, "max", "unreserved_max": max - reservations,
  // "in_flight", "unreserved_in_flight", "reserved": {function: {"reserved", "in_flight"}},
  // "throttled_total"}. A tenant never seen shows its starting state.
  Json View(std::string_view tenant) const EXCLUDES(mu_);

 private:
  // The adaptive temporary limit's state (see the header comment for the rule).
  struct Adaptive {
    int limit = 0;
    std::chrono::steady_clock::time_point raised_at;  // last rise, or the tenant's creation
    std::optional<std::chrono::steady_clock::time_point> limit_throttled_at;
    std::chrono::steady_clock::time_point window_start;  // the current decay window
    int window_peak = 0;  // peak unreserved in-flight count in the current window
  };
  struct Function {
    std::optional<int> reserved;
    int in_flight = 0;
    std::string_view name;  // the map's key
  };
  struct Tenant {
    Adaptive adaptive;
    int in_flight = 0;  // reserved and unreserved
    int unreserved_in_flight = 0;
    int64_t reserved_total = 0;  // sum of the functions' reservations
    uint64_t throttled_total = 0;
    std::map<std::string, Function, std::less<>> functions;
  };

  Tenant& TenantFor(std::string_view tenant, std::chrono::steady_clock::time_point now)
      REQUIRES(mu_);
  // Sets `f`'s reservation, keeping the tenant's sum right.
  static void Reserve(Tenant& t, Function& f, std::optional<int> value);
  // Erases `f` when nothing keeps it.
  static void Collect(Tenant& t, Function& f);
  int UnreservedMax(const Tenant& t) const;
  // Applies the rise and fall rules up to `now`.
  void Adapt(Adaptive& a, int unreserved_in_flight,
             std::chrono::steady_clock::time_point now) const;
  Json TenantView(const Tenant& t, std::chrono::steady_clock::time_point now) const REQUIRES(mu_);
  void Release(Tenant& t, Function* f) EXCLUDES(mu_);

  const Clock& clock_;
  const ConcurrencyLimits limits_;
  mutable Mutex mu_;
  std::map<std::string, Tenant, std::less<>> tenants_ GUARDED_BY(mu_);
};

// One admitted execution. Move-only; releasing twice is harmless. A default-constructed or
// moved-from Lease holds nothing.
class ConcurrencyLimiter::Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { Release(); }

  // Ends the execution's claim now.
  void Release();
  bool held() const { return limiter_ != nullptr; }

 private:
  friend class ConcurrencyLimiter;
  Lease(ConcurrencyLimiter* limiter, Tenant* tenant, Function* function)
      : limiter_(limiter), tenant_(tenant), function_(function) {}

  ConcurrencyLimiter* limiter_ = nullptr;
  Tenant* tenant_ = nullptr;
  Function* function_ = nullptr;  // set when the execution counts against a reservation
};

}  // namespace fpgahost::functions
