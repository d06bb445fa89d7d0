#include "host/capacity/capacity_account.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace fpgahost {

ComputeResources DefaultComputeCapacity() {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  int64_t memory_mib =
      pages > 0 && page_size > 0 ? static_cast<int64_t>(pages) * page_size / (1024 * 1024) : 0;
  return {static_cast<int>(std::max(1L, cpus)) * 4, std::max<int64_t>(0, memory_mib - 512)};
}

CapacityAccount::CapacityAccount(ComputeResources total, CardPool& cards)
    : total_(total), cards_(cards) {}

StatusOr<CapacityAccount::Reservation> CapacityAccount::Reserve(std::string_view owner,
                                                                ComputeResources compute,
                                                                int card_count) {
  MutexLock lock(mu_);
  if (held_.contains(owner)) {
    return AlreadyExistsError(fmt::format("{} already holds a reservation", owner));
  }
  if (used_.vcpus + compute.vcpus > total_.vcpus) {
    return UnavailableError(
        fmt::format("{} vCPUs needed, {} of {} free on this host", compute.vcpus,
                    std::max(0, total_.vcpus - used_.vcpus), total_.vcpus),
        kReasonInsufficientCapacity);
  }
  if (used_.memory_mib + compute.memory_mib > total_.memory_mib) {
    return UnavailableError(
        fmt::format("{} MiB of memory needed, {} of {} MiB free on this host", compute.memory_mib,
                    std::max<int64_t>(0, total_.memory_mib - used_.memory_mib), total_.memory_mib),
        kReasonInsufficientCapacity);
  }
  Reservation r{compute, {}};
  if (card_count > 0) {
    StatusOr<std::vector<CardPool::Card>> cards = cards_.AssignFree(card_count, owner);
    if (!cards.ok()) {
      Status s = cards.status();
      if (s.reason() == kReasonInsufficientCapacity) {
        return UnavailableError(std::string(s.message()), kReasonInsufficientCapacity);
      }
      return s;
    }
    r.cards = *std::move(cards);
  }
  held_.emplace(std::string(owner), compute);
  used_.vcpus += compute.vcpus;
  used_.memory_mib += compute.memory_mib;
  return r;
}

Status CapacityAccount::Release(std::string_view owner, const std::vector<std::string>& card_ids) {
  Status first = Status::Ok();
  for (const std::string& id : card_ids) {
    Status s = cards_.Unassign(id, owner);
    if (!s.ok() && s.code() != StatusCode::kNotFound && first.ok()) first = s;
  }
  MutexLock lock(mu_);
  auto it = held_.find(owner);
  if (it != held_.end()) {
    used_.vcpus -= it->second.vcpus;
    used_.memory_mib -= it->second.memory_mib;
    held_.erase(it);
  }
  return first;
}

Status CapacityAccount::Resize(std::string_view owner, ComputeResources compute) {
  MutexLock lock(mu_);
  auto it = held_.find(owner);
  ComputeResources now = it == held_.end() ? ComputeResources{} : it->second;
  int more_vcpus = compute.vcpus - now.vcpus;
  int64_t more_memory = compute.memory_mib - now.memory_mib;
  if (more_vcpus > 0 && used_.vcpus + more_vcpus > total_.vcpus) {
    return UnavailableError(
        fmt::format("{} more vCPUs needed, {} of {} free on this host", more_vcpus,
                    std::max(0, total_.vcpus - used_.vcpus), total_.vcpus),
        kReasonInsufficientCapacity);
  }
  if (more_memory > 0 && used_.memory_mib + more_memory > total_.memory_mib) {
    return UnavailableError(
        fmt::format("{} more MiB of memory needed, {} of {} MiB free on this host", more_memory,
                    std::max<int64_t>(0, total_.memory_mib - used_.memory_mib), total_.memory_mib),
        kReasonInsufficientCapacity);
  }
  used_.vcpus += more_vcpus;
  used_.memory_mib += more_memory;
  if (compute.vcpus == 0 && compute.memory_mib == 0) {
    if (it != held_.end()) held_.erase(it);
  } else if (it == held_.end()) {
    held_.emplace(std::string(owner), compute);
  } else {
    it->second = compute;
  }
  return Status::Ok();
}

void CapacityAccount::Restore(std::string_view owner, ComputeResources compute) {
  MutexLock lock(mu_);
  if (held_.contains(owner)) return;
  held_.emplace(std::string(owner), compute);
  used_.vcpus += compute.vcpus;
  used_.memory_mib += compute.memory_mib;
}

Json CapacityAccount::View() const {
  int free_cards = cards_.CountAssignable();
  MutexLock lock(mu_);
  Json holders = Json::array();
  for (const auto& [owner, c] : held_) {
    holders.push_back({{"owner", owner}, {"vcpus", c.vcpus}, {"memory_mib", c.memory_mib}});
  }
  return {{"vcpus",
           {{"total", total_.vcpus},
            {"used", used_.vcpus},
            {"free", std::max(0, total_.vcpus - used_.vcpus)}}},
          {"memory_mib",
           {{"total", total_.memory_mib},
            {"used", used_.memory_mib},
            {"free", std::max<int64_t>(0, total_.memory_mib - used_.memory_mib)}}},
          {"fpgas", {{"free", free_cards}}},
          {"holders", std::move(holders)}};
}

}  // namespace fpgahost
