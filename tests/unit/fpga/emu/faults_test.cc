#include "fpga/emu/faults.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "fpga/emu/emu_area.h"
#include "fpga/emu/emulated_card.h"
#include "tests/unit/fpga/emulated_fleet_test_base.h"

namespace fpgahost::fpga::emu {
namespace {

class FaultsTest : public EmulatedFleetTest {
 protected:
  std::string Inject(std::string_view card, FaultKind kind,
                     std::optional<double> value = std::nullopt) {
    StatusOr<std::string> done = InjectFault(Root(), card, kind, value);
    EXPECT_TRUE(done.ok()) << done.status().ToString();
    return done.ok() ? *done : "";
  }
  EmulatedCard Emulated(int i) {
    StatusOr<EmulatedCard> card = EmulatedCard::Find(Root(), EmulatedMgmtBdf(i));
    EXPECT_TRUE(card.ok()) << card.status().ToString();
    return *card;
  }
  // The fixture's xclbin bytes (loads through EmulatedCard directly).
  std::string Bytes(const std::string& name) {
    StatusOr<std::string> bytes = ReadFile(Xclbin(name));
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    return bytes.ok() ? *bytes : "";
  }
  static std::span<const uint8_t> Span(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }
  // Waits until a load on card `i` has started (and so has seen the faults).
  void WaitUntilLoading(int i) {
    for (int tries = 0; tries < 10'000; ++tries) {
      StatusOr<CardState> state = ReadCardState(Root(), EmulatedMgmtBdf(i));
      if (state.ok() && state->loading) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    FAIL() << "no load started on card " << i;
  }
};

TEST_F(FaultsTest, KindsHaveNames) {
  for (std::string_view name :
       {"load-fail", "load-timeout", "slow-load", "overheat", "power", "remove", "clear"}) {
    StatusOr<FaultKind> kind = ParseFaultKind(name);
    ASSERT_TRUE(kind.ok()) << name;
    EXPECT_EQ(FaultKindName(*kind), name);
  }
  StatusOr<FaultKind> bad = ParseFaultKind("meltdown");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("overheat"), std::string_view::npos);
}

TEST_F(FaultsTest, SensorFaultsShowInDiscoveryAndClearUndoesThem) {
  EXPECT_NE(Inject(CardId(0), FaultKind::kOverheat).find("105"), std::string::npos);
  Inject(EmulatedUserBdf(1), FaultKind::kPower, 300);  // a PF's BDF names the card too
  Inject(EmulatedMgmtBdf(2), FaultKind::kOverheat, 90);

  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 3u);
  EXPECT_EQ(cards[0].temperature_c, 105.0);
  EXPECT_EQ(cards[0].power_w, 36.0);
  EXPECT_EQ(cards[1].temperature_c, 45.0);
  ASSERT_TRUE(cards[1].power_w.has_value());
  EXPECT_NEAR(*cards[1].power_w, 300.0, 0.1);
  EXPECT_EQ(cards[2].temperature_c, 90.0);
  for (const CardInfo& card : cards) EXPECT_TRUE(card.problems.empty()) << card.problems[0];

  Inject(CardId(0), FaultKind::kClear);
  Inject(CardId(1), FaultKind::kClear);
  cards = Scan();
  EXPECT_EQ(cards[0].temperature_c, 45.0);
  EXPECT_EQ(cards[1].power_w, 36.0);
  EXPECT_EQ(cards[2].temperature_c, 90.0);  // not cleared
}

TEST_F(FaultsTest, SurpriseRemovalAndClear) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  ASSERT_TRUE(Emulated(1).Load(Span(Bytes(kCompatible)), LoadPath::kUserPf).ok());
  Inject(CardId(1), FaultKind::kRemove);
  std::vector<CardInfo> cards = Scan();
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[0].mgmt_bdf, EmulatedMgmtBdf(0));
  EXPECT_EQ(cards[1].mgmt_bdf, EmulatedMgmtBdf(2));
  EXPECT_NE(Inject(CardId(1), FaultKind::kRemove).find("already"), std::string::npos);
  // Sensors cannot be faked on a card that is not there.
  EXPECT_EQ(InjectFault(Root(), CardId(1), FaultKind::kOverheat).status().code(),
            StatusCode::kFailedPrecondition);

  Inject(CardId(1), FaultKind::kClear);
  cards = Scan();
  ASSERT_EQ(cards.size(), 3u);
  EXPECT_EQ(cards[1].mgmt_driver, "xclmgmt");
  EXPECT_EQ(cards[1].user_driver, "xocl");
  EXPECT_TRUE(cards[1].problems.empty()) << cards[1].problems[0];
  // What the card held survives the removal.
  EXPECT_EQ(cards[1].loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(FaultsTest, LoadFailFailsTheNextLoads) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  std::string xclbin = Bytes(kCompatible);
  Inject(CardId(0), FaultKind::kLoadFail, 2);
  EmulatedCard card = Emulated(0);
  for (int i = 0; i < 2; ++i) {
    DriverResult r = card.Load(Span(xclbin), i == 0 ? LoadPath::kUserPf : LoadPath::kMgmtPf);
    EXPECT_EQ(r.error, EIO) << r.message;
  }
  EXPECT_TRUE(card.Load(Span(xclbin), LoadPath::kUserPf).ok());
  EXPECT_TRUE(Emulated(1).Load(Span(xclbin), LoadPath::kUserPf).ok());
}

