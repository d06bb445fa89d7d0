#include "host/instances/instance_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "common/ids.h"
#include "common/logging.h"
#include "host/store/events.h"
#include "vfio/iommu_group.h"

namespace fpgahost {
namespace {

constexpr char kColumns[] =
    "id, name, tenant, type, state, operation, vcpus, memory_mib, domain_name, slots, "
    "error_code, error_message, created_at, updated_at";

Json Nullable(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f;
  });
}

bool IgnorableDomainError(const Status& s) {
  return s.ok() || s.reason() == vfio::kReasonDomainNotFound;
}

Json ErrorJson(const Status& s) {
  return {{"code", std::string(s.reason())}, {"message", std::string(s.message())}};
}

}  // namespace

InstanceManager::InstanceManager(InstanceManagerDeps deps, InstanceManagerOptions options)
    : deps_(deps),
      options_(std::move(options)),
      workers_(std::make_unique<ThreadPool>(options_.workers)) {
  watch_timer_ = std::thread([this] { WatchTimerLoop(); });
}

InstanceManager::~InstanceManager() { Stop(); }

void InstanceManager::Stop() {
  workers_->Shutdown();
  StopWaiters();
  if (watch_timer_.joinable()) watch_timer_.join();
}

void InstanceManager::StopWaiters() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  watchers_changed_.notify_all();
}

void InstanceManager::WaitIdle() {
  std::unique_lock<Mutex> lock(mu_);
  changed_.wait(lock, [this]() NO_THREAD_SAFETY_ANALYSIS { return running_ == 0; });
}

bool InstanceManager::IsSettled(const Instance& instance) {
  return instance.state != "pending" && instance.state != "stopping" &&
         instance.state != "terminating";
}

bool InstanceManager::IsLive(const Instance& instance) {
  return instance.state != "terminated" && instance.state != "failed";
}

// ---- store ----------------------------------------------------------------------------------

Status InstanceManager::LoadTable() {
  ASSIGN_OR_RETURN(Statement q, deps_.store.db().Prepare(fmt::format(
                                    "SELECT {} FROM instances ORDER BY created_at, id", kColumns)));
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Instance i;
    i.id = q.ColumnText(0);
    i.name = q.ColumnText(1);
    i.tenant = q.ColumnText(2);
    i.type = q.ColumnText(3);
    i.state = q.ColumnText(4);
    i.operation = q.ColumnText(5);
    i.vcpus = static_cast<int>(q.ColumnInt64(6));
    i.memory_mib = q.ColumnInt64(7);
    i.domain_name = q.ColumnText(8);
    Json slots = Json::parse(q.ColumnText(9), nullptr, false);
    if (slots.is_array()) {
      for (const Json& s : slots) {
        Slot slot;
        slot.index = s.value("index", 0);
        slot.card_id = s.value("card_id", "");
        slot.mgmt_bdf = s.value("mgmt_bdf", "");
        slot.user_bdf = s.value("user_bdf", "");
        slot.vbnv = s.value("vbnv", "");
        slot.bound = s.value("bound", false);
        slot.group = s.value("group", "");
        slot.original_driver = s.value("original_driver", "");
        i.slots.push_back(std::move(slot));
      }
    }
    i.error_code = q.ColumnText(10);
    i.error_message = q.ColumnText(11);
    i.created_at = q.ColumnText(12);
    i.updated_at = q.ColumnText(13);
    std::string id = i.id;
    instances_[id] = std::move(i);
  }
  return Status::Ok();
}

