// The cards API end to end: the real fpgahostd on an emulated fleet made by `fpgahost emu
// init`, loading through the real libxrt_emu.so (dlopen) and the emulated xbmgmt, faults
// injected with `fpgahost emu fault`, and `card validate` running the example designs' kernels
// on PoCL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/json.h"
#include "examples/examples_dir.h"
#include "fpga/emu/sysfs_tree.h"
#include "host/instances/store_binding_journal.h"
#include "host/store/state_store.h"
#include "tests/support/daemon_under_test.h"
#include "tests/support/fixtures.h"
#include "tests/support/fleet_daemon_test.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using testing::BinaryPath;
using testing::DaemonUnderTest;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunResult;

constexpr char kCard0[] = "card-0000-10-00-0";
constexpr char kCard1[] = "card-0000-11-00-0";

class CardTest : public testing::FleetDaemonTest {
 protected:
  Json Card(const std::string& id) { return Get("/v1/cards/" + id); }

  // Polls the card until `done` holds (up to 60 s).
  template <typename Pred>
  Json WaitFor(const std::string& id, Pred done) {
    return Poll("/v1/cards/" + id, done);
  }

  Json WaitIdle(const std::string& id) {
    return WaitFor(id, [](const Json& c) { return c["operation"] == "idle"; });
  }

  std::string Upload(const std::string& fixture) {
    return UploadFile(testing::SharedFixturesDir() / "xclbin" / (fixture + ".xclbin"));
  }

  std::vector<std::string> ReasonCodes(const Json& card) {
    std::vector<std::string> codes;
    for (const Json& r : card["health"]["reasons"]) codes.push_back(r["code"]);
    return codes;
  }
};

TEST_F(CardTest, OperatorListsTheFleetCustomersCannot) {
  StartDaemon();
  Json cards = Get("/v1/cards")["cards"];
  ASSERT_EQ(cards.size(), 4u);
  const Json& c = cards[0];
  EXPECT_EQ(c["id"], kCard0);
  EXPECT_EQ(c["present"], true);
  EXPECT_EQ(c["shell"]["name"], "u250-gen3x16-xdma-4.1");
  EXPECT_EQ(c["mgmt_pf"]["driver"], "xclmgmt");
  EXPECT_EQ(c["user_pf"]["driver"], "xocl");
  EXPECT_EQ(c["health"]["state"], "healthy") << c.dump(2);
  EXPECT_EQ(c["admin_state"], "active");
  EXPECT_EQ(c["assignment"], "free");
  EXPECT_EQ(c["image"]["state"], "cleared");
  EXPECT_GT(c["sensors"]["fpga_temp_c"].get<double>(), 0);
  EXPECT_GT(c["sensors"]["power_w"].get<double>(), 0);

  http::ClientResponse denied = daemon_->Call("GET", "/v1/cards", daemon_->Token("demo"));
  EXPECT_EQ(denied.status, 403u);
  EXPECT_THAT(denied.body, HasSubstr("OPERATOR_ONLY"));
  EXPECT_EQ(daemon_->Call("GET", "/v1/cards/card-0000-99-00-0", op_).status, 404u);

  RunResult list = Cli({"card", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr(kCard1));
  EXPECT_THAT(list.out, HasSubstr("healthy"));
}

TEST_F(CardTest, LoadsAndClearsAnUploadedImage) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon();
  std::string image = Upload("02_full_hw");
  http::ClientResponse started =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}});
  ASSERT_EQ(started.status, 202u) << started.body;
  EXPECT_EQ(Json::parse(started.body)["operation"], "loading");
  Json card = WaitIdle(kCard0);
  EXPECT_EQ(card["image"]["state"], "loaded") << card.dump(2);
  EXPECT_EQ(card["image"]["image_id"], image);
  EXPECT_EQ(card["image"]["xclbin_uuid"], "01234567-89ab-cdef-0123-456789abcdef");

  // The same image again changes nothing and answers at once.
  http::ClientResponse again =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}});
  EXPECT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(Json::parse(again.body)["image"]["state"], "loaded");

  RunResult clear = Cli({"card", "clear", kCard0, "--wait"});
  ASSERT_EQ(clear.exit_code, 0) << clear.err;
  card = Card(kCard0);
  EXPECT_EQ(card["image"]["state"], "cleared");
  EXPECT_TRUE(card["image"]["xclbin_uuid"].is_null());

  Json events = Get(std::string("/v1/events?subject=") + kCard0 + "&kind=card.load")["events"];
  ASSERT_EQ(events.size(), 3u) << events.dump(2);  // loading, loaded, no-op
  EXPECT_EQ(events[1]["detail"]["state"], "loaded");
  EXPECT_EQ(events[1]["detail"]["programmer"], "xrt");
  EXPECT_EQ(events[2]["detail"]["noop"], true);

  // Bad requests name the field and change nothing.
  http::ClientResponse bad = Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image", 1}});
  EXPECT_EQ(bad.status, 400u);
  EXPECT_THAT(bad.body, HasSubstr("image"));
  http::ClientResponse missing =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", "img-00000000000000000"}});
  EXPECT_EQ(missing.status, 404u);
  http::ClientResponse empty =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", ""}});
  EXPECT_EQ(empty.status, 400u);
  EXPECT_THAT(empty.body, HasSubstr("image_id"));
  EXPECT_EQ(Card(kCard0)["image"]["state"], "cleared");
}

