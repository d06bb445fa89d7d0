// A test fixture over an emulated fleet that the real libxrt_emu.so and the emulated xbmgmt can
// see: one directory per test process, exported once as FPGAHOST_SYSFS_ROOT (before any thread
// starts) and given a fresh fleet of three U250 cards with instant loads by every test.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/files.h"
#include "fpga/discovery.h"
#include "fpga/emu/faults.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/programmer.h"
#include "images/xclbin.h"
#include "tests/support/fixtures.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::fpga {

class EmulatedFleetTest : public ::testing::Test {
 protected:
  static constexpr int kCards = 3;

  // Injects a fault on card `card` (0-based), as `fpgahost emu fault` does.
  void Inject(int card, emu::FaultKind kind, std::optional<double> value = std::nullopt) {
    StatusOr<std::string> done = emu::InjectFault(Root(), CardId(card), kind, value);
    ASSERT_TRUE(done.ok()) << done.status().ToString();
  }

  // The fleet's root; the same for every test of the process.
  static const std::filesystem::path& Root() {
    static testing::TempDir dir;
    static const std::filesystem::path root = [] {
      std::filesystem::path r = dir / "fleet";
      ::setenv("FPGAHOST_SYSFS_ROOT", r.c_str(), 1);
      return r;
    }();
    return root;
  }

  void SetUp() override {
    images::ShellSpec shell;
    shell.name = "u250-gen3x16-xdma-4.1";
    shell.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
    shell.interface_uuid = "12345678-9abc-def0-1122-334455667788";
    Status created = emu::CreateEmulatedFleet(Root(), kCards, shell, /*load_ms=*/0);
    ASSERT_TRUE(created.ok()) << created.ToString();
  }

  static CardAddress Card(int i) { return {emu::EmulatedMgmtBdf(i), emu::EmulatedUserBdf(i)}; }
  static std::string CardId(int i) { return CardIdForBdf(emu::EmulatedMgmtBdf(i)); }

  std::vector<CardInfo> Scan() {
    RealSysfs sysfs(Root());
    StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
    EXPECT_TRUE(cards.ok()) << cards.status().ToString();
    return cards.ok() ? *cards : std::vector<CardInfo>{};
  }
  CardInfo ScanCard(int i) {
    for (CardInfo& card : Scan()) {
      if (card.mgmt_bdf == emu::EmulatedMgmtBdf(i)) return card;
    }
    ADD_FAILURE() << "card " << i << " not found";
    return {};
  }

  // Gives the user PF to vfio-pci (as for a VM), or back to xocl, the way the VFIO code does.
  void MoveUserPf(int i, const std::string& driver) {
    emu::EmulatedSysfs sysfs(Root());
    std::string bdf = emu::EmulatedUserBdf(i);
    std::string device = "bus/pci/devices/" + bdf;
    ASSERT_TRUE(sysfs.WriteAttribute(device + "/driver_override", driver).ok());
    if (sysfs.Exists(device + "/driver")) {
      ASSERT_TRUE(sysfs.WriteAttribute(device + "/driver/unbind", bdf).ok());
    }
    ASSERT_TRUE(sysfs.WriteAttribute("bus/pci/drivers_probe", bdf).ok());
  }

  // A vendor-made xclbin from ../shared/fixtures/xclbin.
  static std::filesystem::path Xclbin(const std::string& name) {
    return testing::SharedFixturesDir() / "xclbin" / name;
  }
  // Its m_header.uuid, as discovery prints it.
  static std::string UuidOf(const std::filesystem::path& xclbin) {
    StatusOr<std::string> bytes = ReadFile(xclbin);
    if (!bytes.ok()) return "unreadable " + xclbin.string();
    StatusOr<images::Xclbin> parsed = images::ParseXclbin(*bytes);
    return parsed.ok() ? images::FormatUuid(parsed->header.uuid) : "unparsable";
  }

  // Matches the shell of the fleet (interface UUID 12345678-...).
  static constexpr char kCompatible[] = "02_full_hw.xclbin";
  static constexpr char kAlsoCompatible[] = "05_signed.xclbin";
  // Built for another shell (interface UUID d7612a7c-...).
  static constexpr char kIncompatible[] = "08_hw_pr_partial_pdi.xclbin";
};

}  // namespace fpgahost::fpga
