// The host's capacity account: the one ledger of what this host can give out — vCPUs, memory
// and FPGA cards — shared by instances and (later) function slots. A reservation is made
// whole or not at all, under one owner name ("instance:i-...", "functions"), and released
// under the same name.
//
// vCPUs and memory are counted here against totals from configuration (see
// DefaultComputeCapacity for the defaults). Cards are counted by the card manager, which
// knows which are present, healthy, active and free; the account asks it through CardPool and
// never hands out a drained or unhealthy card.
//
// Reservations are not stored: the owners' own records are (instances in the `instances`
// table, cards' assignments in `cards`), and at start-up each owner Restores what it holds.
//
// Errors: Unavailable (INSUFFICIENT_CAPACITY) naming the resource that does not fit and how
// much is free; AlreadyExists when the owner already holds a reservation.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace fpgahost {

inline constexpr char kReasonInsufficientCapacity[] = "INSUFFICIENT_CAPACITY";

struct ComputeResources {
  int vcpus = 0;
  int64_t memory_mib = 0;
};

// OpenStack Nova's defaults for a compute host: vCPUs = online CPUs x 4.0
// (initial_cpu_allocation_ratio), memory = physical memory - 512 MiB
// (reserved_host_memory_mb) x 1.0 (initial_ram_allocation_ratio).
ComputeResources DefaultComputeCapacity();

// What the account needs from the card manager.
class CardPool {
 public:
  struct Card {
    std::string id;
    std::string mgmt_bdf;
    std::string user_bdf;
    std::string vbnv;
  };
  virtual ~CardPool() = default;
  // `count` assignable cards to `owner`, all or none; FailedPrecondition
  // (INSUFFICIENT_CAPACITY) when there are not enough.
  virtual StatusOr<std::vector<Card>> AssignFree(int count, std::string_view owner) = 0;
  virtual Status Unassign(std::string_view card_id, std::string_view owner) = 0;
  virtual int CountAssignable() const = 0;
};

class CapacityAccount {
 public:
  struct Reservation {
    ComputeResources compute;
    std::vector<CardPool::Card> cards;
  };

  CapacityAccount(ComputeResources total, CardPool& cards);

  // Reserves `compute` and `card_count` cards for `owner`.
  StatusOr<Reservation> Reserve(std::string_view owner, ComputeResources compute, int card_count)
      EXCLUDES(mu_);
  // Gives back the owner's vCPUs and memory and every card in `card_ids`. Carries on past a
  // card that cannot be given back and returns the first failure. OK for an unknown owner.
  Status Release(std::string_view owner, const std::vector<std::string>& card_ids) EXCLUDES(mu_);
  // Sets what `owner` holds to `compute` (no cards), growing or shrinking its reservation;
  // all zero ends it. For holders whose needs change in small steps (the function slots).
  // Growing past what is free fails as Reserve does, leaving the reservation as it was.
  Status Resize(std::string_view owner, ComputeResources compute) EXCLUDES(mu_);
  // Records what an owner already holds (its cards stay assigned in the card manager), at
  // start-up. Over-commit is accepted here: it was granted under an older configuration.
  void Restore(std::string_view owner, ComputeResources compute) EXCLUDES(mu_);

  // {total, used, free} for vcpus, memory_mib and fpgas (free = assignable now), and the
  // holders.
  Json View() const EXCLUDES(mu_);

 private:
  const ComputeResources total_;
  CardPool& cards_;
  mutable Mutex mu_;
  std::map<std::string, ComputeResources, std::less<>> held_ GUARDED_BY(mu_);
  ComputeResources used_ GUARDED_BY(mu_);
};

}  // namespace fpgahost
