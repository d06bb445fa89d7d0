#include "host/instances/instance_manager.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "fpga/discovery.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/sysfs.h"
#include "host/images/default_shells.h"
#include "host/store/sqlite.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_hypervisor.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::FakeHypervisor;
using vfio::DomainState;

constexpr char kImageUuid[] = "a1b2c3d4-0000-4000-8000-00000000cafe";

// Counts calls and fails the next one when told to. Thread-safe.
class CallCounter {
 public:
  void FailNext(Status error) {
    MutexLock lock(mu_);
    fail_next_ = std::move(error);
  }
  int calls() const {
    MutexLock lock(mu_);
    return calls_;
  }

 protected:
  Status Call() {
    MutexLock lock(mu_);
    ++calls_;
    Status result = std::move(fail_next_);
    fail_next_ = Status::Ok();
    return result;
  }

 private:
  mutable Mutex mu_;
  int calls_ GUARDED_BY(mu_) = 0;
  Status fail_next_ GUARDED_BY(mu_);
};

// Succeeds without touching the card (the emulated fleet's state stays cleared): while the
// user PF is on vfio-pci the card manager cannot read a loaded UUID back and trusts the tool.
class FakeProgrammer : public fpga::Programmer, public CallCounter {
 public:
  explicit FakeProgrammer(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Status Load(const fpga::CardAddress&, const fs::path&, std::chrono::milliseconds) override {
    return Call();
  }

 private:
  const std::string name_;
};

class FakeResetter : public fpga::CardResetter, public CallCounter {
 public:
  Status Reset(const fpga::CardAddress&, std::chrono::milliseconds) override { return Call(); }
};

class FakeDesignRunner : public DesignRunner {
 public:
  StatusOr<Json> Run(const VerifyDesign&, const fpga::CardAddress&,
                     std::chrono::milliseconds) override {
    return UnavailableError("no verification designs in unit tests", "VALIDATE_UNAVAILABLE");
  }
};

// One fpgahostd's worth of the instance manager and what it stands on, over the fixture's
// emulated fleet, hypervisor and binding journal (which outlive a restart, as the kernel,
// libvirt and the state store do). Members are destroyed in reverse order: the manager first.
struct Daemon {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<vfio::VfioBinder> binder;
  std::unique_ptr<CardManager> cards;
  std::unique_ptr<CapacityAccount> capacity;
  std::unique_ptr<InstanceManager> instances;
};

class InstanceManagerTest : public ::testing::Test {
 protected:
  static constexpr int kCards = 3;
  static constexpr ComputeResources kCapacity{16, 65536};

  void SetUp() override {
    StatusOr<images::ShellCatalogue> shells =
        images::ParseShellCatalogue(DefaultShellCatalogueJson(), "built-in");
    ASSERT_TRUE(shells.ok()) << shells.status().ToString();
    shells_ = *std::move(shells);
    Status created =
        fpga::emu::CreateEmulatedFleet(root_, kCards, shells_.shells().front(), /*load_ms=*/0);
    ASSERT_TRUE(created.ok()) << created.ToString();
    ASSERT_NO_FATAL_FAILURE(StartDaemon());
  }

  // Builds the parts in the daemon's order: store, binder (repairing half-done bindings),
  // cards, capacity, instances (which reconcile).
  void StartDaemon() {
    auto d = std::make_unique<Daemon>();
    StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    d->store = *std::move(store);
    d->binder = std::make_unique<vfio::VfioBinder>(sysfs_, fpga::emu::EmulatedDevRoot(root_),
                                                   journal_, vfio::VfioBinderOptions{2s, 2ms});
    StatusOr<std::vector<std::string>> repaired = d->binder->Repair();
    ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();

    CardManagerOptions card_options;
    card_options.scan_interval = 1h;  // no background scans: views change only when told
    card_options.load_timeout = 5s;
    card_options.reset_timeout = 5s;
    card_options.workers = 2;
    d->cards = std::make_unique<CardManager>(
        CardManagerDeps{sysfs_, shells_, xrt_, xbmgmt_, resetter_, runner_, *d->store, clock_},
        std::move(card_options));
    ASSERT_TRUE(d->cards->Start().ok());
    d->capacity = std::make_unique<CapacityAccount>(kCapacity, *d->cards);

    InstanceManagerOptions options;
    options.types = {
        {"fpga.small", 2, 4096, 1}, {"fpga.medium", 4, 8192, 2}, {"fpga.wide", 64, 4096, 1}};
    options.shutdown_timeout = 200ms;
    options.shutdown_poll = 10ms;
    options.clear_timeout = 5s;
    options.workers = 2;
    d->instances = std::make_unique<InstanceManager>(
        InstanceManagerDeps{hypervisor_, *d->binder, journal_, *d->cards, *d->capacity, *d->store,
                            clock_},
        std::move(options));
    Status started = d->instances->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    d_ = std::move(d);
  }

  // fpgahostd stops (having finished its operations) and starts again on the same host.
  void Restart() {
    d_.reset();
    ASSERT_NO_FATAL_FAILURE(StartDaemon());
  }

