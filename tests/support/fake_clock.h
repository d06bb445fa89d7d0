// A Clock that moves only when a test says so. Thread-safe.
#pragma once

#include <atomic>

#include "common/clock.h"

namespace fpgahost::testing {

class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()) +
                                                 std::chrono::seconds(1767225600));
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()) +
                                                 std::chrono::seconds(1000));
  }
  void Advance(std::chrono::nanoseconds d) { offset_ns_ += d.count(); }

 private:
  // Wall time starts at 2026-01-01T00:00:00Z, so formatted times are stable.
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace fpgahost::testing
