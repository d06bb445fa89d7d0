#include "host/cards/card_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/logging.h"
#include "host/store/events.h"
#include "images/xclbin_file.h"

namespace fpgahost {
namespace {

constexpr char kColumns[] =
    "id, mgmt_bdf, user_bdf, present, admin_state, assignment, operation, image_state, "
    "image_id, xclbin_uuid, image_error_code, image_error_message, needs_reset, health, "
    "health_reasons, validation, first_seen, last_seen, updated_at";

std::string HexId(std::optional<uint16_t> id) {
  return id ? fmt::format("0x{:04x}", *id) : std::string();
}

Json Nullable(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

template <typename T>
Json Nullable(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json ReasonsToJson(const fpga::HealthReport& report) {
  Json reasons = Json::array();
  for (const fpga::HealthReason& r : report.reasons) {
    reasons.push_back({{"code", r.code},
                       {"message", r.message},
                       {"severity", std::string(fpga::HealthStateName(r.severity))}});
  }
  return reasons;
}

std::vector<std::string> ReasonCodes(const fpga::HealthReport& report) {
  std::vector<std::string> codes;
  for (const fpga::HealthReason& r : report.reasons) codes.push_back(r.code);
  return codes;
}

fpga::HealthState ParseHealthState(std::string_view s) {
  if (s == "healthy") return fpga::HealthState::kHealthy;
  if (s == "degraded") return fpga::HealthState::kDegraded;
  return fpga::HealthState::kUnhealthy;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

CardManager::CardManager(CardManagerDeps deps, CardManagerOptions options)
    : deps_(deps),
      options_(std::move(options)),
      scanner_(deps.sysfs),
      workers_(std::make_unique<ThreadPool>(std::max(1, options_.workers))) {}

CardManager::~CardManager() { Stop(); }

Status CardManager::Start() {
  {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(LoadTable());
  }
  // A host whose PCI tree cannot be read still serves everything else; the error is logged
  // and each poll tries again.
  Status scanned = Rescan();
  if (!scanned.ok()) spdlog::warn("card scan failed: {}", scanned.ToString());
  poller_ = std::thread([this] { PollLoop(); });
  return Status::Ok();
}

void CardManager::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_ && !poller_.joinable()) return;
    stopping_ = true;
  }
  changed_.notify_all();
  if (poller_.joinable()) poller_.join();
  WaitIdle();
  workers_->Shutdown();
}

void CardManager::PollLoop() {
  std::unique_lock<Mutex> lock(mu_);
  while (true) {
    bool stop = changed_.wait_for(lock, options_.scan_interval,
                                  [this]() NO_THREAD_SAFETY_ANALYSIS { return stopping_; });
    if (stop) return;
    lock.unlock();
    Status s = Rescan();
    if (!s.ok()) spdlog::warn("card scan failed: {}", s.ToString());
    lock.lock();
  }
}

void CardManager::WaitIdle() {
  std::unique_lock<Mutex> lock(mu_);
  changed_.wait(lock, [this]() NO_THREAD_SAFETY_ANALYSIS { return running_ == 0; });
}

Status CardManager::LoadTable() {
  ASSIGN_OR_RETURN(Statement q, deps_.store.db().Prepare(
                                    fmt::format("SELECT {} FROM cards ORDER BY id", kColumns)));
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Card c;
    c.info.id = q.ColumnText(0);
    c.info.mgmt_bdf = q.ColumnText(1);
    c.info.user_bdf = q.ColumnText(2);
    c.present = q.ColumnInt64(3) != 0;
    c.admin_state = q.ColumnText(4);
    c.assignment = q.ColumnText(5);
    c.operation = q.ColumnText(6);
    c.image_state = q.ColumnText(7);
    c.image_id = q.ColumnText(8);
    c.xclbin_uuid = q.ColumnText(9);
    c.error_code = q.ColumnText(10);
    c.error_message = q.ColumnText(11);
    c.needs_reset = q.ColumnInt64(12) != 0;
    c.health.state = ParseHealthState(q.ColumnText(13));
    Json reasons = Json::parse(q.ColumnText(14), nullptr, false);
    if (reasons.is_array()) {
      for (const Json& r : reasons) {
        if (!r.is_object()) continue;
        c.health.reasons.push_back({r.value("code", ""), r.value("message", ""),
                                    ParseHealthState(r.value("severity", "unhealthy"))});
      }
    }
    c.validation = Json::parse(q.ColumnText(15), nullptr, false);
    if (!c.validation.is_object()) c.validation = Json::object();
    c.first_seen = q.ColumnText(16);
    c.last_seen = q.ColumnText(17);
    c.updated_at = q.ColumnText(18);
    if (c.operation != "idle") interrupted_.insert(c.info.id);
    std::string id = c.info.id;
    cards_.emplace(std::move(id), std::move(c));
  }
  return Status::Ok();
}

fpga::HealthReport CardManager::Judge(const Card& card) const {
  fpga::HealthReport r;
  if (!card.present) {
    r.Add("CARD_GONE",
          fmt::format("the card is no longer on the PCI bus (last seen {})", card.last_seen),
          fpga::HealthState::kUnhealthy);
    return r;
  }
  r = fpga::EvaluateCardHealth(card.info, card.shell);
  if (card.needs_reset) {
    r.Add("LOAD_HUNG", "a load timed out and the card's state is unknown; reset the card",
          fpga::HealthState::kUnhealthy);
  }
  return r;
}

void CardManager::UpdateHealth(Card& card, Events& events) const {
  fpga::HealthReport next = Judge(card);
  if (next.state != card.health.state || ReasonCodes(next) != ReasonCodes(card.health)) {
    events.push_back({"card.health",
                      {{"from", std::string(fpga::HealthStateName(card.health.state))},
                       {"to", std::string(fpga::HealthStateName(next.state))},
                       {"reasons", ReasonsToJson(next)}}});
  }
  card.health = std::move(next);
}

Status CardManager::Save(Card& card, const Events& events, Durability durability) {
  card.updated_at = FormatRfc3339(deps_.clock.Now());
  Status s = deps_.store.InTransaction(
      [&](SqliteDb& db) -> Status {
        ASSIGN_OR_RETURN(
            Statement upsert,
            db.Prepare(fmt::format("INSERT OR REPLACE INTO cards ({}) VALUES (?1, ?2, ?3, "
                                   "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                                   "?15, ?16, ?17, ?18, ?19)",
                                   kColumns)));
        upsert.Bind(1, card.info.id)
            .Bind(2, card.info.mgmt_bdf)
            .Bind(3, card.info.user_bdf)
            .Bind(4, int64_t{card.present ? 1 : 0})
            .Bind(5, card.admin_state)
            .Bind(6, card.assignment)
            .Bind(7, card.operation)
            .Bind(8, card.image_state)
            .Bind(9, card.image_id)
            .Bind(10, card.xclbin_uuid)
            .Bind(11, card.error_code)
            .Bind(12, card.error_message)
            .Bind(13, int64_t{card.needs_reset ? 1 : 0})
            .Bind(14, fpga::HealthStateName(card.health.state))
            .Bind(15, ReasonsToJson(card.health).dump())
            .Bind(16, card.validation.dump())
            .Bind(17, card.first_seen)
            .Bind(18, card.last_seen)
            .Bind(19, card.updated_at);
        RETURN_IF_ERROR(upsert.Run());
        for (const auto& [kind, detail] : events) {
          RETURN_IF_ERROR(AppendEvent(db, deps_.clock, kind, card.info.id, detail));
        }
        return Status::Ok();
      },
      durability);
  if (!s.ok()) spdlog::error("saving card {}: {}", card.info.id, s.ToString());
  return s;
}

