#include "host/cli/instance_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fpgahost::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Slots and instances as the API documents them.
Json LoadedSlot() {
  return Json::parse(R"({
    "slot": 0, "state": "loaded", "image_id": "img-0123456789abcdef0",
    "xclbin_uuid": "4b1a6c4e-8f2d-4c4a-9d0e-6f1f3a2b5c7d", "card": "card-0000-10-00-0",
    "user_bdf": "0000:10:00.1", "shell": "xilinx_u250_gen3x16_xdma_shell_4_1",
    "error": null, "updated_at": "2024-05-01T10:00:05Z"})");
}

Json ClearedSlot() {
  return Json::parse(R"({
    "slot": 1, "state": "cleared", "image_id": null, "xclbin_uuid": null,
    "card": "card-0000-11-00-0", "user_bdf": "0000:11:00.1", "shell": null, "error": null,
    "updated_at": "2024-05-01T10:00:00Z"})");
}

Json FailedSlot() {
  return Json::parse(R"({
    "slot": 0, "state": "load_failed", "image_id": "img-0123456789abcdef0", "xclbin_uuid": null,
    "card": "card-0000-10-00-0", "user_bdf": "0000:10:00.1",
    "shell": "xilinx_u250_gen3x16_xdma_shell_4_1",
    "error": {"code": "XCLBIN_INCOMPATIBLE",
              "message": "the xclbin is built for xilinx_u280_xdma_201920_3,\nthe card runs xilinx_u250_gen3x16_xdma_shell_4_1"},
    "updated_at": "2024-05-01T10:00:05Z"})");
}

Json Instance(std::string id, std::string name, std::string state, Json slots) {
  return {{"id", id},
          {"name", name},
          {"tenant", "demo"},
          {"type", "fpga.small"},
          {"state", state},
          {"vcpus", 2},
          {"memory_mib", 4096},
          {"fpgas", slots.size()},
          {"domain", {{"name", "fpgahost-" + id}, {"uri", "test:///default"}}},
          {"slots", slots},
          {"error", nullptr},
          {"created_at", "2024-05-01T09:59:58Z"},
          {"updated_at", "2024-05-01T10:00:05Z"}};
}

TEST(SlotF1StatusTest, MapsEachStateToF1sNameAndCode) {
  struct Case {
    const char* state;
    const char* name;
    int code;
  };
  for (const Case& c :
       {Case{"loaded", "loaded", 0}, Case{"cleared", "cleared", 1}, Case{"loading", "busy", 2},
        Case{"clearing", "busy", 2}, Case{"load_failed", "load-failed", 7}}) {
    F1Status s = SlotF1Status(c.state);
    EXPECT_EQ(s.name, c.name) << c.state;
    EXPECT_EQ(s.code, c.code) << c.state;
  }
}

TEST(SlotF1StatusTest, UnknownStateKeepsItsNameAndNoF1Code) {
  F1Status s = SlotF1Status("resetting");
  EXPECT_EQ(s.name, "resetting");
  EXPECT_EQ(s.code, -1);
  EXPECT_EQ(SlotF1Status("").name, "unknown");
}

TEST(SlotErrorTest, NameIsOkOrTheLowerCaseCode) {
  EXPECT_EQ(SlotErrorName(LoadedSlot()), "ok");
  EXPECT_EQ(SlotErrorCode(LoadedSlot()), 0);
  EXPECT_EQ(SlotErrorName(FailedSlot()), "xclbin_incompatible");
  EXPECT_EQ(SlotErrorCode(FailedSlot()), 16);  // FPGA_ERR_SHELL_MISMATCH
  Json other = FailedSlot();
  other["error"]["code"] = "LOAD_FAILED";
  EXPECT_EQ(SlotErrorName(other), "load_failed");
  EXPECT_EQ(SlotErrorCode(other), 14);  // FPGA_ERR_FAIL
}

