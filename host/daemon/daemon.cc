#include "host/daemon/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>

#include "common/files.h"
#include "common/thread_pool.h"
#include "examples/examples_dir.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/xbmgmt_programmer.h"
#include "fpga/xrt_programmer.h"
#include "host/api/api.h"
#include "host/api/credential_routes.h"
#include "host/auth/credentials.h"
#include "host/auth/tokens.h"
#include "host/capacity/capacity_account.h"
#include "host/cards/card_manager.h"
#include "host/cards/design_runner.h"
#include "host/cards/function_card_lender.h"
#include "host/functions/concurrency_limiter.h"
#include "host/functions/function_registry.h"
#include "host/functions/invocation_records.h"
#include "host/functions/invoker.h"
#include "host/functions/sandbox_bwrap.h"
#include "host/http/http_server.h"
#include "host/images/default_shells.h"
#include "host/images/image_registry.h"
#include "host/instances/instance_manager.h"
#include "host/instances/instance_types.h"
#include "host/instances/store_binding_journal.h"
#include "host/store/state_store.h"
#include "images/blob_store.h"
#include "vfio/libvirt_hypervisor.h"
#include "vfio/vfio_binder.h"

namespace fpgahost {
namespace fs = std::filesystem;

namespace {

// Holds an exclusive flock on <data dir>/fpgahostd.lock for the daemon's lifetime, so two
// daemons never share one state store.
class DataDirLock {
 public:
  static StatusOr<std::unique_ptr<DataDirLock>> Acquire(const fs::path& dir) {
    fs::path path = dir / "fpgahostd.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError(fmt::format("cannot open {}", path.string()), errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return FailedPreconditionError(
          fmt::format("another fpgahostd is already using data dir {}", dir.string()),
          "DATA_DIR_IN_USE");
    }
    return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
  }
  ~DataDirLock() { ::close(fd_); }
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// On the first start (no tokens at all), creates an operator token (tenant "admin") and a
// customer token for the "demo" tenant, each in a file only the owner can read.
Status CreateFirstTokens(TokenAuthenticator& auth, Daemon::Started& started) {
  if (auth.HasTokens()) return Status::Ok();
  fs::path dir = started.data_dir / "tokens";
  RETURN_IF_ERROR(EnsureWritableDir(dir, 0700));
  started.operator_token_file = dir / "operator.token";
  started.demo_token_file = dir / "demo.token";
  auto write_file = [&](const IssuedToken& token) {
    const fs::path& file = token.principal.role == Role::kOperator ? started.operator_token_file
                                                                   : started.demo_token_file;
    return WriteFileAtomically(file, token.secret + "\n", 0600);
  };
  RETURN_IF_ERROR(auth.IssueTokens({{"admin", Role::kOperator, "created at first start"},
                                    {"demo", Role::kCustomer, "created at first start"}},
                                   write_file)
                      .status());
  started.created_tokens = true;
  return Status::Ok();
}

// The validator's options from the configuration; errors name the key.
StatusOr<images::XclbinValidationOptions> ValidationOptions(const DaemonConfig& config) {
  images::XclbinValidationOptions o;
  if (config.shell_catalogue.empty()) {
    ASSIGN_OR_RETURN(o.shells, images::ParseShellCatalogue(DefaultShellCatalogueJson(),
                                                           "built-in shell catalogue"));
  } else {
    ASSIGN_OR_RETURN(o.shells, images::LoadShellCatalogue(config.shell_catalogue));
  }
  o.allowed_modes.clear();
  if (config.image_modes != "emulation") o.allowed_modes = images::HardwareModes();
  if (config.image_modes != "hardware") {
    for (auto m : images::EmulationModes()) o.allowed_modes.push_back(m);
  }
  o.max_size = config.image_max_bytes;
  o.signature_policy = *images::ParseSignaturePolicy(config.image_signature_policy);
  std::vector<fs::path> certs(config.image_trusted_certs.begin(), config.image_trusted_certs.end());
  if (!certs.empty()) {
    auto trusted = images::TrustedCerts::Load(certs);
    if (!trusted.ok()) return trusted.status().WithContext("image-trusted-cert");
    o.trusted_certs = std::move(*trusted);
  }
  return o;
}

bool IsEmulatedFleet(const fs::path& sysfs_root) {
  std::error_code ec;
  return fs::exists(sysfs_root / fpga::emu::kFleetMarker, ec);
}

// The kernel's /sys, or an emulated fleet's tree (which needs the kernel's effects of writes
// to driver control files emulated): told apart by the fleet's marker file.
std::unique_ptr<fpga::Sysfs> OpenSysfs(const fs::path& root) {
  if (IsEmulatedFleet(root)) return std::make_unique<fpga::emu::EmulatedSysfs>(root);
  return std::make_unique<fpga::RealSysfs>(root);
}

// Where vfio-pci's group nodes appear: /dev, or the emulated fleet's own dev/.
fs::path DevRoot(const fs::path& sysfs_root) {
  return IsEmulatedFleet(sysfs_root) ? fpga::emu::EmulatedDevRoot(sysfs_root) : fs::path("/dev");
}

}  // namespace

