#include "common/base64.h"

#include <gtest/gtest.h>

namespace fpgahost {
namespace {

TEST(Base64Test, RoundTripsRfc4648Vectors) {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded), std::optional<std::string>(plain));
  }
  std::string binary("\x00\xff\x10\x80", 4);
  EXPECT_EQ(Base64Decode(Base64Encode(binary)), binary);
}

TEST(Base64Test, RefusesWhatIsNotBase64) {
  EXPECT_FALSE(Base64Decode("Zm9").has_value());   // not a multiple of 4
  EXPECT_FALSE(Base64Decode("Zm9$").has_value());  // not in the alphabet
  EXPECT_FALSE(Base64Decode("PK\x03\x04").has_value());
}

}  // namespace
}  // namespace fpgahost
