#include "images/shell_catalogue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/images/xclbin_fixtures.h"

namespace fpgahost::images {
namespace {

using ::testing::HasSubstr;
using namespace ::fpgahost::images::testing;  // NOLINT(google-build-using-namespace)

const std::filesystem::path kDefaultCatalogue =
    std::filesystem::path(FPGAHOST_SOURCE_DIR) / "images" / "shells.json";

// A valid one-shell catalogue with `patch` merged into the shell.
std::string OneShell(const Json& patch) {
  Json shell = {{"name", "s1"},
                {"vbnv", "vendor_board_shell_1"},
                {"interface_uuid", "00112233-4455-6677-8899-aabbccddeeff"},
                {"clocks", {{{"type", "KERNEL"}, {"max_mhz", 500}}}},
                {"memory_banks", {{{"tag", "bank0"}, {"type", "MEM_DDR4"}, {"size_kb", 1024}}}}};
  shell.merge_patch(patch);
  return Json{{"shells", {shell}}}.dump();
}

Status Problem(const Json& patch) {
  return ParseShellCatalogue(OneShell(patch), "test.json").status();
}

TEST(ShellCatalogueTest, DefaultCatalogueLoadsAndHoldsTheFixturesShell) {
  StatusOr<ShellCatalogue> catalogue = LoadShellCatalogue(kDefaultCatalogue);
  ASSERT_TRUE(catalogue.ok()) << catalogue.status().ToString();
  EXPECT_GE(catalogue->shells().size(), 2u);
  SKIP_WITHOUT_SHARED_FIXTURES();
  Json layout = LayoutReport("02_full_hw");
  std::optional<Uuid> uuid = ParseUuid(layout.at("m_interface_uuid").get<std::string>());
  ASSERT_TRUE(uuid.has_value());
  const ShellSpec* by_uuid = catalogue->FindByInterfaceUuid(*uuid);
  ASSERT_NE(by_uuid, nullptr);
  EXPECT_EQ(by_uuid->vbnv, layout.at("m_platformVBNV"));
  EXPECT_EQ(catalogue->FindByVbnv(by_uuid->vbnv), by_uuid);
  EXPECT_EQ(catalogue->FindByName(by_uuid->name), by_uuid);
  // The fixtures' clocks fit the shell's limits.
  EXPECT_TRUE(by_uuid->MaxClockMhz(2, "KERNEL_CLK").has_value());
}

TEST(ShellCatalogueTest, ReadsEveryField) {
  StatusOr<ShellCatalogue> c = ParseShellCatalogue(
      OneShell({{"interface_uuid", "00112233445566778899AABBCCDDEEFF"},
                {"description", "d"},
                {"clocks",
                 {{{"type", "KERNEL"}, {"max_mhz", 500}},
                  {{"type", "KERNEL"}, {"name", "KERNEL_CLK2"}, {"max_mhz", 300}}}}}),
      "test.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const ShellSpec& s = c->shells().at(0);
  EXPECT_EQ(s.interface_uuid, "00112233-4455-6677-8899-aabbccddeeff");  // normalised
  EXPECT_EQ(s.description, "d");
  EXPECT_EQ(s.MaxClockMhz(2, "KERNEL_CLK"), 500u);
  EXPECT_EQ(s.MaxClockMhz(2, "KERNEL_CLK2"), 300u);  // the named limit wins
  EXPECT_FALSE(s.MaxClockMhz(1, "DATA_CLK").has_value());
  ASSERT_NE(s.FindMemoryBank("bank0"), nullptr);
  EXPECT_EQ(s.FindMemoryBank("bank0")->size_kb, 1024u);
  // And back: the JSON form reads to the same catalogue.
  StatusOr<ShellCatalogue> again =
      ParseShellCatalogue(ShellCatalogueToJson(*c).dump(), "round-trip");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ShellCatalogueToJson(*again), ShellCatalogueToJson(*c));
}

TEST(ShellCatalogueTest, ErrorsNameTheFileAndTheField) {
  struct Case {
    Json patch;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"vbnv", nullptr}}, "test.json: shells[0].vbnv is required"},
      {{{"vbnv", 7}}, "test.json: shells[0].vbnv must be a string, not number"},
      {{{"vbnv", std::string(64, 'v')}}, "shells[0].vbnv must be 1 to 63 characters"},
      {{{"name", ""}}, "shells[0].name must not be empty"},
      {{{"interface_uuid", "not-a-uuid"}}, "shells[0].interface_uuid 'not-a-uuid' is not a UUID"},
      {{{"interface_uuid", "00000000-0000-0000-0000-000000000000"}},
       "shells[0].interface_uuid is all zeros"},
      {{{"clocks", {{{"type", "FAST"}, {"max_mhz", 1}}}}},
       "shells[0].clocks[0].type 'FAST' is not DATA, KERNEL or SYSTEM"},
      {{{"clocks", {{{"type", "DATA"}, {"max_mhz", 0}}}}},
       "shells[0].clocks[0].max_mhz must be between 1 and 65535"},
      {{{"clocks", {{{"type", "DATA"}, {"max_mhz", -5}}}}},
       "shells[0].clocks[0].max_mhz must be a non-negative integer"},
      {{{"clocks", {{{"type", "DATA"}, {"max_mhz", 5}}, {{"type", "DATA"}, {"max_mhz", 6}}}}},
       "shells[0].clocks[1] repeats the limit for DATA clock"},
      {{{"clocks", {{{"type", "DATA"}, {"max_mhz", 5}, {"speed", 1}}}}},
       "shells[0].clocks[0].speed is not a known field"},
      {{{"clocks", "fast"}}, "shells[0].clocks must be an array, not string"},
      {{{"memory_banks", {{{"tag", "bank0"}, {"type", "MEM_DDR9"}, {"size_kb", 1}}}}},
       "shells[0].memory_banks[0].type 'MEM_DDR9' is not a memory type"},
      {{{"memory_banks", {{{"tag", "bank0"}, {"size_kb", 0}}}}},
       "shells[0].memory_banks[0].size_kb must not be 0"},
      {{{"memory_banks", {{{"tag", std::string(16, 't')}, {"size_kb", 1}}}}},
       "shells[0].memory_banks[0].tag must be 1 to 15 characters"},
      {{{"board", "u250"}}, "shells[0].board is not a known field"},
  };
  for (const Case& c : cases) {
    Status s = Problem(c.patch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.patch.dump();
    EXPECT_EQ(s.reason(), "INVALID_SHELL_CATALOGUE") << c.patch.dump();
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.patch.dump();
  }
}

