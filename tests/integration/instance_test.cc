// Instances end to end: the real fpgahostd on an emulated fleet with libvirt's test driver,
// VFIO binding through the emulated kernel, slot loads through the emulated xbmgmt (the
// management PF, as on F1 while the VM holds the user PF), images uploaded by tenants.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <string>

#include "common/json.h"
#include "examples/examples_dir.h"
#include "tests/support/fleet_daemon_test.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::RunResult;

class InstanceTest : public testing::FleetDaemonTest {
 protected:
  void StartDaemon(std::map<std::string, std::string> overrides = {}) {
    // A fixed account, so the tests do not depend on this machine's size.
    overrides.try_emplace("--capacity-vcpus", "16");
    overrides.try_emplace("--capacity-memory-mib", "32768");
    FleetDaemonTest::StartDaemon(overrides);
    demo_ = daemon_->Token("demo");
  }

  http::ClientResponse Call(const std::string& method, const std::string& target,
                            const Json& body = nullptr, const std::string& token = "") {
    return daemon_->Call(method, target, token.empty() ? demo_ : token,
                         body.is_null() ? "" : body.dump());
  }

  // Creates an instance as `token` (demo's by default) and waits until it is not pending.
  Json Create(const std::string& type, const std::string& token = "") {
    http::ClientResponse r = Call("POST", "/v1/instances", {{"type", type}, {"name", "t"}}, token);
    EXPECT_EQ(r.status, 202u) << r.body;
    Json created = Json::parse(r.body, nullptr, false);
    EXPECT_EQ(created["state"], "pending");
    return WaitInstance(created.value("id", ""), token);
  }

  Json WaitInstance(const std::string& id, const std::string& token = "") {
    return Poll(
        "/v1/instances/" + id,
        [](const Json& i) {
          std::string s = i.value("state", "");
          return s != "pending" && s != "stopping" && s != "terminating";
        },
        token.empty() ? demo_ : token);
  }

  Json WaitSlot(const std::string& id, int n) {
    return Poll(
        "/v1/instances/" + id + "/slots/" + std::to_string(n),
        [](const Json& s) { return s["state"] != "loading" && s["state"] != "clearing"; }, demo_);
  }

  std::string Example(const std::string& design) {
    return UploadFile(fs::path(FPGAHOST_EXAMPLES_DIR) / design / (design + ".xclbin"), demo_);
  }

  Json Card(const std::string& id) { return Get("/v1/cards/" + id); }

  std::string demo_;
};