Status InstanceManager::Save(Instance& instance, const Events& events) {
  instance.updated_at = FormatRfc3339(deps_.clock.Now());
  Json slots = Json::array();
  for (const Slot& s : instance.slots) {
    slots.push_back({{"index", s.index},
                     {"card_id", s.card_id},
                     {"mgmt_bdf", s.mgmt_bdf},
                     {"user_bdf", s.user_bdf},
                     {"vbnv", s.vbnv},
                     {"bound", s.bound},
                     {"group", s.group},
                     {"original_driver", s.original_driver}});
  }
  return deps_.store.InTransaction(
      [&](SqliteDb& db) -> Status {
        ASSIGN_OR_RETURN(
            Statement upsert,
            db.Prepare(fmt::format("INSERT OR REPLACE INTO instances ({}) VALUES (?1, ?2, "
                                   "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                                   kColumns)));
        upsert.Bind(1, instance.id)
            .Bind(2, instance.name)
            .Bind(3, instance.tenant)
            .Bind(4, instance.type)
            .Bind(5, instance.state)
            .Bind(6, instance.operation)
            .Bind(7, int64_t{instance.vcpus})
            .Bind(8, instance.memory_mib)
            .Bind(9, instance.domain_name)
            .Bind(10, slots.dump())
            .Bind(11, instance.error_code)
            .Bind(12, instance.error_message)
            .Bind(13, instance.created_at)
            .Bind(14, instance.updated_at);
        RETURN_IF_ERROR(upsert.Run());
        for (const auto& [kind, detail] : events) {
          RETURN_IF_ERROR(AppendEvent(db, deps_.clock, kind, instance.id, detail));
        }
        return Status::Ok();
      },
      Durability::kRuntime);
}

Status InstanceManager::Transition(const std::string& id, std::string_view state,
                                   std::string_view operation, const Events& events,
                                   const Status& error) {
  Status s;
  std::vector<std::function<void()>> answers;
  {
    MutexLock lock(mu_);
    Instance& i = instances_.at(id);
    i.state = std::string(state);
    i.operation = std::string(operation);
    if (!error.ok()) {
      i.error_code = std::string(error.reason().empty() ? "INTERNAL" : error.reason());
      i.error_message = std::string(error.message());
    } else if (state != "terminated") {
      // A success supersedes an earlier failure; a terminated instance keeps why it failed.
      i.error_code.clear();
      i.error_message.clear();
    }
    s = Save(i, events);
    if (!s.ok()) spdlog::error("instance {}: cannot record state {}: {}", id, state, s.ToString());
    changed_.notify_all();
    answers = DueWatchers(id);
  }
  for (auto& answer : answers) answer();
  return s;
}

std::vector<std::function<void()>> InstanceManager::DueWatchers(std::string_view id) {
  std::vector<std::function<void()>> answers;
  auto now = std::chrono::steady_clock::now();
  std::vector<Watcher> waiting;
  for (Watcher& w : watchers_) {
    auto it = instances_.find(w.id);
    bool due = (id.empty() || w.id == id) &&
               (w.deadline <= now || stopping_ || it == instances_.end() || IsSettled(it->second));
    if (!due) {
      waiting.push_back(std::move(w));
      continue;
    }
    auto i = FindFor(w.tenant, w.id);
    StatusOr<Json> view = i.ok() ? StatusOr<Json>(View(**i)) : StatusOr<Json>(i.status());
    answers.push_back([done = std::move(w.done), view = std::move(view)]() { done(view); });
  }
  watchers_ = std::move(waiting);
  return answers;
}

void InstanceManager::WhenSettled(std::string_view tenant, std::string_view id,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(StatusOr<Json>)> done) {
  std::optional<StatusOr<Json>> now;
  {
    MutexLock lock(mu_);
    auto i = FindFor(tenant, id);
    if (i.ok() && !IsSettled(**i) && timeout.count() > 0 && !stopping_ &&
        watchers_.size() < kMaxWatchers) {
      watchers_.push_back({std::string(id), std::string(tenant),
                           std::chrono::steady_clock::now() + timeout, std::move(done)});
      watchers_changed_.notify_all();
      return;
    }
    now = i.ok() ? StatusOr<Json>(View(**i)) : StatusOr<Json>(i.status());
  }
  done(std::move(*now));
}

// std::unique_lock (which the condition variable needs) carries no thread-safety annotations.
void InstanceManager::WatchTimerLoop() NO_THREAD_SAFETY_ANALYSIS {
  std::unique_lock<Mutex> lock(mu_);
  while (true) {
    auto next = std::chrono::steady_clock::time_point::max();
    for (const Watcher& w : watchers_) next = std::min(next, w.deadline);
    if (next == std::chrono::steady_clock::time_point::max()) {
      watchers_changed_.wait(
          lock, [&]() NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !watchers_.empty(); });
    } else {
      watchers_changed_.wait_until(lock, next,
                                   [&]() NO_THREAD_SAFETY_ANALYSIS { return stopping_; });
    }
    std::vector<std::function<void()>> answers = DueWatchers({});
    bool last = stopping_;
    lock.unlock();
    for (auto& answer : answers) answer();
    lock.lock();
    if (last) return;
  }
}

InstanceManager::Instance InstanceManager::Snapshot(const std::string& id) const {
  MutexLock lock(mu_);
  return instances_.at(id);
}

void InstanceManager::SetSlot(const std::string& id, const Slot& slot) {
  MutexLock lock(mu_);
  instances_.at(id).slots.at(static_cast<size_t>(slot.index)) = slot;
}

// ---- views ----------------------------------------------------------------------------------

Json InstanceManager::SlotView(const Instance& instance, const Slot& slot) const {
  return SlotView(instance, slot, deps_.cards.Get(slot.card_id));
}

Json InstanceManager::SlotView(const Instance& instance, const Slot& slot,
                               const StatusOr<Json>& card) const {
  Json view = {{"slot", slot.index},
               {"state", "unknown"},
               {"image_id", nullptr},
               {"xclbin_uuid", nullptr},
               {"card", slot.card_id},
               {"user_bdf", slot.user_bdf},
               {"vendor_id", nullptr},
               {"device_id", nullptr},
               {"shell", Nullable(slot.vbnv)},
               {"error", nullptr},
               {"updated_at", instance.updated_at}};
  if (!card.ok()) {
    view["error"] = ErrorJson(card.status());
    return view;
  }
  const Json& image = (*card)["image"];
  view["state"] = image.value("state", "unknown");
  view["image_id"] = image.contains("image_id") ? image["image_id"] : Json(nullptr);
  view["xclbin_uuid"] = image.contains("xclbin_uuid") ? image["xclbin_uuid"] : Json(nullptr);
  view["error"] = (*card).contains("last_error") ? (*card)["last_error"] : Json(nullptr);
  view["updated_at"] = (*card).value("updated_at", instance.updated_at);
  // What the guest sees on the passed-through function, as fpga-describe-local-image shows it.
  // Discovery only pairs Xilinx functions, so the vendor is Xilinx's.
  const Json& device = (*card)["user_pf"]["device_id"];
  view["vendor_id"] =
      device.is_string() ? Json(fmt::format("0x{:04x}", fpga::kXilinxVendorId)) : Json(nullptr);
  view["device_id"] = device;
  return view;
}

Json InstanceManager::View(const Instance& i) const {
  Json slots = Json::array();
  // Until the instance is running its cards are not yet (or no longer) its slots' business.
  for (const Slot& s : i.slots) slots.push_back(SlotView(i, s));
  Json error = nullptr;
  if (!i.error_code.empty()) error = {{"code", i.error_code}, {"message", i.error_message}};
  return {{"id", i.id},
          {"name", i.name},
          {"tenant", i.tenant},
          {"type", i.type},
          {"state", i.state},
          {"vcpus", i.vcpus},
          {"memory_mib", i.memory_mib},
          {"fpgas", i.slots.size()},
          {"domain", {{"name", i.domain_name}, {"uri", deps_.hypervisor.uri()}}},
          {"slots", std::move(slots)},
          {"error", std::move(error)},
          {"created_at", i.created_at},
          {"updated_at", i.updated_at}};
}

StatusOr<const InstanceManager::Instance*> InstanceManager::FindFor(std::string_view tenant,
                                                                    std::string_view id) const {
  auto it = instances_.find(id);
  // Another tenant's instance is answered exactly as a missing one.
  if (it == instances_.end() || (!tenant.empty() && it->second.tenant != tenant)) {
    return NotFoundError(fmt::format("instance {} not found", id), kReasonInstanceNotFound);
  }
  return &it->second;
}

StatusOr<InstanceManager::Instance*> InstanceManager::FindFor(std::string_view tenant,
                                                              std::string_view id) {
  auto it = instances_.find(id);
  if (it == instances_.end() || (!tenant.empty() && it->second.tenant != tenant)) {
    return NotFoundError(fmt::format("instance {} not found", id), kReasonInstanceNotFound);
  }
  return &it->second;
}

Json InstanceManager::List(std::string_view tenant) const {
  MutexLock lock(mu_);
  Json list = Json::array();
  for (const auto& [id, i] : instances_) {
    if (tenant.empty() || i.tenant == tenant) list.push_back(View(i));
  }
  return list;
}

StatusOr<Json> InstanceManager::Get(std::string_view tenant, std::string_view id) const {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(const Instance* i, FindFor(tenant, id));
  return View(*i);
}

StatusOr<Json> InstanceManager::ListSlots(std::string_view tenant, std::string_view id) const {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(const Instance* i, FindFor(tenant, id));
  Json slots = Json::array();
  for (const Slot& s : i->slots) slots.push_back(SlotView(*i, s));
  return slots;
}

StatusOr<Json> InstanceManager::GetSlot(std::string_view tenant, std::string_view id,
                                        int slot) const {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(const Instance* i, FindFor(tenant, id));
  ASSIGN_OR_RETURN(const Slot* s, FindSlot(*i, slot, {}));
  return SlotView(*i, *s);
}

StatusOr<const InstanceManager::Slot*> InstanceManager::FindSlot(const Instance& i, int slot,
                                                                 std::string_view running_for) {
  if (slot < 0 || slot >= std::ssize(i.slots)) {
    return NotFoundError(
        fmt::format("instance {} has no slot {} (it has {})", i.id, slot, i.slots.size()),
        kReasonSlotNotFound);
  }
  if (!running_for.empty() && i.state != "running") {
    return FailedPreconditionError(
        fmt::format("instance {} is {}; slots are {} while it runs", i.id, i.state, running_for),
        kReasonIncorrectInstanceState);
  }
  return &i.slots[static_cast<size_t>(slot)];
}

// ---- requests -------------------------------------------------------------------------------

void InstanceManager::RunOperation(std::function<void()> body) {
  ++running_;
  workers_->Post([this, body = std::move(body)] {
    body();
    MutexLock lock(mu_);
    --running_;
    changed_.notify_all();
  });
}

StatusOr<Json> InstanceManager::Create(std::string_view tenant, std::string_view type,
                                       std::string_view name) {
  auto t = std::find_if(options_.types.begin(), options_.types.end(),
                        [&](const InstanceType& it) { return it.name == type; });
  if (t == options_.types.end()) {
    std::string known;
    for (const InstanceType& it : options_.types) known += (known.empty() ? "" : ", ") + it.name;
    return InvalidArgumentError(
        fmt::format("type: unknown instance type '{}' (this host offers {})", type, known),
        "INVALID_FIELD");
  }
  if (!name.empty() && !ValidName(name)) {
    return InvalidArgumentError("name: must be 1-128 printable characters", "INVALID_FIELD");
  }
  if (tenant.empty()) return InvalidArgumentError("an instance needs a tenant", "INVALID_FIELD");

  Instance i;
  i.id = NewId("i");
  i.name = name.empty() ? i.id : std::string(name);
  i.tenant = std::string(tenant);
  i.type = t->name;
  i.state = "pending";
  i.operation = "create";
  i.vcpus = t->vcpus;
  i.memory_mib = t->memory_mib;
  i.domain_name = "fpgahost-" + i.id;
  i.created_at = FormatRfc3339(deps_.clock.Now());

  ASSIGN_OR_RETURN(CapacityAccount::Reservation reservation,
                   deps_.capacity.Reserve(Owner(i), {t->vcpus, t->memory_mib}, t->fpgas));
  std::vector<std::string> card_ids;
  for (size_t n = 0; n < reservation.cards.size(); ++n) {
    const CardPool::Card& c = reservation.cards[n];
    i.slots.push_back({static_cast<int>(n), c.id, c.mgmt_bdf, c.user_bdf, c.vbnv, false, "", ""});
    card_ids.push_back(c.id);
  }

  MutexLock lock(mu_);
  Status saved = Save(
      i,
      {{"instance.pending",
        {{"operation", "create"}, {"type", i.type}, {"tenant", i.tenant}, {"cards", card_ids}}}});
  if (!saved.ok()) {
    (void)deps_.capacity.Release(Owner(i), card_ids);
    return saved;
  }
  std::string id = i.id;
  Json view = View(i);
  instances_[id] = std::move(i);
  RunOperation([this, id] { DoCreate(id); });
  return view;
}

StatusOr<Json> InstanceManager::StopInstance(std::string_view tenant, std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Instance * i, FindFor(tenant, id));
  if (i->state == "stopped") return View(*i);
  if (i->state != "running") {
    return FailedPreconditionError(
        fmt::format("instance {} is {}; only a running instance can be stopped", id, i->state),
        kReasonIncorrectInstanceState);
  }
  i->state = "stopping";
  i->operation = "stop";
  RETURN_IF_ERROR(Save(*i, {{"instance.stopping", Json::object()}}));
  std::string key = i->id;
  RunOperation([this, key] { DoStop(key); });
  return View(*i);
}

StatusOr<Json> InstanceManager::StartInstance(std::string_view tenant, std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Instance * i, FindFor(tenant, id));
  if (i->state == "running") return View(*i);
  if (i->state != "stopped") {
    return FailedPreconditionError(
        fmt::format("instance {} is {}; only a stopped instance can be started", id, i->state),
        kReasonIncorrectInstanceState);
  }
  i->state = "pending";
  i->operation = "start";
  RETURN_IF_ERROR(Save(*i, {{"instance.pending", {{"operation", "start"}}}}));
  std::string key = i->id;
  RunOperation([this, key] { DoStart(key); });
  return View(*i);
}

