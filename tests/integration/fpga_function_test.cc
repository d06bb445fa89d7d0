// FPGA functions against the real fpgahostd on the emulated fleet, with real bubblewrap slots:
// a function declaring an image runs in slots that each hold a card lent from the host's
// account with that image loaded, preferring a card that holds it already, taking an idle FPGA
// slot's card when none is free, loading ahead on a pre-warm notification, and giving cards back
// when slots retire (or after a crash, at start-up).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <future>
#include <iostream>
#include <set>
#include <string>
#include <thread>

#include "common/base64.h"
#include "common/files.h"
#include "common/json.h"
#include "common/status.h"
#include "examples/examples_dir.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/function_daemon_test.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using testing::Function;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Answers with what the slot was given: its card, image and the xclbin's digest as read
// inside the sandbox; sleeps for the event's "sleep" seconds first.
constexpr char kCardProbe[] = R"(
while true; do
  next
  [[ $event =~ \"sleep\":([0-9.]+) ]] && sleep "${BASH_REMATCH[1]}"
  sum=$(sha256sum "$FPGAHOST_XCLBIN" | cut -d' ' -f1)
  respond "{\"device\":\"$FPGAHOST_FPGA_DEVICE\",\"card\":\"$FPGAHOST_CARD_ID\",\"image\":\"$FPGAHOST_IMAGE_ID\",\"uuid\":\"$FPGAHOST_XCLBIN_UUID\",\"xclbin\":\"$FPGAHOST_XCLBIN\",\"sha256\":\"$sum\",\"init\":\"$AWS_LAMBDA_INITIALIZATION_TYPE\"}"
done
)";

class FpgaFunctionTest : public testing::FunctionDaemonTest {
 protected:
  void Start(std::map<std::string, std::string> overrides = {}) {
    overrides.emplace("--function-idle-timeout", "60");
    StartDaemon(overrides);
    demo_ = daemon_->Token("demo");
  }

  std::string Upload(const std::string& design, const std::string& token = "") {
    return UploadFile(fs::path(FPGAHOST_EXAMPLES_DIR) / design / (design + ".xclbin"),
                      token.empty() ? demo_ : token);
  }

  http::ClientResponse Create(const std::string& name, const std::string& image,
                              const std::string& zip = "", const std::string& token = "") {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "handler"},
                 {"MemorySize", 256},
                 {"Timeout", 60},
                 {"FpgaImage", image},
                 {"Code", {{"ZipFile", Base64Encode(zip.empty() ? Function(kCardProbe) : zip)}}}};
    return daemon_->Call("POST", "/2015-03-31/functions", token.empty() ? demo_ : token,
                         body.dump());
  }

  // The function's answer, with the request id added.
  Json Invoke(const std::string& name, const Json& event = Json::object()) {
    http::ClientResponse r = daemon_->Call("POST", "/2015-03-31/functions/" + name + "/invocations",
                                           demo_, event.dump());
    EXPECT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(r.headers.count("x-amz-function-error"), 0u) << r.body;
    Json answer = Json::parse(r.body, nullptr, false);
    EXPECT_TRUE(answer.is_object()) << r.body;
    if (!answer.is_object()) return Json::object();
    answer["request_id"] = r.headers["x-amzn-requestid"];
    return answer;
  }

  Json Card(const std::string& id) { return Get("/v1/cards/" + id); }

  // Drains every card but one and returns the one left.
  std::string LeaveOneCard() {
    Json cards = Get("/v1/cards")["cards"];
    EXPECT_EQ(cards.size(), 4u);
    for (size_t i = 1; i < cards.size(); ++i) {
      http::ClientResponse r = Post("/v1/cards/" + cards[i]["id"].get<std::string>() + "/drain");
      EXPECT_EQ(r.status, 200u) << r.body;
    }
    return cards[0]["id"];
  }
};