Status CardManager::Rescan() {
  // What the scan reads may be older than an operation that ends while it runs: such a card's
  // image state is left to the operation (its epoch moved on).
  std::map<std::string, uint64_t, std::less<>> epochs;
  {
    MutexLock lock(mu_);
    for (const auto& [id, card] : cards_) epochs[id] = card.image_epoch;
  }
  ASSIGN_OR_RETURN(std::vector<fpga::CardInfo> scanned, scanner_.Scan());
  MutexLock lock(mu_);
  return Merge(std::move(scanned), epochs);
}

Status CardManager::RescanCards(const std::vector<std::string>& ids) {
  std::map<std::string, uint64_t, std::less<>> epochs;
  std::vector<std::string> mgmt_bdfs;
  {
    MutexLock lock(mu_);
    for (const std::string& id : ids) {
      ASSIGN_OR_RETURN(Card * card, Find(id));
      epochs[id] = card->image_epoch;
      mgmt_bdfs.push_back(card->info.mgmt_bdf);
    }
  }
  // A card that cannot be read now is left to the next full scan, which judges it gone.
  std::vector<fpga::CardInfo> scanned;
  for (const std::string& bdf : mgmt_bdfs) {
    StatusOr<fpga::CardInfo> info = scanner_.ScanCard(bdf);
    if (info.ok()) scanned.push_back(*std::move(info));
  }
  MutexLock lock(mu_);
  std::string now = FormatRfc3339(deps_.clock.Now());
  Status result = Status::Ok();
  for (fpga::CardInfo& info : scanned) {
    Status s = MergeOne(std::move(info), now, epochs);
    if (!s.ok()) result = s;
  }
  return result;
}

void CardManager::NoteUserPfDriver(std::string_view id, std::string_view driver) {
  MutexLock lock(mu_);
  StatusOr<Card*> card = Find(id);
  if (!card.ok()) return;
  fpga::CardInfo& info = (*card)->info;
  if (info.user_driver == driver) return;
  info.user_driver = std::string(driver);
  info.loaded_xclbin_uuid.reset();
  (*card)->image_epoch++;  // a scan under way read the old driver
}

