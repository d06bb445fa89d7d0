// A fresh two-card emulated fleet per test, and a way to add foreign PCI functions to it by
// hand (an NVMe drive, a bridge) as they would sit in a card's IOMMU group on a real host.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fpga/emu/sysfs_tree.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::vfio {

class EmulatedFleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    images::ShellSpec shell;
    shell.name = "u250-gen3x16-xdma-4.1";
    shell.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
    Status created = fpga::emu::CreateEmulatedFleet(root_, 2, shell, /*load_ms=*/0);
    ASSERT_TRUE(created.ok()) << created.ToString();
  }

  // Adds PCI function `bdf` of class `pci_class` to IOMMU group `group`, bound to `driver`
  // (none when empty), the way the kernel lays it out.
  void AddDevice(const std::string& bdf, const std::string& pci_class, const std::string& driver,
                 const std::string& group) {
    namespace fs = std::filesystem;
    fs::path rel = fs::path("devices/pci0000:00") / bdf;
    fs::create_directories(root_ / rel);
    std::ofstream(root_ / rel / "vendor") << "0x144d\n";
    std::ofstream(root_ / rel / "class") << pci_class << "\n";
    std::ofstream(root_ / rel / "driver_override") << "(null)\n";
    std::ofstream(root_ / rel / "remove");
    fs::create_symlink("../../../" + rel.string(), root_ / "bus/pci/devices" / bdf);
    fs::path group_rel = fs::path("kernel/iommu_groups") / group;
    fs::create_directories(root_ / group_rel / "devices");
    fs::create_symlink("../../../" + group_rel.string(), root_ / rel / "iommu_group");
    fs::create_symlink("../../../../" + rel.string(), root_ / group_rel / "devices" / bdf);
    if (driver.empty()) return;
    fs::path driver_rel = fs::path("bus/pci/drivers") / driver;
    fs::create_directories(root_ / driver_rel);
    fs::create_symlink("../../../" + driver_rel.string(), root_ / rel / "driver");
    fs::create_symlink("../../../../" + rel.string(), root_ / driver_rel / bdf);
  }

  std::string Driver(const std::string& bdf) const {
    StatusOr<std::string> link = sysfs_.ReadLink("bus/pci/devices/" + bdf + "/driver");
    return link.ok() ? fpga::LinkBasename(*link) : "";
  }
  std::string Override(const std::string& bdf) const {
    return sysfs_.ReadAttribute("bus/pci/devices/" + bdf + "/driver_override").value_or("?");
  }
  std::filesystem::path DevRoot() const { return fpga::emu::EmulatedDevRoot(root_); }

  testing::TempDir dir_;
  std::filesystem::path root_ = dir_ / "fleet";
  fpga::emu::EmulatedSysfs sysfs_{root_};
  // Card 0's user PF, alone in IOMMU group 1 (the management PF is in group 0).
  std::string user_ = fpga::emu::EmulatedUserBdf(0);
  std::string group_ = "1";
};

}  // namespace fpgahost::vfio