TEST_F(InstanceTest, CreateLoadDescribeClearTerminate) {
  StartDaemon();
  std::string image = Example("vadd");
  std::string uuid = Get("/v1/images/" + image, demo_)["xclbin_uuid"];

  Json instance = Create("fpga.medium");
  ASSERT_EQ(instance["state"], "running") << instance.dump(2);
  std::string id = instance["id"];
  EXPECT_THAT(id, ::testing::StartsWith("i-"));
  EXPECT_EQ(instance["tenant"], "demo");
  EXPECT_EQ(instance["vcpus"], 4);
  ASSERT_EQ(instance["slots"].size(), 2u);
  std::set<std::string> cards;
  for (const Json& slot : instance["slots"]) {
    EXPECT_EQ(slot["state"], "cleared");
    cards.insert(slot["card"].get<std::string>());
    // The user PF is in the VM (vfio-pci); the management PF stays with the host.
    Json card = Card(slot["card"]);
    EXPECT_EQ(card["assignment"], "instance:" + id);
    EXPECT_EQ(card["user_pf"]["driver"], "vfio-pci");
    EXPECT_EQ(card["mgmt_pf"]["driver"], "xclmgmt");
  }
  EXPECT_EQ(cards.size(), 2u);
  Json capacity = Get("/v1/capacity");
  EXPECT_EQ(capacity["vcpus"]["used"], 4);
  EXPECT_EQ(capacity["fpgas"]["free"], 2);

  http::ClientResponse load =
      Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}});
  ASSERT_EQ(load.status, 202u) << load.body;
  EXPECT_EQ(Json::parse(load.body)["state"], "loading");
  Json slot = WaitSlot(id, 0);
  EXPECT_EQ(slot["state"], "loaded") << slot.dump(2);
  EXPECT_EQ(slot["image_id"], image);
  EXPECT_EQ(slot["xclbin_uuid"], uuid);
  EXPECT_EQ(Get("/v1/instances/" + id + "/slots/1", demo_)["state"], "cleared");
  // Through the management PF: the host does not hold the user PF.
  Json events = Get("/v1/events?kind=card.load&subject=" + slot["card"].get<std::string>());
  EXPECT_EQ(events["events"].back()["detail"]["programmer"], "xbmgmt");

  // The same image again changes nothing.
  http::ClientResponse again =
      Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}});
  EXPECT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(Json::parse(again.body)["state"], "loaded");

  // The CLI shows it the way fpga-describe-local-image does.
  RunResult described = Cli({"slot", "describe", id, "0"}, "demo");
  EXPECT_EQ(described.exit_code, 0) << described.err;
  EXPECT_THAT(described.out, HasSubstr("loaded"));
  EXPECT_THAT(described.out, HasSubstr(image));

  http::ClientResponse clear = Call("DELETE", "/v1/instances/" + id + "/slots/0/image");
  ASSERT_EQ(clear.status, 202u) << clear.body;
  EXPECT_EQ(WaitSlot(id, 0)["state"], "cleared");

  http::ClientResponse terminate = Call("DELETE", "/v1/instances/" + id);
  ASSERT_EQ(terminate.status, 202u) << terminate.body;
  EXPECT_EQ(WaitInstance(id)["state"], "terminated");
  for (const std::string& c : cards) {
    Json card = Card(c);
    EXPECT_EQ(card["assignment"], "free");
    EXPECT_EQ(card["user_pf"]["driver"], "xocl") << card.dump(2);
    EXPECT_EQ(card["image"]["state"], "cleared");
  }
  capacity = Get("/v1/capacity");
  EXPECT_EQ(capacity["vcpus"]["used"], 0);
  EXPECT_EQ(capacity["fpgas"]["free"], 4);
  // A terminated instance is still listed, as EC2 does for a while.
  EXPECT_EQ(Get("/v1/instances", demo_)["instances"].size(), 1u);
}

TEST_F(InstanceTest, AGetWithWaitAnswersOnceTheOperationIsOver) {
  StartDaemon();
  http::ClientResponse r = Call("POST", "/v1/instances", {{"type", "fpga.small"}});
  ASSERT_EQ(r.status, 202u) << r.body;
  std::string id = Json::parse(r.body)["id"];
  // One request, no polling: answered when the instance is running.
  http::ClientResponse waited = Call("GET", "/v1/instances/" + id + "?wait=30");
  ASSERT_EQ(waited.status, 200u) << waited.body;
  EXPECT_EQ(Json::parse(waited.body)["state"], "running") << waited.body;

  ASSERT_EQ(Call("DELETE", "/v1/instances/" + id).status, 202u);
  waited = Call("GET", "/v1/instances/" + id + "?wait=30");
  ASSERT_EQ(waited.status, 200u) << waited.body;
  EXPECT_EQ(Json::parse(waited.body)["state"], "terminated") << waited.body;

  for (const char* bad : {"?wait=soon", "?wait=-1", "?wait=61"}) {
    http::ClientResponse refused = Call("GET", "/v1/instances/" + id + bad);
    EXPECT_EQ(refused.status, 400u) << bad << ": " << refused.body;
    Json error = Json::parse(refused.body, nullptr, false)["error"];
    EXPECT_EQ(error["code"], "INVALID_FIELD") << refused.body;
    EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("'wait'"));
  }
  // Another tenant waits on nothing: the instance does not exist for it.
  std::string other = Json::parse(Post("/v1/tenants", {{"name", "other"}}).body)["token"]["secret"];
  EXPECT_EQ(Call("GET", "/v1/instances/" + id + "?wait=30", nullptr, other).status, 404u);
}