StatusOr<Json> InstanceManager::Terminate(std::string_view tenant, std::string_view id) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Instance * i, FindFor(tenant, id));
  if (i->state == "terminated" || i->state == "terminating") return View(*i);
  if (i->state == "failed") {
    // A failed instance holds nothing any more; terminating it only closes its record.
    i->state = "terminated";
    i->operation = "none";
    RETURN_IF_ERROR(Save(*i, {{"instance.terminated", Json::object()}}));
    return View(*i);
  }
  if (i->state != "running" && i->state != "stopped") {
    return FailedPreconditionError(
        fmt::format("instance {} is {}; wait until it is running or stopped", id, i->state),
        kReasonIncorrectInstanceState);
  }
  i->state = "terminating";
  i->operation = "terminate";
  RETURN_IF_ERROR(Save(*i, {{"instance.terminating", Json::object()}}));
  std::string key = i->id;
  RunOperation([this, key] { DoTerminate(key); });
  return View(*i);
}

StatusOr<InstanceManager::SlotAccepted> InstanceManager::LoadSlot(std::string_view tenant,
                                                                  std::string_view id, int slot,
                                                                  const LoadRequest& request) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Instance * i, FindFor(tenant, id));
  ASSIGN_OR_RETURN(const Slot* found, FindSlot(*i, slot, "loaded"));
  const Slot& s = *found;
  ASSIGN_OR_RETURN(CardManager::Accepted accepted, deps_.cards.Load(s.card_id, request, Owner(*i)));
  // The card as the load left it when accepted: `loading`, even if it has finished since.
  return SlotAccepted{SlotView(*i, s, accepted.card), accepted.started};
}