  // Stops the daemon and rewrites an instance's row: what a crash right after the manager
  // stored a transition (and before it acted on it) leaves behind. StartDaemon() next.
  void SetStoredState(const std::string& id, const std::string& state,
                      const std::string& operation) {
    d_.reset();
    StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Status updated = (*store)->InTransaction([&](SqliteDb& db) -> Status {
      ASSIGN_OR_RETURN(Statement q,
                       db.Prepare("UPDATE instances SET state = ?1, operation = ?2 WHERE id = ?3"));
      q.Bind(1, state).Bind(2, operation).Bind(3, id);
      return q.Run();
    });
    ASSERT_TRUE(updated.ok()) << updated.ToString();
  }

  InstanceManager& instances() { return *d_->instances; }
  CardManager& cards() { return *d_->cards; }

  Json Get(const std::string& id) {
    StatusOr<Json> view = instances().Get("", id);
    EXPECT_TRUE(view.ok()) << view.status().ToString();
    return view.ok() ? *view : Json();
  }

  // Creates an instance for `tenant` and waits for its create to finish.
  std::string CreateAndWait(const std::string& tenant, const std::string& type) {
    StatusOr<Json> created = instances().Create(tenant, type, "");
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return "";
    EXPECT_EQ((*created)["state"], "pending");
    instances().WaitIdle();
    return (*created)["id"];
  }
  std::string CreateRunning(const std::string& tenant, const std::string& type) {
    std::string id = CreateAndWait(tenant, type);
    EXPECT_EQ(Get(id)["state"], "running") << Get(id).dump(2);
    return id;
  }

  std::vector<std::string> SlotCards(const Json& view) {
    std::vector<std::string> ids;
    for (const Json& slot : view["slots"]) ids.push_back(slot["card"]);
    return ids;
  }

  static std::string CardId(int index) {
    return fpga::CardIdForBdf(fpga::emu::EmulatedMgmtBdf(index));
  }
  Json Card(const std::string& card_id) {
    StatusOr<Json> card = cards().Get(card_id);
    EXPECT_TRUE(card.ok()) << card.status().ToString();
    return card.ok() ? *card : Json();
  }
  // The driver the kernel (the emulated tree) has bound the function to.
  std::string Driver(const std::string& bdf) const {
    StatusOr<std::string> link = sysfs_.ReadLink("bus/pci/devices/" + bdf + "/driver");
    return link.ok() ? fpga::LinkBasename(*link) : "";
  }

  // The card is the instance's slot: assigned to it, its user PF on vfio-pci (as the card's
  // view shows it, and the kernel), the VFIO group node there for QEMU, the binding journaled.
  void ExpectInInstance(const std::string& card_id, const std::string& instance_id) {
    SCOPED_TRACE(card_id);
    Json card = Card(card_id);
    EXPECT_EQ(card["assignment"], "instance:" + instance_id);
    EXPECT_EQ(card["user_pf"]["driver"], "vfio-pci");
    std::string bdf = card["user_pf"]["bdf"];
    EXPECT_EQ(Driver(bdf), "vfio-pci");
    EXPECT_TRUE(fs::exists(fpga::emu::EmulatedDevRoot(root_) / "vfio" /
                           std::to_string(card["user_pf"]["iommu_group"].get<int>())));
    StatusOr<std::optional<vfio::BindingJournalEntry>> entry = journal_.Get(bdf);
    ASSERT_TRUE(entry.ok() && entry->has_value()) << bdf << " is not in the binding journal";
    EXPECT_TRUE((*entry)->complete);
    EXPECT_EQ((*entry)->original_driver, "xocl");
  }

  // The card is the host's again: free, its user PF back on xocl (view and kernel).
  void ExpectWithTheHost(const std::string& card_id) {
    SCOPED_TRACE(card_id);
    Json card = Card(card_id);
    EXPECT_EQ(card["assignment"], "free");
    EXPECT_EQ(card["user_pf"]["driver"], "xocl");
    EXPECT_EQ(Driver(card["user_pf"]["bdf"]), "xocl");
  }

  std::vector<vfio::BindingJournalEntry> Journal() const {
    return journal_.List().value_or(std::vector<vfio::BindingJournalEntry>{});
  }

  // Nothing is held by any instance: every card free and on xocl, no vCPUs or memory used,
  // no domain of ours, no binding.
  void ExpectNothingHeld() {
    for (int i = 0; i < kCards; ++i) ExpectWithTheHost(CardId(i));
    Json capacity = d_->capacity->View();
    EXPECT_EQ(capacity["vcpus"]["used"], 0);
    EXPECT_EQ(capacity["memory_mib"]["used"], 0);
    EXPECT_EQ(capacity["fpgas"]["free"], kCards);
    EXPECT_TRUE(capacity["holders"].empty()) << capacity.dump();
    for (const auto& [name, domain] : hypervisor_.domains()) {
      EXPECT_FALSE(domain.metadata.has_value()) << "domain " << name << " is still defined";
    }
    EXPECT_TRUE(Journal().empty());
  }

