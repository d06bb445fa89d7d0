#include "host/functions/concurrency_limiter.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "host/functions/function_registry.h"

namespace fpgahost::functions {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

ConcurrencyLimits Normalized(ConcurrencyLimits l) {
  l.max_concurrency = std::max(0, l.max_concurrency);
  l.initial_limit = std::clamp(l.initial_limit, 0, l.max_concurrency);
  l.step = std::max(1, l.step);
  // Intervals divide time below; a zero one would divide by zero.
  l.step_interval = std::max(l.step_interval, Duration(1));
  l.decay_interval = std::max(l.decay_interval, Duration(1));
  return l;
}

Status Throttled(std::string_view reason, ConcurrencyLimiter::Throttle* throttle) {
  if (throttle != nullptr) *throttle = {reason, kThrottleMessage};
  return ResourceExhaustedError(kThrottleMessage, kTooManyRequests);
}

}  // namespace

ConcurrencyLimiter::ConcurrencyLimiter(const Clock& clock, ConcurrencyLimits limits)
    : clock_(clock), limits_(Normalized(limits)) {}

StatusOr<ConcurrencyLimiter::Lease> ConcurrencyLimiter::Acquire(std::string_view tenant,
                                                                std::string_view function,
                                                                std::optional<int> reserved,
                                                                Throttle* throttle) {
  MutexLock lock(mu_);
  const TimePoint now = clock_.SteadyNow();
  Tenant& t = TenantFor(tenant, now);
  // Adapt before counting this request: the windows that ended before now saw the count
  // as it was.
  Adapt(t.adaptive, t.unreserved_in_flight, now);

  Function* f = nullptr;
  if (auto it = t.functions.find(function); it != t.functions.end()) {
    f = &it->second;
  } else if (reserved) {
    it = t.functions.emplace(std::string(function), Function{}).first;
    it->second.name = it->first;
    f = &it->second;
  }
  // The caller's view of the reservation is the registry's current one.
  if (f != nullptr && f->reserved != reserved) Reserve(t, *f, reserved);

  if (reserved) {
    if (f->in_flight >= *reserved) {
      ++t.throttled_total;
      return Throttled(kReservedFunctionConcurrentInvocationLimitExceeded, throttle);
    }
    ++f->in_flight;
    ++t.in_flight;
    return Lease(this, &t, f);
  }
  // Without a reservation, a function state left over from one only counts the executions
  // started under it; this one counts in the pool.
  if (f != nullptr) Collect(t, *f);

  const int unreserved_max = UnreservedMax(t);
  if (t.unreserved_in_flight >= std::min(t.adaptive.limit, unreserved_max)) {
    ++t.throttled_total;
    // Demand the temporary limit refused (not the reservations): it may rise.
    if (t.adaptive.limit < unreserved_max) t.adaptive.limit_throttled_at = now;
    return Throttled(kConcurrentInvocationLimitExceeded, throttle);
  }
  ++t.unreserved_in_flight;
  ++t.in_flight;
  t.adaptive.window_peak = std::max(t.adaptive.window_peak, t.unreserved_in_flight);
  return Lease(this, &t, nullptr);
}

Status ConcurrencyLimiter::CheckReservation(
    std::string_view /*tenant*/, std::string_view function, std::optional<int> new_value,
    const std::map<std::string, int, std::less<>>& current) const {
  if (!new_value) return Status::Ok();
  if (*new_value < 0) {
    return InvalidArgumentError("ReservedConcurrentExecutions must be 0 or more",
                                kInvalidParameterValue);
  }
  int64_t total = *new_value;
  int old_value = 0;
  for (const auto& [name, r] : current) {
    if (name == function) {
      old_value = r;
    } else {
      total += r;
    }
  }
  // Lambda refuses only what decreases the unreserved concurrency: lowering a reservation is
  // always allowed, even when the tenant is below the minimum already (its limit was lowered).
  if (*new_value > old_value && limits_.max_concurrency - total < limits_.min_unreserved) {
    return InvalidArgumentError(
        fmt::format("Specified ReservedConcurrentExecutions for function decreases account's "
                    "UnreservedConcurrentExecution below its minimum value of [{}].",
                    limits_.min_unreserved),
        kInvalidParameterValue);
  }
  return Status::Ok();
}

void ConcurrencyLimiter::SetReservation(std::string_view tenant, std::string_view function,
                                        std::optional<int> value) {
  MutexLock lock(mu_);
  Tenant& t = TenantFor(tenant, clock_.SteadyNow());
  auto it = t.functions.find(function);
  if (it == t.functions.end()) {
    if (!value) return;
    it = t.functions.emplace(std::string(function), Function{}).first;
    it->second.name = it->first;
  }
  Reserve(t, it->second, value);
  Collect(t, it->second);
}