void CardManager::ReconcileImage(Card& card, Events& events) {
  std::optional<std::string> reported = card.info.loaded_xclbin_uuid;
  bool interrupted = interrupted_.erase(card.info.id) != 0;
  if (interrupted) {
    std::string was = card.operation;
    card.operation = "idle";
    if (was == "loading" && reported && *reported == card.xclbin_uuid && !reported->empty()) {
      card.image_state = "loaded";
    } else if (was == "loading") {
      card.image_state = "load_failed";
      card.error_code = "INTERRUPTED";
      card.error_message = "fpgahostd stopped while the image was loading";
    } else if (was == "validating") {
      card.validation["state"] = "interrupted";
      card.validation["error"] = "fpgahostd stopped while the card was being validated";
    }
    events.push_back({"card.repaired", {{"interrupted", was}, {"image_state", card.image_state}}});
    if (card.image_state == "loaded" || card.image_state == "load_failed") return;
  }
  if (card.operation != "idle" || !reported) return;
  if (reported->empty()) {
    // Cleared behind our back (an external reset), or after an interrupted clear.
    if (card.image_state == "loaded" || card.image_state == "loading" ||
        card.image_state == "clearing") {
      card.image_state = "cleared";
      card.image_id.clear();
      card.xclbin_uuid.clear();
      events.push_back({"card.image", {{"state", "cleared"}, {"why", "the card reports none"}}});
    }
    return;
  }
  if (card.image_state != "loaded" || card.xclbin_uuid != *reported) {
    // Something we did not load (another tool, or a load a crash interrupted).
    card.image_state = "loaded";
    card.image_id.clear();
    card.xclbin_uuid = *reported;
    events.push_back(
        {"card.image", {{"state", "loaded"}, {"xclbin_uuid", *reported}, {"image_id", nullptr}}});
  }
}

Status CardManager::MergeOne(fpga::CardInfo info, const std::string& now,
                             const std::map<std::string, uint64_t, std::less<>>& epochs) {
  Events events;
  auto it = cards_.find(info.id);
  bool is_new = it == cards_.end();
  if (is_new) {
    Card c;
    c.first_seen = now;
    c.health.state = fpga::HealthState::kHealthy;
    it = cards_.emplace(info.id, std::move(c)).first;
    events.push_back({"card.discovered",
                      {{"mgmt_bdf", info.mgmt_bdf},
                       {"user_bdf", info.user_bdf},
                       {"vbnv", Nullable(info.vbnv)},
                       {"serial", Nullable(info.serial)}}});
  }
  Card& card = it->second;
  bool returned = !is_new && !card.present;
  bool bdfs_changed = card.info.user_bdf != info.user_bdf;
  auto epoch = epochs.find(info.id);
  bool fresh = is_new || (epoch != epochs.end() && epoch->second == card.image_epoch);
  if (!fresh && !bdfs_changed) {
    // Read before a change the manager made since: what that change recorded stands until the
    // next scan.
    info.user_driver = card.info.user_driver;
    info.loaded_xclbin_uuid = card.info.loaded_xclbin_uuid;
  }
  card.info = std::move(info);
  card.present = true;
  card.last_seen = now;
  card.shell = fpga::FindCardShell(card.info, deps_.shells);
  if (returned) {
    events.push_back({"card.returned", {{"mgmt_bdf", card.info.mgmt_bdf}}});
  }
  if (fresh) ReconcileImage(card, events);
  UpdateHealth(card, events);
  MaybeFinishDrain(card, events);
  if (is_new || bdfs_changed || !events.empty()) return Save(card, events);
  return Status::Ok();
}

Status CardManager::Merge(std::vector<fpga::CardInfo> scanned,
                          const std::map<std::string, uint64_t, std::less<>>& epochs) {
  std::string now = FormatRfc3339(deps_.clock.Now());
  std::set<std::string, std::less<>> seen;
  Status result = Status::Ok();
  for (fpga::CardInfo& info : scanned) {
    seen.insert(info.id);
    Status s = MergeOne(std::move(info), now, epochs);
    if (!s.ok()) result = s;
  }
  for (auto& [id, card] : cards_) {
    if (seen.contains(id)) continue;
    Events events;
    if (interrupted_.erase(id) != 0) {
      events.push_back({"card.repaired", {{"interrupted", card.operation}}});
      card.operation = "idle";
      if (card.image_state == "loading") card.image_state = "load_failed";
    }
    if (card.present) {
      events.push_back({"card.gone", {{"mgmt_bdf", card.info.mgmt_bdf}}});
      card.present = false;
    }
    UpdateHealth(card, events);
    if (!events.empty()) {
      Status s = Save(card, events);
      if (!s.ok()) result = s;
    }
  }
  return result;
}

void CardManager::MaybeFinishDrain(Card& card, Events& events) const {
  if (card.admin_state == "draining" && card.assignment == "free" && card.operation == "idle") {
    card.admin_state = "drained";
    events.push_back({"card.admin", {{"state", "drained"}}});
  }
}