StatusOr<InstanceManager::SlotAccepted> InstanceManager::ClearSlot(std::string_view tenant,
                                                                   std::string_view id, int slot) {
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(Instance * i, FindFor(tenant, id));
  ASSIGN_OR_RETURN(const Slot* found, FindSlot(*i, slot, "cleared"));
  const Slot& s = *found;
  Json view = SlotView(*i, s);
  if (view["state"] == "cleared") return SlotAccepted{std::move(view), false};
  ASSIGN_OR_RETURN(CardManager::Accepted accepted, deps_.cards.Clear(s.card_id, Owner(*i)));
  return SlotAccepted{SlotView(*i, s, accepted.card), accepted.started};
}

// ---- operations (on the workers, or at start-up) --------------------------------------------

vfio::DomainSpec InstanceManager::DomainFor(const Instance& i) const {
  vfio::DomainSpec spec;
  spec.name = i.domain_name;
  spec.vcpus = i.vcpus;
  spec.memory_mib = i.memory_mib;
  spec.boot_disk = options_.boot_disk;
  spec.metadata.instance_id = i.id;
  spec.metadata.tenant = i.tenant;
  spec.metadata.instance_type = i.type;
  for (const Slot& s : i.slots) {
    spec.hostdevs.push_back(s.user_bdf);
    spec.metadata.slots.push_back({s.index, s.card_id, s.user_bdf});
  }
  return spec;
}