TEST_F(CardTest, AnImageForAnotherShellIsRefused) {
  StartDaemon();
  fs::path u280 = dir_.path() / "vadd_u280.xclbin";
  RunResult pack =
      Cli({"xclbin", "pack", "--shell", "u280-gen3x16-xdma-1", "--kernel-source",
           std::string(FPGAHOST_SOURCE_DIR) + "/examples/vadd/vadd.cl", "--out", u280.string()});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  std::string image = UploadFile(u280);
  http::ClientResponse refused =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}});
  EXPECT_EQ(refused.status, 409u) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("XCLBIN_INCOMPATIBLE"));
  EXPECT_THAT(refused.body, HasSubstr("xilinx_u280"));
  EXPECT_EQ(Card(kCard0)["image"]["state"], "cleared");
}

TEST_F(CardTest, ACardWhoseUserPfIsInAVmLoadsThroughXbmgmt) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  // Give the user PF to vfio-pci the way the VFIO code does, through the emulated kernel.
  fpga::emu::EmulatedSysfs sysfs(Fleet());
  ASSERT_TRUE(
      sysfs.WriteAttribute("bus/pci/devices/0000:10:00.1/driver_override", "vfio-pci").ok());
  ASSERT_TRUE(sysfs.WriteAttribute("bus/pci/drivers/xocl/unbind", "0000:10:00.1").ok());
  ASSERT_TRUE(sysfs.WriteAttribute("bus/pci/drivers_probe", "0000:10:00.1").ok());
  StartDaemon();
  EXPECT_EQ(Card(kCard0)["user_pf"]["driver"], "vfio-pci");
  std::string image = Upload("02_full_hw");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  Json card = WaitIdle(kCard0);
  EXPECT_EQ(card["image"]["state"], "loaded") << card.dump(2);
  Json events = Get(std::string("/v1/events?kind=card.load&subject=") + kCard0)["events"];
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["detail"]["programmer"], "xbmgmt");
}