StatusOr<CardManager::Card*> CardManager::Find(std::string_view id) {
  auto it = cards_.find(id);
  if (it == cards_.end()) {
    return NotFoundError(fmt::format("card {} not found", id), fpga::kReasonCardNotFound);
  }
  return &it->second;
}

fpga::CardAddress CardManager::AddressOf(const Card& card) const {
  return {card.info.mgmt_bdf, card.info.user_bdf};
}

Json CardManager::View(const Card& c) const {
  const fpga::CardInfo& i = c.info;
  Json shell = {{"name", c.shell != nullptr ? Json(c.shell->name) : Json(nullptr)},
                {"vbnv", Nullable(i.vbnv)},
                {"interface_uuid", Nullable(i.interface_uuid)}};
  Json limits = nullptr;
  if (c.shell != nullptr) {
    limits = {{"fpga_temp_warn_c", c.shell->limits.fpga_temp_warn_c},
              {"fpga_temp_max_c", c.shell->limits.fpga_temp_max_c},
              {"power_warn_w", c.shell->limits.power_warn_w},
              {"power_max_w", c.shell->limits.power_max_w}};
  }
  Json image = {{"state", c.image_state},
                {"image_id", Nullable(c.image_id)},
                {"xclbin_uuid", Nullable(c.xclbin_uuid)}};
  Json last_error = nullptr;
  if (!c.error_code.empty()) last_error = {{"code", c.error_code}, {"message", c.error_message}};
  Json sensors = nullptr;
  if (c.present) {
    sensors = {{"fpga_temp_c", Nullable(i.temperature_c)},
               {"power_w", Nullable(i.power_w)},
               {"firewall_status", Nullable(i.firewall_status)}};
  }
  return {{"id", i.id},
          {"present", c.present},
          {"mgmt_pf",
           {{"bdf", i.mgmt_bdf},
            {"device_id", Nullable(HexId(i.mgmt_device_id))},
            {"driver", Nullable(i.mgmt_driver)}}},
          {"user_pf",
           {{"bdf", Nullable(i.user_bdf)},
            {"device_id", Nullable(HexId(i.user_device_id))},
            {"driver", Nullable(i.user_driver)},
            {"iommu_group", Nullable(i.user_iommu_group)}}},
          {"shell", std::move(shell)},
          {"serial", Nullable(i.serial)},
          {"admin_state", c.admin_state},
          {"assignment", c.assignment},
          {"operation", c.operation},
          {"image", std::move(image)},
          {"last_error", std::move(last_error)},
          {"health",
           {{"state", std::string(fpga::HealthStateName(c.health.state))},
            {"reasons", ReasonsToJson(c.health)}}},
          {"sensors", std::move(sensors)},
          {"limits", std::move(limits)},
          {"validation", c.validation.empty() ? Json(nullptr) : c.validation},
          {"problems", c.present ? Json(i.problems) : Json::array()},
          {"first_seen", c.first_seen},
          {"last_seen", c.last_seen},
          {"updated_at", c.updated_at}};
}

Json CardManager::List() const {
  MutexLock lock(mu_);
  Json cards = Json::array();
  for (const auto& [id, card] : cards_) cards.push_back(View(card));
  return cards;
}

StatusOr<Json> CardManager::Get(std::string_view id) const {
  MutexLock lock(mu_);
  auto it = cards_.find(id);
  if (it == cards_.end()) {
    return NotFoundError(fmt::format("card {} not found", id), fpga::kReasonCardNotFound);
  }
  return View(it->second);
}

StatusOr<Json> CardManager::Drain(std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  if (card->admin_state != "active") return View(*card);
  card->admin_state = "draining";
  Events events{{"card.admin", {{"state", "draining"}}}};
  MaybeFinishDrain(*card, events);
  RETURN_IF_ERROR(Save(*card, events, Durability::kSynced));
  return View(*card);
}

StatusOr<Json> CardManager::Undrain(std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  if (card->admin_state == "active") return View(*card);
  card->admin_state = "active";
  RETURN_IF_ERROR(Save(*card, {{"card.admin", {{"state", "active"}}}}, Durability::kSynced));
  return View(*card);
}

Status CardManager::CheckCanOperate(const Card& card, bool is_work, std::string_view owner) const {
  const std::string& id = card.info.id;
  if (!card.present) {
    return FailedPreconditionError(
        fmt::format("card {} is no longer on the PCI bus (last seen {})", id, card.last_seen),
        kReasonCardGone);
  }
  if (card.operation != "idle") {
    return ConflictError(fmt::format("card {} is busy: {}", id, card.operation), kReasonCardBusy);
  }
  if (!is_work) return Status::Ok();
  if (card.health.state == fpga::HealthState::kUnhealthy) {
    std::string why = card.health.reasons.empty() ? "" : card.health.reasons.front().message;
    return FailedPreconditionError(
        fmt::format("card {} is unhealthy and takes no new work: {}", id, why),
        kReasonCardUnhealthy);
  }
  std::string_view holder = owner.empty() ? std::string_view("free") : owner;
  if (card.assignment != holder) {
    return FailedPreconditionError(
        card.assignment == "free" ? fmt::format("card {} is not assigned to {}", id, holder)
                                  : fmt::format("card {} is assigned to {}", id, card.assignment),
        kReasonCardAssigned);
  }
  return Status::Ok();
}