struct Daemon::Parts {
  Started started;
  std::unique_ptr<DataDirLock> lock;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<TokenAuthenticator> auth;
  std::unique_ptr<CredentialStore> credentials;
  std::unique_ptr<ThreadPool> blocking;
  std::unique_ptr<images::BlobStore> blobs;
  std::unique_ptr<ImageRegistry> images;
  std::unique_ptr<fpga::Sysfs> sysfs;
  std::unique_ptr<StoreBindingJournal> vfio_journal;
  std::unique_ptr<vfio::VfioBinder> vfio;
  std::unique_ptr<fpga::XrtProgrammer> xrt;
  std::unique_ptr<fpga::XbmgmtProgrammer> xbmgmt;
  std::unique_ptr<HostProgramRunner> design_runner;
  std::unique_ptr<CardManager> cards;
  std::unique_ptr<FunctionCardLender> function_cards;
  std::unique_ptr<vfio::LibvirtHypervisor> hypervisor;
  std::unique_ptr<CapacityAccount> capacity;
  std::unique_ptr<InstanceManager> instances;
  std::unique_ptr<functions::FunctionRegistry> functions;
  // The API server's I/O threads, shared with the function slots' Runtime API servers: an
  // invocation then moves between the two without waking another pool's threads.
  std::unique_ptr<http::IoThreads> io;
  std::unique_ptr<functions::BwrapSandbox> sandbox;
  std::unique_ptr<functions::ConcurrencyLimiter> limiter;
  std::unique_ptr<functions::InvocationRecords> records;
  std::unique_ptr<functions::Invoker> invoker;
  std::unique_ptr<api::FunctionServices> function_services;
  std::unique_ptr<api::ApiContext> api;
  std::unique_ptr<http::HttpServer> server;
};

// The launcher of function sandboxes: configured, or the one installed beside fpgahostd.
static fs::path SlotInit(const DaemonConfig& config) {
  if (!config.slot_init.empty()) return fs::absolute(config.slot_init);
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return self.parent_path() / "fpgahost-slot-init";
}

Status Daemon::StartFunctions(const DaemonConfig& config, Parts& parts) {
  fs::path launcher = SlotInit(config);
  std::error_code ec;
  if (!fs::exists(launcher, ec)) {
    return FailedPreconditionError(
        fmt::format("slot-init: {} does not exist (build fpgahost-slot-init or set slot-init)",
                    launcher.string()));
  }
  functions::BwrapSandbox::Options sandbox_options;
  sandbox_options.launcher = launcher;
  parts.sandbox = std::make_unique<functions::BwrapSandbox>(sandbox_options);
  functions::ConcurrencyLimits limits;
  limits.max_concurrency = config.function_concurrency;
  limits.initial_limit = config.function_initial_concurrency;
  limits.min_unreserved = config.function_min_unreserved;
  parts.limiter = std::make_unique<functions::ConcurrencyLimiter>(RealClock(), limits);
  ASSIGN_OR_RETURN(std::vector<functions::FunctionConfig> all, parts.functions->List(""));
  for (const functions::FunctionConfig& f : all) {
    if (f.reserved_concurrency) {
      parts.limiter->SetReservation(f.tenant, f.name, f.reserved_concurrency);
    }
  }
  parts.records = std::make_unique<functions::InvocationRecords>(
      *parts.store, functions::InvocationRecords::Options{});
  functions::InvokerOptions options;
  options.max_slots = config.function_max_slots;
  options.idle_timeout = config.function_idle_timeout;
  options.async_retry_delay = config.function_retry_delay;
  options.affinity_wait = config.function_affinity_wait;
  options.region = config.lambda_region;
  // Idempotent functions' dependencies, as their tenants see them.
  functions::DependencySources dependencies;
  dependencies.data_root = config.function_data_root.empty()
                               ? parts.started.data_dir / "function-data"
                               : fs::absolute(config.function_data_root);
  dependencies.image_state = [images = parts.images.get()](std::string_view tenant,
                                                           std::string_view id) -> std::string {
    Principal who;
    who.tenant = std::string(tenant);
    StatusOr<ImageRecord> image = images->Get(who, id);
    return image.ok() ? image->state + ":" + image->sha256 : "";
  };
  dependencies.function_version = [registry = parts.functions.get()](
                                      std::string_view tenant,
                                      std::string_view name) -> std::string {
    std::shared_ptr<const functions::FunctionConfig> f = registry->Find(tenant, name);
    // Any change to a function (it is deleted and created again) changes last_modified.
    return f ? f->code_sha256_hex + ":" + f->last_modified : "";
  };
  parts.invoker = std::make_unique<functions::Invoker>(
      functions::InvokerDeps{*parts.functions, *parts.sandbox, *parts.capacity, *parts.limiter,
                             *parts.records, *parts.io, RealClock(), std::move(dependencies),
                             parts.function_cards.get()},
      options);
  parts.function_services = std::make_unique<api::FunctionServices>(
      api::FunctionServices{*parts.functions, *parts.invoker, *parts.limiter, *parts.records,
                            *parts.credentials, config.lambda_region, parts.function_cards.get()});
  return Status::Ok();
}

StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonConfig& config) {
  auto parts = std::make_unique<Parts>();
  // Tools and libraries fpgahostd runs (xbmgmt, XRT, the designs' host programs) look at the
  // same PCI tree as the daemon. Set before any thread of ours starts.
  fs::path sysfs_root = fs::absolute(config.sysfs_root);
  ::setenv("FPGAHOST_SYSFS_ROOT", sysfs_root.c_str(), 1);
  ASSIGN_OR_RETURN(images::XclbinValidationOptions validation, ValidationOptions(config));
  // Bind first: a port in use must fail before anything is written to the data dir.
  http::ServerOptions options;
  options.address = config.listen_address;
  options.port = config.listen_port;
  parts->io = std::make_unique<http::IoThreads>(config.http_threads);
  options.io_threads = parts->io.get();
  options.max_header_bytes = config.max_header_bytes;
  options.max_body_bytes = config.max_body_bytes;
  options.idle_timeout = config.idle_timeout;
  ASSIGN_OR_RETURN(parts->server, http::HttpServer::Listen(options));
  parts->started.port = parts->server->port();

  parts->started.data_dir = fs::absolute(config.data_dir);
  const fs::path& dir = parts->started.data_dir;
  RETURN_IF_ERROR(EnsureWritableDir(dir, 0700).WithContext("data dir"));
  ASSIGN_OR_RETURN(parts->lock, DataDirLock::Acquire(dir));
  ASSIGN_OR_RETURN(parts->store, StateStore::Open((dir / "state.db").string(), SchemaMigrations(),
                                                  config.state_sync_interval));
  parts->auth = std::make_unique<TokenAuthenticator>(*parts->store, RealClock());
  RETURN_IF_ERROR(parts->auth->Load());
  RETURN_IF_ERROR(CreateFirstTokens(*parts->auth, parts->started));
  parts->credentials = std::make_unique<CredentialStore>(*parts->store, RealClock());
  RETURN_IF_ERROR(parts->credentials->Load());

  parts->blocking = std::make_unique<ThreadPool>(4);
  parts->blobs = std::make_unique<images::BlobStore>(dir / "images");
  RETURN_IF_ERROR(parts->blobs->Init());
  parts->images = std::make_unique<ImageRegistry>(*parts->store, *parts->blobs, RealClock(),
                                                  *parts->blocking, std::move(validation));
  RETURN_IF_ERROR(parts->images->Recover());

  parts->sysfs = OpenSysfs(sysfs_root);
  // Bindings a crash left half-done go back to their host driver before cards are scanned.
  parts->vfio_journal = std::make_unique<StoreBindingJournal>(*parts->store, RealClock());
  parts->vfio =
      std::make_unique<vfio::VfioBinder>(*parts->sysfs, DevRoot(sysfs_root), *parts->vfio_journal);
  StatusOr<std::vector<std::string>> repaired = parts->vfio->Repair();
  if (!repaired.ok()) {
    spdlog::error("repairing VFIO bindings: {}", repaired.status().ToString());
  } else if (!repaired->empty()) {
    spdlog::warn("returned {} device(s) a crash left half-bound to their host driver",
                 repaired->size());
  }
  parts->xrt = std::make_unique<fpga::XrtProgrammer>(config.xrt_library);
  parts->xbmgmt = std::make_unique<fpga::XbmgmtProgrammer>(config.xbmgmt);
  // PoCL (the emulated fleet's OpenCL) caches compiled kernels; keep them with our data
  // rather than in the home directory of whoever runs the daemon.
  parts->design_runner =
      std::make_unique<HostProgramRunner>(std::vector<std::pair<std::string, std::string>>{
          {"POCL_CACHE_DIR", (dir / "cache" / "pocl").string()}});
  CardManagerOptions card_options;
  card_options.scan_interval = config.card_scan_interval;
  card_options.load_timeout = config.card_load_timeout;
  card_options.reset_timeout = config.card_reset_timeout;
  card_options.validate_timeout = config.card_validate_timeout;
  card_options.verify_designs =
      VerifyDesignsIn(config.verify_designs_dir.empty() ? fs::path(FPGAHOST_EXAMPLES_DIR)
                                                        : fs::path(config.verify_designs_dir));
  card_options.verify_validation = parts->images->validation_options();
  parts->cards = std::make_unique<CardManager>(
      CardManagerDeps{*parts->sysfs, *parts->images->validation_options().shells, *parts->xrt,
                      *parts->xbmgmt, *parts->xbmgmt, *parts->design_runner, *parts->store,
                      RealClock()},
      std::move(card_options));
  RETURN_IF_ERROR(parts->cards->Start().WithContext("cards"));
  parts->function_cards = std::make_unique<FunctionCardLender>(
      *parts->cards, *parts->images, *parts->blobs, config.card_load_timeout);
  parts->function_cards->Start();

  InstanceManagerOptions instance_options;
  if (!config.instance_types.empty()) {
    ASSIGN_OR_RETURN(instance_options.types, LoadInstanceTypes(config.instance_types));
  }
  if (!config.instance_boot_disk.empty()) instance_options.boot_disk = config.instance_boot_disk;
  instance_options.shutdown_timeout = config.instance_shutdown_timeout;
  ASSIGN_OR_RETURN(parts->hypervisor, vfio::LibvirtHypervisor::Connect(config.libvirt_uri));
  ComputeResources compute = DefaultComputeCapacity();
  if (config.capacity_vcpus > 0) compute.vcpus = config.capacity_vcpus;
  if (config.capacity_memory_mib > 0) compute.memory_mib = config.capacity_memory_mib;
  parts->capacity = std::make_unique<CapacityAccount>(compute, *parts->cards);
  parts->instances = std::make_unique<InstanceManager>(
      InstanceManagerDeps{*parts->hypervisor, *parts->vfio, *parts->vfio_journal, *parts->cards,
                          *parts->capacity, *parts->store, RealClock()},
      std::move(instance_options));
  RETURN_IF_ERROR(parts->instances->Start().WithContext("instances"));
  parts->functions = std::make_unique<functions::FunctionRegistry>(
      *parts->store, dir / "functions" / "code", RealClock());
  RETURN_IF_ERROR(StartFunctions(config, *parts).WithContext("functions"));
  parts->api = std::make_unique<api::ApiContext>(api::ApiContext{*parts->auth, *parts->store,
                                                                 RealClock(), *parts->blocking,
                                                                 std::chrono::steady_clock::now()});
  auto router = std::make_unique<http::Router>();
  api::RegisterSystemRoutes(*router, *parts->api);
  api::RegisterCredentialRoutes(*router, *parts->api, *parts->credentials);
  api::RegisterImageRoutes(*router, *parts->api, *parts->images, *parts->blobs);
  api::RegisterCardRoutes(*router, *parts->api, *parts->cards, *parts->images, *parts->blobs);
  api::RegisterInstanceRoutes(*router, *parts->api, *parts->instances, *parts->capacity,
                              *parts->images, *parts->blobs);
  api::RegisterLambdaRoutes(*router, *parts->api, *parts->function_services);
  api::RegisterInvokeRoutes(*router, *parts->api, *parts->function_services);
  parts->server->Serve(std::move(router));
  return std::unique_ptr<Daemon>(new Daemon(std::move(parts)));
}

Daemon::Daemon(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Daemon::~Daemon() { Shutdown(); }

const Daemon::Started& Daemon::started() const { return parts_->started; }

void Daemon::Shutdown() {
  if (!parts_) return;
  // Order matters: stop taking requests, finish queued work, then close the store.
  parts_->instances->StopWaiters();
  parts_->server->Shutdown();
  parts_->invoker->Stop();
  parts_->instances->Stop();
  parts_->cards->Stop();
  parts_->blocking->Shutdown();
  parts_->server.reset();
  parts_.reset();
}

}  // namespace fpgahost