  // An image built for the card's shell.
  LoadRequest ImageFor(const std::string& card_id) {
    Json card = Card(card_id);
    LoadRequest request;
    request.image_id = "img-0000000000000cafe";
    request.xclbin_uuid = kImageUuid;
    request.interface_uuid = card["shell"]["interface_uuid"].get<std::string>();
    request.vbnv = card["shell"]["vbnv"].get<std::string>();
    request.file = dir_ / "images" / "cafe.xclbin";  // the fake programmers do not read it
    return request;
  }

  // Loads the instance's slot and waits for the card.
  void LoadSlot(const std::string& tenant, const std::string& id, int slot) {
    Json view = Get(id);
    std::string card_id = view["slots"][slot]["card"];
    StatusOr<InstanceManager::SlotAccepted> accepted =
        instances().LoadSlot(tenant, id, slot, ImageFor(card_id));
    ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
    EXPECT_TRUE(accepted->started);
    cards().WaitIdle();
    EXPECT_EQ(Get(id)["slots"][slot]["state"], "loaded");
  }

  // The events of `kind`: (subject, detail), oldest first.
  std::vector<std::pair<std::string, Json>> Events(const std::string& kind) {
    std::vector<std::pair<std::string, Json>> events;
    StatusOr<Statement> q =
        d_->store->db().Prepare("SELECT subject, detail FROM events WHERE kind = ?1 ORDER BY seq");
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    if (!q.ok()) return events;
    q->Bind(1, kind);
    while (true) {
      StatusOr<bool> row = q->Step();
      EXPECT_TRUE(row.ok()) << row.status().ToString();
      if (!row.ok() || !*row) break;
      events.emplace_back(q->ColumnText(0), Json::parse(q->ColumnText(1), nullptr, false));
    }
    return events;
  }

  static void ExpectError(const Status& s, StatusCode code, std::string_view reason) {
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_EQ(s.reason(), reason) << s.ToString();
  }

