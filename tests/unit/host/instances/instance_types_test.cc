#include "host/instances/instance_types.h"

#include <gtest/gtest.h>

namespace fpgahost {
namespace {

TEST(InstanceTypesTest, DefaultsIncludeF1Shapes) {
  std::vector<InstanceType> types = DefaultInstanceTypes();
  auto f1 = std::find_if(types.begin(), types.end(),
                         [](const InstanceType& t) { return t.name == "f1.16xlarge"; });
  ASSERT_NE(f1, types.end());
  EXPECT_EQ(f1->vcpus, 64);
  EXPECT_EQ(f1->fpgas, 8);
  // The defaults are themselves a valid file.
  Json doc = {{"instance_types", Json::array()}};
  for (const InstanceType& t : types) doc["instance_types"].push_back(InstanceTypeToJson(t));
  EXPECT_TRUE(ParseInstanceTypes(doc).ok());
}

TEST(InstanceTypesTest, BadFilesNameTheEntryAndField) {
  auto parse = [](const char* text) { return ParseInstanceTypes(Json::parse(text)); };
  auto s =
      parse(R"({"instance_types": [{"name": "a", "vcpus": 0, "memory_mib": 64, "fpgas": 0}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("instance_types[0].vcpus"), std::string::npos);
  s = parse(R"({"instance_types": [{"name": "A B", "vcpus": 1, "memory_mib": 64, "fpgas": 0}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("instance_types[0].name"), std::string::npos);
  s = parse(R"({"instance_types": [{"name": "a", "vcpus": 1, "memory_mib": 64, "fpgas": 0},
                                   {"name": "a", "vcpus": 1, "memory_mib": 64, "fpgas": 0}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("defined twice"), std::string::npos);
  s = parse(R"({"instance_types": [{"name": "a", "vcpus": 1, "memory_mib": 64, "fpgas": 17}]})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fpgas"), std::string::npos);
  EXPECT_FALSE(parse(R"({"instance_types": []})").ok());
  EXPECT_FALSE(parse(R"([1, 2])").ok());
}

}  // namespace
}  // namespace fpgahost
