// The API's overhead on an instance's life: create and terminate of a 1-slot instance
// (fpga.small: 2 vCPUs, 4096 MiB, one FPGA) through the API, as a customer's client sees it,
// against the same domain's define/start/destroy/undefine done directly on libvirt in the same
// run. Issue target: the ratio of the medians (API / libvirt) < 5.
//
//   build/release/bench/instance_bench [--iterations 200] [--poll-us N] [--tmp /tmp]
//                                      [--fleet-tmp /dev/shm] [--state-sync-interval S]
//
// Starts its own fpgahostd (built beside it) on a free port with a temporary data dir, a
// four-card emulated fleet (load time 0), libvirt's test driver (test:///default) and a fixed
// capacity of 64 vCPUs and 64 GiB. One API iteration, as a client that waits on each operation:
// POST /v1/instances {"type":"fpga.small"} (202), GET /v1/instances/{id}?wait=20 (answered
// when it is running), DELETE /v1/instances/{id} (202), GET ?wait=20 (answered when it is
// terminated), the four on one kept-alive connection (http::Connection). With `--poll-us N`
// the client polls instead, as a client without `wait` would: a plain GET every N us until the
// state changes, each request on a fresh connection (http::Send). In it: HTTP, token check, the
// hand-off to the blocking pool and to an instance worker, the capacity account, SQLite
// transactions (WAL; runtime state, so synchronous=NORMAL: see host/store/state_store.h),
// vfio-pci binding and release through the emulated kernel (and its journal), card rescans,
// the check that the slot is clear on terminate, and libvirt.
//
// The baseline is libvirt's C API called from this process on its own test:///default
// connection (the daemon's test driver is in the daemon's process): virDomainDefineXML,
// virDomainCreate, virDomainDestroy, virDomainUndefine, with the domain XML DomainXml writes
// for the same kind of spec as the daemon's 1-slot instance (type "test", machine q35, one
// unmanaged vfio hostdev 0000:10:00.1, fpgahost metadata). The same cycle through
// vfio::LibvirtHypervisor, the daemon's adapter, is shown beside it for reference.
//
// To show where the API's time goes it also prints, from the daemon's own events (stamped in
// milliseconds when each state is written), how long the instance worker took from pending to
// running and from terminating to terminated, how many requests an iteration needed and what
// one GET costs on its own (every iteration needs at least four requests). `--tmp` puts the
// daemon's data dir elsewhere, e.g. on tmpfs (/dev/shm) to see the cost of the disk. The
// emulated sysfs stands in for /sys, which lives in memory: it goes to `--fleet-tmp`, tmpfs by
// default (on ext4 every emulated bind would also pay for journaled file metadata).
// `--state-sync-interval` is passed to fpgahostd (0: every commit fsynced before the answer).
#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_daemon.h"
#include "common/files.h"
#include "common/json.h"
#include "fpga/discovery.h"
#include "fpga/emu/sysfs_tree.h"
#include "host/http/http_client.h"
#include "host/images/default_shells.h"
#include "vfio/domain_xml.h"
#include "vfio/libvirt_hypervisor.h"