TEST_F(InstanceTest, LoadsThatMustFail) {
  StartDaemon();
  Json instance = Create("fpga.small");
  ASSERT_EQ(instance["state"], "running") << instance.dump(2);
  std::string id = instance["id"];
  std::string slot0 = "/v1/instances/" + id + "/slots/0/image";

  // An image built for another shell.
  fs::path u280 = dir_.path() / "vadd_u280.xclbin";
  RunResult pack =
      Cli({"xclbin", "pack", "--shell", "u280-gen3x16-xdma-1", "--kernel-source",
           std::string(FPGAHOST_SOURCE_DIR) + "/examples/vadd/vadd.cl", "--out", u280.string()});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  http::ClientResponse r = Call("PUT", slot0, {{"image_id", UploadFile(u280, demo_)}});
  EXPECT_EQ(r.status, 409u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("XCLBIN_INCOMPATIBLE"));

  // Another tenant's private image is not there for demo; shared, it loads, and revoking the
  // permission later does not unload it.
  http::ClientResponse tenant = Post("/v1/tenants", {{"name", "other"}});
  ASSERT_EQ(tenant.status, 201u) << tenant.body;
  std::string other = Json::parse(tenant.body)["token"]["secret"];
  std::string private_image =
      UploadFile(fs::path(FPGAHOST_EXAMPLES_DIR) / "hello" / "hello.xclbin", other);
  r = Call("PUT", slot0, {{"image_id", private_image}});
  EXPECT_EQ(r.status, 404u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("IMAGE_NOT_FOUND"));
  ASSERT_EQ(daemon_
                ->Call("PUT", "/v1/images/" + private_image + "/permissions", other,
                       Json{{"tenants", {"demo"}}}.dump())
                .status,
            200u);
  r = Call("PUT", slot0, {{"image_id", private_image}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(WaitSlot(id, 0)["state"], "loaded");
  ASSERT_EQ(daemon_
                ->Call("PUT", "/v1/images/" + private_image + "/permissions", other,
                       Json{{"tenants", Json::array()}}.dump())
                .status,
            200u);
  EXPECT_EQ(WaitSlot(id, 0)["image_id"], private_image);

  // A busy slot: one operation per card.
  std::string card = instance["slots"][0]["card"];
  std::string vadd = Example("vadd");
  Fault(card, "slow-load", "3000");
  ASSERT_EQ(Call("PUT", slot0, {{"image_id", vadd}}).status, 202u);
  r = Call("PUT", slot0, {{"image_id", vadd}});
  EXPECT_EQ(r.status, 409u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("CARD_BUSY"));
  EXPECT_EQ(WaitSlot(id, 0)["state"], "loaded");

  // An injected load failure is kept on the slot with its reason.
  Fault(card, "load-fail");
  // (The revoked image cannot be loaded again by demo.)
  EXPECT_EQ(Call("PUT", slot0, {{"image_id", private_image}}).status, 404u);
  ASSERT_EQ(Call("PUT", slot0, {{"image_id", Example("hello")}}).status, 202u);
  Json failed = WaitSlot(id, 0);
  EXPECT_EQ(failed["state"], "load_failed") << failed.dump(2);
  EXPECT_TRUE(failed["error"].is_object()) << failed.dump(2);
  RunResult described = Cli({"slot", "describe", id, "0"}, "demo");
  EXPECT_THAT(described.out, HasSubstr("load-failed"));

  // Bad slot numbers and bodies.
  EXPECT_EQ(Call("PUT", "/v1/instances/" + id + "/slots/7/image", {{"image_id", vadd}}).status,
            404u);
  r = Call("PUT", "/v1/instances/" + id + "/slots/x/image", {{"image_id", vadd}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("slot"));
  r = Call("PUT", slot0, {{"image", vadd}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("image"));
}

TEST_F(InstanceTest, TenantsSeeOnlyTheirOwnInstances) {
  StartDaemon();
  Json instance = Create("fpga.small");
  std::string id = instance["id"];
  std::string other = Json::parse(Post("/v1/tenants", {{"name", "other"}}).body)["token"]["secret"];
  EXPECT_EQ(Call("GET", "/v1/instances/" + id, nullptr, other).status, 404u);
  EXPECT_EQ(Call("DELETE", "/v1/instances/" + id, nullptr, other).status, 404u);
  EXPECT_EQ(Call("GET", "/v1/instances/" + id + "/slots", nullptr, other).status, 404u);
  EXPECT_TRUE(Get("/v1/instances", other)["instances"].empty());
  // The operator sees every tenant's.
  EXPECT_EQ(Get("/v1/instances")["instances"].size(), 1u);
  EXPECT_EQ(Call("GET", "/v1/capacity").status, 403u);
}

TEST_F(InstanceTest, CapacityIsSharedAndDrainedOrUnhealthyCardsAreNotGivenOut) {
  StartDaemon();
  // Card 0 drained, card 1 overheating: two of four can be given out.
  ASSERT_EQ(Post("/v1/cards/card-0000-10-00-0/drain").status, 200u);
  Fault("card-0000-11-00-0", "overheat");
  Poll("/v1/cards/card-0000-11-00-0",
       [](const Json& c) { return c["health"]["state"] == "unhealthy"; });
  Json first = Create("fpga.small");
  ASSERT_EQ(first["state"], "running") << first.dump(2);
  http::ClientResponse r = Call("POST", "/v1/instances", {{"type", "fpga.medium"}});
  EXPECT_EQ(r.status, 503u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("INSUFFICIENT_CAPACITY"));
  Json second = Create("fpga.small");
  ASSERT_EQ(second["state"], "running");
  for (const Json& i : {first, second}) {
    std::string card = i["slots"][0]["card"];
    EXPECT_NE(card, "card-0000-10-00-0");
    EXPECT_NE(card, "card-0000-11-00-0");
  }
  // vCPUs run out too: 16 in the account, f1.4xlarge wants 16 with 12 free.
  r = Call("POST", "/v1/instances", {{"type", "f1.4xlarge"}});
  EXPECT_EQ(r.status, 503u);
  EXPECT_THAT(r.body, HasSubstr("vCPUs"));
  r = Call("POST", "/v1/instances", {{"type", "m5.large"}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("type"));
  // Nothing leaked from the refusals.
  EXPECT_EQ(Get("/v1/capacity")["vcpus"]["used"], 4);
  EXPECT_EQ(Get("/v1/instances", demo_)["instances"].size(), 2u);
}

TEST_F(InstanceTest, StopClearsTheSlotsAndKeepsTheCards) {
  StartDaemon();
  std::string image = Example("vadd");
  Json instance = Create("fpga.small");
  std::string id = instance["id"];
  std::string card = instance["slots"][0]["card"];
  ASSERT_EQ(Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}}).status,
            202u);
  ASSERT_EQ(WaitSlot(id, 0)["state"], "loaded");

  ASSERT_EQ(Call("POST", "/v1/instances/" + id + "/stop").status, 202u);
  Json stopped = WaitInstance(id);
  EXPECT_EQ(stopped["state"], "stopped");
  EXPECT_EQ(stopped["slots"][0]["state"], "cleared");
  EXPECT_EQ(stopped["slots"][0]["card"], card);
  EXPECT_EQ(Card(card)["assignment"], "instance:" + id);
  EXPECT_EQ(Card(card)["user_pf"]["driver"], "vfio-pci");
  // A stopped instance's slots take no loads.
  http::ClientResponse r =
      Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}});
  EXPECT_EQ(r.status, 409u);
  EXPECT_THAT(r.body, HasSubstr("INCORRECT_INSTANCE_STATE"));

  ASSERT_EQ(Call("POST", "/v1/instances/" + id + "/start").status, 202u);
  EXPECT_EQ(WaitInstance(id)["state"], "running");
  ASSERT_EQ(Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}}).status,
            202u);
  EXPECT_EQ(WaitSlot(id, 0)["state"], "loaded");
}

