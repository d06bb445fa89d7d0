// LibvirtHypervisor: Hypervisor on libvirt's C API, one connection per object.
//
// qemu:///system is the production URI (KVM guests with vfio hostdevs); test:///default is
// libvirt's in-process test driver, a real libvirt API over simulated domains, for the emulated
// fleet and tests. The domain XML comes from DomainXml (vfio/domain_xml.h) with a domain type
// chosen by the URI's driver ("test" for test:, "kvm" for anything else, e.g. qemu:,
// qemu+ssh:), unless the options say otherwise.
//
// Semantics on top of libvirt's:
//   - Define replaces the definition of a domain of the same name only when its metadata names
//     the same instance (keeping its UUID when the spec has none); any other domain of that
//     name gives DOMAIN_EXISTS. Redefining a running domain changes its next boot.
//   - Start/Shutdown/Destroy succeed without acting on a domain already in the target state
//     (a paused domain counts as powered on); Undefine refuses an active domain
//     (DOMAIN_RUNNING) instead of letting libvirt turn it into a transient one that would
//     vanish at power-off. Undefine also removes managed-save images and NVRAM.
//   - Get/List read the metadata with virDomainGetMetadata; a domain without our element has
//     metadata nullopt, one whose element does not parse is DataLoss (BAD_DOMAIN_METADATA).
//     List skips a domain that disappears while it is listed and sorts by name.
//
// Errors: as Hypervisor (vfio/hypervisor.h). libvirt's errors (virGetLastError) become
// NotFound DOMAIN_NOT_FOUND (VIR_ERR_NO_DOMAIN), Unavailable HYPERVISOR_UNAVAILABLE (no or a
// broken connection: libvirtd down, RPC and authentication failures) or Internal
// HYPERVISOR_ERROR, with messages "<domain>: <operation>: <libvirt's message>". A connection
// that breaks stays broken: every call then returns Unavailable, and the owner connects anew.
//
// The first Connect installs a no-op libvirt error handler for the whole process
// (virSetErrorFunc), so libvirt does not print errors to stderr: they come back as Status.
//
// libvirt's test driver (9.0), as the tests found it:
//   - test:///default is one shared set of domains per process while any connection to it is
//     open, starting with a running domain named "test" (no metadata); state is lost when the
//     last connection closes.
//   - It accepts any domain type (kvm and test alike), any machine string (q35 included) and a
//     non-existent emulator; it keeps <hostdev managed='no'> as written without looking for
//     the device, but rejects a PCI address out of range (bus > 0xff) as libvirt's parser does.
//   - Shutdown takes effect at once (the domain is shut off when the call returns), unlike
//     QEMU's ACPI request; Start of a running domain and Shutdown of a shut-off one fail with
//     VIR_ERR_INTERNAL_ERROR rather than VIR_ERR_OPERATION_INVALID (handled by state checks).
//   - virDomainUndefineFlags rejects VIR_DOMAIN_UNDEFINE_NVRAM ("unsupported flags"); Undefine
//     then retries with fewer flags.
//   - virDomainGetMetadata(ELEMENT) returns our element with its namespace stripped
//     (<instance id=...>), as libvirt does for every driver.
//   - An unknown URI scheme ("bogus:///x") is not refused up front: libvirt hands it to the
//     remote driver, which fails to reach libvirtd's socket (VIR_ERR_SYSTEM_ERROR).
//
// Thread-safety: safe for concurrent use (libvirt connections are); Define is serialized
// within the object so that its exists-check and the definition are one step.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "vfio/domain_xml.h"
#include "vfio/hypervisor.h"

// libvirt's connection handle (libvirt/libvirt-host.h), kept out of this header.
struct _virConnect;

namespace fpgahost::vfio {

struct LibvirtHypervisorOptions {
  // <domain type=...>; none: chosen from the URI as described above.
  std::optional<std::string> domain_type;
  // q35 gives the guest PCI Express, which passed-through cards with large BARs need.
  std::string machine = "q35";
  // The QEMU binary; none lets libvirt choose.
  std::optional<std::filesystem::path> emulator;
};

// The DomainXmlOptions a LibvirtHypervisor on `uri` with `options` writes domains with.
DomainXmlOptions DomainXmlOptionsFor(std::string_view uri, const LibvirtHypervisorOptions& options);

class LibvirtHypervisor : public Hypervisor {
 public:
  // Opens a read-write connection to `uri`. InvalidArgument for an empty URI; Unavailable
  // (HYPERVISOR_UNAVAILABLE) when libvirt cannot connect, with libvirt's reason.
  static StatusOr<std::unique_ptr<LibvirtHypervisor>> Connect(
      std::string uri, LibvirtHypervisorOptions options = {});

  ~LibvirtHypervisor() override;
  LibvirtHypervisor(const LibvirtHypervisor&) = delete;
  LibvirtHypervisor& operator=(const LibvirtHypervisor&) = delete;

  std::string uri() const override { return uri_; }

  Status Define(const DomainSpec& spec) override EXCLUDES(define_mu_);
  Status Start(std::string_view name) override;
  Status Shutdown(std::string_view name) override;
  Status Destroy(std::string_view name) override;
  Status Undefine(std::string_view name) override;

  StatusOr<DomainInfo> Get(std::string_view name) override;
  StatusOr<std::vector<DomainInfo>> List() override;

 private:
  LibvirtHypervisor(std::string uri, _virConnect* conn, DomainXmlOptions xml_options);

  const std::string uri_;
  _virConnect* const conn_;  // owned; closed by the destructor
  const DomainXmlOptions xml_options_;
  Mutex define_mu_;
};

}  // namespace fpgahost::vfio
