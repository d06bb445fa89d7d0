// XrtProgrammer against the real libxrt_emu.so, opened with dlopen as XRT's library would be.
#include "fpga/xrt_programmer.h"

#include <gtest/gtest.h>

#include <thread>

#include "fpga/emu/emulated_card.h"
#include "fpga/emu/faults.h"
#include "tests/unit/fpga/emulated_fleet_test_base.h"

namespace fpgahost::fpga {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kGenerous = 30s;

class XrtProgrammerTest : public EmulatedFleetTest {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    EmulatedFleetTest::SetUp();
  }

  XrtProgrammer xrt_{FPGAHOST_XRT_EMU_LIBRARY};
};

TEST_F(XrtProgrammerTest, LoadsAndDiscoveryReadsTheUuidBack) {
  EXPECT_EQ(xrt_.name(), "xrt");
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, "");

  Status loaded = xrt_.Load(Card(0), Xclbin(kCompatible), kGenerous);
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 3u);
  EXPECT_EQ(cards[0].loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
  EXPECT_EQ(cards[1].loaded_xclbin_uuid, "");  // other cards untouched
  EXPECT_EQ(cards[2].loaded_xclbin_uuid, "");

  // Another image replaces it; the same one again is a load too.
  ASSERT_TRUE(xrt_.Load(Card(0), Xclbin(kAlsoCompatible), kGenerous).ok());
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, UuidOf(Xclbin(kAlsoCompatible)));
  ASSERT_TRUE(xrt_.Load(Card(0), Xclbin(kAlsoCompatible), kGenerous).ok());
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, UuidOf(Xclbin(kAlsoCompatible)));
}

TEST_F(XrtProgrammerTest, AnotherShellsXclbinIsIncompatible) {
  ASSERT_TRUE(xrt_.Load(Card(1), Xclbin(kCompatible), kGenerous).ok());
  Status s = xrt_.Load(Card(1), Xclbin(kIncompatible), kGenerous);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.reason(), kReasonXclbinIncompatible);
  // The driver refused before touching the card.
  EXPECT_EQ(ScanCard(1).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(XrtProgrammerTest, UserPfWithVfioCannotBeOpened) {
  MoveUserPf(0, "vfio-pci");
  Status s = xrt_.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(s.reason(), kReasonCardNotFound) << s.ToString();
  EXPECT_NE(s.message().find(emu::EmulatedUserBdf(0)), std::string_view::npos);
}

TEST_F(XrtProgrammerTest, MissingLibraryIsXrtUnavailableAndRetried) {
  testing::TempDir dir;
  std::filesystem::path path = dir / "libxrt_coreutil.so";
  XrtProgrammer xrt(path);
  Status s = xrt.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.reason(), kReasonXrtUnavailable);
  EXPECT_NE(s.message().find(path.string()), std::string_view::npos) << s.message();
  // Installed later: the next call finds it.
  std::filesystem::copy_file(FPGAHOST_XRT_EMU_LIBRARY, path);
  Status again = xrt.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_TRUE(again.ok()) << again.ToString();
}

TEST_F(XrtProgrammerTest, LibraryWithoutXrtSymbolsIsXrtUnavailable) {
  XrtProgrammer xrt("libm.so.6");
  Status s = xrt.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(s.reason(), kReasonXrtUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("xrtDeviceOpenByBDF"), std::string_view::npos) << s.message();
}

TEST_F(XrtProgrammerTest, InjectedLoadFailureIsLoadFailed) {
  Inject(2, emu::FaultKind::kLoadFail);
  Status s = xrt_.Load(Card(2), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_EQ(s.reason(), kReasonLoadFailed);
  EXPECT_NE(s.message().find("Input/output error"), std::string_view::npos) << s.message();
  EXPECT_EQ(ScanCard(2).loaded_xclbin_uuid, "");
  // One failure was asked for; the next load works.
  EXPECT_TRUE(xrt_.Load(Card(2), Xclbin(kCompatible), kGenerous).ok());
}

TEST_F(XrtProgrammerTest, RemovedCardIsNotFound) {
  Inject(1, emu::FaultKind::kRemove);
  Status s = xrt_.Load(Card(1), Xclbin(kCompatible), kGenerous);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_EQ(s.reason(), kReasonCardNotFound);
  // The other cards still load.
  EXPECT_TRUE(xrt_.Load(Card(0), Xclbin(kCompatible), kGenerous).ok());
}

TEST_F(XrtProgrammerTest, HungLoadTimesOutAndAResetReleasesIt) {
  Inject(0, emu::FaultKind::kLoadTimeout);
  Status s = xrt_.Load(Card(0), Xclbin(kCompatible), 200ms);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_EQ(s.reason(), kReasonLoadTimeout);
  // Other cards are not held up by the hung one.
  EXPECT_TRUE(xrt_.Load(Card(1), Xclbin(kCompatible), kGenerous).ok());

  // A reset abandons the hung load (the abandoned worker finishes by itself) and clears the
  // fault; the card loads again.
  StatusOr<emu::EmulatedCard> card = emu::EmulatedCard::Find(Root(), emu::EmulatedMgmtBdf(0));
  ASSERT_TRUE(card.ok());
  ASSERT_TRUE(card->Reset().ok());
  Status after = xrt_.Load(Card(0), Xclbin(kCompatible), kGenerous);
  EXPECT_TRUE(after.ok()) << after.ToString();
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(XrtProgrammerTest, ConcurrentLoadsOnDifferentCards) {
  std::vector<Status> results(kCards);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCards; ++i) {
    threads.emplace_back([&, i] {
      results[static_cast<size_t>(i)] = xrt_.Load(Card(i), Xclbin(kCompatible), kGenerous);
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  for (const CardInfo& card : Scan()) {
    EXPECT_EQ(card.loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
  }
}

}  // namespace
}  // namespace fpgahost::fpga