bool CardManager::Assignable(const Card& card) {
  return card.present && card.admin_state == "active" && card.assignment == "free" &&
         card.operation == "idle" && !card.needs_reset &&
         card.health.state != fpga::HealthState::kUnhealthy;
}

StatusOr<std::vector<CardPool::Card>> CardManager::AssignFree(int count, std::string_view owner) {
  MutexLock lock(mu_);
  std::vector<Card*> candidates;
  for (auto& [id, card] : cards_) {
    if (Assignable(card)) candidates.push_back(&card);
  }
  if (std::ssize(candidates) < count) {
    return FailedPreconditionError(
        fmt::format("{} FPGA card(s) needed, {} free, active and healthy on this host", count,
                    candidates.size()),
        kReasonInsufficientCapacity);
  }
  // Healthy before degraded; by id within each (stable_sort keeps the map's order).
  std::stable_sort(candidates.begin(), candidates.end(), [](const Card* a, const Card* b) {
    return a->health.state == fpga::HealthState::kHealthy &&
           b->health.state != fpga::HealthState::kHealthy;
  });
  candidates.resize(static_cast<size_t>(count));
  std::vector<CardPool::Card> assigned;
  for (Card* card : candidates) {
    card->assignment = std::string(owner);
    Status s = Save(*card, {{"card.assignment", {{"assignment", card->assignment}}}});
    if (!s.ok()) {
      // All or none: give back what this call already took.
      card->assignment = "free";
      for (const CardPool::Card& a : assigned) {
        Card& taken = cards_.at(a.id);
        taken.assignment = "free";
        (void)Save(taken, {{"card.assignment", {{"assignment", "free"}}}});
      }
      return s;
    }
    assigned.push_back(
        {card->info.id, card->info.mgmt_bdf, card->info.user_bdf, card->info.vbnv.value_or("")});
  }
  return assigned;
}

Status CardManager::Unassign(std::string_view id, std::string_view owner) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  if (card->assignment == "free") return Status::Ok();
  if (card->assignment != owner) {
    return FailedPreconditionError(
        fmt::format("card {} is assigned to {}, not {}", id, card->assignment, owner),
        "CARD_NOT_ASSIGNED");
  }
  card->assignment = "free";
  Events events = {{"card.assignment", {{"assignment", "free"}}}};
  MaybeFinishDrain(*card, events);
  return Save(*card, events);
}

bool CardManager::Compatible(const Card& card, const LoadRequest& image) {
  const fpga::CardInfo& info = card.info;
  return info.interface_uuid ? image.interface_uuid == *info.interface_uuid
                             : (info.vbnv.has_value() && image.vbnv == *info.vbnv);
}

StatusOr<CardManager::Lent> CardManager::AssignFor(const LoadRequest& image,
                                                   std::string_view owner) {
  MutexLock lock(mu_);
  Card* best = nullptr;
  auto rank = [&image](const Card& c) {
    bool holds = c.image_state == "loaded" && c.xclbin_uuid == image.xclbin_uuid;
    return (holds ? 2 : 0) + (c.health.state == fpga::HealthState::kHealthy ? 1 : 0);
  };
  for (auto& [id, card] : cards_) {
    if (!Assignable(card) || !Compatible(card, image)) continue;
    if (!best || rank(card) > rank(*best)) best = &card;
  }
  if (!best) {
    return FailedPreconditionError(
        fmt::format("no FPGA card that can run image {} ({}) is free, active and healthy on "
                    "this host",
                    image.image_id, image.vbnv),
        kReasonInsufficientCapacity);
  }
  best->assignment = std::string(owner);
  Status s = Save(*best, {{"card.assignment", {{"assignment", best->assignment}}}});
  if (!s.ok()) {
    best->assignment = "free";
    return s;
  }
  Lent lent;
  lent.card = {best->info.id, best->info.mgmt_bdf, best->info.user_bdf,
               best->info.vbnv.value_or("")};
  lent.holds_image = best->image_state == "loaded" && best->xclbin_uuid == image.xclbin_uuid;
  return lent;
}

int CardManager::CountAssignableFor(const LoadRequest& image) const {
  MutexLock lock(mu_);
  return static_cast<int>(std::count_if(cards_.begin(), cards_.end(), [&image](const auto& kv) {
    return Assignable(kv.second) && Compatible(kv.second, image);
  }));
}