// After a crash, whatever the instance was doing, nothing stays bound, assigned or reserved.
void ExpectNothingLeaked(const Json& instance, const Json& cards, const Json& capacity) {
  EXPECT_EQ(instance["state"], "failed") << instance.dump(2);
  for (const Json& c : cards) {
    EXPECT_EQ(c["assignment"], "free") << c.dump(2);
    EXPECT_EQ(c["user_pf"]["driver"], "xocl") << c.dump(2);
    EXPECT_EQ(c["operation"], "idle") << c.dump(2);
  }
  EXPECT_EQ(capacity["vcpus"]["used"], 0);
  EXPECT_EQ(capacity["fpgas"]["free"], 4);
}

TEST_F(InstanceTest, ACrashDuringACreateLeaksNothing) {
  StartDaemon();
  http::ClientResponse r = Call("POST", "/v1/instances", {{"type", "fpga.medium"}});
  ASSERT_EQ(r.status, 202u) << r.body;
  std::string id = Json::parse(r.body)["id"];
  daemon_->process().Signal(SIGKILL);
  daemon_->process().Wait();
  StartDaemon();
  // The create was rolled back (INTERRUPTED) or, had it finished, the test driver's domain
  // died with the daemon (DOMAIN_VANISHED): failed either way, holding nothing.
  Json instance = Get("/v1/instances/" + id, demo_);
  EXPECT_THAT(instance["error"]["code"].get<std::string>(),
              ::testing::AnyOf("INTERRUPTED", "DOMAIN_VANISHED"));
  ExpectNothingLeaked(instance, Get("/v1/cards")["cards"], Get("/v1/capacity"));
  // And the host is usable: the same shape fits again.
  EXPECT_EQ(Create("fpga.medium")["state"], "running");
}

