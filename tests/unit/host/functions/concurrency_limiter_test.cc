#include "host/functions/concurrency_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <thread>
#include <vector>

#include "host/functions/function_registry.h"
#include "tests/support/fake_clock.h"

namespace fpgahost::functions {
namespace {

using namespace std::chrono_literals;
using Lease = ConcurrencyLimiter::Lease;
using Throttle = ConcurrencyLimiter::Throttle;

// A small tenant: 10 at most, starting at 4, +2 per 10 s, -2 per quiet minute.
ConcurrencyLimits SmallLimits() {
  ConcurrencyLimits l;
  l.max_concurrency = 10;
  l.min_unreserved = 2;
  l.initial_limit = 4;
  l.step = 2;
  l.step_interval = 10s;
  l.decay_interval = 60s;
  return l;
}

class ConcurrencyLimiterTest : public ::testing::Test {
 protected:
  // Acquires until refused; returns the leases granted and keeps the refusal's Throttle.
  std::vector<Lease> Fill(std::string_view tenant, std::string_view function,
                          std::optional<int> reserved = std::nullopt) {
    std::vector<Lease> leases;
    for (int i = 0; i < 1000; ++i) {
      StatusOr<Lease> lease = limiter_.Acquire(tenant, function, reserved, &last_throttle_);
      if (!lease.ok()) {
        last_refusal_ = lease.status();
        break;
      }
      leases.push_back(*std::move(lease));
    }
    return leases;
  }

  int Limit(std::string_view tenant = "t") { return limiter_.View(tenant)["limit"].get<int>(); }

  // Moves the clock to `t` after the test's start.
  void At(std::chrono::seconds t) {
    ASSERT_GE(t, now_);
    clock_.Advance(t - now_);
    now_ = t;
  }

  // Raises tenant "t"'s limit to 10 by being refused at t = 0, 10, 20 and 30 s; returns the
  // 10 leases.
  std::vector<Lease> RaiseToMax() {
    std::vector<Lease> held;
    for (int i = 0; i < 4; ++i) {
      At(i * 10s);
      std::vector<Lease> got = Fill("t", "f");
      std::move(got.begin(), got.end(), std::back_inserter(held));
    }
    return held;
  }