TEST_F(CardTest, ALoadInterruptedByACrashIsRepairedAtStart) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon();
  std::string image = Upload("02_full_hw");
  Fault(kCard0, "slow-load", "20000");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  daemon_->process().Signal(SIGKILL);
  daemon_->process().Wait();
  Fault(kCard0, "clear");
  StartDaemon();
  Json card = Card(kCard0);
  EXPECT_EQ(card["operation"], "idle");
  EXPECT_EQ(card["image"]["state"], "load_failed") << card.dump(2);
  EXPECT_EQ(card["last_error"]["code"], "INTERRUPTED");
  // And the card works.
  RunResult load = Cli({"card", "load", kCard0, image, "--wait"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
}

TEST_F(CardTest, AHalfDoneVfioBindingIsRepairedAtStart) {
  StartDaemon();
  daemon_.reset();
  // A crash in the middle of giving card 1's user PF to vfio-pci: the journal says a bind
  // began, the device is already off xocl with its override set.
  {
    StatusOr<std::unique_ptr<StateStore>> store =
        StateStore::Open((dir_.path() / "data" / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    StoreBindingJournal journal(**store, RealClock());
    ASSERT_TRUE(
        journal
            .Put({"0000:11:00.1", vfio::BindingJournalEntry::Operation::kBind, "xocl", "2", false})
            .ok());
  }
  fpga::emu::EmulatedSysfs sysfs(Fleet());
  ASSERT_TRUE(
      sysfs.WriteAttribute("bus/pci/devices/0000:11:00.1/driver_override", "vfio-pci").ok());
  ASSERT_TRUE(sysfs.WriteAttribute("bus/pci/drivers/xocl/unbind", "0000:11:00.1").ok());

  StartDaemon();
  Json card = Card(kCard1);
  EXPECT_EQ(card["user_pf"]["driver"], "xocl") << card.dump(2);
  EXPECT_EQ(card["health"]["state"], "healthy");
  EXPECT_EQ(sysfs.ReadAttribute("bus/pci/devices/0000:11:00.1/driver_override").value_or("?"),
            "(null)");
}

TEST_F(CardTest, OverheatingMakesACardUnhealthyAndRefuseWork) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon();
  std::string image = Upload("02_full_hw");
  Fault(kCard1, "overheat");
  Json card = WaitFor(kCard1, [](const Json& c) { return c["health"]["state"] == "unhealthy"; });
  EXPECT_THAT(ReasonCodes(card), ::testing::ElementsAre("TEMPERATURE_CRITICAL"));
  EXPECT_EQ(card["sensors"]["fpga_temp_c"], 105.0);

  http::ClientResponse refused =
      Post(std::string("/v1/cards/") + kCard1 + "/load", {{"image_id", image}});
  EXPECT_EQ(refused.status, 409u) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("CARD_UNHEALTHY"));
  EXPECT_THAT(refused.body, HasSubstr("105 C"));
  // The others are unaffected.
  EXPECT_EQ(Card(kCard0)["health"]["state"], "healthy");
  EXPECT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);

  Json events = Get(std::string("/v1/events?kind=card.health&subject=") + kCard1)["events"];
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["detail"]["to"], "unhealthy");

  Fault(kCard1, "clear");
  WaitFor(kCard1, [](const Json& c) { return c["health"]["state"] == "healthy"; });
}

TEST_F(CardTest, PowerOverLimitAndGarbledSensors) {
  StartDaemon();
  Fault(kCard0, "power", "300");
  Json card = WaitFor(kCard0, [](const Json& c) { return c["health"]["state"] == "unhealthy"; });
  EXPECT_THAT(ReasonCodes(card), ::testing::ElementsAre("POWER_OVER_LIMIT"));

  // A sensor file with garbage in it: the card says which file, nothing else breaks.
  fs::path xmc;
  for (const auto& e : fs::directory_iterator(Fleet() / "bus/pci/devices/0000:11:00.0")) {
    if (e.path().filename().string().starts_with("xmc.")) xmc = e.path();
  }
  ASSERT_FALSE(xmc.empty());
  std::ofstream(xmc / "xmc_fpga_temp") << "garbage\n";
  card = WaitFor(kCard1, [](const Json& c) { return c["health"]["state"] == "degraded"; });
  EXPECT_THAT(ReasonCodes(card), ::testing::Contains("SENSOR_UNREADABLE"));
  EXPECT_THAT(card["problems"].dump(), HasSubstr("xmc_fpga_temp"));
  EXPECT_EQ(Card("card-0000-12-00-0")["health"]["state"], "healthy");
}

