#include "common/clock.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"

namespace fpgahost {
namespace {

TEST(ClockTest, FormatsUtcWithMilliseconds) {
  testing::FakeClock clock;
  EXPECT_EQ(FormatRfc3339(clock.Now()), "2026-01-01T00:00:00.000Z");
  clock.Advance(std::chrono::milliseconds(90061001));  // 1 day, 1 h, 1 min, 1.001 s
  EXPECT_EQ(FormatRfc3339(clock.Now()), "2026-01-02T01:01:01.001Z");
}

TEST(ClockTest, FakeClockMovesBothClocks) {
  testing::FakeClock clock;
  auto s0 = clock.SteadyNow();
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(clock.SteadyNow() - s0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace fpgahost