TEST_F(InstanceTest, ACrashDuringASlotLoadLeaksNothing) {
  StartDaemon();
  std::string image = Example("vadd");
  Json instance = Create("fpga.small");
  std::string id = instance["id"];
  Fault(instance["slots"][0]["card"], "slow-load", "3000");
  ASSERT_EQ(Call("PUT", "/v1/instances/" + id + "/slots/0/image", {{"image_id", image}}).status,
            202u);
  daemon_->process().Signal(SIGKILL);
  daemon_->process().Wait();
  StartDaemon();
  Json after = Get("/v1/instances/" + id, demo_);
  EXPECT_EQ(after["error"]["code"], "DOMAIN_VANISHED");
  ExpectNothingLeaked(after, Get("/v1/cards")["cards"], Get("/v1/capacity"));
  Json card = Card(instance["slots"][0]["card"]);
  EXPECT_EQ(card["image"]["state"], "cleared") << card.dump(2);
  // Terminating a failed instance closes its record.
  http::ClientResponse r = Call("DELETE", "/v1/instances/" + id);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(Json::parse(r.body)["state"], "terminated");
}

// libvirt's test driver can start from a node file: here one with a domain carrying our
// metadata for an instance fpgahostd never made, and a domain that is not ours.
TEST_F(InstanceTest, ADomainWithOurMetadataAndNoInstanceIsRemoved) {
  fs::path node = dir_.path() / "node.xml";
  std::ofstream(node) << R"(<node>
  <domain type='test'>
    <name>fpgahost-i-0123456789abcdef0</name>
    <memory unit='MiB'>1024</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <metadata>
      <fpgahost:instance xmlns:fpgahost='https://fpgahost.dev/xmlns/instance/1'
                         id='i-0123456789abcdef0' tenant='demo' type='fpga.small'>
        <fpgahost:slot index='0' card='card-0000-10-00-0' bdf='0000:10:00.1'/>
      </fpgahost:instance>
    </metadata>
  </domain>
  <domain type='test'>
    <name>someone-elses-vm</name>
    <memory unit='MiB'>1024</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
)";
  StartDaemon({{"--libvirt-uri", "test://" + node.string()}});
  Json events = Get("/v1/events?kind=instance.orphan_domain")["events"];
  ASSERT_EQ(events.size(), 1u) << events.dump(2);
  EXPECT_EQ(events[0]["subject"], "i-0123456789abcdef0");
  EXPECT_EQ(events[0]["detail"]["domain"], "fpgahost-i-0123456789abcdef0");
  EXPECT_EQ(events[0]["detail"]["removed"], true);
  // Instances work on this connection too.
  Json instance = Create("fpga.small");
  EXPECT_EQ(instance["state"], "running") << instance.dump(2);
  EXPECT_EQ(instance["domain"]["uri"], "test://" + node.string());
}

TEST_F(InstanceTest, CliCreatesListsAndTerminates) {
  StartDaemon();
  RunResult types = Cli({"instance", "types"}, "demo");
  EXPECT_EQ(types.exit_code, 0) << types.err;
  EXPECT_THAT(types.out, HasSubstr("f1.2xlarge"));
  RunResult created = Cli(
      {"--output", "json", "instance", "create", "--type", "fpga.small", "--name", "cli", "--wait"},
      "demo");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  Json instance = Json::parse(created.out, nullptr, false);
  ASSERT_TRUE(instance.is_object()) << created.out;
  EXPECT_EQ(instance["state"], "running");
  std::string id = instance["id"];
  RunResult list = Cli({"instance", "list"}, "demo");
  EXPECT_THAT(list.out, HasSubstr(id));
  EXPECT_THAT(list.out, HasSubstr("running"));
  RunResult bad = Cli({"instance", "create", "--type", "nope"}, "demo");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("type"));
  RunResult terminated = Cli({"instance", "terminate", id, "--wait"}, "demo");
  EXPECT_EQ(terminated.exit_code, 0) << terminated.err;
  EXPECT_EQ(Get("/v1/instances/" + id, demo_)["state"], "terminated");
}

}  // namespace
}  // namespace fpgahost