std::vector<std::string> CardManager::UnassignAllOf(std::string_view prefix) {
  MutexLock lock(mu_);
  std::vector<std::string> freed;
  for (auto& [id, card] : cards_) {
    if (!card.assignment.starts_with(prefix)) continue;
    card.assignment = "free";
    Events events = {{"card.assignment", {{"assignment", "free"}}}};
    MaybeFinishDrain(card, events);
    if (Save(card, events).ok()) freed.push_back(id);
  }
  return freed;
}

int CardManager::CountAssignable() const {
  MutexLock lock(mu_);
  return static_cast<int>(std::count_if(cards_.begin(), cards_.end(),
                                        [](const auto& kv) { return Assignable(kv.second); }));
}

// std::unique_lock (which the condition variable needs) carries no thread-safety annotations.
StatusOr<Json> CardManager::WaitForCard(std::string_view id, std::chrono::milliseconds timeout)
    NO_THREAD_SAFETY_ANALYSIS {
  std::unique_lock<Mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto it = cards_.find(id);
    if (it == cards_.end()) {
      return NotFoundError(fmt::format("card {} not found", id), fpga::kReasonCardNotFound);
    }
    if (it->second.operation == "idle") return View(it->second);
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return DeadlineExceededError(
          fmt::format("card {} is still {} after {} ms", id, it->second.operation, timeout.count()),
          kReasonCardBusy);
    }
  }
}

void CardManager::RunOperation(const std::string& id, std::function<void()> body) {
  ++running_;
  workers_->Post([this, id, body = std::move(body)] {
    body();
    MutexLock lock(mu_);
    auto it = cards_.find(id);
    if (it != cards_.end()) {
      Events events;
      MaybeFinishDrain(it->second, events);
      if (!events.empty()) (void)Save(it->second, events);
    }
    --running_;
    changed_.notify_all();
  });
}

StatusOr<CardManager::Accepted> CardManager::Load(std::string_view id, const LoadRequest& request,
                                                  std::string_view owner) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  RETURN_IF_ERROR(CheckCanOperate(*card, /*is_work=*/true, owner));
  if (owner.empty() && card->admin_state != "active") {
    return FailedPreconditionError(
        fmt::format("card {} is {} and takes no new work", id, card->admin_state),
        kReasonCardDrained);
  }
  const fpga::CardInfo& info = card->info;
  if (!Compatible(*card, request)) {
    return FailedPreconditionError(
        fmt::format("image {} was built for shell {} (interface UUID {}); card {} runs {} "
                    "(interface UUID {})",
                    request.image_id.empty() ? request.file.filename().string() : request.image_id,
                    request.vbnv, request.interface_uuid.empty() ? "none" : request.interface_uuid,
                    id, info.vbnv.value_or("an unknown shell"),
                    info.interface_uuid.value_or("none")),
        fpga::kReasonXclbinIncompatible);
  }
  if (card->image_state == "loaded" && card->xclbin_uuid == request.xclbin_uuid) {
    Events events;
    if (card->image_id != request.image_id) card->image_id = request.image_id;
    events.push_back({"card.load",
                      {{"state", "loaded"},
                       {"noop", true},
                       {"image_id", Nullable(request.image_id)},
                       {"xclbin_uuid", request.xclbin_uuid}}});
    RETURN_IF_ERROR(Save(*card, events));
    return Accepted{View(*card), false};
  }
  card->operation = "loading";
  card->image_epoch++;
  card->image_state = "loading";
  card->image_id = request.image_id;
  card->xclbin_uuid = request.xclbin_uuid;
  card->error_code.clear();
  card->error_message.clear();
  RETURN_IF_ERROR(Save(*card, {{"card.load",
                                {{"state", "loading"},
                                 {"image_id", Nullable(request.image_id)},
                                 {"xclbin_uuid", request.xclbin_uuid}}}}));
  std::string card_id(id);
  RunOperation(card_id, [this, card_id, request] { DoLoad(card_id, request); });
  return Accepted{View(*card), true};
}

StatusOr<CardManager::Accepted> CardManager::StartReset(std::string_view id, bool is_clear,
                                                        std::string_view owner) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  RETURN_IF_ERROR(CheckCanOperate(*card, /*is_work=*/false));
  if (is_clear && card->assignment != (owner.empty() ? std::string_view("free") : owner)) {
    return FailedPreconditionError(
        fmt::format("card {} is assigned to {}; its owner clears it", id, card->assignment),
        kReasonCardAssigned);
  }
  card->operation = is_clear ? "clearing" : "resetting";
  card->image_epoch++;
  if (card->image_state == "loaded") card->image_state = "clearing";
  RETURN_IF_ERROR(
      Save(*card, {{is_clear ? "card.clear" : "card.reset", {{"state", card->operation}}}}));
  std::string card_id(id);
  RunOperation(card_id, [this, card_id, is_clear] { DoReset(card_id, is_clear); });
  return Accepted{View(*card), true};
}

StatusOr<CardManager::Accepted> CardManager::Clear(std::string_view id, std::string_view owner) {
  return StartReset(id, /*is_clear=*/true, owner);
}

