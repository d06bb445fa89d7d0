#include "common/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace fpgahost {
namespace {

TEST(IdsTest, ShapeIsPrefixDashSeventeenHex) {
  std::string id = NewId("img");
  EXPECT_EQ(id.size(), 4u + 17u);
  EXPECT_EQ(id.substr(0, 4), "img-");
  EXPECT_TRUE(IsValidId(id, "img"));
  EXPECT_FALSE(IsValidId(id, "i"));
}

TEST(IdsTest, IdsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(NewId("i")).second);
}

TEST(IdsTest, RejectsMalformed) {
  EXPECT_FALSE(IsValidId("img-0123456789abcdef", "img"));    // 16 digits
  EXPECT_FALSE(IsValidId("img-0123456789abcdef01", "img"));  // 18 digits
  EXPECT_FALSE(IsValidId("img-0123456789ABCDEF0", "img"));   // upper case
  EXPECT_FALSE(IsValidId("img_0123456789abcdef0", "img"));   // separator
  EXPECT_FALSE(IsValidId("img-0123456789abcdeg0", "img"));   // not hex
  EXPECT_TRUE(IsValidId("img-0123456789abcdef0", "img"));
}

TEST(IdsTest, RandomHexLength) {
  EXPECT_EQ(RandomHex(32).size(), 64u);
  EXPECT_NE(RandomHex(16), RandomHex(16));
}

}  // namespace
}  // namespace fpgahost