TEST_F(FaultsTest, SlowLoadSetsTheCardsLoadTime) {
  Inject(CardId(2), FaultKind::kSlowLoad, 50);
  StatusOr<CardState> state = ReadCardState(Root(), EmulatedMgmtBdf(2));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->faults.load_ms, 50);
  EXPECT_EQ(ReadCardState(Root(), EmulatedMgmtBdf(1))->faults.load_ms, std::nullopt);
  if (std::filesystem::is_directory(testing::SharedFixturesDir())) {
    EXPECT_TRUE(Emulated(2).Load(Span(Bytes(kCompatible)), LoadPath::kMgmtPf).ok());
  }
  Inject(CardId(2), FaultKind::kClear);
  EXPECT_EQ(ReadCardState(Root(), EmulatedMgmtBdf(2))->faults, CardFaults{});
}

TEST_F(FaultsTest, HungLoadEndsWithAResetOrWhenCleared) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  std::string xclbin = Bytes(kCompatible);
  Inject(CardId(0), FaultKind::kLoadTimeout);
  EmulatedCard card = Emulated(0);

  // A reset abandons it.
  auto hung =
      std::async(std::launch::async, [&] { return card.Load(Span(xclbin), LoadPath::kUserPf); });
  WaitUntilLoading(0);
  ASSERT_TRUE(card.Reset().ok());
  DriverResult abandoned = hung.get();
  EXPECT_EQ(abandoned.error, EIO) << abandoned.message;
  EXPECT_TRUE(card.Load(Span(xclbin), LoadPath::kUserPf).ok());  // the reset cleared the fault

  // Clearing the fault lets a hung load finish.
  Inject(CardId(0), FaultKind::kLoadTimeout);
  auto waiting =
      std::async(std::launch::async, [&] { return card.Load(Span(xclbin), LoadPath::kMgmtPf); });
  WaitUntilLoading(0);
  Inject(CardId(0), FaultKind::kClear);
  DriverResult finished = waiting.get();
  EXPECT_TRUE(finished.ok()) << finished.message;
  EXPECT_EQ(ScanCard(0).loaded_xclbin_uuid, UuidOf(Xclbin(kCompatible)));
}

TEST_F(FaultsTest, BadRequestsAreRefused) {
  EXPECT_EQ(InjectFault(Root(), "card-0000-99-00-0", FaultKind::kRemove).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(InjectFault(Root(), "nonsense", FaultKind::kRemove).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(InjectFault(Root(), CardId(0), FaultKind::kRemove, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(InjectFault(Root(), CardId(0), FaultKind::kOverheat, 1000).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(InjectFault(Root(), CardId(0), FaultKind::kSlowLoad).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(InjectFault(Root(), CardId(0), FaultKind::kLoadFail, 0.5).status().code(),
            StatusCode::kInvalidArgument);
  testing::TempDir not_a_fleet;
  Status s = InjectFault(not_a_fleet.path(), CardId(0), FaultKind::kClear).status();
  EXPECT_EQ(s.reason(), kReasonNotAnEmulatedFleet);
}

}  // namespace
}  // namespace fpgahost::fpga::emu