  ::fpgahost::testing::TempDir dir_;
  fs::path root_ = dir_ / "fleet";
  images::ShellCatalogue shells_;
  fpga::emu::EmulatedSysfs sysfs_{root_};
  vfio::InMemoryBindingJournal journal_;
  FakeHypervisor hypervisor_;
  FakeProgrammer xrt_{"xrt"};
  FakeProgrammer xbmgmt_{"xbmgmt"};
  FakeResetter resetter_;
  FakeDesignRunner runner_;
  ::fpgahost::testing::FakeClock clock_;
  std::unique_ptr<Daemon> d_;  // last: destroyed first
};

// ---- create -----------------------------------------------------------------------------------

TEST_F(InstanceManagerTest, CreateRunsADomainWithTheAssignedCardsUserPfs) {
  StatusOr<Json> created = instances().Create("acme", "fpga.medium", "web-1");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ((*created)["state"], "pending");
  std::string id = (*created)["id"];
  EXPECT_TRUE(IsValidId(id, "i")) << id;
  instances().WaitIdle();

  Json view = Get(id);
  EXPECT_EQ(view["state"], "running");
  EXPECT_EQ(view["error"], nullptr);
  EXPECT_EQ(view["name"], "web-1");
  EXPECT_EQ(view["tenant"], "acme");
  EXPECT_EQ(view["type"], "fpga.medium");
  EXPECT_EQ(view["vcpus"], 4);
  EXPECT_EQ(view["memory_mib"], 8192);
  EXPECT_EQ(view["fpgas"], 2);
  EXPECT_EQ(view["domain"]["uri"], hypervisor_.uri());
  ASSERT_EQ(view["slots"].size(), 2u);

  std::optional<FakeHypervisor::Domain> domain =
      hypervisor_.Find(view["domain"]["name"].get<std::string>());
  ASSERT_TRUE(domain.has_value()) << view.dump(2);
  EXPECT_EQ(domain->state, DomainState::kRunning);
  EXPECT_EQ(domain->spec.vcpus, 4);
  EXPECT_EQ(domain->spec.memory_mib, 8192);

  std::vector<std::string> user_pfs;
  vfio::DomainMetadata metadata{id, "acme", "fpga.medium", {}};
  for (const Json& slot : view["slots"]) {
    std::string card_id = slot["card"];
    EXPECT_EQ(slot["state"], "cleared");
    EXPECT_EQ(slot["user_bdf"], Card(card_id)["user_pf"]["bdf"]);
    ExpectInInstance(card_id, id);
    user_pfs.push_back(slot["user_bdf"]);
    metadata.slots.push_back(
        {slot["slot"].get<int>(), card_id, slot["user_bdf"].get<std::string>()});
  }
  EXPECT_NE(user_pfs[0], user_pfs[1]);
  // The VM gets the user PFs, never the management PFs, which stay with the host.
  EXPECT_EQ(domain->spec.hostdevs, user_pfs);
  for (const std::string& card_id : SlotCards(view)) {
    EXPECT_EQ(Card(card_id)["mgmt_pf"]["driver"], "xclmgmt");
  }
  EXPECT_EQ(domain->metadata, metadata);
  EXPECT_EQ(Journal().size(), 2u);

  Json capacity = d_->capacity->View();
  EXPECT_EQ(capacity["vcpus"]["used"], 4);
  EXPECT_EQ(capacity["memory_mib"]["used"], 8192);
  EXPECT_EQ(capacity["fpgas"]["free"], kCards - 2);
}

TEST_F(InstanceManagerTest, CreateWhoseDefineFailsLeavesTheInstanceFailedAndNothingHeld) {
  hypervisor_.FailNext("Define",
                       InternalError("define: not enough hugepages", vfio::kReasonHypervisorError));
  std::string id = CreateAndWait("acme", "fpga.medium");
  Json view = Get(id);
  EXPECT_EQ(view["state"], "failed");
  ASSERT_TRUE(view["error"].is_object()) << view.dump(2);
  EXPECT_EQ(view["error"]["code"], vfio::kReasonHypervisorError);
  EXPECT_NE(view["error"]["message"].get<std::string>().find("hugepages"), std::string::npos);
  EXPECT_EQ(hypervisor_.calls("Start"), 0);
  ExpectNothingHeld();
  EXPECT_TRUE(hypervisor_.domains().empty());
}

TEST_F(InstanceManagerTest, CreateWhoseStartFailsUndefinesTheDomainAndHoldsNothing) {
  hypervisor_.FailNext("Start", InternalError("start: qemu exited", vfio::kReasonHypervisorError));
  std::string id = CreateAndWait("acme", "fpga.small");
  Json view = Get(id);
  EXPECT_EQ(view["state"], "failed");
  EXPECT_EQ(view["error"]["code"], vfio::kReasonHypervisorError);
  EXPECT_EQ(hypervisor_.calls("Define"), 1);
  EXPECT_GE(hypervisor_.calls("Undefine"), 1);
  EXPECT_TRUE(hypervisor_.domains().empty());
  ExpectNothingHeld();
}

// ---- stop and start ---------------------------------------------------------------------------

TEST_F(InstanceManagerTest, StopPullsThePlugOnAGuestThatIgnoresAcpiAndClearsTheSlots) {
  std::string id = CreateRunning("acme", "fpga.small");
  ASSERT_NO_FATAL_FAILURE(LoadSlot("acme", id, 0));
  // With the user PF in the VM, the load goes through the management PF.
  EXPECT_EQ(xbmgmt_.calls(), 1);
  EXPECT_EQ(xrt_.calls(), 0);

  hypervisor_.set_ignore_acpi(true);
  StatusOr<Json> stopping = instances().StopInstance("acme", id);
  ASSERT_TRUE(stopping.ok()) << stopping.status().ToString();
  EXPECT_EQ((*stopping)["state"], "stopping");
  instances().WaitIdle();

  Json view = Get(id);
  EXPECT_EQ(view["state"], "stopped");
  EXPECT_EQ(view["error"], nullptr);
  std::optional<FakeHypervisor::Domain> domain =
      hypervisor_.Find(view["domain"]["name"].get<std::string>());
  ASSERT_TRUE(domain.has_value()) << "a stopped instance keeps its domain";
  EXPECT_EQ(domain->state, DomainState::kShutoff);
  EXPECT_EQ(hypervisor_.calls("Shutdown"), 1);
  EXPECT_EQ(hypervisor_.calls("Destroy"), 1);
  // Stopping clears the FPGA (through the management PF's reset); the card stays the
  // instance's, in the VM's hands.
  EXPECT_EQ(resetter_.calls(), 1);
  EXPECT_EQ(view["slots"][0]["state"], "cleared");
  std::string card_id = view["slots"][0]["card"];
  ASSERT_TRUE(cards().Rescan().ok());
  ExpectInInstance(card_id, id);
  EXPECT_EQ(d_->capacity->View()["vcpus"]["used"], 2);

  StatusOr<Json> starting = instances().StartInstance("acme", id);
  ASSERT_TRUE(starting.ok()) << starting.status().ToString();
  EXPECT_EQ((*starting)["state"], "pending");
  instances().WaitIdle();
  EXPECT_EQ(Get(id)["state"], "running");
  EXPECT_EQ(hypervisor_.Find(view["domain"]["name"].get<std::string>())->state,
            DomainState::kRunning);
  ExpectInInstance(card_id, id);
}

TEST_F(InstanceManagerTest, StopOfACooperativeGuestDoesNotPowerItOff) {
  std::string id = CreateRunning("acme", "fpga.small");
  ASSERT_TRUE(instances().StopInstance("acme", id).ok());
  instances().WaitIdle();
  EXPECT_EQ(Get(id)["state"], "stopped");
  EXPECT_EQ(hypervisor_.calls("Shutdown"), 1);
  EXPECT_EQ(hypervisor_.calls("Destroy"), 0);
  EXPECT_EQ(resetter_.calls(), 0);  // the slot was already cleared
  // Stopping a stopped instance is a no-op; only stopped instances start.
  StatusOr<Json> again = instances().StopInstance("acme", id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["state"], "stopped");
  EXPECT_EQ(hypervisor_.calls("Shutdown"), 1);
}

TEST_F(InstanceManagerTest, StopReportsASlotThatWouldNotClear) {
  std::string id = CreateRunning("acme", "fpga.small");
  ASSERT_NO_FATAL_FAILURE(LoadSlot("acme", id, 0));
  resetter_.FailNext(
      InternalError("xbmgmt reset: the card did not respond", fpga::kReasonResetFailed));
  ASSERT_TRUE(instances().StopInstance("acme", id).ok());
  instances().WaitIdle();
  Json view = Get(id);
  EXPECT_EQ(view["state"], "stopped");
  ASSERT_TRUE(view["error"].is_object()) << view.dump(2);
  EXPECT_EQ(view["error"]["code"], fpga::kReasonResetFailed);
  EXPECT_NE(view["error"]["message"].get<std::string>().find("did not respond"), std::string::npos);
  EXPECT_EQ(view["slots"][0]["state"], "loaded");
}

TEST_F(InstanceManagerTest, StartThatFailsLeavesTheInstanceStoppedWithTheReason) {
  std::string id = CreateRunning("acme", "fpga.small");
  ASSERT_TRUE(instances().StopInstance("acme", id).ok());
  instances().WaitIdle();
  hypervisor_.FailNext("Start", InternalError("start: no memory", vfio::kReasonHypervisorError));
  ASSERT_TRUE(instances().StartInstance("acme", id).ok());
  instances().WaitIdle();
  Json view = Get(id);
  EXPECT_EQ(view["state"], "stopped");
  EXPECT_EQ(view["error"]["code"], vfio::kReasonHypervisorError);

  // Starting again works, and the instance no longer shows the old failure.
  ASSERT_TRUE(instances().StartInstance("acme", id).ok());
  instances().WaitIdle();
  view = Get(id);
  EXPECT_EQ(view["state"], "running");
  EXPECT_EQ(view["error"], nullptr) << "a running instance still shows a stale error";
}

// ---- waiting on an operation ------------------------------------------------------------------

// What WhenSettled answered, and whether it had answered before it returned.
struct Settled {
  std::future<StatusOr<Json>> answer;
  bool at_once = false;
};

Settled WaitSettled(InstanceManager& instances, const std::string& tenant, const std::string& id,
                    std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<StatusOr<Json>>>();
  Settled settled{promise->get_future()};
  instances.WhenSettled(tenant, id, timeout,
                        [promise](StatusOr<Json> view) { promise->set_value(std::move(view)); });
  settled.at_once = settled.answer.wait_for(0s) == std::future_status::ready;
  return settled;
}

TEST_F(InstanceManagerTest, AWaiterIsAnsweredWhenTheOperationEnds) {
  std::string id = CreateRunning("acme", "fpga.small");
  hypervisor_.set_ignore_acpi(true);  // the stop takes shutdown_timeout (200 ms)
  StatusOr<Json> stopping = instances().StopInstance("acme", id);
  ASSERT_TRUE(stopping.ok()) << stopping.status().ToString();
  ASSERT_EQ((*stopping)["state"], "stopping");

  Settled settled = WaitSettled(instances(), "acme", id, 30s);
  EXPECT_FALSE(settled.at_once) << "answered while the instance was still stopping";
  ASSERT_EQ(settled.answer.wait_for(10s), std::future_status::ready);
  StatusOr<Json> view = settled.answer.get();
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ((*view)["state"], "stopped");
  EXPECT_EQ((*view)["id"], id);
}

TEST_F(InstanceManagerTest, AWaiterWhoseTimeoutPassesGetsTheInstanceAsItIs) {
  std::string id = CreateRunning("acme", "fpga.small");
  hypervisor_.set_ignore_acpi(true);
  ASSERT_TRUE(instances().StopInstance("acme", id).ok());
  Settled settled = WaitSettled(instances(), "acme", id, 20ms);
  ASSERT_EQ(settled.answer.wait_for(10s), std::future_status::ready);
  StatusOr<Json> view = settled.answer.get();
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ((*view)["state"], "stopping");
  instances().WaitIdle();
}

TEST_F(InstanceManagerTest, AWaiterOnASettledOrUnknownInstanceIsAnsweredAtOnce) {
  std::string id = CreateRunning("acme", "fpga.small");
  Settled running = WaitSettled(instances(), "acme", id, 30s);
  ASSERT_TRUE(running.at_once);
  StatusOr<Json> view = running.answer.get();
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ((*view)["state"], "running");

  Settled unknown = WaitSettled(instances(), "acme", "i-00000000000000000", 30s);
  ASSERT_TRUE(unknown.at_once);
  ExpectError(unknown.answer.get().status(), StatusCode::kNotFound, kReasonInstanceNotFound);
  // Another tenant's instance, even mid-operation, is as unknown.
  hypervisor_.set_ignore_acpi(true);
  ASSERT_TRUE(instances().StopInstance("acme", id).ok());
  Settled other = WaitSettled(instances(), "globex", id, 30s);
  ASSERT_TRUE(other.at_once);
  ExpectError(other.answer.get().status(), StatusCode::kNotFound, kReasonInstanceNotFound);
  instances().WaitIdle();
}

// ---- slots ------------------------------------------------------------------------------------

TEST_F(InstanceManagerTest, ALoadThatFailsShowsOnTheSlotAndTheInstanceKeepsRunning) {
  std::string id = CreateRunning("acme", "fpga.small");
  std::string card_id = Get(id)["slots"][0]["card"];
  xbmgmt_.FailNext(InternalError("xbmgmt program: DMA error", fpga::kReasonLoadFailed));
  ASSERT_TRUE(instances().LoadSlot("acme", id, 0, ImageFor(card_id)).ok());
  cards().WaitIdle();
  StatusOr<Json> slot = instances().GetSlot("acme", id, 0);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  EXPECT_EQ((*slot)["state"], "load_failed");
  EXPECT_EQ((*slot)["error"]["code"], fpga::kReasonLoadFailed);
  EXPECT_EQ(Get(id)["state"], "running");
  ExpectError(instances().GetSlot("acme", id, 1).status(), StatusCode::kNotFound,
              kReasonSlotNotFound);
}

// ---- terminate --------------------------------------------------------------------------------

TEST_F(InstanceManagerTest, TerminateGivesEverythingBack) {
  std::string id = CreateRunning("acme", "fpga.medium");
  ASSERT_NO_FATAL_FAILURE(LoadSlot("acme", id, 1));
  std::string domain_name = Get(id)["domain"]["name"];

  StatusOr<Json> terminating = instances().Terminate("acme", id);
  ASSERT_TRUE(terminating.ok()) << terminating.status().ToString();
  EXPECT_EQ((*terminating)["state"], "terminating");
  instances().WaitIdle();

  Json view = Get(id);
  EXPECT_EQ(view["state"], "terminated");
  EXPECT_EQ(view["error"], nullptr);
  EXPECT_FALSE(hypervisor_.Find(domain_name).has_value());
  EXPECT_EQ(resetter_.calls(), 1);  // the loaded slot was cleared before the card went back
  for (const std::string& card_id : SlotCards(view)) {
    EXPECT_EQ(Card(card_id)["image"]["state"], "cleared");
  }
  ExpectNothingHeld();

  // Terminating again answers with the instance as it is; nothing else applies any more.
  StatusOr<Json> again = instances().Terminate("acme", id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["state"], "terminated");
  ExpectError(instances().StartInstance("acme", id).status(), StatusCode::kFailedPrecondition,
              kReasonIncorrectInstanceState);
  ExpectError(instances().StopInstance("acme", id).status(), StatusCode::kFailedPrecondition,
              kReasonIncorrectInstanceState);
}

TEST_F(InstanceManagerTest, TerminateOfAFailedInstanceIsImmediate) {
  hypervisor_.FailNext("Define", InternalError("define: refused", vfio::kReasonHypervisorError));
  std::string id = CreateAndWait("acme", "fpga.small");
  ASSERT_EQ(Get(id)["state"], "failed");
  int undefines = hypervisor_.calls("Undefine");

  StatusOr<Json> terminated = instances().Terminate("acme", id);
  ASSERT_TRUE(terminated.ok()) << terminated.status().ToString();
  EXPECT_EQ((*terminated)["state"], "terminated");
  EXPECT_EQ(Get(id)["state"], "terminated");
  EXPECT_EQ(hypervisor_.calls("Undefine"), undefines);  // nothing left to undo
  ExpectNothingHeld();
}

// ---- tenancy ----------------------------------------------------------------------------------

TEST_F(InstanceManagerTest, AnotherTenantsInstanceIsAsIfItDidNotExist) {
  std::string acme = CreateRunning("acme", "fpga.small");
  std::string globex = CreateRunning("globex", "fpga.small");
  std::string acme_card = Get(acme)["slots"][0]["card"];

  auto expect_not_found = [&](const Status& s) {
    ExpectError(s, StatusCode::kNotFound, kReasonInstanceNotFound);
    EXPECT_EQ(s.message(), "instance " + acme + " not found");
  };
  expect_not_found(instances().Get("globex", acme).status());
  expect_not_found(instances().StopInstance("globex", acme).status());
  expect_not_found(instances().StartInstance("globex", acme).status());
  expect_not_found(instances().Terminate("globex", acme).status());
  expect_not_found(instances().ListSlots("globex", acme).status());
  expect_not_found(instances().GetSlot("globex", acme, 0).status());
  expect_not_found(instances().LoadSlot("globex", acme, 0, ImageFor(acme_card)).status());
  expect_not_found(instances().ClearSlot("globex", acme, 0).status());
  instances().WaitIdle();
  cards().WaitIdle();

  // None of it touched acme's instance.
  Json view = Get(acme);
  EXPECT_EQ(view["state"], "running");
  EXPECT_EQ(view["slots"][0]["state"], "cleared");
  EXPECT_EQ(hypervisor_.Find(view["domain"]["name"].get<std::string>())->state,
            DomainState::kRunning);
  EXPECT_EQ(xbmgmt_.calls() + xrt_.calls(), 0);

  Json listed = instances().List("globex");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], globex);
  EXPECT_EQ(instances().List("initech").size(), 0u);

  // The operator sees and acts on every tenant's instances.
  EXPECT_EQ(instances().List("").size(), 2u);
  EXPECT_TRUE(instances().Get("", acme).ok());
  StatusOr<Json> stopped = instances().StopInstance("", acme);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  instances().WaitIdle();
  EXPECT_EQ(Get(acme)["state"], "stopped");
  EXPECT_EQ(Get(globex)["state"], "running");
}

