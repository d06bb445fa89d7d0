#include "vfio/libvirt_hypervisor.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace fpgahost::vfio {
namespace {

struct DomainFree {
  void operator()(virDomainPtr domain) const { virDomainFree(domain); }
};
using DomainRef = std::unique_ptr<virDomain, DomainFree>;

struct CFree {
  void operator()(char* p) const { std::free(p); }
};

// libvirt reports to a process-wide handler that prints to stderr by default; every error
// reaches the caller as a Status instead.
void IgnoreLibvirtError(void* /*user_data*/, virErrorPtr /*error*/) {}

// virInitialize's result: libvirt asks multi-threaded programs to call it once before anything
// else.
int InitLibvirt() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] {
    result = virInitialize();
    virSetErrorFunc(nullptr, IgnoreLibvirtError);
  });
  return result;
}

struct LibvirtFailure {
  int code = VIR_ERR_INTERNAL_ERROR;
  int domain = VIR_FROM_NONE;
  std::string message;
};

// The calling thread's last libvirt error. Read it right after the failing call: the next
// libvirt call on this thread resets it.
LibvirtFailure LastFailure() {
  virErrorPtr error = virGetLastError();
  if (error == nullptr) return {VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "unknown libvirt error"};
  return {error->code, error->domain,
          error->message != nullptr ? error->message : "unknown libvirt error"};
}

bool IsConnectionFailure(const LibvirtFailure& failure) {
  switch (failure.code) {
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return true;
    default:
      // The transport's own errors: a closed socket, a keepalive timeout.
      return failure.domain == VIR_FROM_RPC || failure.domain == VIR_FROM_REMOTE;
  }
}

// `conn`, when given, is asked whether it still lives: a dead connection explains any failure.
Status ToStatus(const LibvirtFailure& failure, std::string_view name, std::string_view operation,
                virConnectPtr conn) {
  std::string message = std::string(name) + ": " + std::string(operation) + ": " + failure.message;
  if (failure.code == VIR_ERR_NO_DOMAIN) return NotFoundError(message, kReasonDomainNotFound);
  if (IsConnectionFailure(failure) || (conn != nullptr && virConnectIsAlive(conn) == 0)) {
    return UnavailableError(message, kReasonHypervisorUnavailable);
  }
  return InternalError(message, kReasonHypervisorError);
}

Status CheckName(std::string_view name, std::string_view operation) {
  if (name.empty()) return InvalidArgumentError(std::string(operation) + ": empty domain name");
  if (name.find('\0') != std::string_view::npos) {
    return InvalidArgumentError(std::string(operation) + ": domain name with a NUL character");
  }
  return Status::Ok();
}

StatusOr<DomainRef> Lookup(virConnectPtr conn, std::string_view name, std::string_view operation) {
  RETURN_IF_ERROR(CheckName(name, operation));
  DomainRef domain(virDomainLookupByName(conn, std::string(name).c_str()));
  if (domain == nullptr) return ToStatus(LastFailure(), name, operation, conn);
  return domain;
}

StatusOr<bool> IsActive(virConnectPtr conn, virDomainPtr domain, std::string_view name,
                        std::string_view operation) {
  int active = virDomainIsActive(domain);
  if (active < 0) return ToStatus(LastFailure(), name, operation, conn);
  return active == 1;
}

DomainState StateOf(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:  // running, waiting on a resource
      return DomainState::kRunning;
    case VIR_DOMAIN_PAUSED:
      return DomainState::kPaused;
    case VIR_DOMAIN_SHUTDOWN:
      return DomainState::kShuttingDown;
    case VIR_DOMAIN_SHUTOFF:
      return DomainState::kShutoff;
    case VIR_DOMAIN_CRASHED:
      return DomainState::kCrashed;
    default:
      return DomainState::kOther;
  }
}

StatusOr<std::string> UuidOf(virConnectPtr conn, virDomainPtr domain, std::string_view name,
                             std::string_view operation) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(domain, uuid) < 0) {
    return ToStatus(LastFailure(), name, operation, conn);
  }
  return std::string(uuid);
}

StatusOr<std::optional<DomainMetadata>> MetadataOf(virConnectPtr conn, virDomainPtr domain,
                                                   std::string_view name,
                                                   std::string_view operation) {
  std::unique_ptr<char, CFree> xml(
      virDomainGetMetadata(domain, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0));
  if (xml == nullptr) {
    LibvirtFailure failure = LastFailure();
    if (failure.code == VIR_ERR_NO_DOMAIN_METADATA) return std::optional<DomainMetadata>();
    return ToStatus(failure, name, operation, conn);
  }
  StatusOr<std::optional<DomainMetadata>> metadata = ParseDomainMetadata(xml.get());
  if (!metadata.ok()) {
    return DataLossError(std::string(name) + ": " + std::string(operation) + ": " +
                             std::string(metadata.status().message()),
                         kReasonBadDomainMetadata);
  }
  return metadata;
}