// The layout is F1's: with F1's own values the line is the one aws-fpga documents.
TEST(FormatSlotTest, ReproducesF1sLayout) {
  Json slot = {{"slot", 0},
               {"state", "loaded"},
               {"image_id", "agfi-0fcf87119b8e97bf3"},
               {"shell", "0x04261818"},
               {"vendor_id", "0x1d0f"},
               {"device_id", "0xf001"},
               {"user_bdf", "0000:00:1d.0"},
               {"error", nullptr}};
  EXPECT_EQ(FormatSlot(slot),
            "Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    "
            "ErrorCode   ShVersion\n"
            "AFI          0       agfi-0fcf87119b8e97bf3  loaded            0        ok           "
            "    0       0x04261818\n"
            "Type  FpgaImageSlot  VendorId    DeviceId    DBDF\n"
            "AFIDEVICE    0       0x1d0f      0xf001      0000:00:1d.0\n"
            "xclbin-uuid=none\n"
            "card=-\n");
}

TEST(FormatSlotTest, LoadedSlot) {
  EXPECT_EQ(
      FormatSlot(LoadedSlot()),
      R"(Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    ErrorCode   ShVersion
AFI          0       img-0123456789abcdef0   loaded            0        ok               0       xilinx_u250_gen3x16_xdma_shell_4_1
Type  FpgaImageSlot  VendorId    DeviceId    DBDF
AFIDEVICE    0       -           -           0000:10:00.1
xclbin-uuid=4b1a6c4e-8f2d-4c4a-9d0e-6f1f3a2b5c7d
card=card-0000-10-00-0
)");
}

TEST(FormatSlotTest, SlotWithNoImageSaysNone) {
  EXPECT_EQ(
      FormatSlot(ClearedSlot()),
      R"(Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    ErrorCode   ShVersion
AFI          1       none                    cleared           1        ok               0       none
Type  FpgaImageSlot  VendorId    DeviceId    DBDF
AFIDEVICE    1       -           -           0000:11:00.1
xclbin-uuid=none
card=card-0000-11-00-0
)");
}

TEST(FormatSlotTest, BusySlot) {
  Json slot = LoadedSlot();
  slot["state"] = "loading";
  slot["xclbin_uuid"] = nullptr;
  EXPECT_THAT(FormatSlot(slot),
              HasSubstr("\nAFI          0       img-0123456789abcdef0   busy              2        "
                        "ok               0       xilinx_u250_gen3x16_xdma_shell_4_1\n"));
}

// A long error name pushes the rest of the line right but never runs into the next column;
// the message is on one line.
TEST(FormatSlotTest, LoadFailedShowsTheError) {
  EXPECT_EQ(
      FormatSlot(FailedSlot()),
      R"(Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    ErrorCode   ShVersion
AFI          0       img-0123456789abcdef0   load-failed       7        xclbin_incompatible  16      xilinx_u250_gen3x16_xdma_shell_4_1
Type  FpgaImageSlot  VendorId    DeviceId    DBDF
AFIDEVICE    0       -           -           0000:10:00.1
xclbin-uuid=none
card=card-0000-10-00-0
error-message=the xclbin is built for xilinx_u280_xdma_201920_3, the card runs xilinx_u250_gen3x16_xdma_shell_4_1
)");
}

TEST(FormatSlotTest, SeveralSlotsAreSeparatedByABlankLine) {
  std::string text = FormatSlots(Json::array({LoadedSlot(), ClearedSlot()}));
  EXPECT_EQ(text, FormatSlot(LoadedSlot()) + "\n" + FormatSlot(ClearedSlot()));
  EXPECT_EQ(FormatSlots(Json::array()), "");
}

// The daemon's answer is outside input: odd shapes print placeholders, never throw.
TEST(FormatSlotTest, ToleratesMissingAndMistypedFields) {
  EXPECT_THAT(FormatSlot(Json::object()),
              HasSubstr("\nAFI          -       none                    unknown           -1"));
  EXPECT_NO_THROW(FormatSlot(Json("not an object")));
  EXPECT_NO_THROW(FormatSlot(Json{{"slot", "x"}, {"state", 3}, {"error", "boom"}}));
  EXPECT_NO_THROW(FormatSlots(Json{{"slots", 1}}));
  EXPECT_NO_THROW(FormatInstance(nullptr));
  EXPECT_NO_THROW(FormatInstance(Json{{"slots", Json::array({1, "a", nullptr})}}));
  EXPECT_NO_THROW(FormatInstanceList(Json::array({1, Json::object()})));
  EXPECT_EQ(FormatInstanceList(nullptr), "ID  NAME  TYPE  STATE  SLOTS  CREATED\n");
}