  testing::FakeClock clock_;
  std::chrono::seconds now_{0};
  ConcurrencyLimiter limiter_{clock_, SmallLimits()};
  Throttle last_throttle_;
  Status last_refusal_;
};

TEST_F(ConcurrencyLimiterTest, UnreservedPoolThrottlesAtTheTemporaryLimit) {
  std::vector<Lease> held = Fill("t", "f");
  EXPECT_EQ(held.size(), 4u);
  EXPECT_EQ(last_refusal_.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(last_refusal_.reason(), "TooManyRequestsException");
  EXPECT_EQ(last_refusal_.message(), "Rate Exceeded.");
  EXPECT_EQ(last_throttle_.reason, "ConcurrentInvocationLimitExceeded");
  EXPECT_EQ(last_throttle_.message, "Rate Exceeded.");
  // Another function of the same tenant shares the pool.
  StatusOr<Lease> other = limiter_.Acquire("t", "g", std::nullopt);
  ASSERT_FALSE(other.ok());
  Json view = limiter_.View("t");
  EXPECT_EQ(view["limit"], 4);
  EXPECT_EQ(view["max"], 10);
  EXPECT_EQ(view["in_flight"], 4);
  EXPECT_EQ(view["unreserved_in_flight"], 4);
  EXPECT_EQ(view["throttled_total"], 2);
}

TEST_F(ConcurrencyLimiterTest, LeasesGiveTheirPlaceBack) {
  std::vector<Lease> held = Fill("t", "f");
  ASSERT_EQ(held.size(), 4u);
  held.pop_back();  // destroyed
  StatusOr<Lease> again = limiter_.Acquire("t", "f", std::nullopt);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(limiter_.Acquire("t", "f", std::nullopt).ok());

  // Explicit release, twice, and a moved-from lease: each execution is given back once.
  Lease moved = std::move(*again);
  EXPECT_FALSE(again->held());
  EXPECT_TRUE(moved.held());
  moved.Release();
  moved.Release();
  EXPECT_FALSE(moved.held());
  EXPECT_EQ(limiter_.View("t")["in_flight"], 3);
  Lease assigned;
  assigned = std::move(held[0]);
  assigned = std::move(held[1]);  // gives back what it held
  EXPECT_EQ(limiter_.View("t")["in_flight"], 2);
  held.clear();
  assigned.Release();
  EXPECT_EQ(limiter_.View("t")["in_flight"], 0);
  EXPECT_EQ(limiter_.View("t")["unreserved_in_flight"], 0);
  EXPECT_EQ(Fill("t", "f").size(), 4u);
}

TEST_F(ConcurrencyLimiterTest, LimitRisesOneStepPerIntervalWhileThrottled) {
  std::vector<Lease> held = Fill("t", "f");
  ASSERT_EQ(held.size(), 4u);
  clock_.Advance(5s);
  // Half an interval: still 4, and the refusal counts as demand again.
  EXPECT_TRUE(Fill("t", "f").empty());
  EXPECT_EQ(Limit(), 4);

  clock_.Advance(5s);
  std::vector<Lease> more = Fill("t", "f");
  EXPECT_EQ(more.size(), 2u);
  EXPECT_EQ(Limit(), 6);
  // At most one step per interval, however hard it is pushed.
  clock_.Advance(9s);
  EXPECT_TRUE(Fill("t", "f").empty());
  EXPECT_EQ(Limit(), 6);

  clock_.Advance(1s);
  std::vector<Lease> third = Fill("t", "f");
  EXPECT_EQ(third.size(), 2u);
  clock_.Advance(10s);
  std::vector<Lease> fourth = Fill("t", "f");
  EXPECT_EQ(fourth.size(), 2u);
  EXPECT_EQ(Limit(), 10);
  EXPECT_EQ(last_throttle_.reason, kConcurrentInvocationLimitExceeded);
  // Never above the tenant's maximum.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(10s);
    EXPECT_TRUE(Fill("t", "f").empty());
  }
  EXPECT_EQ(Limit(), 10);
  EXPECT_EQ(limiter_.View("t")["in_flight"], 10);
}

TEST_F(ConcurrencyLimiterTest, LimitDoesNotRiseWithoutDemand) {
  // Busy but never refused: no reason to rise.
  std::vector<Lease> held;
  for (int i = 0; i < 3; ++i) held.push_back(*limiter_.Acquire("t", "f", std::nullopt));
  clock_.Advance(30s);
  EXPECT_EQ(Limit(), 4);
  std::vector<Lease> fourth = Fill("t", "f");
  EXPECT_EQ(fourth.size(), 1u);

  // One refusal long ago is not demand now.
  clock_.Advance(25s);
  EXPECT_EQ(Limit(), 4);
  EXPECT_FALSE(limiter_.Acquire("t", "f", std::nullopt).ok());
}

TEST_F(ConcurrencyLimiterTest, StaleRefusalDoesNotRaiseTheLimit) {
  std::vector<Lease> held = Fill("t", "f");
  ASSERT_EQ(held.size(), 4u);
  // The refusal at t = 0 is older than an interval when the next request comes.
  clock_.Advance(11s);
  EXPECT_EQ(Limit(), 4);
  EXPECT_TRUE(Fill("t", "f").empty());
  // That refusal is fresh, and the last rise (none: the tenant's start) an interval old: the
  // next request finds the limit raised.
  EXPECT_EQ(Limit(), 6);
  EXPECT_EQ(Fill("t", "f").size(), 2u);
}

TEST_F(ConcurrencyLimiterTest, LimitFallsBackAfterQuietPeriodsNeverBelowInitial) {
  std::vector<Lease> held = RaiseToMax();
  ASSERT_EQ(Limit(), 10);
  ASSERT_EQ(held.size(), 10u);
  // Decay windows start at the last rise: [30, 90), [90, 150), ...
  At(100s);
  EXPECT_EQ(Limit(), 10);  // [30, 90) peaked at 10
  held.resize(7);
  At(209s);
  EXPECT_EQ(Limit(), 10);  // [90, 150) peaked at 10 (until t = 100), not below 8
  At(210s);
  EXPECT_EQ(Limit(), 8);  // [150, 210) peaked at 7, below 8
  At(1000s);
  EXPECT_EQ(Limit(), 8);  // 7 is not below 6

  // All given back at t = 1000, in [990, 1050): one step per quiet window, down to the
  // initial limit and no further.
  held.clear();
  At(1050s);
  EXPECT_EQ(Limit(), 8);
  At(1110s);
  EXPECT_EQ(Limit(), 6);
  At(1170s);
  EXPECT_EQ(Limit(), 4);
  At(5000s);
  EXPECT_EQ(Limit(), 4);
  EXPECT_EQ(Fill("t", "f").size(), 4u);
}

TEST_F(ConcurrencyLimiterTest, IdleTenantFallsBackWhenNextSeen) {
  std::vector<Lease> held = RaiseToMax();
  ASSERT_EQ(Limit(), 10);
  held.clear();
  // No calls from t = 30 s until an hour later, which finds the limit back at 4.
  At(3600s);
  EXPECT_EQ(Fill("t", "f").size(), 4u);
  EXPECT_EQ(last_throttle_.reason, kConcurrentInvocationLimitExceeded);
}

TEST_F(ConcurrencyLimiterTest, ReservedFunctionGetsItsReservationWhenThePoolIsFull) {
  limiter_.SetReservation("t", "db", 3);
  std::vector<Lease> pool = Fill("t", "f");
  ASSERT_EQ(pool.size(), 4u);
  std::vector<Lease> mine = Fill("t", "db", 3);
  EXPECT_EQ(mine.size(), 3u);
  EXPECT_EQ(last_refusal_.reason(), kTooManyRequests);
  EXPECT_EQ(last_throttle_.reason, "ReservedFunctionConcurrentInvocationLimitExceeded");
  // The reserved executions take nothing from the pool.
  EXPECT_FALSE(limiter_.Acquire("t", "f", std::nullopt, &last_throttle_).ok());
  EXPECT_EQ(last_throttle_.reason, kConcurrentInvocationLimitExceeded);
  Json view = limiter_.View("t");
  EXPECT_EQ(view["in_flight"], 7);
  EXPECT_EQ(view["unreserved_in_flight"], 4);
  EXPECT_EQ(view["unreserved_max"], 7);
  EXPECT_EQ(view["reserved"]["db"]["reserved"], 3);
  EXPECT_EQ(view["reserved"]["db"]["in_flight"], 3);
  mine.pop_back();
  EXPECT_TRUE(limiter_.Acquire("t", "db", 3).ok());
}

TEST_F(ConcurrencyLimiterTest, ReservationIsNotSubjectToTheTemporaryLimit) {
  // 6 reserved, above the temporary limit of 4.
  std::vector<Lease> mine = Fill("t", "big", 6);
  EXPECT_EQ(mine.size(), 6u);
}

TEST_F(ConcurrencyLimiterTest, ZeroReservationAlwaysThrottles) {
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(100s);
    StatusOr<Lease> lease = limiter_.Acquire("t", "stopped", 0, &last_throttle_);
    ASSERT_FALSE(lease.ok());
    EXPECT_EQ(lease.status().code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(last_throttle_.reason, kReservedFunctionConcurrentInvocationLimitExceeded);
  }
  // With the pool idle. And a stopped function's refusals are no demand on the pool.
  EXPECT_EQ(limiter_.View("t")["in_flight"], 0);
  clock_.Advance(10s);
  EXPECT_EQ(Limit(), 4);
  EXPECT_EQ(limiter_.View("t")["throttled_total"], 3);
}

TEST_F(ConcurrencyLimiterTest, ReservationsShrinkTheUnreservedPool) {
  ConcurrencyLimits l = SmallLimits();
  l.initial_limit = 10;  // the temporary limit out of the way
  ConcurrencyLimiter limiter(clock_, l);
  limiter.SetReservation("t", "a", 4);
  limiter.SetReservation("t", "b", 2);
  EXPECT_EQ(limiter.View("t")["unreserved_max"], 4);
  std::vector<Lease> pool;
  for (int i = 0; i < 4; ++i) pool.push_back(*limiter.Acquire("t", "f", std::nullopt));
  Throttle throttle;
  EXPECT_FALSE(limiter.Acquire("t", "f", std::nullopt, &throttle).ok());
  EXPECT_EQ(throttle.reason, kConcurrentInvocationLimitExceeded);
  // The registry's current reservation, passed with each invocation, is adopted: b's
  // reservation gone, its 2 return to the pool and b draws from it.
  ASSERT_TRUE(limiter.Acquire("t", "b", std::nullopt).ok());
  Json view = limiter.View("t");
  EXPECT_EQ(view["unreserved_max"], 6);
  EXPECT_FALSE(view["reserved"].contains("b"));
  EXPECT_EQ(view["unreserved_in_flight"], 4);  // the lease above was destroyed
  pool.push_back(*limiter.Acquire("t", "b", std::nullopt));
  pool.push_back(*limiter.Acquire("t", "f", std::nullopt));
  EXPECT_FALSE(limiter.Acquire("t", "f", std::nullopt).ok());
  // Removing a's reservation frees the rest.
  limiter.SetReservation("t", "a", std::nullopt);
  EXPECT_EQ(limiter.View("t")["unreserved_max"], 10);
  EXPECT_TRUE(limiter.Acquire("t", "f", std::nullopt).ok());
}

TEST_F(ConcurrencyLimiterTest, ReservationRemovedWhileRunning) {
  std::vector<Lease> mine = Fill("t", "r", 2);
  ASSERT_EQ(mine.size(), 2u);
  limiter_.SetReservation("t", "r", std::nullopt);
  // Now r is an ordinary function: it draws from the pool, up to the temporary limit.
  std::vector<Lease> pool = Fill("t", "r");
  EXPECT_EQ(pool.size(), 4u);
  Json view = limiter_.View("t");
  EXPECT_EQ(view["in_flight"], 6);
  EXPECT_EQ(view["unreserved_in_flight"], 4);
  EXPECT_TRUE(view["reserved"].empty());
  mine.clear();
  pool.clear();
  view = limiter_.View("t");
  EXPECT_EQ(view["in_flight"], 0);
  EXPECT_EQ(view["unreserved_in_flight"], 0);
}

TEST_F(ConcurrencyLimiterTest, CheckReservationKeepsLambdasMinimumUnreserved) {
  ConcurrencyLimiter lambda(clock_);  // 1000, minimum 100 unreserved
  std::map<std::string, int, std::less<>> current = {{"a", 500}};
  EXPECT_TRUE(lambda.CheckReservation("t", "b", 400, current).ok());
  Status refused = lambda.CheckReservation("t", "b", 401, current);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.reason(), "InvalidParameterValueException");
  EXPECT_EQ(refused.message(),
            "Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of [100].");
  // The function's own current value is replaced, not added to.
  current["b"] = 400;
  EXPECT_TRUE(lambda.CheckReservation("t", "b", 400, current).ok());
  EXPECT_FALSE(lambda.CheckReservation("t", "a", 501, current).ok());
  EXPECT_TRUE(lambda.CheckReservation("t", "a", 0, current).ok());
  EXPECT_TRUE(lambda.CheckReservation("t", "a", std::nullopt, current).ok());
  EXPECT_EQ(lambda.CheckReservation("t", "c", -1, {}).code(), StatusCode::kInvalidArgument);

