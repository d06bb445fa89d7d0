// `fpgahost emu init` and `fpgahost emu fault`, run as a user would run them.
#include <gtest/gtest.h>

#include "fpga/discovery.h"
#include "fpga/emu/emu_area.h"
#include "fpga/emu/sysfs_tree.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::fpga::emu {
namespace {

testing::RunResult Fpgahost(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {testing::BinaryPath("fpgahost").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunCommand(argv);
}

CardInfo ScanCard(const std::filesystem::path& root, size_t i) {
  RealSysfs sysfs(root);
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
  EXPECT_TRUE(cards.ok());
  return cards.ok() && i < cards->size() ? cards->at(i) : CardInfo{};
}

TEST(EmuCliTest, InitAndInjectFaults) {
  testing::TempDir dir;
  std::string root = (dir / "fleet").string();
  testing::RunResult init = Fpgahost({"emu", "init", root, "--cards", "2", "--load-ms", "0"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_EQ(ReadFleetConfig(root)->load_ms, 0);

  testing::RunResult hot = Fpgahost({"emu", "fault", root, "card-0000-10-00-0", "overheat", "110"});
  ASSERT_EQ(hot.exit_code, 0) << hot.err;
  EXPECT_NE(hot.out.find("110"), std::string::npos) << hot.out;
  EXPECT_EQ(ScanCard(root, 0).temperature_c, 110.0);
  EXPECT_EQ(ScanCard(root, 1).temperature_c, 45.0);

  testing::RunResult json =
      Fpgahost({"emu", "fault", root, "0000:11:00.1", "load-fail", "--output", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find("\"fault\": \"load-fail\""), std::string::npos) << json.out;
  EXPECT_EQ(ReadCardState(root, "0000:11:00.0")->faults.load_fail, 1);

  ASSERT_EQ(Fpgahost({"emu", "fault", root, "card-0000-10-00-0", "clear"}).exit_code, 0);
  EXPECT_EQ(ScanCard(root, 0).temperature_c, 45.0);
}

TEST(EmuCliTest, MistakesAreOneLineAndANonZeroExit) {
  testing::TempDir dir;
  std::string root = (dir / "fleet").string();
  ASSERT_EQ(Fpgahost({"emu", "init", root, "--cards", "1"}).exit_code, 0);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"emu", "fault", root, "card-0000-99-00-0", "remove"},
           {"emu", "fault", root, "card-0000-10-00-0", "meltdown"},
           {"emu", "fault", root, "card-0000-10-00-0", "overheat", "hot"},
           {"emu", "fault", (dir / "nothing").string(), "card-0000-10-00-0", "clear"},
           {"emu", "init", root, "--load-ms", "-5"}}) {
    testing::RunResult r = Fpgahost(args);
    EXPECT_NE(r.exit_code, 0) << args[3];
    EXPECT_FALSE(r.err.empty()) << args[3];
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
}

}  // namespace
}  // namespace fpgahost::fpga::emu
