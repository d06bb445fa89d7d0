#include "vfio/iommu_group.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/vfio/emulated_fleet.h"

namespace fpgahost::vfio {
namespace {

using IommuGroupTest = EmulatedFleetTest;

TEST_F(IommuGroupTest, AUserPfAloneInItsGroupIsViable) {
  EXPECT_EQ(IommuGroupOf(sysfs_, user_).value_or(""), group_);
  Status s = CheckIommuGroupForPassthrough(sysfs_, user_);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(IommuGroupTest, RefusesAGroupWithAForeignDeviceBoundToAnotherDriverAndNamesIt) {
  AddDevice("0000:30:00.0", "0x010802", "nvme", group_);
  Status s = CheckIommuGroupForPassthrough(sysfs_, user_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.reason(), kReasonIommuGroupNotViable);
  EXPECT_NE(s.message().find("0000:30:00.0 (bound to nvme)"), std::string_view::npos)
      << s.message();
  EXPECT_NE(s.message().find(user_), std::string_view::npos) << s.message();
}

TEST_F(IommuGroupTest, ABridgeInTheGroupIsFine) {
  AddDevice("0000:00:01.0", "0x060400", "pcieport", group_);
  Status s = CheckIommuGroupForPassthrough(sysfs_, user_);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(IommuGroupTest, UnboundVfioAndPciStubDevicesAreFine) {
  AddDevice("0000:30:00.0", "0x010802", "", group_);
  AddDevice("0000:30:00.1", "0x010802", "vfio-pci", group_);
  AddDevice("0000:30:00.2", "0x010802", "pci-stub", group_);
  Status s = CheckIommuGroupForPassthrough(sysfs_, user_);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(IommuGroupTest, ADeviceWithoutAGroupIsRefused) {
  std::filesystem::remove(root_ / "bus/pci/devices" / user_ / "iommu_group");
  Status s = CheckIommuGroupForPassthrough(sysfs_, user_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.reason(), kReasonNoIommuGroup);
  EXPECT_NE(s.message().find(user_), std::string_view::npos) << s.message();
}

TEST_F(IommuGroupTest, AMissingDeviceIsNotFound) {
  for (const char* bdf : {"0000:99:00.1", "..", ""}) {
    Status s = CheckIommuGroupForPassthrough(sysfs_, bdf);
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << bdf;
    EXPECT_EQ(s.reason(), kReasonDeviceNotFound) << bdf;
  }
}

// The emulated tree publishes /dev/vfio/<group> as vfio-pci does: from the group's first
// vfio-pci device to its last.
TEST_F(IommuGroupTest, EmulatedDevVfioNodeFollowsTheGroupsVfioDevices) {
  std::filesystem::path node = DevRoot() / "vfio" / group_;
  AddDevice("0000:30:00.0", "0x010802", "", group_);
  EXPECT_FALSE(std::filesystem::exists(node));
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/unbind", user_).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", user_).ok());
  EXPECT_TRUE(std::filesystem::is_regular_file(node));
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", "0000:30:00.0").ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/unbind", user_).ok());
  EXPECT_TRUE(std::filesystem::exists(node));  // 0000:30:00.0 still holds the group
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/devices/0000:30:00.0/remove", "1").ok());
  EXPECT_FALSE(std::filesystem::exists(node));
}

}  // namespace
}  // namespace fpgahost::vfio