// ---- capacity ---------------------------------------------------------------------------------

TEST_F(InstanceManagerTest, CreateThatDoesNotFitIsRefusedAndReservesNothing) {
  // vCPUs: 64 asked, 16 on the host.
  StatusOr<Json> wide = instances().Create("acme", "fpga.wide", "");
  ExpectError(wide.status(), StatusCode::kUnavailable, kReasonInsufficientCapacity);
  EXPECT_NE(wide.status().message().find("vCPUs"), std::string_view::npos)
      << wide.status().ToString();
  ExpectNothingHeld();

  // Cards: two drained, one left; two asked.
  ASSERT_TRUE(cards().Drain(CardId(0)).ok());
  ASSERT_TRUE(cards().Drain(CardId(1)).ok());
  StatusOr<Json> medium = instances().Create("acme", "fpga.medium", "");
  ExpectError(medium.status(), StatusCode::kUnavailable, kReasonInsufficientCapacity);
  EXPECT_EQ(instances().List("").size(), 0u);
  EXPECT_EQ(d_->capacity->View()["vcpus"]["used"], 0);
  EXPECT_EQ(d_->capacity->View()["fpgas"]["free"], 1);
  for (int i = 0; i < kCards; ++i) EXPECT_EQ(Card(CardId(i))["assignment"], "free");
  EXPECT_TRUE(hypervisor_.domains().empty());
  EXPECT_TRUE(Journal().empty());

  // One card fits, and it is not a drained one.
  std::string id = CreateRunning("acme", "fpga.small");
  EXPECT_EQ(SlotCards(Get(id)), std::vector<std::string>{CardId(2)});
  EXPECT_EQ(Card(CardId(0))["admin_state"], "drained");
  EXPECT_EQ(Card(CardId(0))["assignment"], "free");
}