namespace {

namespace fs = std::filesystem;
using fpgahost::Json;
using Clock = std::chrono::steady_clock;

constexpr int kWarmup = 10;  // iterations of each loop that warm caches and are not counted

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void PrintRow(const char* what, const std::vector<double>& ms) {
  std::printf("  %-36s p50 %7.2f  p90 %7.2f  p99 %7.2f  max %7.2f ms\n", what, Percentile(ms, 0.5),
              Percentile(ms, 0.9), Percentile(ms, 0.99), Percentile(ms, 1.0));
}

void IgnoreLibvirtError(void*, virErrorPtr) {}

// Milliseconds since the epoch of an event's "2026-11-28T10:00:00.123Z"; -1 if it is not one.
double EventMs(const std::string& time) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(time.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(::timegm(&tm)) * 1000.0 + ms;
}

// The spec the instance manager writes for an fpga.small instance on the fleet's first card.
fpgahost::vfio::DomainSpec SmallInstanceSpec(int n) {
  std::string id = fmt::format("i-{:017x}", 0xbe0c000 + n);
  fpgahost::vfio::DomainSpec spec;
  spec.name = "fpgahost-" + id;
  spec.vcpus = 2;
  spec.memory_mib = 4096;
  spec.hostdevs = {fpgahost::fpga::emu::EmulatedUserBdf(0)};
  spec.metadata.instance_id = id;
  spec.metadata.tenant = "demo";
  spec.metadata.instance_type = "fpga.small";
  spec.metadata.slots = {{0, fpgahost::fpga::CardIdForBdf(fpgahost::fpga::emu::EmulatedMgmtBdf(0)),
                          fpgahost::fpga::emu::EmulatedUserBdf(0)}};
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 200;
  int poll_us = 0;  // 0: wait on one kept-alive connection instead of polling
  fs::path tmp = "/tmp";
  fs::path fleet_tmp = "/dev/shm";
  std::string sync_interval = "1";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--iterations") iterations = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--poll-us") poll_us = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--tmp") tmp = argv[i + 1];
    if (std::string(argv[i]) == "--fleet-tmp") fleet_tmp = argv[i + 1];
    if (std::string(argv[i]) == "--state-sync-interval") sync_interval = argv[i + 1];
  }
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  fs::path bin_dir = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  fs::path data = tmp / ("fpgahost-bench-instance-" + std::to_string(::getpid()));
  fs::path fleet = fleet_tmp / ("fpgahost-bench-instance-fleet-" + std::to_string(::getpid()));
  fpgahost::bench::BenchDaemon daemon = fpgahost::bench::StartFleetDaemon(
      bin_dir, data, 4,
      {"--libvirt-uri", "test:///default", "--capacity-vcpus", "64", "--capacity-memory-mib",
       "65536", "--state-sync-interval", sync_interval},
      fleet);
  if (daemon.port == 0) return std::fprintf(stderr, "daemon did not start\n"), 1;
  std::string token = *fpgahost::ReadFile(data / "tokens/demo.token");
  token.pop_back();
  std::string operator_token = *fpgahost::ReadFile(data / "tokens/operator.token");
  operator_token.pop_back();

  fpgahost::http::Endpoint ep{"127.0.0.1", daemon.port};
  fpgahost::http::Connection connection(ep);
  auto call = [&](const std::string& method, const std::string& target, unsigned* status,
                  const std::string& as = "") {
    fpgahost::http::ClientRequest req;
    req.method = method;
    req.target = target;
    if (method == "POST") req.body = R"({"type":"fpga.small"})";
    req.headers["Authorization"] = "Bearer " + (as.empty() ? token : as);
    auto r = poll_us > 0 ? fpgahost::http::Send(ep, req) : connection.Send(req);
    *status = r.ok() ? r->status : 0;
    return r.ok() ? Json::parse(r->body, nullptr, false) : Json();
  };
  // Waits until the instance leaves the transitional state; returns the state it settled in.
  int gets = 0;
  auto settle = [&](const std::string& id) {
    unsigned status = 0;
    std::string target = "/v1/instances/" + id + (poll_us > 0 ? "" : "?wait=20");
    while (true) {
      ++gets;
      std::string state = call("GET", target, &status).value("state", "");
      if (status != 200) return std::string("(GET failed)");
      if (state != "pending" && state != "terminating") return state;
      if (poll_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
    }
  };

  std::vector<double> api_ms, create_ms, terminate_ms, gets_per_iteration;
  std::vector<std::string> measured;
  int failed = 0;
  for (int i = 0; i < iterations + kWarmup; ++i) {
    unsigned status = 0;
    auto t0 = Clock::now();
    Json created = call("POST", "/v1/instances", &status);
    if (status != 202) {
      ++failed;
      std::fprintf(stderr, "create: HTTP %u %s\n", status, created.dump().c_str());
      break;
    }
    std::string id = created["id"];
    gets = 0;
    std::string state = settle(id);
    auto t1 = Clock::now();
    if (state != "running") ++failed;
    call("DELETE", "/v1/instances/" + id, &status);
    if (status != 202) ++failed;
    state = settle(id);
    auto t2 = Clock::now();
    if (state != "terminated") ++failed;
    if (i < kWarmup) continue;
    api_ms.push_back(Ms(t2 - t0));
    create_ms.push_back(Ms(t1 - t0));
    terminate_ms.push_back(Ms(t2 - t1));
    gets_per_iteration.push_back(gets);
    measured.push_back(id);
  }
  // What one request costs: the floor under the four an iteration needs at least.
  std::vector<double> get_ms;
  for (int i = 0; i < iterations && !measured.empty(); ++i) {
    unsigned status = 0;
    auto t0 = Clock::now();
    call("GET", "/v1/instances/" + measured.back(), &status);
    get_ms.push_back(Ms(Clock::now() - t0));
  }
  // The worker's share, from the daemon's events (after the loop, so as not to disturb it).
  std::vector<double> worker_create_ms, worker_terminate_ms;
  for (const std::string& id : measured) {
    unsigned status = 0;
    Json events = call("GET", "/v1/events?subject=" + id, &status, operator_token)["events"];
    std::map<std::string, double> at;
    for (const Json& e : events) at[e.value("kind", "")] = EventMs(e.value("time", ""));
    if (at.size() < 4) continue;
    worker_create_ms.push_back(at["instance.running"] - at["instance.pending"]);
    worker_terminate_ms.push_back(at["instance.terminated"] - at["instance.terminating"]);
  }
  fpgahost::bench::StopBenchDaemon(daemon);
  fs::remove_all(data);
  fs::remove_all(fleet);
  if (api_ms.empty()) return std::fprintf(stderr, "no API iteration completed\n"), 1;

  // The baseline: libvirt's C API on its own.
  virInitialize();
  virSetErrorFunc(nullptr, IgnoreLibvirtError);
  virConnectPtr conn = virConnectOpen("test:///default");
  if (conn == nullptr) return std::fprintf(stderr, "cannot open test:///default\n"), 1;
  auto xml_options = fpgahost::vfio::DomainXmlOptionsFor("test:///default", {});
  std::vector<double> libvirt_ms;
  for (int i = 0; i < iterations + kWarmup; ++i) {
    // The XML is written outside the timing: the daemon's number includes writing it, so
    // leaving it out only makes the baseline smaller.
    auto xml = fpgahost::vfio::DomainXml(SmallInstanceSpec(i), xml_options);
    if (!xml.ok()) return std::fprintf(stderr, "%s\n", xml.status().ToString().c_str()), 1;
    auto t0 = Clock::now();
    virDomainPtr domain = virDomainDefineXML(conn, xml->c_str());
    bool ok = domain != nullptr && virDomainCreate(domain) == 0 && virDomainDestroy(domain) == 0 &&
              virDomainUndefine(domain) == 0;
    if (domain != nullptr) virDomainFree(domain);
    auto t1 = Clock::now();
    if (!ok) {
      virErrorPtr e = virGetLastError();
      std::fprintf(stderr, "libvirt: %s\n", e != nullptr ? e->message : "unknown error");
      ++failed;
    }
    if (i >= kWarmup) libvirt_ms.push_back(Ms(t1 - t0));
  }
  virConnectClose(conn);

  // For reference: the same cycle through the daemon's adapter.
  auto hypervisor = fpgahost::vfio::LibvirtHypervisor::Connect("test:///default");
  if (!hypervisor.ok())
    return std::fprintf(stderr, "%s\n", hypervisor.status().ToString().c_str()), 1;
  std::vector<double> adapter_ms;
  for (int i = 0; i < iterations + kWarmup; ++i) {
    fpgahost::vfio::DomainSpec spec = SmallInstanceSpec(i);
    auto t0 = Clock::now();
    fpgahost::Status s = (*hypervisor)->Define(spec);
    if (s.ok()) s = (*hypervisor)->Start(spec.name);
    if (s.ok()) s = (*hypervisor)->Destroy(spec.name);
    if (s.ok()) s = (*hypervisor)->Undefine(spec.name);
    auto t1 = Clock::now();
    if (!s.ok()) {
      std::fprintf(stderr, "LibvirtHypervisor: %s\n", s.ToString().c_str());
      ++failed;
    }
    if (i >= kWarmup) adapter_ms.push_back(Ms(t1 - t0));
  }

  std::printf("%s\n", command_line.c_str());
  std::string client = poll_us > 0 ? fmt::format("polls every {} us on fresh connections", poll_us)
                                   : "waits (?wait=20) on one kept-alive connection";
  std::printf(
      "%d iterations each (after %d warm-up), fpga.small (2 vCPUs, 4096 MiB, 1 FPGA), "
      "test:///default; the client %s\n",
      iterations, kWarmup, client.c_str());
  PrintRow("API create -> terminated", api_ms);
  PrintRow("  POST -> running", create_ms);
  PrintRow("  DELETE -> terminated", terminate_ms);
  if (!worker_create_ms.empty()) {
    PrintRow("  events: pending -> running", worker_create_ms);
    PrintRow("  events: terminating -> terminated", worker_terminate_ms);
  }
  std::printf("  requests per iteration: median %.0f\n", Percentile(gets_per_iteration, 0.5) + 2);
  PrintRow("  one GET /v1/instances/{id}", get_ms);
  PrintRow("libvirt C API define..undefine", libvirt_ms);
  PrintRow("LibvirtHypervisor (reference)", adapter_ms);
  double ratio = Percentile(api_ms, 0.5) / Percentile(libvirt_ms, 0.5);
  std::printf("ratio of medians (API / libvirt): %.1f (target < 5); %d failed\n", ratio, failed);
  return failed == 0 ? 0 : 1;
}
