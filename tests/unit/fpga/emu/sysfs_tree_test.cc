#include "fpga/emu/sysfs_tree.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fpga/discovery.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

images::ShellSpec U280() {
  images::ShellSpec shell;
  shell.name = "u280";
  shell.vbnv = "xilinx_u280_gen3x16_xdma_1_202211_1";
  shell.interface_uuid = "f2b82d53-9e3c-4f0a-8c1e-280000000001";
  return shell;
}

TEST(CreateEmulatedFleetTest, RefusesCardCountsOutsideTheRange) {
  testing::TempDir dir;
  for (int cards : {0, -1, kMaxEmulatedCards + 1}) {
    Status s = CreateEmulatedFleet(dir / "fleet", cards, U280());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << cards;
    EXPECT_FALSE(fs::exists(dir / "fleet")) << cards;
  }
}

TEST(CreateEmulatedFleetTest, RefusesANonEmptyDirectoryThatIsNotAFleet) {
  testing::TempDir dir;
  std::ofstream(dir / "precious.txt") << "keep me";
  Status s = CreateEmulatedFleet(dir.path(), 2, U280());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.reason(), kReasonNotAnEmulatedFleet);
  EXPECT_TRUE(fs::exists(dir / "precious.txt"));
}

TEST(CreateEmulatedFleetTest, ReplacesAnExistingFleet) {
  testing::TempDir dir;
  ASSERT_TRUE(CreateEmulatedFleet(dir.path(), 4, U280()).ok());
  Status again = CreateEmulatedFleet(dir.path(), 2, U280());
  ASSERT_TRUE(again.ok()) << again.ToString();
  RealSysfs sysfs(dir.path());
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_EQ(cards->at(0).mgmt_device_id, 0x500c);
  EXPECT_EQ(cards->at(0).vbnv, "xilinx_u280_gen3x16_xdma_1_202211_1");
}

TEST(CreateEmulatedFleetTest, TakesAShellFromTheCatalogue) {
  StatusOr<images::ShellCatalogue> catalogue =
      images::LoadShellCatalogue(fs::path(FPGAHOST_SOURCE_DIR) / "images/shells.json");
  ASSERT_TRUE(catalogue.ok()) << catalogue.status().ToString();
  testing::TempDir dir;
  EXPECT_EQ(CreateEmulatedFleet(dir.path(), 1, *catalogue, "no-such-shell").code(),
            StatusCode::kNotFound);
  const images::ShellSpec& shell = catalogue->shells().front();
  ASSERT_TRUE(CreateEmulatedFleet(dir.path(), kMaxEmulatedCards, *catalogue, shell.name).ok());
  RealSysfs sysfs(dir.path());
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), static_cast<size_t>(kMaxEmulatedCards));
  EXPECT_EQ(cards->back().vbnv, shell.vbnv);
  EXPECT_TRUE(cards->back().problems.empty());
}

class EmulatedSysfsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(CreateEmulatedFleet(dir_.path(), 2, U280()).ok()); }

  std::string Driver(const std::string& bdf) {
    StatusOr<std::string> link = sysfs_.ReadLink("bus/pci/devices/" + bdf + "/driver");
    return link.ok() ? LinkBasename(*link) : "";
  }
  bool DriverLists(const std::string& driver, const std::string& bdf) {
    return sysfs_.Exists("bus/pci/drivers/" + driver + "/" + bdf);
  }

  testing::TempDir dir_;
  EmulatedSysfs sysfs_{dir_.path()};
  std::string user_ = EmulatedUserBdf(0);
  std::string mgmt_ = EmulatedMgmtBdf(0);
};

TEST_F(EmulatedSysfsTest, OverrideUnbindProbeMovesTheUserPfToVfio) {
  EXPECT_EQ(sysfs_.ReadAttribute("bus/pci/devices/" + user_ + "/driver_override").value_or(""),
            "(null)");
  ASSERT_EQ(Driver(user_), "xocl");
  ASSERT_TRUE(DriverLists("xocl", user_));

  ASSERT_TRUE(
      sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver_override", "vfio-pci\n").ok());
  EXPECT_EQ(Driver(user_), "xocl");  // an override alone does not move a bound device
  Status unbind = sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver/unbind", user_);
  ASSERT_TRUE(unbind.ok()) << unbind.ToString();
  EXPECT_EQ(Driver(user_), "");
  EXPECT_FALSE(DriverLists("xocl", user_));

  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers_probe", user_ + "\n").ok());
  EXPECT_EQ(Driver(user_), "vfio-pci");
  EXPECT_TRUE(DriverLists("vfio-pci", user_));
  // The scanner sees the move, and the other card is untouched.
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs_).Scan();
  ASSERT_TRUE(cards.ok());
  EXPECT_EQ(cards->at(0).user_driver, "vfio-pci");
  EXPECT_EQ(cards->at(1).user_driver, "xocl");
  EXPECT_TRUE(cards->at(0).problems.empty());

  // And back: clear the override, unbind, probe: the default driver comes back.
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver_override", "\n").ok());
  EXPECT_EQ(sysfs_.ReadAttribute("bus/pci/devices/" + user_ + "/driver_override").value_or(""),
            "(null)");
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/unbind", user_).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers_probe", user_).ok());
  EXPECT_EQ(Driver(user_), "xocl");
}

TEST_F(EmulatedSysfsTest, ProbeOfABoundDeviceChangesNothing) {
  ASSERT_TRUE(
      sysfs_.WriteAttribute("bus/pci/devices/" + mgmt_ + "/driver_override", "vfio-pci").ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers_probe", mgmt_).ok());
  EXPECT_EQ(Driver(mgmt_), "xclmgmt");
}

TEST_F(EmulatedSysfsTest, ProbeWithAnUnknownOverrideLeavesTheDeviceUnbound) {
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/unbind", user_).ok());
  ASSERT_TRUE(
      sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver_override", "no-such-drv").ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers_probe", user_).ok());
  EXPECT_EQ(Driver(user_), "");
}

TEST_F(EmulatedSysfsTest, BindAndUnbindFollowKernelRules) {
  // Unbinding from a driver the device is not bound to fails; so does binding a bound device.
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/unbind", user_).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", user_).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/unbind", user_).ok());
  // .../driver/unbind no longer exists once unbound.
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver/unbind", user_).code(),
            StatusCode::kNotFound);
  // driver_override restricts explicit binds to the named driver.
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/driver_override", "xocl").ok());
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", user_).code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/bind", user_).ok());
  EXPECT_EQ(Driver(user_), "xocl");
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/drivers/xocl/bind", "0000:99:00.0").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(sysfs_.WriteAttribute("bus/pci/drivers/xocl/bind", "../../x").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(sysfs_.WriteAttribute("../outside", "x").reason(), kReasonSysfsPathEscapes);
}

}  // namespace
}  // namespace fpgahost::fpga::emu
