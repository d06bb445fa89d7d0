// Domain XML: the libvirt domain definition of an instance's VM, and fpgahost's metadata
// element inside it.
//
// DomainXml writes one <domain> for a DomainSpec: name, uuid (when given), memory in MiB,
// static vCPUs, an x86_64 hvm <os> booting from disk, ACPI and APIC, host-passthrough CPU
// (kvm only), destroy-on-poweroff/crash, an optional virtio boot disk (qcow2 when the file
// ends in .qcow2, raw otherwise), one unmanaged vfio <hostdev> per entry of spec.hostdevs
// (managed='no': VfioBinder, not libvirt, moves the device to vfio-pci and back), and
//
//   <metadata>
//     <fpgahost:instance xmlns:fpgahost="https://fpgahost.dev/xmlns/instance/1"
//                        id="i-..." tenant="..." type="...">
//       <fpgahost:slot index="0" card="..." bdf="0000:11:00.1"/>
//     </fpgahost:instance>
//   </metadata>
//
// The output is deterministic (tests/unit/vfio/golden/*.xml show it), has no XML declaration
// and ends in a newline. Every string is escaped; a string XML cannot carry at all (invalid
// UTF-8, control characters) is refused.
//
// ParseDomainMetadata reads the metadata back, from either of
//   - a whole <domain> document (virDomainGetXMLDesc): the element is looked up by its
//     namespace URI inside <metadata>, whatever its prefix; a domain without one gives
//     nullopt;
//   - the metadata element alone, as virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT,
//     kMetadataNamespace) returns it. libvirt selects the element by our namespace URI and
//     then strips the namespace (libvirt 9.0 returns a bare <instance id=...>), so a root
//     <instance> in our namespace or in none is accepted; one in any other namespace is not.
// Unknown child elements of <instance> are ignored (room for later versions); unknown
// attributes too.
//
// Errors: InvalidArgument naming the field: DomainXml for a malformed BDF ("hostdevs[1]:
// "0000:11:00" is not a PCI address DDDD:BB:SS.F"), uuid, path, empty name or instance id,
// non-positive vcpus or memory; ParseDomainMetadata for input that is not well-formed XML, has
// a DTD, is larger than kMaxDomainXmlBytes, has the wrong root, or misses a required attribute.
// No input makes the parser crash, read out of bounds, expand entities without bound or touch
// the network.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "vfio/hypervisor.h"

namespace fpgahost::vfio {

// ParseDomainMetadata refuses larger inputs; domain XML of ours is a few KiB.
inline constexpr size_t kMaxDomainXmlBytes = 1 << 20;

struct DomainXmlOptions {
  // <domain type=...>: "kvm" for qemu:///system, "test" for libvirt's test driver ("qemu"
  // for software emulation without /dev/kvm).
  std::string domain_type = "kvm";
  // <os><type machine=...>, e.g. "q35"; empty leaves it to the hypervisor.
  std::string machine;
  // <devices><emulator>; none leaves it to the hypervisor. Must be absolute.
  std::optional<std::filesystem::path> emulator;
};

StatusOr<std::string> DomainXml(const DomainSpec& spec, const DomainXmlOptions& options);

// See above: `xml` is a whole domain or the metadata element alone.
StatusOr<std::optional<DomainMetadata>> ParseDomainMetadata(std::string_view xml);

// A PCI address "DDDD:BB:SS.F" in lower-case hex as sysfs names devices (slot <= 1f,
// function <= 7).
struct PciAddress {
  unsigned domain = 0;
  unsigned bus = 0;
  unsigned slot = 0;
  unsigned function = 0;

  bool operator==(const PciAddress&) const = default;
};

// InvalidArgument naming `field` for anything but exactly "DDDD:BB:SS.F".
StatusOr<PciAddress> ParsePciAddress(std::string_view bdf, std::string_view field);

}  // namespace fpgahost::vfio
