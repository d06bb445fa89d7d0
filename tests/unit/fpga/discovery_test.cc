#include "fpga/discovery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "fpga/emu/sysfs_tree.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::fpga {
namespace {

namespace fs = std::filesystem;

images::ShellSpec U250() {
  images::ShellSpec shell;
  shell.name = "u250-gen3x16-xdma-4.1";
  shell.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
  shell.interface_uuid = "12345678-9abc-def0-1122-334455667788";
  return shell;
}

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status created = emu::CreateEmulatedFleet(dir_.path(), 4, U250());
    ASSERT_TRUE(created.ok()) << created.ToString();
  }

  std::vector<CardInfo> Scan() {
    SysfsDeviceScanner scanner(sysfs_);
    StatusOr<std::vector<CardInfo>> cards = scanner.Scan();
    EXPECT_TRUE(cards.ok()) << cards.status().ToString();
    return cards.ok() ? *cards : std::vector<CardInfo>{};
  }

  // The real directory of a PCI function in the emulated tree.
  fs::path DeviceDir(const std::string& bdf) {
    return fs::canonical(dir_ / ("bus/pci/devices/" + bdf));
  }
  fs::path Subdevice(const std::string& bdf, const std::string& prefix) {
    for (const auto& entry : fs::directory_iterator(DeviceDir(bdf))) {
      if (entry.path().filename().string().starts_with(prefix + ".")) return entry.path();
    }
    ADD_FAILURE() << "no " << prefix << " subdevice";
    return {};
  }
  void Overwrite(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

  bool HasProblemNaming(const CardInfo& card, const std::string& file) {
    return std::any_of(card.problems.begin(), card.problems.end(),
                       [&](const std::string& p) { return p.find(file) != std::string::npos; });
  }

  testing::TempDir dir_;
  RealSysfs sysfs_{dir_.path()};
};

TEST_F(DiscoveryTest, FindsEveryCardOfAGeneratedFleet) {
  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 4u);
  std::vector<std::string> serials;
  std::vector<int> groups;
  for (int i = 0; i < 4; ++i) {
    const CardInfo& card = cards[static_cast<size_t>(i)];
    SCOPED_TRACE(card.id);
    EXPECT_TRUE(card.problems.empty()) << card.problems.front();
    EXPECT_EQ(card.mgmt_bdf, emu::EmulatedMgmtBdf(i));
    EXPECT_EQ(card.user_bdf, emu::EmulatedUserBdf(i));
    EXPECT_EQ(card.id, CardIdForBdf(card.mgmt_bdf));
    EXPECT_EQ(card.mgmt_device_id, 0x5004);
    EXPECT_EQ(card.user_device_id, 0x5005);
    EXPECT_EQ(card.mgmt_driver, "xclmgmt");
    EXPECT_EQ(card.user_driver, "xocl");
    EXPECT_EQ(card.vbnv, "xilinx_u250_gen3x16_xdma_shell_4_1");
    EXPECT_EQ(card.interface_uuid, "12345678-9abc-def0-1122-334455667788");
    ASSERT_TRUE(card.serial.has_value());
    serials.push_back(*card.serial);
    ASSERT_TRUE(card.user_iommu_group.has_value());
    groups.push_back(*card.user_iommu_group);
    ASSERT_TRUE(card.temperature_c.has_value());
    EXPECT_DOUBLE_EQ(*card.temperature_c, 45.0);
    ASSERT_TRUE(card.power_w.has_value());
    EXPECT_DOUBLE_EQ(*card.power_w, 36.0);
  }
  std::sort(serials.begin(), serials.end());
  EXPECT_EQ(std::unique(serials.begin(), serials.end()), serials.end());
  std::sort(groups.begin(), groups.end());
  EXPECT_EQ(std::unique(groups.begin(), groups.end()), groups.end());
  EXPECT_EQ(CardIdForBdf("0000:04:00.0"), "card-0000-04-00-0");
}