// ---- start-up reconciliation -----------------------------------------------------------------

TEST_F(InstanceManagerTest, RestartFailsARunningInstanceWhoseDomainVanished) {
  std::string id = CreateRunning("acme", "fpga.medium");
  std::string kept = CreateRunning("globex", "fpga.small");
  ASSERT_TRUE(hypervisor_.Remove(Get(id)["domain"]["name"].get<std::string>()));
  ASSERT_NO_FATAL_FAILURE(Restart());

  Json view = Get(id);
  EXPECT_EQ(view["state"], "failed");
  EXPECT_EQ(view["error"]["code"], "DOMAIN_VANISHED");
  for (const std::string& card_id : SlotCards(view)) ExpectWithTheHost(card_id);
  Json capacity = d_->capacity->View();
  EXPECT_EQ(capacity["vcpus"]["used"], 2);  // only the instance still running
  EXPECT_EQ(capacity["memory_mib"]["used"], 4096);
  EXPECT_EQ(capacity["fpgas"]["free"], kCards - 1);
  // The other instance is untouched.
  Json other = Get(kept);
  EXPECT_EQ(other["state"], "running");
  ExpectInInstance(other["slots"][0]["card"], kept);
  EXPECT_EQ(Journal().size(), 1u);
}

TEST_F(InstanceManagerTest, RestartStopsARunningInstanceWhoseGuestPoweredOff) {
  std::string id = CreateRunning("acme", "fpga.small");
  ASSERT_NO_FATAL_FAILURE(LoadSlot("acme", id, 0));
  std::string domain_name = Get(id)["domain"]["name"];
  ASSERT_TRUE(hypervisor_.SetState(domain_name, DomainState::kShutoff));
  ASSERT_NO_FATAL_FAILURE(Restart());

  Json view = Get(id);
  EXPECT_EQ(view["state"], "stopped");
  EXPECT_EQ(view["error"], nullptr);
  EXPECT_EQ(resetter_.calls(), 1);
  EXPECT_EQ(view["slots"][0]["state"], "cleared");
  EXPECT_TRUE(hypervisor_.Find(domain_name).has_value());
  ExpectInInstance(view["slots"][0]["card"], id);
  EXPECT_EQ(d_->capacity->View()["vcpus"]["used"], 2);

  ASSERT_TRUE(instances().StartInstance("acme", id).ok());
  instances().WaitIdle();
  EXPECT_EQ(Get(id)["state"], "running");
}