void InstanceManager::DoCreate(const std::string& id) {
  Instance i = Snapshot(id);
  Status failure = Status::Ok();
  for (Slot& slot : i.slots) {
    if (slot.bound) continue;
    StatusOr<vfio::BindingRecord> record = deps_.binder.Bind(slot.user_bdf);
    if (!record.ok()) {
      failure = record.status().WithContext(fmt::format("slot {}", slot.index));
      // Where the failed bind left the PF is for a scan to say.
      RefreshCards({slot.card_id});
      break;
    }
    slot.bound = true;
    slot.group = record->group;
    slot.original_driver = record->original_driver;
    SetSlot(id, slot);
    deps_.cards.NoteUserPfDriver(slot.card_id, vfio::kVfioPciDriver);
  }
  if (failure.ok()) failure = deps_.hypervisor.Define(DomainFor(i));
  if (failure.ok()) failure = deps_.hypervisor.Start(i.domain_name);
  if (failure.ok()) {
    (void)Transition(id, "running", "none", {{"instance.running", Json::object()}});
    return;
  }
  spdlog::warn("instance {}: create failed: {}", id, failure.ToString());
  Status freed = FreeResources(id);
  Json detail = ErrorJson(failure);
  if (!freed.ok()) detail["cleanup_error"] = ErrorJson(freed);
  (void)Transition(id, "failed", "none", {{"instance.failed", detail}}, failure);
}

