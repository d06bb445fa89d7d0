// The instance manager: customers' VMs with FPGA slots, like EC2 F1 instances.
//
// An instance has a type (vCPUs, memory, FPGA count), a domain on the hypervisor and one
// slot per FPGA. A slot is a card the capacity account assigned to the instance: its user PF
// is bound to vfio-pci (VfioBinder) and passed to the domain as a <hostdev>; its management PF
// stays with the host, which loads and clears images through it (the card manager, with the
// instance as the card's owner) as F1's fpga-load-local-image does.
//
// States (DESIGN.md): pending -> running -> stopping -> stopped -> pending (start);
// any settled state -> terminating -> terminated; failed when creation fails or the domain
// vanishes (its resources are then freed; terminate turns it into terminated). Transitional
// states run one operation at a time on the manager's workers; a second request meets 409
// INCORRECT_INSTANCE_STATE. Every transition is written to the store before it is acted on.
//
//   create:    reserve vCPUs, memory and cards (503 INSUFFICIENT_CAPACITY when they do not
//              fit) -> bind each user PF to vfio-pci -> define and start the domain. A failing
//              step rolls everything back and leaves the instance failed with the reason.
//   stop:      shut the domain down (ACPI, then power off after `shutdown_timeout`), clear
//              every slot (stopping an F1 instance clears its FPGAs); domain and cards are kept.
//   start:     start the domain again.
//   terminate: power off and undefine the domain, clear every slot, give the user PFs back to
//              the host driver, give back the cards and the capacity.
//
// Slots: Load (the image must match the slot's shell; the same image again is a 200 no-op),
// Clear, Describe; only while the instance is running. The API checks the caller may use the
// image before it calls Load.
//
// Tenancy: every call names the caller's tenant; an instance of another tenant is 404, as if
// it did not exist. The operator (an empty tenant) sees all.
//
// Start-up (Start): rebuilds the capacity account from the table, then reconciles the table
// with the hypervisor's domains (found by their metadata) and the cards:
//   - an instance in the middle of an operation: create is rolled back (failed, INTERRUPTED);
//     start, stop and terminate are finished;
//   - a running or stopped instance whose domain vanished is failed (DOMAIN_VANISHED) and its
//     resources freed; a running one whose domain is shut off is stopped (its slots cleared);
//   - a domain with our metadata and no live instance is reported (instance.orphan_domain)
//     and destroyed and undefined;
//   - a completed vfio-pci binding no live instance holds is released, and a card assigned to
//     an instance that is not live is given back (VfioBinder::Repair has already rolled back
//     half-done bindings);
//   - a slot whose load was interrupted (load_failed INTERRUPTED) is cleared.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/thread_pool.h"
#include "host/capacity/capacity_account.h"
#include "host/cards/card_manager.h"
#include "host/instances/instance_types.h"
#include "host/store/state_store.h"
#include "vfio/binding_journal.h"
#include "vfio/hypervisor.h"
#include "vfio/vfio_binder.h"

namespace fpgahost {

inline constexpr char kReasonInstanceNotFound[] = "INSTANCE_NOT_FOUND";
inline constexpr char kReasonIncorrectInstanceState[] = "INCORRECT_INSTANCE_STATE";
inline constexpr char kReasonSlotNotFound[] = "SLOT_NOT_FOUND";

struct InstanceManagerOptions {
  std::vector<InstanceType> types = DefaultInstanceTypes();
  // A disk image every instance boots from; none: domains without a disk.
  std::optional<std::filesystem::path> boot_disk;
  // How long a stop waits for the guest to power off before pulling the plug.
  std::chrono::milliseconds shutdown_timeout{30000};
  std::chrono::milliseconds shutdown_poll{100};
  // How long a stop or terminate waits for a slot's clear.
  std::chrono::milliseconds clear_timeout{120000};
  int workers = 4;
};

struct InstanceManagerDeps {
  vfio::Hypervisor& hypervisor;
  vfio::VfioBinder& binder;
  vfio::BindingJournal& bindings;  // the binder's journal, read at start-up
  CardManager& cards;
  CapacityAccount& capacity;
  StateStore& store;
  const Clock& clock;
};

class InstanceManager {
 public:
  InstanceManager(InstanceManagerDeps deps, InstanceManagerOptions options);
  ~InstanceManager();
  InstanceManager(const InstanceManager&) = delete;
  InstanceManager& operator=(const InstanceManager&) = delete;