TEST_F(FpgaFunctionTest, SlotsRunOnALentCardWithTheImageAndGiveItBackWhenTheyRetire) {
  Start({{"--function-idle-timeout", "1"}});
  std::string image = Upload("vadd");
  Json described = Get("/v1/images/" + image, demo_);
  http::ClientResponse created = Create("probe", image);
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_EQ(Json::parse(created.body)["FpgaImage"], image);

  // The first call waits for a card and the image loaded on it; the slot sees the card's user
  // PF and the image's own bytes, read-only at a fixed path.
  Json first = Invoke("probe");
  std::string card = first["card"];
  ASSERT_THAT(card, StartsWith("card-"));
  Json view = Card(card);
  EXPECT_EQ(first["device"], view["user_pf"]["bdf"]);
  EXPECT_EQ(first["image"], image);
  EXPECT_EQ(first["uuid"], described["xclbin_uuid"]);
  EXPECT_EQ(first["xclbin"], "/opt/fpga/image.xclbin");
  EXPECT_EQ(first["sha256"], described["sha256"]);
  // The card is the slot's, in the ledger instances draw from, with the image loaded.
  EXPECT_THAT(view["assignment"].get<std::string>(), StartsWith("function:fn-"));
  EXPECT_EQ(view["image"]["state"], "loaded");
  EXPECT_EQ(view["image"]["image_id"], image);
  Json record = Record(first);
  EXPECT_EQ(record["start"], "cold");
  EXPECT_EQ(record["fpga_card"], card);
  Json slots = Slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0]["fpga"]["card"], card);
  EXPECT_EQ(slots[0]["fpga"]["image_id"], image);
  EXPECT_TRUE(slots[0]["fpga"]["loaded_for_slot"].get<bool>());
  // Warm: same slot, same card.
  Json second = Invoke("probe");
  EXPECT_EQ(second["card"], card);
  EXPECT_EQ(Record(second)["start"], "warm");

  // Idle past its timeout, the slot retires and the card is free again, image still loaded.
  Poll("/v1/cards/" + card, [](const Json& c) { return c["assignment"] == "free"; });
  EXPECT_TRUE(Slots().empty());
  EXPECT_EQ(Card(card)["image"]["image_id"], image);
  // The next slot prefers the card that holds the image: nothing is loaded for it.
  Json again = Invoke("probe");
  EXPECT_EQ(again["card"], card);
  Json record_again = Record(again);
  EXPECT_EQ(record_again["start"], "cold");
  EXPECT_EQ(record_again["image_load_ms"], 0);
  slots = Slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_FALSE(slots[0]["fpga"]["loaded_for_slot"].get<bool>());
}

TEST_F(FpgaFunctionTest, WithoutAFreeCardACallWaitsAndThenTakesAnIdleSlotsCard) {
  Start();
  std::string only = LeaveOneCard();
  ASSERT_EQ(Create("adder", Upload("vadd")).status, 201u);
  std::string hello = Upload("hello");
  ASSERT_EQ(Create("greeter", hello).status, 201u);

  // The adder's slot holds the only card through a 2 s call; the greeter's call, arriving
  // meanwhile, waits for it, then retires the adder's now idle slot and loads its own image.
  auto adder = std::async(std::launch::async, [&] { return Invoke("adder", {{"sleep", 2}}); });
  for (int i = 0; i < 200 && Card(only)["assignment"] == "free"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Json greeter = Invoke("greeter");
  Json added = adder.get();
  EXPECT_EQ(added["card"], only);
  EXPECT_EQ(greeter["card"], only);
  EXPECT_EQ(greeter["image"], hello);
  Json record = Record(greeter);
  EXPECT_EQ(record["fpga_card"], only);
  EXPECT_GT(record["queued_ms"].get<double>(), 0.0);
  EXPECT_EQ(Card(only)["image"]["image_id"], hello);
  Json slots = Slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0]["function"], "greeter");
}

TEST_F(FpgaFunctionTest, PrewarmLoadsTheImageAheadAndTheFirstCallDoesNotWaitForIt) {
  Start();
  // Every load takes a second on this fleet.
  Json all = Get("/v1/cards")["cards"];
  ASSERT_EQ(all.size(), 4u);
  for (const Json& c : all) Fault(c["id"], "slow-load", "1000");
  std::string image = Upload("vadd");
  ASSERT_EQ(Create("ahead", image).status, 201u);
  ASSERT_EQ(Create("behind", image).status, 201u);

  http::ClientResponse r =
      daemon_->Call("POST", "/v1/functions/ahead/prewarm", demo_, R"({"count": 2})");
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(Json::parse(r.body)["starting"], 2);
  ASSERT_TRUE(WaitForIdleSlots(2)) << Slots().dump();
  std::set<std::string> cards;
  for (const Json& s : Slots()) {
    EXPECT_TRUE(s["prewarmed"].get<bool>());
    cards.insert(s["fpga"]["card"].get<std::string>());
    EXPECT_EQ(Card(s["fpga"]["card"])["image"]["state"], "loaded");
  }
  EXPECT_EQ(cards.size(), 2u);  // a card each

  // The announced call finds the image loaded; the unannounced one waits for a load.
  Json announced = Invoke("ahead");
  EXPECT_EQ(announced["init"], "provisioned-concurrency");
  Json announced_record = Record(announced);
  EXPECT_EQ(announced_record["start"], "prewarmed");
  EXPECT_EQ(announced_record["image_load_ms"], 0);
  EXPECT_EQ(cards.count(announced["card"]), 1u);
  Json unannounced_record = Record(Invoke("behind"));
  EXPECT_EQ(unannounced_record["start"], "cold");
  EXPECT_GE(unannounced_record["image_load_ms"].get<double>(), 1000.0)
      << unannounced_record.dump(2);
}