  // Against the configured maximum, not the temporary limit (4 here); and the minimum is
  // configurable.
  Status small = limiter_.CheckReservation("t", "a", 9, {});
  EXPECT_EQ(small.message(),
            "Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of [2].");
  EXPECT_TRUE(limiter_.CheckReservation("t", "a", 8, {}).ok());
  // Lowering a reservation is allowed even when the minimum is not met (limits changed).
  EXPECT_TRUE(limiter_.CheckReservation("t", "a", 9, {{"a", 10}}).ok());
}

TEST_F(ConcurrencyLimiterTest, TenantsAreIndependent) {
  limiter_.SetReservation("a", "r", 6);
  std::vector<Lease> a = Fill("a", "f");
  ASSERT_EQ(a.size(), 4u);
  std::vector<Lease> b = Fill("b", "f");
  EXPECT_EQ(b.size(), 4u);
  clock_.Advance(10s);
  // a's pool is 10 - 6 = 4, all in use: refused by its reservations, not by the temporary
  // limit, so no rise. b was refused by the temporary limit at t = 0: it rises.
  EXPECT_EQ(Fill("a", "f").size(), 0u);
  EXPECT_EQ(Fill("b", "f").size(), 2u);
  EXPECT_EQ(Limit("a"), 4);
  EXPECT_EQ(Limit("b"), 6);
  Json view = limiter_.View("b");
  EXPECT_EQ(view["unreserved_max"], 10);
  EXPECT_TRUE(view["reserved"].empty());
  Json unseen = limiter_.View("c");
  EXPECT_EQ(unseen["limit"], 4);
  EXPECT_EQ(unseen["in_flight"], 0);
}

TEST_F(ConcurrencyLimiterTest, ConcurrentAcquireAndReleaseKeepCountsExact) {
  limiter_.SetReservation("t", "db", 3);
  constexpr int kThreads = 8;
  constexpr int kRounds = 5000;
  std::atomic<int> pool_held{0}, pool_peak{0}, reserved_held{0}, reserved_peak{0};
  std::atomic<int> throttled{0};
  auto note_peak = [](std::atomic<int>& peak, int v) {
    int seen = peak.load();
    while (v > seen && !peak.compare_exchange_weak(seen, v)) {
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < kRounds; ++n) {
        bool reserved = (n + i) % 3 == 0;
        std::atomic<int>& held = reserved ? reserved_held : pool_held;
        StatusOr<Lease> lease = limiter_.Acquire("t", reserved ? "db" : "f",
                                                 reserved ? std::optional<int>(3) : std::nullopt);
        if (!lease.ok()) {
          throttled.fetch_add(1);
          continue;
        }
        note_peak(reserved ? reserved_peak : pool_peak, held.fetch_add(1) + 1);
        held.fetch_sub(1);
        lease->Release();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Json view = limiter_.View("t");
  EXPECT_EQ(view["in_flight"], 0);
  EXPECT_EQ(view["unreserved_in_flight"], 0);
  EXPECT_EQ(view["reserved"]["db"]["in_flight"], 0);
  EXPECT_EQ(view["throttled_total"], throttled.load());
  // The clock did not move, so the limit stayed 4: never more than 4 + 3 at once.
  EXPECT_LE(pool_peak.load(), 4);
  EXPECT_LE(reserved_peak.load(), 3);
  EXPECT_GE(pool_peak.load(), 1);
}

}  // namespace
}  // namespace fpgahost::functions