TEST(FormatInstanceListTest, Table) {
  Json loading = LoadedSlot();
  loading["state"] = "loading";
  Json a = Instance("i-0123456789abcdef0", "demo", "running",
                    Json::array({LoadedSlot(), ClearedSlot()}));
  Json b = Instance("i-0fedcba9876543210", "", "pending", Json::array({loading}));
  b["name"] = nullptr;
  b["created_at"] = "2024-05-01T10:02:00Z";
  Json c = Instance("i-00000000000000001", "batch-7", "failed", Json::array({FailedSlot()}));
  c.erase("slots");
  Json d = Instance("i-00000000000000002", "x", "running", Json::array({FailedSlot()}));
  EXPECT_EQ(FormatInstanceList(Json::array({a, b, c, d})),
            R"(ID                   NAME     TYPE        STATE    SLOTS                 CREATED
i-0123456789abcdef0  demo     fpga.small  running  1/2 loaded            2024-05-01T09:59:58Z
i-0fedcba9876543210  -        fpga.small  pending  0/1 loaded, 1 busy    2024-05-01T10:02:00Z
i-00000000000000001  batch-7  fpga.small  failed   -                     2024-05-01T09:59:58Z
i-00000000000000002  x        fpga.small  running  0/1 loaded, 1 failed  2024-05-01T09:59:58Z
)");
}

TEST(FormatInstanceTest, DescribeShowsFieldsSlotsAndErrors) {
  Json i = Instance("i-0123456789abcdef0", "demo", "running",
                    Json::array({FailedSlot(), ClearedSlot()}));
  EXPECT_EQ(FormatInstance(i), R"(i-0123456789abcdef0  demo
  type        fpga.small  2 vCPUs, 4096 MiB, 2 FPGAs
  state       running
  tenant      demo
  domain      fpgahost-i-0123456789abcdef0  test:///default
  created     2024-05-01T09:59:58Z
  updated     2024-05-01T10:00:05Z
  slots
    SLOT  STATE        IMAGE                  XCLBIN_UUID  CARD               USER_BDF
    0     load_failed  img-0123456789abcdef0  -            card-0000-10-00-0  0000:10:00.1
    1     cleared      -                      -            card-0000-11-00-0  0000:11:00.1
    slot 0 error: XCLBIN_INCOMPATIBLE: the xclbin is built for xilinx_u280_xdma_201920_3, the card runs xilinx_u250_gen3x16_xdma_shell_4_1
)");
}

TEST(FormatInstanceTest, FailedInstanceWithoutDomainOrSlots) {
  Json i = Instance("i-00000000000000001", "", "failed", Json::array());
  i["name"] = nullptr;
  i["vcpus"] = 1;
  i["fpgas"] = 1;
  i["domain"] = nullptr;
  i["error"] = {{"code", "INSUFFICIENT_CAPACITY"},
                {"message", "1 FPGA card(s) needed, 0 free, active and healthy on this host"}};
  std::string text = FormatInstance(i);
  EXPECT_THAT(text, HasSubstr("i-00000000000000001\n"));
  EXPECT_THAT(text, HasSubstr("  type        fpga.small  1 vCPU, 4096 MiB, 1 FPGA\n"));
  EXPECT_THAT(text, HasSubstr("  domain      -\n"));
  EXPECT_THAT(text, HasSubstr("  error       INSUFFICIENT_CAPACITY: 1 FPGA card(s) needed, 0 "
                              "free, active and healthy on this host\n"));
  EXPECT_THAT(text, HasSubstr("  slots       none\n"));
}

TEST(FormatInstanceTypesTest, Table) {
  Json types = Json::parse(R"([
    {"name": "fpga.small", "vcpus": 2, "memory_mib": 4096, "fpgas": 1},
    {"name": "fpga.xlarge", "vcpus": 16, "memory_mib": 65536, "fpgas": 4}])");
  EXPECT_EQ(FormatInstanceTypes(types), R"(NAME         VCPUS  MEMORY_MIB  FPGAS
fpga.small   2      4096        1
fpga.xlarge  16     65536       4
)");
}