Json ConcurrencyLimiter::View(std::string_view tenant) const {
  MutexLock lock(mu_);
  const TimePoint now = clock_.SteadyNow();
  auto it = tenants_.find(tenant);
  if (it != tenants_.end()) return TenantView(it->second, now);
  Tenant fresh;
  fresh.adaptive = {limits_.initial_limit, now, std::nullopt, now, 0};
  return TenantView(fresh, now);
}

ConcurrencyLimiter::Tenant& ConcurrencyLimiter::TenantFor(std::string_view tenant, TimePoint now) {
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) {
    it = tenants_.emplace(std::string(tenant), Tenant{}).first;
    it->second.adaptive = {limits_.initial_limit, now, std::nullopt, now, 0};
  }
  return it->second;
}

void ConcurrencyLimiter::Reserve(Tenant& t, Function& f, std::optional<int> value) {
  t.reserved_total += value.value_or(0) - f.reserved.value_or(0);
  f.reserved = value;
}

void ConcurrencyLimiter::Collect(Tenant& t, Function& f) {
  if (f.in_flight == 0 && !f.reserved) t.functions.erase(t.functions.find(f.name));
}

int ConcurrencyLimiter::UnreservedMax(const Tenant& t) const {
  return static_cast<int>(
      std::max<int64_t>(0, int64_t{limits_.max_concurrency} - t.reserved_total));
}

void ConcurrencyLimiter::Adapt(Adaptive& a, int unreserved_in_flight, TimePoint now) const {
  const ConcurrencyLimits& l = limits_;
  if (a.limit < l.max_concurrency && a.limit_throttled_at &&
      now - *a.limit_throttled_at <= l.step_interval && now - a.raised_at >= l.step_interval) {
    a.limit = static_cast<int>(std::min<int64_t>(l.max_concurrency, int64_t{a.limit} + l.step));
    a.raised_at = now;
    a.window_start = now;
    a.window_peak = unreserved_in_flight;
    return;
  }
  if (now - a.window_start < l.decay_interval) return;
  const int64_t windows = (now - a.window_start) / l.decay_interval;
  // Only the first window saw calls; the later ones saw today's count throughout, which is
  // no more than the first's peak, so once one of them keeps the limit, all the rest do.
  for (int64_t i = 0; i < windows && a.limit > l.initial_limit; ++i) {
    const int lower = std::max(l.initial_limit, a.limit - l.step);
    const int peak = i == 0 ? a.window_peak : unreserved_in_flight;
    if (peak < lower) {
      a.limit = lower;
    } else if (i > 0) {
      break;
    }
  }
  a.window_start += windows * l.decay_interval;
  a.window_peak = unreserved_in_flight;
}

Json ConcurrencyLimiter::TenantView(const Tenant& t, TimePoint now) const {
  Adaptive a = t.adaptive;
  Adapt(a, t.unreserved_in_flight, now);
  Json reserved = Json::object();
  for (const auto& [name, f] : t.functions) {
    if (f.reserved) reserved[name] = {{"reserved", *f.reserved}, {"in_flight", f.in_flight}};
  }
  return Json{{"limit", a.limit},
              {"max", limits_.max_concurrency},
              {"unreserved_max", UnreservedMax(t)},
              {"in_flight", t.in_flight},
              {"unreserved_in_flight", t.unreserved_in_flight},
              {"reserved", std::move(reserved)},
              {"throttled_total", t.throttled_total}};
}

void ConcurrencyLimiter::Release(Tenant& t, Function* f) {
  MutexLock lock(mu_);
  Adapt(t.adaptive, t.unreserved_in_flight, clock_.SteadyNow());
  --t.in_flight;
  if (f != nullptr) {
    --f->in_flight;
    Collect(t, *f);
  } else {
    --t.unreserved_in_flight;
  }
}

ConcurrencyLimiter::Lease::Lease(Lease&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)),
      tenant_(std::exchange(other.tenant_, nullptr)),
      function_(std::exchange(other.function_, nullptr)) {}

ConcurrencyLimiter::Lease& ConcurrencyLimiter::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = std::exchange(other.limiter_, nullptr);
    tenant_ = std::exchange(other.tenant_, nullptr);
    function_ = std::exchange(other.function_, nullptr);
  }
  return *this;
}

void ConcurrencyLimiter::Lease::Release() {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->Release(*tenant_, function_);
  tenant_ = nullptr;
  function_ = nullptr;
}

}  // namespace fpgahost::functions