TEST_F(InstanceManagerTest, RestartRemovesDomainsOfNoLiveInstanceAndLeavesForeignOnes) {
  std::string live = CreateRunning("acme", "fpga.small");
  // An instance terminated while its domain could not be undefined.
  std::string gone = CreateRunning("acme", "fpga.small");
  std::string gone_domain = Get(gone)["domain"]["name"];
  hypervisor_.FailNext("Undefine", InternalError("undefine: busy", vfio::kReasonHypervisorError));
  ASSERT_TRUE(instances().Terminate("acme", gone).ok());
  instances().WaitIdle();
  ASSERT_EQ(Get(gone)["state"], "terminated");
  ASSERT_TRUE(hypervisor_.Find(gone_domain).has_value());
  // A domain naming an instance this host never had, and someone else's VM.
  std::string unknown = "i-00000000000000bad";
  hypervisor_.AddDomain("fpgahost-" + unknown, DomainState::kRunning,
                        vfio::DomainMetadata{unknown, "acme", "fpga.small", {}});
  hypervisor_.AddDomain("build-server", DomainState::kRunning);
  ASSERT_NO_FATAL_FAILURE(Restart());

  EXPECT_FALSE(hypervisor_.Find("fpgahost-" + unknown).has_value());
  EXPECT_FALSE(hypervisor_.Find(gone_domain).has_value());
  std::optional<FakeHypervisor::Domain> foreign = hypervisor_.Find("build-server");
  ASSERT_TRUE(foreign.has_value());
  EXPECT_EQ(foreign->state, DomainState::kRunning);
  EXPECT_EQ(hypervisor_.Find(Get(live)["domain"]["name"].get<std::string>())->state,
            DomainState::kRunning);
  EXPECT_EQ(Get(live)["state"], "running");

  std::vector<std::pair<std::string, Json>> orphans = Events("instance.orphan_domain");
  ASSERT_EQ(orphans.size(), 2u);
  std::set<std::string> subjects;
  for (const auto& [subject, detail] : orphans) {
    subjects.insert(subject);
    EXPECT_EQ(detail["removed"], true) << detail.dump();
    EXPECT_EQ(detail["domain"], "fpgahost-" + subject);
  }
  EXPECT_EQ(subjects, (std::set<std::string>{unknown, gone}));
}

