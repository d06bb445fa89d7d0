// XbmgmtProgrammer against the emulated xbmgmt, run as a child process.
#include "fpga/xbmgmt_programmer.h"

#include <gtest/gtest.h>

#include "fpga/emu/emu_area.h"
#include "fpga/emu/faults.h"
#include "tests/unit/fpga/emulated_fleet_test_base.h"

namespace fpgahost::fpga {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kGenerous = 30s;

class XbmgmtProgrammerTest : public EmulatedFleetTest {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    EmulatedFleetTest::SetUp();
  }

  XbmgmtProgrammer xbmgmt_{FPGAHOST_XBMGMT_EMU};
};

TEST_F(XbmgmtProgrammerTest, LoadsWhileTheUserPfIsInAVm) {
  EXPECT_EQ(xbmgmt_.name(), "xbmgmt");
  MoveUserPf(0, "vfio-pci");
  Status loaded = xbmgmt_.Load(Card(0), Xclbin(kCompatible), kGenerous);
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  // With the user PF in a VM the host cannot read what is loaded...
  CardInfo card = ScanCard(0);
  EXPECT_EQ(card.user_driver, "vfio-pci");
  EXPECT_EQ(card.loaded_xclbin_uuid, std::nullopt);
  EXPECT_TRUE(card.problems.empty()) << card.problems.front();
  // ...and once xocl has it back, xocl shows the design the card holds.
  MoveUserPf(0, "");
  EXPECT_EQ(ScanCard(0).user_driver, "xocl");
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(XbmgmtProgrammerTest, ResetClearsTheCard) {
  ASSERT_TRUE(xbmgmt_.Load(Card(1), Xclbin(kCompatible), kGenerous).ok());
  ASSERT_TRUE(xbmgmt_.Load(Card(2), Xclbin(kCompatible), kGenerous).ok());
  EXPECT_EQ(ScanCard(1).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
  Status reset = xbmgmt_.Reset(Card(1), kGenerous);
  ASSERT_TRUE(reset.ok()) << reset.ToString();
  EXPECT_EQ(ScanCard(1).loaded_xclbin_uuid, "");
  EXPECT_EQ(ScanCard(2).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(XbmgmtProgrammerTest, AnotherShellsXclbinIsIncompatible) {
  Status s = xbmgmt_.Load(Card(0), Xclbin(kIncompatible), kGenerous);
  EXPECT_EQ(s.reason(), kReasonXclbinIncompatible) << s.ToString();
  EXPECT_NE(s.message().find("interface uuids do not match"), std::string_view::npos);
}

TEST_F(XbmgmtProgrammerTest, MissingToolIsXrtUnavailable) {
  testing::TempDir dir;
  XbmgmtProgrammer missing(dir / "xbmgmt");
  Status load = missing.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(load.code(), StatusCode::kUnavailable) << load.ToString();
  EXPECT_EQ(load.reason(), kReasonXrtUnavailable);
  EXPECT_EQ(missing.Reset(Card(0), kGenerous).reason(), kReasonXrtUnavailable);
}

TEST_F(XbmgmtProgrammerTest, InjectedFaultsComeBackWithTheirReasons) {
  Inject(0, emu::FaultKind::kLoadFail);
  Status failed = xbmgmt_.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(failed.reason(), kReasonLoadFailed) << failed.ToString();
  EXPECT_NE(failed.message().find("bitstream download failed"), std::string_view::npos);

  Inject(1, emu::FaultKind::kRemove);
  EXPECT_EQ(xbmgmt_.Load(Card(1), Xclbin(kCompatible), kGenerous).reason(), kReasonCardNotFound);
  EXPECT_EQ(xbmgmt_.Reset(Card(1), kGenerous).reason(), kReasonCardNotFound);

  // Card 2 is unaffected by either.
  EXPECT_TRUE(xbmgmt_.Load(Card(2), Xclbin(kCompatible), kGenerous).ok());
  EXPECT_TRUE(xbmgmt_.Reset(Card(2), kGenerous).ok());
}

TEST_F(XbmgmtProgrammerTest, TimeoutKillsTheTool) {
  Inject(0, emu::FaultKind::kLoadTimeout);
  Status s = xbmgmt_.Load(Card(0), Xclbin(kCompatible), 300ms);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_EQ(s.reason(), kReasonLoadTimeout);
  // The killed tool no longer holds the card's load lock.
  StatusOr<std::optional<emu::FileLock>> lock =
      emu::FileLock::TryAcquire(emu::CardDir(Root(), emu::EmulatedMgmtBdf(0)) / "load.lock");
  ASSERT_TRUE(lock.ok());
  EXPECT_TRUE(lock->has_value());
  lock->reset();
  // A reset clears the hung state; loads work again.
  ASSERT_TRUE(xbmgmt_.Reset(Card(0), kGenerous).ok());
  EXPECT_TRUE(xbmgmt_.Load(Card(0), Xclbin(kCompatible), kGenerous).ok());
}

}  // namespace
}  // namespace fpgahost::fpga