TEST_F(DiscoveryTest, UserPfIsAloneInItsIommuGroup) {
  CardInfo card = Scan().at(0);
  ASSERT_TRUE(card.user_iommu_group.has_value());
  auto names = sysfs_.ListDirectory("kernel/iommu_groups/" +
                                    std::to_string(*card.user_iommu_group) + "/devices");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{card.user_bdf});
}

TEST_F(DiscoveryTest, GarbageOrMissingFilesAreProblemsNotFailures) {
  const std::string bdf1 = emu::EmulatedMgmtBdf(1);
  const std::string bdf2 = emu::EmulatedMgmtBdf(2);
  Overwrite(Subdevice(bdf1, "xmc") / "xmc_fpga_temp", "not-a-number\n");
  fs::remove(Subdevice(bdf1, "xmc") / "xmc_12v_pex_curr");
  fs::remove(Subdevice(bdf2, "rom") / "VBNV");
  Overwrite(DeviceDir(bdf2) / "interface_uuids", "zzzz\n");

  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 4u);

  EXPECT_FALSE(cards[1].temperature_c.has_value());
  EXPECT_FALSE(cards[1].power_w.has_value());
  EXPECT_TRUE(HasProblemNaming(cards[1], "xmc_fpga_temp"));
  EXPECT_TRUE(HasProblemNaming(cards[1], "xmc_12v_pex_curr"));
  EXPECT_EQ(cards[1].vbnv, "xilinx_u250_gen3x16_xdma_shell_4_1");

  EXPECT_FALSE(cards[2].vbnv.has_value());
  EXPECT_FALSE(cards[2].interface_uuid.has_value());
  EXPECT_TRUE(HasProblemNaming(cards[2], "VBNV"));
  EXPECT_TRUE(HasProblemNaming(cards[2], "interface_uuids"));
  EXPECT_TRUE(cards[2].temperature_c.has_value());

  for (size_t i : {0u, 3u}) {
    EXPECT_TRUE(cards[i].problems.empty()) << cards[i].problems.front();
    EXPECT_TRUE(cards[i].vbnv.has_value());
    EXPECT_TRUE(cards[i].temperature_c.has_value());
  }
}

TEST_F(DiscoveryTest, RemovedCardDisappearsFromTheNextScan) {
  ASSERT_EQ(Scan().size(), 4u);
  for (const std::string& bdf : {emu::EmulatedMgmtBdf(2), emu::EmulatedUserBdf(2)}) {
    fs::remove_all(DeviceDir(bdf));  // surprise removal: the bus/pci/devices link dangles
  }
  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 3u);
  for (const CardInfo& card : cards) {
    EXPECT_NE(card.mgmt_bdf, emu::EmulatedMgmtBdf(2));
    EXPECT_TRUE(card.problems.empty());
  }
}

TEST_F(DiscoveryTest, UnboundAndForeignDevicesAreHandled) {
  // An unbound user PF is still paired; a non-Xilinx device is ignored.
  fs::remove(DeviceDir(emu::EmulatedUserBdf(0)) / "driver");
  fs::path other = dir_ / "devices/pci0000:00/0000:05:00.0";
  fs::create_directories(other);
  Overwrite(other / "vendor", "0x8086\n");
  fs::create_symlink("../../../devices/pci0000:00/0000:05:00.0",
                     dir_ / "bus/pci/devices/0000:05:00.0");

  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 4u);
  EXPECT_EQ(cards[0].user_bdf, emu::EmulatedUserBdf(0));
  EXPECT_EQ(cards[0].user_driver, "");
  EXPECT_TRUE(cards[0].problems.empty());
}

TEST_F(DiscoveryTest, MissingUserPfIsAProblem) {
  fs::remove_all(DeviceDir(emu::EmulatedUserBdf(3)));
  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 4u);
  EXPECT_EQ(cards[3].user_bdf, "");
  EXPECT_TRUE(HasProblemNaming(cards[3], "user PF missing"));
}