  // Loads the table and reconciles (see above). Call after the card manager has started.
  Status Start() EXCLUDES(mu_);
  // Waits for running operations and answers every WhenSettled waiter. Idempotent.
  void Stop() EXCLUDES(mu_);
  // Answers every WhenSettled waiter now, and later ones at once; operations go on. The first
  // step of a shutdown, so that the API server's need not wait for clients that wait.
  void StopWaiters() EXCLUDES(mu_);

  const std::vector<InstanceType>& types() const { return options_.types; }

  // `tenant` is the caller's; empty for the operator.
  StatusOr<Json> Create(std::string_view tenant, std::string_view type, std::string_view name)
      EXCLUDES(mu_);
  Json List(std::string_view tenant) const EXCLUDES(mu_);
  StatusOr<Json> Get(std::string_view tenant, std::string_view id) const EXCLUDES(mu_);
  StatusOr<Json> StopInstance(std::string_view tenant, std::string_view id) EXCLUDES(mu_);
  StatusOr<Json> StartInstance(std::string_view tenant, std::string_view id) EXCLUDES(mu_);
  StatusOr<Json> Terminate(std::string_view tenant, std::string_view id) EXCLUDES(mu_);

  // Calls `done` with the instance's view (as Get) once it has left its transitional state
  // (pending, stopping, terminating), or after `timeout` with the view as it is then; at once
  // when the instance is settled or not found, or when kMaxWatchers callers already wait.
  // `done` runs on the thread that settled the instance or on the manager's timer thread,
  // without the manager's lock: it must not block. For clients that wait on an operation
  // without polling (GET /v1/instances/{id}?wait=N).
  static constexpr size_t kMaxWatchers = 1024;
  void WhenSettled(std::string_view tenant, std::string_view id, std::chrono::milliseconds timeout,
                   std::function<void(StatusOr<Json>)> done) EXCLUDES(mu_);

  StatusOr<Json> ListSlots(std::string_view tenant, std::string_view id) const EXCLUDES(mu_);
  StatusOr<Json> GetSlot(std::string_view tenant, std::string_view id, int slot) const
      EXCLUDES(mu_);
  // The slot as it is once accepted; `started` is false for a no-op.
  struct SlotAccepted {
    Json slot;
    bool started = false;
  };
  StatusOr<SlotAccepted> LoadSlot(std::string_view tenant, std::string_view id, int slot,
                                  const LoadRequest& request) EXCLUDES(mu_);
  StatusOr<SlotAccepted> ClearSlot(std::string_view tenant, std::string_view id, int slot)
      EXCLUDES(mu_);

  // Blocks until no instance operation runs. For tests, benchmarks and shutdown.
  void WaitIdle() EXCLUDES(mu_);

 private:
  struct Slot {
    int index = 0;
    std::string card_id;
    std::string mgmt_bdf;
    std::string user_bdf;
    std::string vbnv;
    bool bound = false;  // its user PF is on vfio-pci for this instance
    std::string group;
    std::string original_driver;
  };
  struct Instance {
    std::string id;
    std::string name;
    std::string tenant;
    std::string type;
    std::string state;
    std::string operation = "none";
    int vcpus = 0;
    int64_t memory_mib = 0;
    std::string domain_name;
    std::vector<Slot> slots;
    std::string error_code;
    std::string error_message;
    std::string created_at;
    std::string updated_at;
  };
  using Events = std::vector<std::pair<std::string, Json>>;

  static std::string Owner(const Instance& instance) { return "instance:" + instance.id; }
  static bool IsLive(const Instance& instance);

