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

TEST_F(EmulatedSysfsTest, RemoveIsAHotUnplugAndRescanBringsTheDeviceBack) {
  std::string device = "bus/pci/devices/" + user_;
  StatusOr<std::string> group = sysfs_.ReadLink(device + "/iommu_group");
  ASSERT_TRUE(group.ok());
  std::string group_dir = "kernel/iommu_groups/" + LinkBasename(*group);
  ASSERT_TRUE(sysfs_.WriteAttribute(device + "/driver_override", "vfio-pci").ok());

  // "0" and garbage are not removals.
  EXPECT_TRUE(sysfs_.WriteAttribute(device + "/remove", "0").ok());
  EXPECT_TRUE(sysfs_.Exists(device));
  EXPECT_EQ(sysfs_.WriteAttribute(device + "/remove", "yes").code(), StatusCode::kInvalidArgument);

  ASSERT_TRUE(sysfs_.WriteAttribute(device + "/remove", "1\n").ok());
  EXPECT_FALSE(sysfs_.Exists(device));
  EXPECT_FALSE(sysfs_.Exists("devices/pci0000:00/" + user_));
  EXPECT_FALSE(DriverLists("xocl", user_));
  EXPECT_FALSE(sysfs_.Exists(group_dir));  // its group had no other device
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs_).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_EQ(cards->at(0).user_bdf, "");
  EXPECT_TRUE(cards->at(1).problems.empty());
  // Writing remove again finds no device.
  EXPECT_EQ(sysfs_.WriteAttribute(device + "/remove", "1").code(), StatusCode::kNotFound);

  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/rescan", "1").ok());
  EXPECT_TRUE(sysfs_.Exists(device));
  // A rescanned device is new: no override, bound to its default driver, in its group again.
  EXPECT_EQ(sysfs_.ReadAttribute(device + "/driver_override").value_or(""), "(null)");
  EXPECT_EQ(Driver(user_), "xocl");
  EXPECT_TRUE(DriverLists("xocl", user_));
  EXPECT_EQ(sysfs_.ReadLink(device + "/iommu_group").value_or(""), *group);
  EXPECT_TRUE(sysfs_.Exists(group_dir + "/devices/" + user_));
  cards = SysfsDeviceScanner(sysfs_).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_TRUE(cards->at(0).problems.empty()) << cards->at(0).problems.front();
  EXPECT_EQ(cards->at(0).loaded_xclbin_uuid, "");
}

TEST_F(EmulatedSysfsTest, RemovingBothFunctionsRemovesTheCard) {
  for (const std::string& bdf : {user_, mgmt_}) {
    ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/devices/" + bdf + "/remove", "1").ok());
  }
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs_).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 1u);
  EXPECT_EQ(cards->at(0).mgmt_bdf, EmulatedMgmtBdf(1));

  // A rescan of "0" does nothing; of 1, everything comes back.
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/rescan", "0").ok());
  EXPECT_EQ(SysfsDeviceScanner(sysfs_).Scan()->size(), 1u);
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/rescan", "1").ok());
  cards = SysfsDeviceScanner(sysfs_).Scan();
  ASSERT_TRUE(cards.ok());
  ASSERT_EQ(cards->size(), 2u);
  EXPECT_EQ(cards->at(0).mgmt_driver, "xclmgmt");
  EXPECT_EQ(cards->at(0).user_driver, "xocl");
  EXPECT_TRUE(cards->at(0).problems.empty()) << cards->at(0).problems.front();
}

TEST_F(EmulatedSysfsTest, XclbinUuidExistsWhileTheUserPfIsBoundToXocl) {
  std::string file = "bus/pci/devices/" + user_ + "/xclbinuuid";
  EXPECT_EQ(sysfs_.ReadAttribute(file).value_or(""), kNilUuid);
  EXPECT_FALSE(sysfs_.Exists("bus/pci/devices/" + mgmt_ + "/xclbinuuid"));

  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/unbind", user_).ok());
  EXPECT_FALSE(sysfs_.Exists(file));
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", user_).ok());
  EXPECT_FALSE(sysfs_.Exists(file));

  // What the card holds meanwhile (a load through the management PF) shows once xocl is back.
  const std::string uuid = "01234567-89ab-cdef-0123-456789abcdef";
  ASSERT_TRUE(
      UpdateCardState(dir_.path(), mgmt_, [&](CardState& s) { s.xclbin_uuid = uuid; }).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/unbind", user_).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/bind", user_).ok());
  EXPECT_EQ(sysfs_.ReadAttribute(file).value_or(""), uuid);
}

TEST(CreateEmulatedFleetTest, WritesTheControlArea) {
  testing::TempDir dir;
  EXPECT_EQ(CreateEmulatedFleet(dir.path(), 1, U280(), -1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateEmulatedFleet(dir.path(), 1, U280(), kMaxLoadMs + 1).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(CreateEmulatedFleet(dir.path(), 2, U280(), 250).ok());
  EXPECT_TRUE(IsEmulatedFleet(dir.path()));
  EXPECT_EQ(ReadFleetConfig(dir.path())->load_ms, 250);
  StatusOr<CardState> state = ReadCardState(dir.path(), EmulatedMgmtBdf(1));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->xclbin_uuid, kNilUuid);
  EXPECT_EQ(state->faults, CardFaults{});
  EXPECT_FALSE(HasCard(dir.path(), EmulatedMgmtBdf(2)));
  // The default load time is the real cards' order of magnitude.
  ASSERT_TRUE(CreateEmulatedFleet(dir.path(), 1, U280()).ok());
  EXPECT_EQ(ReadFleetConfig(dir.path())->load_ms, kDefaultLoadMs);

  // A garbled state file is reported, not trusted.
  std::ofstream(CardDir(dir.path(), EmulatedMgmtBdf(0)) / "state.json") << "{not json";
  EXPECT_EQ(ReadCardState(dir.path(), EmulatedMgmtBdf(0)).status().reason(),
            kReasonEmuStateCorrupt);
}

}  // namespace
}  // namespace fpgahost::fpga::emu
