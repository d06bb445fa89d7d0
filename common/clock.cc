#include "common/clock.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace fpgahost {

Clock& RealClock() {
  static SystemClock clock;
  return clock;
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = std::chrono::system_clock::time_point(std::chrono::seconds(ms / 1000));
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", secs, static_cast<int>(ms % 1000));
}

}  // namespace fpgahost