StatusOr<DomainInfo> Describe(virConnectPtr conn, virDomainPtr domain, std::string_view operation) {
  const char* name = virDomainGetName(domain);  // owned by `domain`
  if (name == nullptr) return ToStatus(LastFailure(), "(unnamed domain)", operation, conn);
  DomainInfo info;
  info.name = name;
  ASSIGN_OR_RETURN(info.uuid, UuidOf(conn, domain, info.name, operation));
  int state = VIR_DOMAIN_NOSTATE;
  int reason = 0;
  if (virDomainGetState(domain, &state, &reason, 0) < 0) {
    return ToStatus(LastFailure(), info.name, operation, conn);
  }
  info.state = StateOf(state);
  ASSIGN_OR_RETURN(info.metadata, MetadataOf(conn, domain, info.name, operation));
  return info;
}

// Runs `act` unless the domain is already active (`want_active`) or inactive (not); a failure
// is no failure when the domain reached that state anyway (another caller got there first).
Status Transition(virConnectPtr conn, std::string_view name, std::string_view operation,
                  bool want_active, int (*act)(virDomainPtr)) {
  ASSIGN_OR_RETURN(DomainRef domain, Lookup(conn, name, operation));
  ASSIGN_OR_RETURN(bool active, IsActive(conn, domain.get(), name, operation));
  if (active == want_active) return Status::Ok();
  if (act(domain.get()) == 0) return Status::Ok();
  LibvirtFailure failure = LastFailure();
  StatusOr<bool> now = IsActive(conn, domain.get(), name, operation);
  if (now.ok() && *now == want_active) return Status::Ok();
  return ToStatus(failure, name, operation, conn);
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

}  // namespace

DomainXmlOptions DomainXmlOptionsFor(std::string_view uri,
                                     const LibvirtHypervisorOptions& options) {
  // "driver[+transport]://host/path": the driver decides what a domain can be.
  std::string_view scheme = uri.substr(0, uri.find(':'));
  std::string driver = Lower(scheme.substr(0, scheme.find('+')));
  DomainXmlOptions xml;
  xml.domain_type = options.domain_type.value_or(driver == "test" ? "test" : "kvm");
  xml.machine = options.machine;
  xml.emulator = options.emulator;
  return xml;
}

StatusOr<std::unique_ptr<LibvirtHypervisor>> LibvirtHypervisor::Connect(
    std::string uri, LibvirtHypervisorOptions options) {
  if (uri.empty()) {
    return InvalidArgumentError("hypervisor URI is empty (production uses qemu:///system)");
  }
  if (uri.find('\0') != std::string::npos) {
    return InvalidArgumentError("hypervisor URI contains a NUL character");
  }
  if (InitLibvirt() < 0) {
    return UnavailableError("connect to " + uri + ": libvirt failed to initialize",
                            kReasonHypervisorUnavailable);
  }
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) {
    return UnavailableError("connect to " + uri + ": " + LastFailure().message,
                            kReasonHypervisorUnavailable);
  }
  DomainXmlOptions xml_options = DomainXmlOptionsFor(uri, options);
  return std::unique_ptr<LibvirtHypervisor>(
      new LibvirtHypervisor(std::move(uri), conn, std::move(xml_options)));
}

LibvirtHypervisor::LibvirtHypervisor(std::string uri, virConnectPtr conn,
                                     DomainXmlOptions xml_options)
    : uri_(std::move(uri)), conn_(conn), xml_options_(std::move(xml_options)) {}

LibvirtHypervisor::~LibvirtHypervisor() { virConnectClose(conn_); }