TEST(ParseSlotNumberTest, AcceptsNonNegativeIntegers) {
  for (auto [text, n] : {std::pair{"0", 0}, std::pair{"7", 7}, std::pair{"0012", 12}}) {
    StatusOr<int> parsed = ParseSlotNumber(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ(*parsed, n);
  }
}

TEST(ParseSlotNumberTest, RejectsAnythingElseNamingIt) {
  for (const char* text : {"", "-1", "+1", "1.5", "x", "0x1", " 1", "1 ", "99999999999"}) {
    StatusOr<int> parsed = ParseSlotNumber(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().reason(), "USAGE");
    EXPECT_EQ(
        parsed.status().message(),
        std::string("the slot must be a non-negative integer (0, 1, ...), not '") + text + "'");
  }
}

TEST(SlotOutcomeTest, LoadedAndClearedAreSuccess) {
  EXPECT_TRUE(SlotOutcome(LoadedSlot(), "i-0123456789abcdef0", /*load=*/true).ok());
  EXPECT_TRUE(SlotOutcome(ClearedSlot(), "i-0123456789abcdef0", /*load=*/false).ok());
}

TEST(SlotOutcomeTest, FailedLoadIsOneLineNamingCodeAndMessage) {
  Status s = SlotOutcome(FailedSlot(), "i-0123456789abcdef0", /*load=*/true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.reason(), "XCLBIN_INCOMPATIBLE");
  EXPECT_EQ(
      s.message(),
      "slot 0 of i-0123456789abcdef0: loading img-0123456789abcdef0 failed: the xclbin is "
      "built for xilinx_u280_xdma_201920_3, the card runs xilinx_u250_gen3x16_xdma_shell_4_1");
  EXPECT_THAT(s.message(), Not(HasSubstr("\n")));
}

TEST(SlotOutcomeTest, EndingInTheWrongStateWithoutAnErrorIsStillAnError) {
  Status load = SlotOutcome(ClearedSlot(), "i-0123456789abcdef0", /*load=*/true);
  EXPECT_EQ(load.reason(), "SLOT_NOT_LOADED");
  EXPECT_EQ(load.message(), "slot 1 of i-0123456789abcdef0 is cleared, not loaded");
  Status clear = SlotOutcome(LoadedSlot(), "i-0123456789abcdef0", /*load=*/false);
  EXPECT_EQ(clear.reason(), "SLOT_NOT_CLEARED");
  Status failed_clear = SlotOutcome(FailedSlot(), "i-0123456789abcdef0", /*load=*/false);
  EXPECT_EQ(failed_clear.reason(), "XCLBIN_INCOMPATIBLE");
  EXPECT_THAT(
      failed_clear.message(),
      HasSubstr("slot 0 of i-0123456789abcdef0: clearing failed, the slot is load_failed: "));
}

TEST(InstanceOutcomeTest, ExpectedStateIsSuccessFailedCarriesItsError) {
  Json i = Instance("i-0123456789abcdef0", "demo", "running", Json::array());
  EXPECT_TRUE(InstanceOutcome(i, "running").ok());

  i["state"] = "failed";
  i["error"] = {{"code", "HYPERVISOR_ERROR"}, {"message", "virDomainCreate failed:\nno memory"}};
  Status failed = InstanceOutcome(i, "running");
  EXPECT_EQ(failed.reason(), "HYPERVISOR_ERROR");
  EXPECT_EQ(failed.message(),
            "instance i-0123456789abcdef0 failed: virDomainCreate failed: no memory");

  i["error"] = nullptr;
  EXPECT_EQ(InstanceOutcome(i, "running").reason(), "INSTANCE_FAILED");

  i["state"] = "stopped";
  Status other = InstanceOutcome(i, "running");
  EXPECT_EQ(other.reason(), "INSTANCE_STATE");
  EXPECT_EQ(other.message(), "instance i-0123456789abcdef0 is stopped, not running");
}

}  // namespace
}  // namespace fpgahost::cli