TEST(ShellCatalogueTest, NamesVbnvsAndInterfacesAreUnique) {
  Json a = Json::parse(OneShell(Json::object()))["shells"][0];
  for (const char* field : {"name", "vbnv", "interface_uuid"}) {
    Json b = a;
    for (const char* other : {"name", "vbnv", "interface_uuid"}) {
      if (std::string(other) != field) b.erase(other);
    }
    b["name"] = field == std::string("name") ? a["name"] : Json("s2");
    b["vbnv"] = field == std::string("vbnv") ? a["vbnv"] : Json("other_vbnv");
    Status s = ParseShellCatalogue(Json{{"shells", {a, b}}}.dump(), "test.json").status();
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::string("shells[1].") + field)) << field;
  }
}

TEST(ShellCatalogueTest, FileLevelErrors) {
  Status s = ParseShellCatalogue("{\"shells\": [", "bad.json").status();
  EXPECT_EQ(s.reason(), "INVALID_SHELL_CATALOGUE");
  EXPECT_THAT(std::string(s.message()), HasSubstr("bad.json: not valid JSON"));
  EXPECT_THAT(std::string(ParseShellCatalogue("{}", "e.json").status().message()),
              HasSubstr("e.json: shells must be a non-empty array"));
  EXPECT_THAT(std::string(ParseShellCatalogue("[]", "e.json").status().message()),
              HasSubstr("e.json: the top level must be an object"));
  EXPECT_THAT(std::string(ParseShellCatalogue(R"({"shells": [1]})", "e.json").status().message()),
              HasSubstr("e.json: shells[0] must be an object, not number"));
  EXPECT_FALSE(LoadShellCatalogue("/nonexistent/shells.json").ok());
}

TEST(ShellCatalogueTest, CreateChecksLikeTheLoader) {
  ShellSpec spec;
  spec.name = "a";
  spec.vbnv = "v";
  spec.interface_uuid = "0011223344556677889900AABBCCDDEE";
  StatusOr<ShellCatalogue> c = ShellCatalogue::Create({spec});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->shells().at(0).interface_uuid, "00112233-4455-6677-8899-00aabbccddee");
  EXPECT_EQ(ShellCatalogue::Create({spec, spec}).status().reason(), "INVALID_SHELL_CATALOGUE");
}

TEST(ShellCatalogueTest, HealthLimitsDefaultAndOverride) {
  StatusOr<ShellCatalogue> plain = ParseShellCatalogue(OneShell(Json::object()), "test.json");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->shells()[0].limits.fpga_temp_max_c, HealthLimits{}.fpga_temp_max_c);

  StatusOr<ShellCatalogue> set = ParseShellCatalogue(
      OneShell({{"limits", {{"fpga_temp_warn_c", 70}, {"power_warn_w", 60}, {"power_max_w", 75}}}}),
      "test.json");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->shells()[0].limits.fpga_temp_warn_c, 70u);
  EXPECT_EQ(set->shells()[0].limits.power_max_w, 75u);
  // Round trip through the JSON form keeps them.
  StatusOr<ShellCatalogue> again =
      ParseShellCatalogue(ShellCatalogueToJson(*set).dump(), "again.json");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->shells()[0].limits.power_max_w, 75u);
}

TEST(ShellCatalogueTest, BadHealthLimitsNameTheField) {
  Status s = Problem({{"limits", {{"fpga_temp_warn_c", 100}, {"fpga_temp_max_c", 90}}}});
  EXPECT_THAT(s.message(), HasSubstr("shells[0].limits.fpga_temp_warn_c"));
  s = Problem({{"limits", {{"power_max_w", 0}}}});
  EXPECT_THAT(s.message(), HasSubstr("shells[0].limits.power_warn_w"));
  s = Problem({{"limits", {{"volts", 12}}}});
  EXPECT_THAT(s.message(), HasSubstr("shells[0].limits.volts is not a known field"));
  s = Problem({{"limits", {{"power_max_w", -5}}}});
  EXPECT_THAT(s.message(), HasSubstr("shells[0].limits.power_max_w"));
}

TEST(ShellCatalogueTest, DefaultCatalogueHasLimitsForEveryShell) {
  StatusOr<ShellCatalogue> c = LoadShellCatalogue(kDefaultCatalogue);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (const ShellSpec& shell : c->shells()) {
    EXPECT_LT(shell.limits.fpga_temp_warn_c, shell.limits.fpga_temp_max_c) << shell.name;
    EXPECT_LT(shell.limits.power_warn_w, shell.limits.power_max_w) << shell.name;
  }
}

}  // namespace
}  // namespace fpgahost::images