TEST_F(FpgaFunctionTest, DrainingALentCardRetiresTheSlotOnIt) {
  Start({{"--function-idle-timeout", "600"}});
  ASSERT_EQ(Create("probe", Upload("vadd")).status, 201u);
  std::string card = Invoke("probe")["card"];
  // The operator drains the card under the idle slot: the slot retires (not after the idle
  // timeout, ten minutes here), the card is drained, and the next call runs on another card.
  http::ClientResponse drained = Post("/v1/cards/" + card + "/drain");
  ASSERT_EQ(drained.status, 200u) << drained.body;
  EXPECT_EQ(Json::parse(drained.body)["admin_state"], "draining");
  Json view =
      Poll("/v1/cards/" + card, [](const Json& c) { return c["admin_state"] == "drained"; });
  EXPECT_EQ(view["assignment"], "free");
  EXPECT_TRUE(Slots().empty());
  Json next = Invoke("probe");
  EXPECT_NE(next["card"], card);
  EXPECT_THAT(next["card"].get<std::string>(), StartsWith("card-"));
}

TEST_F(FpgaFunctionTest, CardsLentBeforeACrashAreFreeAfterTheRestart) {
  Start();
  std::string image = Upload("vadd");
  ASSERT_EQ(Create("probe", image).status, 201u);
  std::string card = Invoke("probe")["card"];
  EXPECT_THAT(Card(card)["assignment"].get<std::string>(), StartsWith("function:"));
  // Slots do not survive fpgahostd; the card they held is free at the next start, with its
  // image, and the function's next slot gets it again.
  daemon_->process().Signal(SIGKILL);
  daemon_->process().Wait();
  Start();
  Json view = Card(card);
  EXPECT_EQ(view["assignment"], "free");
  EXPECT_EQ(view["image"]["image_id"], image);
  Json again = Invoke("probe");
  EXPECT_EQ(again["card"], card);
  EXPECT_EQ(Record(again)["image_load_ms"], 0);
}

// The vadd example design as a function (examples/functions/vadd-fpga): its kernel runs on the
// lent card's device (here PoCL, from the source the xclbin carries) and every element is right.
TEST_F(FpgaFunctionTest, TheVaddExampleDesignRunsAsAnFpgaFunction) {
  Start();
  std::string image = Upload("vadd");
  StatusOr<std::string> zip =
      ReadFile(fs::path(FPGAHOST_EXAMPLES_DIR) / "functions" / "vadd-fpga.zip");
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  Json body = {{"FunctionName", "vadd"},
               {"Runtime", "provided.al2023"},
               {"Role", "arn:aws:iam::123456789012:role/lambda"},
               {"Handler", "vadd"},
               {"MemorySize", 512},
               {"Timeout", 60},
               {"FpgaImage", image},
               {"Code", {{"ZipFile", Base64Encode(*zip)}}}};
  http::ClientResponse created = daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
  ASSERT_EQ(created.status, 201u) << created.body;

  uint64_t expected = 0;
  for (uint64_t i = 0; i < 5000; ++i) {
    expected += static_cast<uint32_t>(static_cast<uint32_t>(3 * i + 1) +
                                      static_cast<uint32_t>(2654435761u * i + 3));
  }
  Json answer = Invoke("vadd", {{"n", 5000}, {"seed", 3}});
  EXPECT_TRUE(answer["passed"].get<bool>()) << answer.dump();
  EXPECT_EQ(answer["checksum"], expected);
  EXPECT_EQ(answer["image"], image);
  EXPECT_EQ(answer["xclbin_uuid"], Get("/v1/images/" + image, demo_)["xclbin_uuid"]);
  EXPECT_EQ(Record(answer)["fpga_card"], answer["card"]);
  // Warm, with other input.
  Json warm = Invoke("vadd", {{"n", 17}, {"seed", 9}});
  EXPECT_TRUE(warm["passed"].get<bool>()) << warm.dump();
  EXPECT_EQ(warm["card"], answer["card"]);
  EXPECT_EQ(Record(warm)["start"], "warm");
  // A bad event is the function's error, naming the field.
  http::ClientResponse bad =
      daemon_->Call("POST", "/2015-03-31/functions/vadd/invocations", demo_, R"({"n": 0})");
  EXPECT_EQ(bad.status, 200u);
  EXPECT_EQ(bad.headers["x-amz-function-error"], "Unhandled");
  EXPECT_THAT(bad.body, HasSubstr("VaddInputError"));
}

TEST_F(FpgaFunctionTest, AnImageTheTenantCannotLoadIsRefusedAtCreate) {
  Start();
  http::ClientResponse tenant = Post("/v1/tenants", {{"name", "other"}});
  ASSERT_EQ(tenant.status, 201u) << tenant.body;
  std::string others = Upload("vadd", Json::parse(tenant.body)["token"]["secret"]);
  http::ClientResponse r = Create("theirs", others);
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(r.headers["x-amzn-errortype"], "InvalidParameterValueException");
  EXPECT_THAT(r.body, HasSubstr("FpgaImage " + others));
  r = Create("bad", "not-an-image");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("FpgaImage must be an image id"));
  r = Create("gone", "img-0123456789abcdef0");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("FpgaImage img-0123456789abcdef0"));
  // Nothing was created.
  http::ClientResponse list = daemon_->Call("GET", "/2015-03-31/functions/", demo_);
  EXPECT_EQ(Json::parse(list.body)["Functions"].size(), 0u) << list.body;
}

}  // namespace
}  // namespace fpgahost