StatusOr<CardManager::Accepted> CardManager::Reset(std::string_view id) {
  return StartReset(id, /*is_clear=*/false, {});
}

StatusOr<CardManager::Accepted> CardManager::Validate(std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Card * card, Find(id));
  RETURN_IF_ERROR(CheckCanOperate(*card, /*is_work=*/true));
  if (options_.verify_designs.empty()) {
    return FailedPreconditionError("no verification designs are configured (verify-designs-dir)",
                                   "VALIDATE_UNAVAILABLE");
  }
  card->operation = "validating";
  card->image_epoch++;
  card->validation = {{"state", "running"},
                      {"started_at", FormatRfc3339(deps_.clock.Now())},
                      {"tests", Json::array()}};
  RETURN_IF_ERROR(Save(*card, {{"card.validate", {{"state", "running"}}}}));
  std::string card_id(id);
  RunOperation(card_id, [this, card_id] { DoValidate(card_id); });
  return Accepted{View(*card), true};
}

std::optional<std::string> CardManager::ReadBackUuid(const std::string& mgmt_bdf) {
  StatusOr<fpga::CardInfo> info = scanner_.ScanCard(mgmt_bdf);
  if (!info.ok()) return std::nullopt;
  return info->loaded_xclbin_uuid;
}

fpga::Programmer& CardManager::LoaderFor(const fpga::CardInfo& info) {
  // XRT needs the host to hold the user PF; once it is given to vfio-pci (a VM) or unbound,
  // only the management PF can load.
  return info.user_driver == "xocl" ? deps_.user_pf_programmer : deps_.mgmt_pf_programmer;
}

void CardManager::DoLoad(const std::string& id, LoadRequest request) {
  fpga::CardAddress address;
  fpga::Programmer* programmer = nullptr;
  {
    MutexLock lock(mu_);
    Card& card = cards_.at(id);
    address = AddressOf(card);
    programmer = &LoaderFor(card.info);
  }
  auto start = std::chrono::steady_clock::now();
  Status s = programmer->Load(address, request.file, options_.load_timeout);
  std::optional<std::string> reported;
  if (s.ok()) reported = ReadBackUuid(address.mgmt_bdf);
  double seconds = SecondsSince(start);

  MutexLock lock(mu_);
  Card& card = cards_.at(id);
  card.operation = "idle";
  card.image_epoch++;
  Events events;
  // The loaded UUID can be read back only while the host holds the user PF; through the
  // management PF (a card in a VM) xbmgmt's word is all there is, as on any XRT host.
  if (s.ok() && (!reported || *reported == request.xclbin_uuid)) {
    card.image_state = "loaded";
    events.push_back({"card.load",
                      {{"state", "loaded"},
                       {"image_id", Nullable(request.image_id)},
                       {"xclbin_uuid", request.xclbin_uuid},
                       {"programmer", std::string(programmer->name())},
                       {"seconds", seconds}}});
  } else {
    if (s.ok()) {
      s = InternalError(fmt::format("{} reported success but the card reports xclbin {}",
                                    programmer->name(), reported.value_or("<unreadable>")),
                        "LOAD_NOT_CONFIRMED");
    }
    card.image_state = "load_failed";
    card.error_code = std::string(s.reason());
    card.error_message = s.message();
    if (s.reason() == fpga::kReasonLoadTimeout) card.needs_reset = true;
    events.push_back({"card.load",
                      {{"state", "load_failed"},
                       {"image_id", Nullable(request.image_id)},
                       {"xclbin_uuid", request.xclbin_uuid},
                       {"programmer", std::string(programmer->name())},
                       {"code", card.error_code},
                       {"message", card.error_message}}});
    spdlog::warn("card {}: load of {} failed: {}", id, request.xclbin_uuid, s.ToString());
  }
  UpdateHealth(card, events);
  (void)Save(card, events);
}

void CardManager::DoReset(const std::string& id, bool is_clear) {
  fpga::CardAddress address;
  {
    MutexLock lock(mu_);
    address = AddressOf(cards_.at(id));
  }
  Status s = deps_.resetter.Reset(address, options_.reset_timeout);
  std::optional<std::string> reported;
  if (s.ok()) reported = ReadBackUuid(address.mgmt_bdf);

  MutexLock lock(mu_);
  Card& card = cards_.at(id);
  card.operation = "idle";
  card.image_epoch++;
  std::string kind = is_clear ? "card.clear" : "card.reset";
  Events events;
  if (s.ok() && (!reported || reported->empty())) {
    card.image_state = "cleared";
    card.image_id.clear();
    card.xclbin_uuid.clear();
    card.error_code.clear();
    card.error_message.clear();
    card.needs_reset = false;
    events.push_back({kind, {{"state", "cleared"}}});
  } else {
    if (s.ok()) {
      s = InternalError(
          fmt::format("the reset reported success but the card still reports xclbin {}",
                      reported.value_or("<unreadable>")),
          fpga::kReasonResetFailed);
    }
    if (card.image_state == "clearing") card.image_state = "loaded";
    card.error_code = std::string(s.reason());
    card.error_message = s.message();
    events.push_back(
        {kind, {{"state", "failed"}, {"code", card.error_code}, {"message", card.error_message}}});
    spdlog::warn("card {}: {} failed: {}", id, is_clear ? "clear" : "reset", s.ToString());
  }
  UpdateHealth(card, events);
  (void)Save(card, events);
}

