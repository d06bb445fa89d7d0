#include "fpga/sysfs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/temp_dir.h"

namespace fpgahost::fpga {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(RealSysfsTest, ReadsTrimmedAttributesListsAndLinks) {
  testing::TempDir dir;
  Write(dir / "bus/pci/devices/x/vendor", "0x10ee\n");
  fs::create_directories(dir / "bus/pci/drivers/xocl");
  fs::create_symlink("../../drivers/xocl", dir / "bus/pci/devices/x/driver");
  RealSysfs sysfs(dir.path());

  StatusOr<std::string> vendor = sysfs.ReadAttribute("/bus/pci/devices/x/vendor");
  ASSERT_TRUE(vendor.ok()) << vendor.status().ToString();
  EXPECT_EQ(*vendor, "0x10ee");
  StatusOr<std::vector<std::string>> names = sysfs.ListDirectory("bus/pci/devices/x");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"driver", "vendor"}));
  StatusOr<std::string> link = sysfs.ReadLink("bus/pci/devices/x/driver");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(LinkBasename(*link), "xocl");
  EXPECT_TRUE(sysfs.Exists("bus/pci/devices/x/driver"));
  EXPECT_FALSE(sysfs.Exists("bus/pci/devices/y"));
}

TEST(RealSysfsTest, WritesExistingAttributesOnly) {
  testing::TempDir dir;
  Write(dir / "a/driver_override", "(null)\n");
  RealSysfs sysfs(dir.path());
  ASSERT_TRUE(sysfs.WriteAttribute("a/driver_override", "vfio-pci").ok());
  EXPECT_EQ(sysfs.ReadAttribute("a/driver_override").value_or(""), "vfio-pci");

  Status missing = sysfs.WriteAttribute("a/new_file", "x");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("a/new_file"), std::string_view::npos);
  EXPECT_FALSE(fs::exists(dir / "a/new_file"));
}

TEST(RealSysfsTest, MissingFilesAreNotFoundNamingThePath) {
  testing::TempDir dir;
  RealSysfs sysfs(dir.path());
  StatusOr<std::string> text = sysfs.ReadAttribute("bus/pci/devices/nope/vendor");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(text.status().reason(), kReasonSysfsNotFound);
  EXPECT_NE(text.status().message().find("bus/pci/devices/nope/vendor"), std::string_view::npos);
  EXPECT_EQ(sysfs.ReadLink("x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sysfs.ListDirectory("x").status().code(), StatusCode::kNotFound);
}

TEST(RealSysfsTest, RefusesPathsEscapingTheRoot) {
  testing::TempDir dir;
  Write(dir / "root/inside", "1\n");
  Write(dir / "secret", "s3cret\n");
  RealSysfs sysfs(dir / "root");

  for (const char* path : {"../secret", "a/../../secret", "/../secret", "..", "", "/"}) {
    StatusOr<std::string> text = sysfs.ReadAttribute(path);
    ASSERT_FALSE(text.ok()) << path;
    EXPECT_EQ(text.status().reason(), kReasonSysfsPathEscapes) << path;
    EXPECT_FALSE(sysfs.Exists(path)) << path;
  }
  EXPECT_EQ(sysfs.WriteAttribute("../secret", "x").reason(), kReasonSysfsPathEscapes);
  EXPECT_EQ(sysfs.ListDirectory("..").status().reason(), kReasonSysfsPathEscapes);
  EXPECT_EQ(sysfs.ReadLink("../secret").status().reason(), kReasonSysfsPathEscapes);
  EXPECT_EQ(sysfs.ReadAttribute("/inside").value_or(""), "1");
}

TEST(LinkBasenameTest, TakesTheLastComponent) {
  EXPECT_EQ(LinkBasename("../../../bus/pci/drivers/xocl"), "xocl");
  EXPECT_EQ(LinkBasename("../../../kernel/iommu_groups/17/"), "17");
  EXPECT_EQ(LinkBasename("vfio-pci"), "vfio-pci");
}

}  // namespace
}  // namespace fpgahost::fpga