TEST_F(DiscoveryTest, ReadsTheLoadedXclbinFromXocl) {
  for (const CardInfo& card : Scan()) EXPECT_EQ(card.loaded_xclbin_uuid, "");  // nil: cleared

  fs::path user0 = DeviceDir(emu::EmulatedUserBdf(0));
  Overwrite(user0 / "xclbinuuid", "01234567-89AB-cdef-0123-456789abcdef\n");
  Overwrite(DeviceDir(emu::EmulatedUserBdf(1)) / "xclbinuuid",
            "0 0123456789abcdef0123456789abcdef\n");
  Overwrite(DeviceDir(emu::EmulatedUserBdf(2)) / "xclbinuuid", "garbage\n");
  Overwrite(DeviceDir(emu::EmulatedUserBdf(3)) / "xclbinuuid", "");

  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 4u);
  EXPECT_EQ(cards[0].loaded_xclbin_uuid, "01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(cards[1].loaded_xclbin_uuid, "01234567-89ab-cdef-0123-456789abcdef");  // multi-slot
  EXPECT_EQ(cards[2].loaded_xclbin_uuid, std::nullopt);
  EXPECT_TRUE(HasProblemNaming(cards[2], "xclbinuuid"));
  EXPECT_EQ(cards[3].loaded_xclbin_uuid, "");  // xocl prints nothing when no slot is loaded
  EXPECT_TRUE(cards[3].problems.empty());

  // Without xocl there is nothing to read, and that is not a problem.
  emu::EmulatedSysfs emulated(dir_.path());
  ASSERT_TRUE(emulated.WriteAttribute("bus/pci/drivers/xocl/unbind", emu::EmulatedUserBdf(0)).ok());
  ASSERT_TRUE(
      emulated.WriteAttribute("bus/pci/drivers/vfio-pci/bind", emu::EmulatedUserBdf(0)).ok());
  CardInfo in_vm = Scan().at(0);
  EXPECT_EQ(in_vm.loaded_xclbin_uuid, std::nullopt);
  EXPECT_TRUE(in_vm.problems.empty()) << in_vm.problems.front();
  // xocl missing its file is a problem.
  fs::remove(DeviceDir(emu::EmulatedUserBdf(1)) / "xclbinuuid");
  EXPECT_TRUE(HasProblemNaming(Scan().at(1), "xclbinuuid"));
}

TEST_F(DiscoveryTest, ScansOneCard) {
  SysfsDeviceScanner scanner(sysfs_);
  StatusOr<CardInfo> card = scanner.ScanCard(emu::EmulatedMgmtBdf(2));
  ASSERT_TRUE(card.ok()) << card.status().ToString();
  EXPECT_EQ(card->id, Scan().at(2).id);
  EXPECT_EQ(card->user_bdf, emu::EmulatedUserBdf(2));
  EXPECT_EQ(card->temperature_c, 45.0);
  EXPECT_TRUE(card->problems.empty());
  // Not a card: absent, the user PF, a non-BDF.
  for (const std::string& bdf :
       {std::string("0000:99:00.0"), emu::EmulatedUserBdf(2), std::string("../../etc")}) {
    EXPECT_EQ(scanner.ScanCard(bdf).status().code(), StatusCode::kNotFound) << bdf;
  }
  fs::remove_all(DeviceDir(emu::EmulatedUserBdf(1)));
  StatusOr<CardInfo> lonely = scanner.ScanCard(emu::EmulatedMgmtBdf(1));
  ASSERT_TRUE(lonely.ok());
  EXPECT_EQ(lonely->user_bdf, "");
  EXPECT_TRUE(HasProblemNaming(*lonely, "user PF missing"));
}

TEST(DiscoveryNoTreeTest, ScanFailsOnlyWithoutBusPciDevices) {
  testing::TempDir dir;
  RealSysfs sysfs(dir.path());
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
  ASSERT_FALSE(cards.ok());
  EXPECT_NE(cards.status().message().find("bus/pci/devices"), std::string_view::npos);
}

}  // namespace
}  // namespace fpgahost::fpga
