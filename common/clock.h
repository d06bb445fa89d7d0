// Time, injected. Code that reads the time takes a Clock& so tests can drive it
// (tests/support/fake_clock.h). Implementations are thread-safe.
#pragma once

#include <chrono>
#include <string>

namespace fpgahost {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for records shown to people.
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, for durations and deadlines.
  virtual std::chrono::steady_clock::time_point SteadyNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::now();
  }
};

// A process-wide SystemClock, for the daemon's wiring.
Clock& RealClock();

// "2026-11-28T05:22:29.123Z" (UTC, millisecond precision), as the API writes times.
std::string FormatRfc3339(std::chrono::system_clock::time_point t);

}  // namespace fpgahost
