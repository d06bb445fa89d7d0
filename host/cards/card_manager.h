// The card manager: the daemon's inventory of this host's FPGA cards and the one place that
// changes them.
//
// Inventory. Rescan() runs discovery (fpga::SysfsDeviceScanner) and merges what it finds with
// the `cards` table: a new card is added (event card.discovered); a card no longer on the bus
// is kept with present = false and judged unhealthy (card.gone); one that comes back is
// present again (card.returned). A background thread rescans every `scan_interval`, which is
// also how sensors are polled; Rescan() may be called any time (POST /v1/cards/rescan).
//
// Health. Each scan judges every card with fpga::EvaluateCardHealth against its shell's
// limits, plus CARD_GONE and LOAD_HUNG (a load that timed out leaves the card unknown until a
// reset). A change of state or reasons is an event (card.health). Unhealthy cards get no new
// work: loads and validation are refused (409 CARD_UNHEALTHY); reset and drain still work.
//
// Admin state. Drain() makes a card take no new work: it is `drained` at once when free and
// idle, else `draining` until its assignment ends and its operation finishes. Undrain()
// returns it to `active`. Assignment (free | instance:<id> | functions) is set by the instance
// and function managers; here it only blocks loads and validation by the operator.
//
// Operations. At most one per card (a second gets 409 CARD_BUSY): load, clear, reset,
// validate. Each returns at once with the card in its transitional state and runs on the
// manager's workers; every transition is written to the store before it is acted on.
//   - Load(image) puts an image on the card: the image's interface UUID must be the card's
//     (409 XCLBIN_INCOMPATIBLE); loading the xclbin UUID already loaded is a no-op success
//     that changes nothing; otherwise `loading` -> `loaded` (read back from sysfs) or
//     `load_failed` with the programmer's reason. The loader is XRT through the user PF when
//     the host holds it (xocl), else xbmgmt through the management PF.
//   - Clear() and Reset() hot-reset the card through the management PF (xbmgmt), leaving it
//     `cleared`; Reset also forgets a hung load.
//   - Validate() loads each verification design, runs its host program (DesignRunner) and
//     records pass/fail per test with bandwidth, like `xbutil validate`; then clears the card.
//
// Start-up. Start() loads the table, repairs operations a crash interrupted (the image state
// is taken from what the card reports; a validation becomes `interrupted`), scans, and starts
// the background thread.
//
// Thread-safe. Operations run on the manager's own threads; Stop() (and the destructor) waits
// for them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/thread_pool.h"
#include "fpga/card.h"
#include "fpga/discovery.h"
#include "fpga/health.h"
#include "fpga/programmer.h"
#include "fpga/sysfs.h"
#include "host/capacity/capacity_account.h"
#include "host/cards/design_runner.h"
#include "host/store/state_store.h"
#include "images/shell_catalogue.h"
#include "images/xclbin_validator.h"

namespace fpgahost {

inline constexpr char kReasonCardBusy[] = "CARD_BUSY";
inline constexpr char kReasonCardGone[] = "CARD_GONE";
inline constexpr char kReasonCardUnhealthy[] = "CARD_UNHEALTHY";
inline constexpr char kReasonCardDrained[] = "CARD_DRAINED";
inline constexpr char kReasonCardAssigned[] = "CARD_ASSIGNED";

struct CardManagerOptions {
  std::chrono::milliseconds scan_interval{5000};
  std::chrono::milliseconds load_timeout{60000};
  std::chrono::milliseconds reset_timeout{60000};
  std::chrono::milliseconds validate_timeout{300000};  // per design's host program
  std::vector<VerifyDesign> verify_designs;            // what Validate runs, in order
  images::XclbinValidationOptions verify_validation;   // checks the designs' xclbins
  int workers = 8;                                     // concurrent operations
};

// What the manager needs to know about an image to load it (the API resolves it from the
// image registry, checking the caller may load it).
struct LoadRequest {
  std::string image_id;        // may be empty for an xclbin that is not a registered image
  std::string xclbin_uuid;     // lowercase 8-4-4-4-12
  std::string interface_uuid;  // of the shell it was built for; empty for shells without one
  std::string vbnv;            // m_platformVBNV
  std::filesystem::path file;
};

struct CardManagerDeps {
  fpga::Sysfs& sysfs;
  const images::ShellCatalogue& shells;
  fpga::Programmer& user_pf_programmer;  // XRT, while the host holds the user PF
  fpga::Programmer& mgmt_pf_programmer;  // xbmgmt, whatever holds the user PF
  fpga::CardResetter& resetter;          // xbmgmt reset
  DesignRunner& design_runner;
  StateStore& store;
  const Clock& clock;
};

class CardManager : public CardPool {
 public:
  CardManager(CardManagerDeps deps, CardManagerOptions options);
  ~CardManager() override;
  CardManager(const CardManager&) = delete;
  CardManager& operator=(const CardManager&) = delete;

