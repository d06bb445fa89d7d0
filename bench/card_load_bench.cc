// The API's load-to-`loaded` overhead: with the emulated fleet's load time set to 0, the time
// from POST /v1/cards/{id}/load until GET /v1/cards/{id} shows the image loaded, as an
// operator's client sees it. Everything but the card's own programming time is in it: HTTP,
// auth, the image lookup, the store's transactions, the worker hand-off, XRT (libxrt_emu.so
// through dlopen), the read-back of the loaded UUID from sysfs.
//
//   build/release/bench/card_load_bench [--loads 400]
//
// Starts its own fpgahostd (built beside it) on a free port with a temporary data dir and a
// one-card emulated fleet, uploads two fixture images with different xclbin UUIDs and loads
// them alternately (loading the loaded one again is a no-op, which would flatter the numbers).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_daemon.h"
#include "common/files.h"
#include "common/json.h"
#include "fpga/emu/sysfs_tree.h"
#include "host/http/http_client.h"
#include "host/images/default_shells.h"

namespace {

namespace fs = std::filesystem;
using fpgahost::Json;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int loads = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--loads") loads = std::stoi(argv[i + 1]);
  }
  fs::path bin_dir = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  fs::path data = "/tmp/fpgahost-bench-load-" + std::to_string(::getpid());
  fpgahost::bench::BenchDaemon daemon = fpgahost::bench::StartFleetDaemon(bin_dir, data, 1, {});
  if (daemon.port == 0) return std::fprintf(stderr, "daemon did not start\n"), 1;
  uint16_t port = daemon.port;
  std::string token = *fpgahost::ReadFile(data / "tokens/operator.token");
  token.pop_back();

  fpgahost::http::Endpoint ep{"127.0.0.1", port};
  auto call = [&](const std::string& method, const std::string& target,
                  const std::string& body = "") {
    fpgahost::http::ClientRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.headers["Authorization"] = "Bearer " + token;
    auto r = fpgahost::http::Send(ep, req);
    return r.ok() ? Json::parse(r->body, nullptr, false) : Json();
  };

  std::vector<std::string> images;
  for (const char* fixture : {"02_full_hw.xclbin", "03_clock_freq.xclbin"}) {
    fpgahost::http::ClientRequest req;
    req.method = "POST";
    req.target = std::string("/v1/images?name=") + fixture;
    req.headers["Authorization"] = "Bearer " + token;
    auto r = fpgahost::http::SendFile(
        ep, req, std::string(FPGAHOST_SOURCE_DIR) + "/tests/fuzz/corpus/xclbin/" + fixture);
    if (!r.ok() || r->status != 202) return std::fprintf(stderr, "upload failed\n"), 1;
    std::string id = Json::parse(r->body)["id"];
    for (int i = 0; i < 1000 && call("GET", "/v1/images/" + id).value("state", "") == "pending";
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    images.push_back(id);
  }
  std::string card = call("GET", "/v1/cards")["cards"][0]["id"];

  std::vector<double> ms;
  int failed = 0;
  for (int i = 0; i < loads + 20; ++i) {
    const std::string& image = images[static_cast<size_t>(i) % 2];
    auto t0 = Clock::now();
    Json started = call("POST", "/v1/cards/" + card + "/load", Json{{"image_id", image}}.dump());
    std::string state;
    while (true) {
      Json c = call("GET", "/v1/cards/" + card);
      if (c.value("operation", "") == "idle") {
        state = c["image"].value("state", "");
        break;
      }
    }
    double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (state != "loaded") ++failed;
    if (i >= 20) ms.push_back(elapsed);  // the first loads warm caches and connections
  }
  fpgahost::bench::StopBenchDaemon(daemon);
  fs::remove_all(data);

  std::printf("%d loads (load time 0): p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d not loaded\n",
              loads, Percentile(ms, 0.5), Percentile(ms, 0.99), Percentile(ms, 1.0), failed);
  std::printf("targets: p50 < 2 ms, p99 < 10 ms\n");
  return failed == 0 ? 0 : 1;
}