Status LibvirtHypervisor::Define(const DomainSpec& spec) {
  const std::string& name = spec.name;
  StatusOr<std::string> xml = DomainXml(spec, xml_options_);
  if (!xml.ok()) return xml.status().WithContext(name.empty() ? "define" : name + ": define");

  // One Define at a time, so that no other Define of this object slips in between the check
  // for a domain of that name and the definition.
  MutexLock lock(define_mu_);
  DomainRef existing(virDomainLookupByName(conn_, name.c_str()));
  if (existing == nullptr) {
    LibvirtFailure failure = LastFailure();
    if (failure.code != VIR_ERR_NO_DOMAIN) return ToStatus(failure, name, "define", conn_);
  } else {
    StatusOr<std::optional<DomainMetadata>> metadata =
        MetadataOf(conn_, existing.get(), name, "define");
    if (!metadata.ok() && metadata.status().reason() != kReasonBadDomainMetadata) {
      return metadata.status();
    }
    if (!metadata.ok() || !metadata->has_value() ||
        (*metadata)->instance_id != spec.metadata.instance_id) {
      std::string owner = "was not defined by fpgahost";
      if (!metadata.ok()) {
        owner = "has unreadable fpgahost metadata";
      } else if (metadata->has_value()) {
        owner = "belongs to instance " + (*metadata)->instance_id;
      }
      return FailedPreconditionError(name + ": define: a domain of that name exists and " + owner,
                                     kReasonDomainExists);
    }
    // libvirt refuses a new definition of a domain under a different UUID, and would make one
    // up for a spec without any.
    if (spec.uuid.empty()) {
      DomainSpec same = spec;
      ASSIGN_OR_RETURN(same.uuid, UuidOf(conn_, existing.get(), name, "define"));
      xml = DomainXml(same, xml_options_);
      if (!xml.ok()) return xml.status().WithContext(name + ": define");
    }
  }
  DomainRef defined(virDomainDefineXML(conn_, xml->c_str()));
  if (defined == nullptr) return ToStatus(LastFailure(), name, "define", conn_);
  return Status::Ok();
}

Status LibvirtHypervisor::Start(std::string_view name) {
  return Transition(conn_, name, "start", /*want_active=*/true, virDomainCreate);
}

Status LibvirtHypervisor::Shutdown(std::string_view name) {
  return Transition(conn_, name, "shutdown", /*want_active=*/false, virDomainShutdown);
}

Status LibvirtHypervisor::Destroy(std::string_view name) {
  return Transition(conn_, name, "destroy", /*want_active=*/false, virDomainDestroy);
}

Status LibvirtHypervisor::Undefine(std::string_view name) {
  ASSIGN_OR_RETURN(DomainRef domain, Lookup(conn_, name, "undefine"));
  ASSIGN_OR_RETURN(bool active, IsActive(conn_, domain.get(), name, "undefine"));
  if (active) {
    return FailedPreconditionError(
        std::string(name) + ": undefine: the domain is running; shut it down or destroy it first",
        kReasonDomainRunning);
  }
  // Managed-save images and UEFI variables belong to the definition and go with it. Drivers
  // that know fewer flags (the test driver has no NVRAM) refuse them as invalid or
  // unsupported: ask again with fewer, down to the plain call older drivers have.
  LibvirtFailure failure;
  const unsigned flag_sets[] = {VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_NVRAM,
                                VIR_DOMAIN_UNDEFINE_MANAGED_SAVE};
  for (unsigned flags : flag_sets) {
    if (virDomainUndefineFlags(domain.get(), flags) == 0) return Status::Ok();
    failure = LastFailure();
    if (failure.code != VIR_ERR_INVALID_ARG && failure.code != VIR_ERR_NO_SUPPORT &&
        failure.code != VIR_ERR_OPERATION_UNSUPPORTED) {
      return ToStatus(failure, name, "undefine", conn_);
    }
  }
  if (virDomainUndefine(domain.get()) == 0) return Status::Ok();
  return ToStatus(LastFailure(), name, "undefine", conn_);
}

StatusOr<DomainInfo> LibvirtHypervisor::Get(std::string_view name) {
  ASSIGN_OR_RETURN(DomainRef domain, Lookup(conn_, name, "get"));
  return Describe(conn_, domain.get(), "get");
}

StatusOr<std::vector<DomainInfo>> LibvirtHypervisor::List() {
  virDomainPtr* listed = nullptr;
  int count = virConnectListAllDomains(conn_, &listed, 0);
  if (count < 0) return ToStatus(LastFailure(), uri_, "list domains", conn_);
  // Owned at once, so that an early return below frees every one.
  std::vector<DomainRef> domains;
  domains.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) domains.emplace_back(listed[i]);
  std::free(listed);

  std::vector<DomainInfo> infos;
  infos.reserve(domains.size());
  for (const DomainRef& domain : domains) {
    StatusOr<DomainInfo> info = Describe(conn_, domain.get(), "list");
    if (info.ok()) {
      infos.push_back(std::move(*info));
    } else if (info.status().reason() != kReasonDomainNotFound) {
      return info.status();
    }  // else undefined since it was listed: it is not there any more
  }
  std::sort(infos.begin(), infos.end(),
            [](const DomainInfo& a, const DomainInfo& b) { return a.name < b.name; });
  return infos;
}

}  // namespace fpgahost::vfio