  // Loads the table, repairs interrupted operations, scans once and starts polling. Fails
  // only when the table cannot be read; a failing scan is logged and retried at each poll.
  Status Start() EXCLUDES(mu_);
  // Stops polling and waits for running operations. Idempotent.
  void Stop() EXCLUDES(mu_);

  Status Rescan() EXCLUDES(mu_);
  // Reads just the cards `ids` again (after their PFs changed drivers, say); other cards are
  // left to the next scan. NotFound for an unknown id.
  Status RescanCards(const std::vector<std::string>& ids) EXCLUDES(mu_);
  // Records that card `id`'s user PF is now bound to `driver`, as a caller that changed it
  // and saw the change through (VfioBinder reads the driver back before it returns) knows,
  // without a rescan. The loaded xclbin is readable only through xocl: while the PF is with
  // another driver it is unknown, and through xocl again it is read by the next scan.
  void NoteUserPfDriver(std::string_view id, std::string_view driver) EXCLUDES(mu_);

  // The API's view of cards (see docs/architecture.md): ids, PFs, shell, health, sensors,
  // admin state, assignment, image, operation, last validation.
  Json List() const EXCLUDES(mu_);
  StatusOr<Json> Get(std::string_view id) const EXCLUDES(mu_);

  StatusOr<Json> Drain(std::string_view id) EXCLUDES(mu_);
  StatusOr<Json> Undrain(std::string_view id) EXCLUDES(mu_);

  // Each returns the card as it is once the operation is accepted; `started` tells whether
  // an operation was started (false for a no-op load).
  struct Accepted {
    Json card;
    bool started = false;
  };
  // `owner` is who asks: empty for the operator (the card must be free and active), or the
  // card's assignment ("instance:i-...") for the instance it is assigned to, which may load
  // and clear it whatever its admin state (draining does not take cards from instances).
  StatusOr<Accepted> Load(std::string_view id, const LoadRequest& request,
                          std::string_view owner = {}) EXCLUDES(mu_);
  StatusOr<Accepted> Clear(std::string_view id, std::string_view owner = {}) EXCLUDES(mu_);
  StatusOr<Accepted> Reset(std::string_view id) EXCLUDES(mu_);
  StatusOr<Accepted> Validate(std::string_view id) EXCLUDES(mu_);

  // Assignment, for the capacity account. AssignFree gives `count` cards that are present,
  // active, not unhealthy, idle and free to `owner` ("instance:i-..."), healthy ones first,
  // all or none: FailedPrecondition (INSUFFICIENT_CAPACITY) saying how many could be given
  // otherwise. Unassign gives a card back (FailedPrecondition CARD_NOT_ASSIGNED when `owner`
  // does not hold it); a draining card becomes drained once it is also idle.
  StatusOr<std::vector<CardPool::Card>> AssignFree(int count, std::string_view owner) override
      EXCLUDES(mu_);
  Status Unassign(std::string_view id, std::string_view owner) override EXCLUDES(mu_);
  // How many cards AssignFree could give now.
  int CountAssignable() const override EXCLUDES(mu_);
  // Gives one assignable card that can run `image` (its shell matches) to `owner`, preferring
  // one that holds the image already (`holds_image` then says so), healthy before degraded.
  // FailedPrecondition (INSUFFICIENT_CAPACITY) when no such card is free. For the function
  // slots, which borrow cards one at a time for one image.
  struct Lent {
    CardPool::Card card;
    bool holds_image = false;
  };
  StatusOr<Lent> AssignFor(const LoadRequest& image, std::string_view owner) EXCLUDES(mu_);
  // How many assignable cards could run `image`.
  int CountAssignableFor(const LoadRequest& image) const EXCLUDES(mu_);
  // Every card assigned to an owner whose name starts with `prefix` is made free again: the
  // holders that do not survive a restart (function slots) give their cards back at start-up.
  // Returns the ids freed.
  std::vector<std::string> UnassignAllOf(std::string_view prefix) EXCLUDES(mu_);