void CardManager::DoValidate(const std::string& id) {
  fpga::CardAddress address;
  fpga::CardInfo info;
  {
    MutexLock lock(mu_);
    Card& card = cards_.at(id);
    address = AddressOf(card);
    info = card.info;
  }
  Json tests = Json::array();
  bool passed = true;
  bool hung = false;
  auto record = [&](Json test) {
    passed = passed && test.value("passed", false);
    tests.push_back(std::move(test));
    MutexLock lock(mu_);
    cards_.at(id).validation["tests"] = tests;  // progress for GET; saved at the end
  };

  for (const VerifyDesign& design : options_.verify_designs) {
    std::string step = "load-" + design.name;
    StatusOr<images::XclbinFileResult> checked =
        images::ValidateXclbinFile(design.xclbin, options_.verify_validation);
    Status usable = checked.ok() ? checked->validated.status() : checked.status();
    if (usable.ok()) {
      const images::Xclbin& x = checked->validated->xclbin;
      std::string interface_uuid = images::FormatUuid(x.header.interface_uuid);
      if (info.interface_uuid && *info.interface_uuid != interface_uuid) {
        usable = FailedPreconditionError(
            fmt::format("{} is built for interface UUID {}, the card's is {}",
                        design.xclbin.string(), interface_uuid, *info.interface_uuid),
            fpga::kReasonXclbinIncompatible);
      }
    }
    if (!usable.ok()) {
      record({{"name", step},
              {"design", design.name},
              {"passed", false},
              {"message", usable.ToString()}});
      break;
    }
    auto start = std::chrono::steady_clock::now();
    Status loaded = LoaderFor(info).Load(address, design.xclbin, options_.load_timeout);
    if (!loaded.ok()) {
      hung = loaded.reason() == fpga::kReasonLoadTimeout;
      record({{"name", step},
              {"design", design.name},
              {"passed", false},
              {"message", loaded.ToString()}});
      break;
    }
    record({{"name", step},
            {"design", design.name},
            {"passed", true},
            {"message", fmt::format("loaded {} in {:.2f} s", design.xclbin.filename().string(),
                                    SecondsSince(start))}});
    StatusOr<Json> report = deps_.design_runner.Run(design, address, options_.validate_timeout);
    if (!report.ok()) {
      record({{"name", design.name},
              {"design", design.name},
              {"passed", false},
              {"message", report.status().ToString()}});
      continue;
    }
    const Json* design_tests = report->contains("tests") ? &(*report)["tests"] : nullptr;
    if (design_tests == nullptr || !design_tests->is_array() || design_tests->empty()) {
      record({{"name", design.name},
              {"design", design.name},
              {"passed", false},
              {"message", report->value("error", std::string("the host program reported no "
                                                             "tests"))}});
      continue;
    }
    for (Json test : *design_tests) {
      if (!test.is_object()) continue;
      test["design"] = design.name;
      record(std::move(test));
    }
    if (!report->value("passed", false)) passed = false;
  }

  Status cleared = deps_.resetter.Reset(address, options_.reset_timeout);
  std::optional<std::string> reported;
  if (cleared.ok()) reported = ReadBackUuid(address.mgmt_bdf);
  bool is_clear = cleared.ok() && (!reported || reported->empty());
  record({{"name", "clear"},
          {"passed", is_clear},
          {"message", is_clear ? std::string("card cleared")
                               : (cleared.ok() ? std::string("the card still reports an xclbin")
                                               : cleared.ToString())}});

  MutexLock lock(mu_);
  Card& card = cards_.at(id);
  card.operation = "idle";
  card.image_epoch++;
  card.validation["state"] = passed ? "passed" : "failed";
  card.validation["finished_at"] = FormatRfc3339(deps_.clock.Now());
  card.validation["tests"] = tests;
  if (is_clear) {
    card.image_state = "cleared";
    card.image_id.clear();
    card.xclbin_uuid.clear();
  } else if (reported && !reported->empty()) {
    card.image_state = "loaded";
    card.image_id.clear();
    card.xclbin_uuid = *reported;
  }
  if (hung && !is_clear) card.needs_reset = true;
  int failed = 0;
  for (const Json& t : tests) failed += t.value("passed", false) ? 0 : 1;
  Events events{
      {"card.validate",
       {{"state", card.validation["state"]}, {"tests", tests.size()}, {"failed", failed}}}};
  UpdateHealth(card, events);
  (void)Save(card, events);
}

}  // namespace fpgahost