void InstanceManager::DoStart(const std::string& id) {
  Instance i = Snapshot(id);
  Status s = deps_.hypervisor.Start(i.domain_name);
  if (s.ok()) {
    (void)Transition(id, "running", "none", {{"instance.running", Json::object()}});
  } else {
    (void)Transition(id, "stopped", "none", {{"instance.stopped", {{"start_error", ErrorJson(s)}}}},
                     s);
  }
}

Status InstanceManager::PowerOff(const Instance& i, bool graceful) {
  if (graceful) {
    Status s = deps_.hypervisor.Shutdown(i.domain_name);
    if (!IgnorableDomainError(s)) return s;
    // Real time: the wait sleeps for real between polls.
    auto deadline = std::chrono::steady_clock::now() + options_.shutdown_timeout;
    while (s.ok()) {
      StatusOr<vfio::DomainInfo> info = deps_.hypervisor.Get(i.domain_name);
      if (!info.ok()) return IgnorableDomainError(info.status()) ? Status::Ok() : info.status();
      if (info->state == vfio::DomainState::kShutoff) return Status::Ok();
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(options_.shutdown_poll);
    }
  }
  Status s = deps_.hypervisor.Destroy(i.domain_name);
  return IgnorableDomainError(s) ? Status::Ok() : s;
}