TEST_F(InstanceManagerTest, RestartReleasesABindingNoInstanceHolds) {
  std::string id = CreateRunning("acme", "fpga.small");
  std::string user_pf = fpga::emu::EmulatedUserBdf(2);
  ASSERT_NE(Get(id)["slots"][0]["user_bdf"], user_pf);
  // A completed binding of a device no instance holds (its instance's row was lost).
  ASSERT_TRUE(d_->binder->Bind(user_pf).ok());
  ASSERT_EQ(Driver(user_pf), "vfio-pci");
  ASSERT_NO_FATAL_FAILURE(Restart());

  EXPECT_EQ(Driver(user_pf), "xocl");
  ASSERT_EQ(Journal().size(), 1u);
  EXPECT_EQ(Journal()[0].bdf, Get(id)["slots"][0]["user_bdf"]);
  ExpectInInstance(Get(id)["slots"][0]["card"], id);
  std::vector<std::pair<std::string, Json>> released = Events("instance.binding_released");
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].first, user_pf);
  EXPECT_EQ(released[0].second["ok"], true);
  // The card's view is read again at once, not at the next poll.
  EXPECT_EQ(Card(CardId(2))["user_pf"]["driver"], "xocl");
}

TEST_F(InstanceManagerTest, RestartFreesACardAssignedToAnUnknownInstance) {
  std::string id = CreateRunning("acme", "fpga.small");
  std::string unknown_owner = "instance:i-00000000000000bad";
  StatusOr<std::vector<CardPool::Card>> taken = cards().AssignFree(1, unknown_owner);
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  std::string card_id = taken->front().id;
  ASSERT_EQ(d_->capacity->View()["fpgas"]["free"], kCards - 2);
  ASSERT_NO_FATAL_FAILURE(Restart());

  EXPECT_EQ(Card(card_id)["assignment"], "free");
  EXPECT_EQ(d_->capacity->View()["fpgas"]["free"], kCards - 1);
  ExpectInInstance(Get(id)["slots"][0]["card"], id);
  std::vector<std::pair<std::string, Json>> released = Events("instance.card_released");
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].first, card_id);
  EXPECT_EQ(released[0].second["assignment"], unknown_owner);
}

TEST_F(InstanceManagerTest, RestartRollsBackAnInterruptedCreate) {
  std::string id = CreateRunning("acme", "fpga.medium");
  std::string domain_name = Get(id)["domain"]["name"];
  // The crash came after the domain started but before `running` was stored.
  ASSERT_NO_FATAL_FAILURE(SetStoredState(id, "pending", "create"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());

  Json view = Get(id);
  EXPECT_EQ(view["state"], "failed");
  EXPECT_EQ(view["error"]["code"], "INTERRUPTED");
  EXPECT_FALSE(hypervisor_.Find(domain_name).has_value());
  ExpectNothingHeld();
  // The domain the rollback removed is not reported again as an orphan.
  EXPECT_TRUE(Events("instance.orphan_domain").empty())
      << Events("instance.orphan_domain").front().second.dump();
}

TEST_F(InstanceManagerTest, RestartFinishesAnInterruptedTerminate) {
  std::string id = CreateRunning("acme", "fpga.small");
  std::string domain_name = Get(id)["domain"]["name"];
  ASSERT_NO_FATAL_FAILURE(SetStoredState(id, "terminating", "terminate"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());

  EXPECT_EQ(Get(id)["state"], "terminated");
  EXPECT_FALSE(hypervisor_.Find(domain_name).has_value());
  ExpectNothingHeld();
}

}  // namespace
}  // namespace fpgahost
