// Hypervisor: what the instance manager needs from a VM host. A domain is one instance's VM:
// vCPUs, memory, an optional boot disk and one PCI host device per FPGA slot (a card's user
// PF, already bound to vfio-pci by VfioBinder; never the management PF, which stays with the
// host). Each domain fpgahost defines carries a metadata element naming its instance, tenant,
// type and slots, so that start-up reconciliation can tell our domains from others' and match
// them to instances without trusting domain names.
//
// LibvirtHypervisor (vfio/libvirt_hypervisor.h) implements it on libvirt's C API; the
// instance manager and its tests take the interface.
//
// Errors: NotFound (DOMAIN_NOT_FOUND) for a domain that does not exist; FailedPrecondition
// (DOMAIN_EXISTS) when Define meets a domain of that name that is not ours to replace,
// (DOMAIN_RUNNING) when Undefine meets a domain that is not shut off; InvalidArgument for a
// spec that cannot be a domain (a malformed BDF, naming the field); DataLoss
// (BAD_DOMAIN_METADATA) for a domain whose fpgahost metadata element cannot be read;
// the hypervisor's own error as Unavailable (HYPERVISOR_UNAVAILABLE: no connection) or
// Internal (HYPERVISOR_ERROR) with its message. Every message names the domain.
//
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fpgahost::vfio {

inline constexpr char kReasonDomainNotFound[] = "DOMAIN_NOT_FOUND";
inline constexpr char kReasonDomainExists[] = "DOMAIN_EXISTS";
inline constexpr char kReasonDomainRunning[] = "DOMAIN_RUNNING";
inline constexpr char kReasonBadDomainMetadata[] = "BAD_DOMAIN_METADATA";
inline constexpr char kReasonHypervisorUnavailable[] = "HYPERVISOR_UNAVAILABLE";
inline constexpr char kReasonHypervisorError[] = "HYPERVISOR_ERROR";

// The namespace of fpgahost's metadata element in domain XML.
inline constexpr char kMetadataNamespace[] = "https://fpgahost.dev/xmlns/instance/1";

struct SlotMetadata {
  int index = 0;
  std::string card_id;   // the card manager's id
  std::string user_bdf;  // the host address of the passed-through PF

  bool operator==(const SlotMetadata&) const = default;
};

struct DomainMetadata {
  std::string instance_id;  // "i-" + 17 hex
  std::string tenant;
  std::string instance_type;
  std::vector<SlotMetadata> slots;  // in slot order

  bool operator==(const DomainMetadata&) const = default;
};

struct DomainSpec {
  std::string name;  // unique on the host, e.g. "fpgahost-i-0123456789abcdef0"
  std::string uuid;  // 8-4-4-4-12; empty lets the hypervisor choose
  int vcpus = 1;
  int64_t memory_mib = 1024;
  // A disk image the VM boots from (qcow2 or raw by extension); none: the domain has no disk.
  std::optional<std::filesystem::path> boot_disk;
  // One <hostdev> per entry, in slot order: the user PFs ("0000:11:00.1").
  std::vector<std::string> hostdevs;
  DomainMetadata metadata;
};

enum class DomainState { kRunning, kPaused, kShuttingDown, kShutoff, kCrashed, kOther };
std::string_view DomainStateName(DomainState state);

struct DomainInfo {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::kOther;
  // Parsed from our metadata element; nullopt for domains fpgahost did not define.
  std::optional<DomainMetadata> metadata;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Where the domains live, e.g. "test:///default" or "qemu:///system".
  virtual std::string uri() const = 0;

  // Defines (persistently) the domain; it starts shut off.
  virtual Status Define(const DomainSpec& spec) = 0;
  // Powers it on. OK when it is already running.
  virtual Status Start(std::string_view name) = 0;
  // Asks the guest to shut down (ACPI); returns without waiting. OK when already shut off.
  virtual Status Shutdown(std::string_view name) = 0;
  // Powers it off at once. OK when already shut off.
  virtual Status Destroy(std::string_view name) = 0;
  // Removes the definition (the domain must be shut off).
  virtual Status Undefine(std::string_view name) = 0;

  virtual StatusOr<DomainInfo> Get(std::string_view name) = 0;
  // Every domain on the connection, defined or running, ours or not.
  virtual StatusOr<std::vector<DomainInfo>> List() = 0;
};

}  // namespace fpgahost::vfio