Status InstanceManager::ClearSlots(const Instance& i) {
  Status first = Status::Ok();
  auto note = [&](const Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  // Start every clear first, then wait: the cards reset in parallel.
  std::vector<std::string> started;
  for (const Slot& slot : i.slots) {
    StatusOr<Json> card = deps_.cards.WaitForCard(slot.card_id, options_.clear_timeout);
    if (!card.ok()) {
      note(card.status());
      continue;
    }
    if ((*card)["image"].value("state", "") == "cleared") continue;
    StatusOr<CardManager::Accepted> accepted = deps_.cards.Clear(slot.card_id, Owner(i));
    if (!accepted.ok()) {
      note(accepted.status());
      continue;
    }
    started.push_back(slot.card_id);
  }
  for (const std::string& card_id : started) {
    StatusOr<Json> card = deps_.cards.WaitForCard(card_id, options_.clear_timeout);
    if (!card.ok()) {
      note(card.status());
    } else if ((*card)["image"].value("state", "") != "cleared") {
      note(InternalError(
          fmt::format("card {} did not clear: {}", card_id,
                      (*card)["last_error"].is_object() ? (*card)["last_error"].value("message", "")
                                                        : "no reason given"),
          fpga::kReasonResetFailed));
    }
  }
  return first;
}

Status InstanceManager::FreeResources(const std::string& id) {
  Instance i = Snapshot(id);
  Status first = Status::Ok();
  auto note = [&](const Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  note(PowerOff(i, /*graceful=*/false));
  Status undefined = deps_.hypervisor.Undefine(i.domain_name);
  if (!IgnorableDomainError(undefined)) note(undefined);
  note(ClearSlots(i));
  std::vector<std::string> card_ids;
  for (Slot& slot : i.slots) {
    card_ids.push_back(slot.card_id);
    if (!slot.bound) continue;
    vfio::BindingRecord record{slot.user_bdf, slot.original_driver, slot.group, {}};
    StatusOr<std::optional<vfio::BindingJournalEntry>> entry = deps_.bindings.Get(slot.user_bdf);
    if (entry.ok() && entry->has_value()) record.original_driver = (*entry)->original_driver;
    Status released = deps_.binder.Release(record);
    if (!released.ok()) {
      note(released);
      RefreshCards({slot.card_id});
      continue;
    }
    slot.bound = false;
    SetSlot(id, slot);
    deps_.cards.NoteUserPfDriver(slot.card_id, record.original_driver);
  }
  note(deps_.capacity.Release(Owner(i), card_ids));
  return first;
}

void InstanceManager::DoStop(const std::string& id) {
  Instance i = Snapshot(id);
  Status off = PowerOff(i, /*graceful=*/true);
  if (!off.ok()) {
    (void)Transition(id, "running", "none",
                     {{"instance.running", {{"stop_error", ErrorJson(off)}}}}, off);
    return;
  }
  Status cleared = ClearSlots(i);
  Json detail = Json::object();
  if (!cleared.ok()) detail["clear_error"] = ErrorJson(cleared);
  (void)Transition(id, "stopped", "none", {{"instance.stopped", detail}}, cleared);
}

void InstanceManager::DoTerminate(const std::string& id) {
  Status freed = FreeResources(id);
  Json detail = Json::object();
  // Whatever could not be freed now is freed by the next start-up's reconciliation.
  if (!freed.ok()) detail["cleanup_error"] = ErrorJson(freed);
  (void)Transition(id, "terminated", "none", {{"instance.terminated", detail}}, freed);
}

void InstanceManager::RefreshCards(const std::vector<std::string>& card_ids) {
  // The cards' views show which driver holds each PF; without a scan they would show the
  // drivers of before the binding until the next poll.
  Status s = card_ids.empty() ? deps_.cards.Rescan() : deps_.cards.RescanCards(card_ids);
  if (!s.ok()) spdlog::warn("instances: rescanning cards after a binding change: {}", s.ToString());
}

// ---- start-up -------------------------------------------------------------------------------

Status InstanceManager::Start() {
  {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(LoadTable());
    for (const auto& [id, i] : instances_) {
      if (IsLive(i)) deps_.capacity.Restore(Owner(i), {i.vcpus, i.memory_mib});
    }
  }
  StatusOr<std::vector<vfio::DomainInfo>> domains = deps_.hypervisor.List();
  if (!domains.ok()) {
    // Without the hypervisor's view nothing can be judged; judging anyway would fail every
    // instance. Leave the table as it is and say so.
    spdlog::error("instances: not reconciled, cannot list domains on {}: {}",
                  deps_.hypervisor.uri(), domains.status().ToString());
    return Status::Ok();
  }
  std::map<std::string, vfio::DomainInfo> ours;
  for (const vfio::DomainInfo& d : *domains) {
    if (d.metadata) ours[d.metadata->instance_id] = d;
  }
  Reconcile(ours);
  // Reconciling may itself have removed domains (a rolled-back create, a finished terminate);
  // orphans are judged on what is left.
  domains = deps_.hypervisor.List();
  if (!domains.ok()) {
    spdlog::error("instances: cannot list domains on {} to find orphans: {}",
                  deps_.hypervisor.uri(), domains.status().ToString());
    return Status::Ok();
  }
  ReconcileOrphans(*domains);
  return Status::Ok();
}

void InstanceManager::Reconcile(const std::map<std::string, vfio::DomainInfo>& domains) {
  std::vector<std::string> ids;
  {
    MutexLock lock(mu_);
    for (const auto& [id, i] : instances_) {
      if (IsLive(i)) ids.push_back(id);
    }
  }
  for (const std::string& id : ids) {
    Instance i = Snapshot(id);
    auto d = domains.find(id);
    bool has_domain = d != domains.end();
    auto fail = [&](Status why) {
      spdlog::warn("instance {}: {}", id, why.ToString());
      Status freed = FreeResources(id);
      Json detail = ErrorJson(why);
      detail["reconciled"] = true;
      if (!freed.ok()) detail["cleanup_error"] = ErrorJson(freed);
      (void)Transition(id, "failed", "none", {{"instance.failed", detail}}, why);
    };
    Status vanished = FailedPreconditionError(
        fmt::format("domain {} is no longer defined on {}", i.domain_name, deps_.hypervisor.uri()),
        "DOMAIN_VANISHED");
    if (i.state == "pending" && i.operation == "create") {
      fail(FailedPreconditionError("fpgahostd stopped while the instance was being created",
                                   "INTERRUPTED"));
    } else if (i.state == "terminating") {
      DoTerminate(id);
    } else if (!has_domain) {
      fail(vanished);
    } else if (i.state == "pending") {
      DoStart(id);
    } else if (i.state == "stopping") {
      DoStop(id);
    } else if (i.state == "running" && d->second.state != vfio::DomainState::kRunning &&
               d->second.state != vfio::DomainState::kPaused) {
      // The guest powered itself off while we were away: stopped, as EC2 does.
      Status cleared = ClearSlots(i);
      (void)Transition(id, "stopped", "none",
                       {{"instance.stopped",
                         {{"reconciled", true},
                          {"domain_state", std::string(DomainStateName(d->second.state))}}}},
                       cleared);
    } else if (i.state == "stopped" && d->second.state == vfio::DomainState::kRunning) {
      (void)Transition(id, "running", "none",
                       {{"instance.running", {{"reconciled", true}, {"domain_state", "running"}}}});
    }
    // A slot whose load a crash cut short is rolled back to cleared.
    Instance now = Snapshot(id);
    if (now.state != "running") continue;
    for (const Slot& slot : now.slots) {
      StatusOr<Json> card = deps_.cards.Get(slot.card_id);
      if (card.ok() && (*card)["image"].value("state", "") == "load_failed" &&
          (*card)["last_error"].is_object() &&
          (*card)["last_error"].value("code", "") == "INTERRUPTED") {
        (void)deps_.cards.Clear(slot.card_id, Owner(now));
      }
    }
  }
}

void InstanceManager::ReconcileOrphans(const std::vector<vfio::DomainInfo>& domains) {
  std::set<std::string> live_bdfs;
  std::set<std::string> live_owners;
  {
    MutexLock lock(mu_);
    for (const auto& [id, i] : instances_) {
      if (!IsLive(i)) continue;
      live_owners.insert(Owner(i));
      for (const Slot& s : i.slots) {
        if (s.bound) live_bdfs.insert(s.user_bdf);
      }
    }
  }
  auto record = [&](std::string_view kind, std::string_view subject, Json detail) {
    Status s = deps_.store.InTransaction(
        [&](SqliteDb& db) { return AppendEvent(db, deps_.clock, kind, subject, detail); });
    if (!s.ok()) spdlog::error("instances: cannot record {}: {}", kind, s.ToString());
  };
  for (const vfio::DomainInfo& d : domains) {
    if (!d.metadata || live_owners.contains("instance:" + d.metadata->instance_id)) continue;
    Status destroyed = deps_.hypervisor.Destroy(d.name);
    Status undefined = deps_.hypervisor.Undefine(d.name);
    Json detail = {{"domain", d.name},
                   {"instance_id", d.metadata->instance_id},
                   {"tenant", d.metadata->tenant},
                   {"removed", IgnorableDomainError(destroyed) && IgnorableDomainError(undefined)}};
    spdlog::warn("instances: domain {} names instance {}, which is not live; removed it", d.name,
                 d.metadata->instance_id);
    record("instance.orphan_domain", d.metadata->instance_id, detail);
  }
  StatusOr<std::vector<vfio::BindingJournalEntry>> entries = deps_.bindings.List();
  bool released_any = false;
  if (entries.ok()) {
    for (const vfio::BindingJournalEntry& e : *entries) {
      if (!e.complete || e.operation != vfio::BindingJournalEntry::Operation::kBind ||
          live_bdfs.contains(e.bdf)) {
        continue;
      }
      Status s = deps_.binder.Release({e.bdf, e.original_driver, e.group, {}});
      released_any = true;
      record("instance.binding_released", e.bdf,
             {{"bdf", e.bdf},
              {"driver", e.original_driver},
              {"ok", s.ok()},
              {"message", std::string(s.message())}});
    }
  }
  if (released_any) RefreshCards({});
  Json cards = deps_.cards.List();
  for (const Json& c : cards) {
    std::string assignment = c.value("assignment", "free");
    if (!assignment.starts_with("instance:") || live_owners.contains(assignment)) continue;
    std::string card_id = c.value("id", "");
    Status s = deps_.cards.Unassign(card_id, assignment);
    record("instance.card_released", card_id,
           {{"card", card_id}, {"assignment", assignment}, {"ok", s.ok()}});
  }
}

}  // namespace fpgahost
