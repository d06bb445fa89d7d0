#include "common/json.h"

#include <gtest/gtest.h>

namespace fpgahost {
namespace {

TEST(JsonTest, MalformedBodyNamesTheOffset) {
  auto r = ParseJson(R"({"a": 1,})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "MALFORMED_JSON");
  EXPECT_NE(r.status().message().find("at byte 9"), std::string_view::npos) << r.status().message();
}

TEST(JsonTest, ObjectRequiredEmptyIsEmptyObject) {
  EXPECT_TRUE(ParseJsonObject("  ")->empty());
  EXPECT_EQ(ParseJsonObject("[1]").status().reason(), "MALFORMED_JSON");
}

TEST(JsonTest, FieldErrorsNameTheField) {
  Json j = *ParseJson(R"({"name": 5, "count": 3, "flag": true})");
  EXPECT_EQ(GetField<std::string>(j, "name").status().message(), "field 'name' must be a string");
  EXPECT_EQ(GetField<std::string>(j, "name").status().reason(), "INVALID_FIELD");
  EXPECT_EQ(GetField<std::string>(j, "type").status().message(), "field 'type' is required");
  EXPECT_EQ(GetField<std::string>(j, "type").status().reason(), "MISSING_FIELD");
  EXPECT_EQ(*GetField<int64_t>(j, "count"), 3);
  EXPECT_EQ(*GetField<bool>(j, "flag"), true);
  EXPECT_FALSE(GetOptionalField<std::string>(j, "absent")->has_value());
}

TEST(JsonTest, UnknownFieldsAreNamed) {
  Json j = *ParseJson(R"({"name": "a", "nmae": "b"})");
  Status s = CheckKnownFields(j, {"name"});
  EXPECT_EQ(s.reason(), "UNKNOWN_FIELD");
  EXPECT_EQ(s.message(), "unknown field 'nmae'");
  EXPECT_TRUE(CheckKnownFields(j, {"name", "nmae"}).ok());
}

}  // namespace
}  // namespace fpgahost