  Status LoadTable() REQUIRES(mu_);
  Status Save(Instance& instance, const Events& events) REQUIRES(mu_);
  // Saves without holding mu_ (worker steps): copies under the lock.
  Status Transition(const std::string& id, std::string_view state, std::string_view operation,
                    const Events& events, const Status& error = Status::Ok()) EXCLUDES(mu_);
  Json View(const Instance& instance) const;
  // The slot as its card (`card`, the card manager's view) shows it.
  Json SlotView(const Instance& instance, const Slot& slot) const;
  Json SlotView(const Instance& instance, const Slot& slot, const StatusOr<Json>& card) const;
  StatusOr<const Instance*> FindFor(std::string_view tenant, std::string_view id) const
      REQUIRES(mu_);
  StatusOr<Instance*> FindFor(std::string_view tenant, std::string_view id) REQUIRES(mu_);
  // Slot `slot` of `i`: NotFound (SLOT_NOT_FOUND) when there is none; unless `running_for` is
  // empty, FailedPrecondition (INCORRECT_INSTANCE_STATE) when `i` is not running.
  static StatusOr<const Slot*> FindSlot(const Instance& i, int slot, std::string_view running_for);
  Instance Snapshot(const std::string& id) const EXCLUDES(mu_);
  // Records a slot's binding in memory; the operation's closing Transition writes it. The
  // binding journal covers a crash in between: start-up releases a completed binding that no
  // live instance holds, and finishes a terminate (a second release of a slot is a no-op).
  void SetSlot(const std::string& id, const Slot& slot) EXCLUDES(mu_);
  vfio::DomainSpec DomainFor(const Instance& instance) const;
  void RunOperation(std::function<void()> body) REQUIRES(mu_);

  void DoCreate(const std::string& id) EXCLUDES(mu_);
  void DoStart(const std::string& id) EXCLUDES(mu_);
  void DoStop(const std::string& id) EXCLUDES(mu_);
  void DoTerminate(const std::string& id) EXCLUDES(mu_);
  // Powers the domain off, gracefully first when `graceful`.
  Status PowerOff(const Instance& instance, bool graceful);
  // Clears every slot that holds or is getting an image, and waits.
  Status ClearSlots(const Instance& instance);
  // Undoes what an instance holds: domain, bindings, cards, capacity. Carries on past
  // failures and returns the first.
  Status FreeResources(const std::string& id) EXCLUDES(mu_);

  // Rescans `card_ids` (every card when empty) so their views show the PFs' drivers now.
  void RefreshCards(const std::vector<std::string>& card_ids);

  // Start-up reconciliation, one instance at a time (see the header comment).
  void Reconcile(const std::map<std::string, vfio::DomainInfo>& domains) EXCLUDES(mu_);
  void ReconcileOrphans(const std::vector<vfio::DomainInfo>& domains) EXCLUDES(mu_);

  InstanceManagerDeps deps_;
  const InstanceManagerOptions options_;

  static bool IsSettled(const Instance& instance);
  // Answers the watchers of `id` (every watcher, when `id` is empty) that are due: their
  // instance settled, or their deadline passed. The answers are returned to be called
  // without mu_.
  std::vector<std::function<void()>> DueWatchers(std::string_view id) REQUIRES(mu_);
  void WatchTimerLoop() EXCLUDES(mu_);

  mutable Mutex mu_;
  std::map<std::string, Instance, std::less<>> instances_ GUARDED_BY(mu_);
  struct Watcher {
    std::string id;
    std::string tenant;
    std::chrono::steady_clock::time_point deadline;
    std::function<void(StatusOr<Json>)> done;
  };
  std::vector<Watcher> watchers_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable_any watchers_changed_;
  std::thread watch_timer_;
  int running_ GUARDED_BY(mu_) = 0;
  std::condition_variable_any changed_;
  std::unique_ptr<ThreadPool> workers_;
};

}  // namespace fpgahost