TEST_F(CardTest, ATrippedFirewallNeedsAReset) {
  StartDaemon();
  EXPECT_EQ(Card(kCard0)["sensors"]["firewall_status"], 0);
  Fault(kCard0, "firewall");
  Json card = WaitFor(kCard0, [](const Json& c) { return c["health"]["state"] == "unhealthy"; });
  EXPECT_THAT(ReasonCodes(card), ::testing::ElementsAre("FIREWALL_TRIPPED"));
  EXPECT_EQ(card["sensors"]["firewall_status"], 0x80000);
  // A hot reset re-arms it, as on a real card.
  RunResult reset = Cli({"card", "reset", kCard0, "--wait"});
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  WaitFor(kCard0, [](const Json& c) { return c["health"]["state"] == "healthy"; });
}

TEST_F(CardTest, LoadFailureIsKeptWithItsReason) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon();
  std::string image = Upload("02_full_hw");
  Fault(kCard0, "load-fail");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  Json card = WaitIdle(kCard0);
  EXPECT_EQ(card["image"]["state"], "load_failed") << card.dump(2);
  EXPECT_EQ(card["last_error"]["code"], "LOAD_FAILED");
  EXPECT_FALSE(card["last_error"]["message"].get<std::string>().empty());
  EXPECT_EQ(card["health"]["state"], "healthy");

  RunResult cli = Cli({"card", "load", kCard0, image, "--wait"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;  // the injected failure was for one load
  EXPECT_EQ(Card(kCard0)["image"]["state"], "loaded");
}

TEST_F(CardTest, ATimedOutLoadNeedsAReset) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon({{"--card-load-timeout", "1"}});
  std::string image = Upload("02_full_hw");
  Fault(kCard0, "load-timeout");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  Json card = WaitIdle(kCard0);
  EXPECT_EQ(card["image"]["state"], "load_failed");
  EXPECT_EQ(card["last_error"]["code"], "LOAD_TIMEOUT");
  EXPECT_THAT(ReasonCodes(card), ::testing::Contains("LOAD_HUNG"));
  EXPECT_EQ(card["health"]["state"], "unhealthy");

  RunResult reset = Cli({"card", "reset", kCard0, "--wait"});
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  card = WaitFor(kCard0, [](const Json& c) { return c["health"]["state"] == "healthy"; });
  EXPECT_EQ(card["image"]["state"], "cleared");
}