  // Blocks until card `id` runs no operation, or `timeout` passes (DeadlineExceeded), and
  // returns its view.
  StatusOr<Json> WaitForCard(std::string_view id, std::chrono::milliseconds timeout) EXCLUDES(mu_);

  // Blocks until no operation runs. For tests and shutdown.
  void WaitIdle() EXCLUDES(mu_);

 private:
  struct Card {
    fpga::CardInfo info;
    bool present = true;
    const images::ShellSpec* shell = nullptr;
    fpga::HealthReport health;
    std::string admin_state = "active";
    std::string assignment = "free";
    std::string operation = "idle";
    std::string image_state = "cleared";
    std::string image_id;
    std::string xclbin_uuid;
    std::string error_code;
    std::string error_message;
    bool needs_reset = false;
    // Moves whenever an operation starts or ends and when the user PF changes drivers
    // (NoteUserPfDriver), so a scan that began before can tell that its view of the image and
    // of the user PF's driver is stale.
    uint64_t image_epoch = 0;
    Json validation = Json::object();
    std::string first_seen;
    std::string last_seen;
    std::string updated_at;
  };

  using Events = std::vector<std::pair<std::string, Json>>;  // (kind, detail)

  Status LoadTable() REQUIRES(mu_);
  // `epochs`: each card's image_epoch when the scan started.
  Status Merge(std::vector<fpga::CardInfo> scanned,
               const std::map<std::string, uint64_t, std::less<>>& epochs) REQUIRES(mu_);
  // Merges one scanned card (new, returned or known) into the table.
  Status MergeOne(fpga::CardInfo info, const std::string& now,
                  const std::map<std::string, uint64_t, std::less<>>& epochs) REQUIRES(mu_);
  // Brings the record's image state in line with what the card reports, finishing operations
  // a crash interrupted.
  void ReconcileImage(Card& card, Events& events) REQUIRES(mu_);
  fpga::HealthReport Judge(const Card& card) const;
  // Judges the card again; a change of state or reasons adds a card.health event.
  void UpdateHealth(Card& card, Events& events) const;
  // Writes the card's row and `events` in one transaction.
  // A card's load state and assignment are runtime state (see StateStore); its admin state is
  // the operator's decision and is synced.
  Status Save(Card& card, const Events& events, Durability durability = Durability::kRuntime)
      REQUIRES(mu_);
  Json View(const Card& card) const;
  StatusOr<Card*> Find(std::string_view id) REQUIRES(mu_);
  // Checks before an operation: present and idle; for work also not unhealthy and held by
  // `owner` (free when it is empty).
  Status CheckCanOperate(const Card& card, bool is_work, std::string_view owner = {}) const;
  static bool Assignable(const Card& card);
  // Whether the card's shell can run `image`.
  static bool Compatible(const Card& card, const LoadRequest& image);
  void MaybeFinishDrain(Card& card, Events& events) const;
  // Runs `body` on a worker; the card's operation is already recorded.
  void RunOperation(const std::string& id, std::function<void()> body) REQUIRES(mu_);
  fpga::CardAddress AddressOf(const Card& card) const;
  fpga::Programmer& LoaderFor(const fpga::CardInfo& info);
  StatusOr<Accepted> StartReset(std::string_view id, bool is_clear, std::string_view owner)
      EXCLUDES(mu_);

  void DoLoad(const std::string& id, LoadRequest request) EXCLUDES(mu_);
  void DoReset(const std::string& id, bool is_clear) EXCLUDES(mu_);
  void DoValidate(const std::string& id) EXCLUDES(mu_);
  // The xclbin UUID the card reports now ("" when cleared); nullopt when it cannot be read.
  std::optional<std::string> ReadBackUuid(const std::string& mgmt_bdf);

  void PollLoop() EXCLUDES(mu_);

  CardManagerDeps deps_;
  const CardManagerOptions options_;
  fpga::SysfsDeviceScanner scanner_;

  mutable Mutex mu_;
  std::map<std::string, Card, std::less<>> cards_ GUARDED_BY(mu_);
  // Cards whose operation was running when the daemon stopped; repaired by the first scan.
  std::set<std::string, std::less<>> interrupted_ GUARDED_BY(mu_);
  int running_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable_any changed_;

  std::unique_ptr<ThreadPool> workers_;
  std::thread poller_;
};

}  // namespace fpgahost
