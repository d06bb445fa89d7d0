// FakeHypervisor: an in-memory vfio::Hypervisor for unit tests. Domains are kept in a map by
// name with the spec they were defined with, their state and their fpgahost metadata, and
// behave as hypervisor.h says (Define starts them shut off, Start/Shutdown/Destroy of a domain
// already there are OK, Undefine of a domain that is not shut off is DOMAIN_RUNNING, a missing
// domain is NotFound DOMAIN_NOT_FOUND).
//
// Tests steer it:
//   FailNext("Define", InternalError(...))   the next call of that method returns the error
//                                            and does nothing (method names as in Hypervisor)
//   set_ignore_acpi(true)                    Shutdown returns OK and does nothing: a guest
//                                            that ignores ACPI, so only Destroy stops it
//   AddDomain / SetState / Remove            domains created, changed or vanished behind the
//                                            manager's back (a foreign VM, a guest that powered
//                                            itself off, an operator's `virsh undefine`)
//   Find / domains / calls                   what the code under test did
//
// Thread-safe: every method takes the fake's lock.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "vfio/hypervisor.h"

namespace fpgahost::testing {

class FakeHypervisor : public vfio::Hypervisor {
 public:
  struct Domain {
    // What Define was given; for a domain added with AddDomain only its name is set.
    vfio::DomainSpec spec;
    std::string uuid;
    vfio::DomainState state = vfio::DomainState::kShutoff;
    // nullopt for a domain fpgahost did not define (no metadata element).
    std::optional<vfio::DomainMetadata> metadata;
  };

  std::string uri() const override { return "fake:///system"; }

  Status Define(const vfio::DomainSpec& spec) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Define"));
    auto it = domains_.find(spec.name);
    if (it != domains_.end()) {
      // As LibvirtHypervisor: only a domain of the same instance may be redefined.
      if (!it->second.metadata || it->second.metadata->instance_id != spec.metadata.instance_id) {
        return FailedPreconditionError(spec.name + ": define: a domain of that name exists",
                                       vfio::kReasonDomainExists);
      }
      it->second.spec = spec;
      it->second.metadata = spec.metadata;
      return Status::Ok();
    }
    Domain d;
    d.spec = spec;
    d.uuid = spec.uuid.empty() ? NextUuid() : spec.uuid;
    d.metadata = spec.metadata;
    domains_.emplace(spec.name, std::move(d));
    return Status::Ok();
  }

  Status Start(std::string_view name) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Start"));
    ASSIGN_OR_RETURN(Domain * d, Lookup(name, "start"));
    d->state = vfio::DomainState::kRunning;
    return Status::Ok();
  }

  Status Shutdown(std::string_view name) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Shutdown"));
    ASSIGN_OR_RETURN(Domain * d, Lookup(name, "shutdown"));
    if (!ignore_acpi_) d->state = vfio::DomainState::kShutoff;
    return Status::Ok();
  }

  Status Destroy(std::string_view name) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Destroy"));
    ASSIGN_OR_RETURN(Domain * d, Lookup(name, "destroy"));
    d->state = vfio::DomainState::kShutoff;
    return Status::Ok();
  }

  Status Undefine(std::string_view name) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Undefine"));
    ASSIGN_OR_RETURN(Domain * d, Lookup(name, "undefine"));
    if (d->state != vfio::DomainState::kShutoff) {
      return FailedPreconditionError(
          fmt::format("{}: undefine: the domain is {}", name, vfio::DomainStateName(d->state)),
          vfio::kReasonDomainRunning);
    }
    domains_.erase(domains_.find(name));
    return Status::Ok();
  }

  StatusOr<vfio::DomainInfo> Get(std::string_view name) override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("Get"));
    ASSIGN_OR_RETURN(Domain * d, Lookup(name, "get"));
    return Info(name, *d);
  }

  StatusOr<std::vector<vfio::DomainInfo>> List() override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(Enter("List"));
    std::vector<vfio::DomainInfo> list;
    for (const auto& [name, d] : domains_) list.push_back(Info(name, d));
    return list;
  }

  // ---- test controls ----

  void FailNext(std::string_view method, Status error) {
    MutexLock lock(mu_);
    fail_next_[std::string(method)] = std::move(error);
  }

  void set_ignore_acpi(bool ignore) {
    MutexLock lock(mu_);
    ignore_acpi_ = ignore;
  }

  // A domain that appeared without Define: a foreign VM (no metadata) or one naming an
  // instance. Replaces a domain of that name.
  void AddDomain(const std::string& name, vfio::DomainState state,
                 std::optional<vfio::DomainMetadata> metadata = std::nullopt) {
    MutexLock lock(mu_);
    Domain d;
    d.spec.name = name;
    if (metadata) d.spec.metadata = *metadata;
    d.uuid = NextUuid();
    d.state = state;
    d.metadata = std::move(metadata);
    domains_[name] = std::move(d);
  }

  // False when there is no such domain.
  bool SetState(std::string_view name, vfio::DomainState state) {
    MutexLock lock(mu_);
    auto it = domains_.find(name);
    if (it == domains_.end()) return false;
    it->second.state = state;
    return true;
  }

  // The domain vanishes, whatever its state. False when there was none.
  bool Remove(std::string_view name) {
    MutexLock lock(mu_);
    auto it = domains_.find(name);
    if (it == domains_.end()) return false;
    domains_.erase(it);
    return true;
  }

  std::optional<Domain> Find(std::string_view name) const {
    MutexLock lock(mu_);
    auto it = domains_.find(name);
    if (it == domains_.end()) return std::nullopt;
    return it->second;
  }

  std::map<std::string, Domain, std::less<>> domains() const {
    MutexLock lock(mu_);
    return domains_;
  }

  // How many times `method` was called, failed calls included.
  int calls(std::string_view method) const {
    MutexLock lock(mu_);
    auto it = calls_.find(method);
    return it == calls_.end() ? 0 : it->second;
  }

 private:
  // Counts the call and hands out an injected failure, if any.
  Status Enter(std::string_view method) REQUIRES(mu_) {
    ++calls_[std::string(method)];
    auto it = fail_next_.find(method);
    if (it == fail_next_.end()) return Status::Ok();
    Status error = std::move(it->second);
    fail_next_.erase(it);
    return error;
  }

  StatusOr<Domain*> Lookup(std::string_view name, std::string_view step) REQUIRES(mu_) {
    auto it = domains_.find(name);
    if (it == domains_.end()) {
      return NotFoundError(fmt::format("{}: {}: no such domain on {}", name, step, uri()),
                           vfio::kReasonDomainNotFound);
    }
    return &it->second;
  }

  static vfio::DomainInfo Info(std::string_view name, const Domain& d) {
    return {std::string(name), d.uuid, d.state, d.metadata};
  }

  std::string NextUuid() REQUIRES(mu_) {
    return fmt::format("00000000-0000-4000-8000-{:012x}", ++uuids_);
  }

  mutable Mutex mu_;
  std::map<std::string, Domain, std::less<>> domains_ GUARDED_BY(mu_);
  std::map<std::string, Status, std::less<>> fail_next_ GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> calls_ GUARDED_BY(mu_);
  bool ignore_acpi_ GUARDED_BY(mu_) = false;
  uint64_t uuids_ GUARDED_BY(mu_) = 0;
};

}  // namespace fpgahost::testing