TEST_F(CardTest, ANewCardAppearsWithoutARestart) {
  StartDaemon();
  ASSERT_EQ(Get("/v1/cards")["cards"].size(), 4u);
  // The fleet grows under the running daemon, as a hot-plugged card would appear.
  RunResult grow = Cli({"emu", "init", Fleet().string(), "--cards", "5", "--load-ms", "0"});
  ASSERT_EQ(grow.exit_code, 0) << grow.err;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (Get("/v1/cards")["cards"].size() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Card("card-0000-14-00-0")["health"]["state"], "healthy");
  Json events = Get("/v1/events?kind=card.discovered&subject=card-0000-14-00-0")["events"];
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(CardTest, SurpriseRemovalMarksTheCardGoneNotForgotten) {
  StartDaemon();
  Fault(kCard1, "remove");
  Json card = WaitFor(kCard1, [](const Json& c) { return c["present"] == false; });
  EXPECT_EQ(card["health"]["state"], "unhealthy");
  EXPECT_THAT(ReasonCodes(card), ::testing::ElementsAre("CARD_GONE"));
  EXPECT_EQ(Get("/v1/cards")["cards"].size(), 4u);
  http::ClientResponse refused = Post(std::string("/v1/cards/") + kCard1 + "/validate");
  EXPECT_EQ(refused.status, 409u);
  EXPECT_THAT(refused.body, HasSubstr("CARD_GONE"));
  EXPECT_EQ(Card(kCard0)["health"]["state"], "healthy");

  Fault(kCard1, "clear");  // a rescan brings it back
  card = WaitFor(kCard1, [](const Json& c) { return c["present"] == true; });
  WaitFor(kCard1, [](const Json& c) { return c["health"]["state"] == "healthy"; });
  Json events = Get(std::string("/v1/events?kind=card&subject=") + kCard1)["events"];
  std::vector<std::string> kinds;
  for (const Json& e : events) kinds.push_back(e["kind"]);
  EXPECT_THAT(kinds, ::testing::IsSupersetOf({"card.discovered", "card.gone", "card.returned"}));
}

TEST_F(CardTest, OneOperationPerCardAndDrain) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon({{"--card-load-timeout", "60"}});
  std::string image = Upload("02_full_hw");
  Fault(kCard0, "slow-load", "3000");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  http::ClientResponse busy = Post(std::string("/v1/cards/") + kCard0 + "/clear");
  EXPECT_EQ(busy.status, 409u);
  EXPECT_THAT(busy.body, HasSubstr("CARD_BUSY"));

  // Draining a busy card waits for the operation; then no new work is taken.
  Json drained = Json::parse(Post(std::string("/v1/cards/") + kCard0 + "/drain").body);
  EXPECT_EQ(drained["admin_state"], "draining");
  Json card = WaitFor(kCard0, [](const Json& c) { return c["admin_state"] == "drained"; });
  EXPECT_EQ(card["image"]["state"], "loaded");
  http::ClientResponse refused =
      Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", Upload("03_clock_freq")}});
  EXPECT_EQ(refused.status, 409u);
  EXPECT_THAT(refused.body, HasSubstr("CARD_DRAINED"));

  // The state survives a restart.
  StartDaemon();
  card = Card(kCard0);
  EXPECT_EQ(card["admin_state"], "drained");
  EXPECT_EQ(card["image"]["image_id"], image);
  RunResult undrain = Cli({"card", "undrain", kCard0});
  EXPECT_EQ(undrain.exit_code, 0) << undrain.err;
  EXPECT_EQ(Card(kCard0)["admin_state"], "active");
}

TEST_F(CardTest, MissingXrtIsACardLevelError) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  StartDaemon({{"--xrt-library", "/nonexistent/libxrt_coreutil.so.2"}});
  std::string image = Upload("02_full_hw");
  ASSERT_EQ(Post(std::string("/v1/cards/") + kCard0 + "/load", {{"image_id", image}}).status, 202u);
  Json card = WaitIdle(kCard0);
  EXPECT_EQ(card["image"]["state"], "load_failed");
  EXPECT_EQ(card["last_error"]["code"], "XRT_UNAVAILABLE");
  EXPECT_THAT(card["last_error"]["message"].get<std::string>(), HasSubstr("/nonexistent"));
  EXPECT_EQ(Get("/v1/health")["status"], "ok");
}

TEST_F(CardTest, ValidateRunsTheVerificationDesignsOnTheCard) {
  StartDaemon({{"--card-validate-timeout", "300"}});
  RunResult r = Cli({"card", "validate", kCard0});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("[PASSED]"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("[FAILED]")));

  Json card = Card(kCard0);
  const Json& v = card["validation"];
  EXPECT_EQ(v["state"], "passed") << v.dump(2);
  std::set<std::string> designs;
  bool measured_bandwidth = false;
  for (const Json& t : v["tests"]) {
    EXPECT_TRUE(t["passed"].get<bool>()) << t.dump();
    if (t.contains("design")) designs.insert(t["design"]);
    if (t.contains("bandwidth_mb_s") && t["bandwidth_mb_s"].get<double>() > 0) {
      measured_bandwidth = true;
    }
  }
  EXPECT_EQ(designs, (std::set<std::string>{"hello", "bandwidth"}));
  EXPECT_TRUE(measured_bandwidth) << v.dump(2);
  EXPECT_EQ(card["image"]["state"], "cleared");  // validation leaves the card clean
}

}  // namespace
}  // namespace fpgahost
