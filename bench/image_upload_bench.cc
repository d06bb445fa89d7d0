// Memory of fpgahostd while it takes a large upload: its peak RSS above its idle RSS, sampled
// from /proc every 5 ms from before the upload until the image is validated.
//
//   build/release/bench/image_upload_bench [--size-mib 1024]
//
// Starts its own fpgahostd (the one built beside it) on a free port with a temporary data
// dir, uploads through the same streaming client the CLI uses, and reports upload time too.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "bench/bench_daemon.h"
#include "bench/big_xclbin.h"
#include "common/files.h"
#include "common/json.h"
#include "host/http/http_client.h"

namespace {

namespace fs = std::filesystem;
using fpgahost::Json;

struct Mem {
  long rss_kb = 0, anon_kb = 0, file_kb = 0;
};

Mem ReadMem(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  Mem m;
  for (std::string line; std::getline(f, line);) {
    auto value = [&] { return std::atol(line.c_str() + line.find(':') + 1); };
    if (line.starts_with("VmRSS:")) m.rss_kb = value();
    if (line.starts_with("RssAnon:")) m.anon_kb = value();
    if (line.starts_with("RssFile:")) m.file_kb = value();
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--size-mib") size_mib = std::stoull(argv[i + 1]);
  }
  std::string bin_dir = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  std::string file = "/tmp/fpgahost-bench-validate.xclbin";
  auto made = fpgahost::bench::MakeBigXclbin(
      std::string(FPGAHOST_SOURCE_DIR) + "/tests/fuzz/corpus/xclbin/02_full_hw.xclbin",
      size_mib << 20, file);
  if (!made.ok()) return std::fprintf(stderr, "%s\n", made.ToString().c_str()), 1;

  std::string data = "/tmp/fpgahost-bench-upload-" + std::to_string(::getpid());
  std::string max = std::to_string((size_mib + 16) << 20);
  fpgahost::bench::BenchDaemon daemon = fpgahost::bench::StartBenchDaemon(
      bin_dir, data, {"--image-max-bytes", max, "--log-level", "warn"});
  if (daemon.port == 0) return std::fprintf(stderr, "daemon did not start\n"), 1;
  pid_t pid = daemon.pid;
  uint16_t port = daemon.port;
  std::string token = *fpgahost::ReadFile(data + "/tokens/demo.token");
  token.pop_back();

  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Mem idle = ReadMem(pid);
  std::atomic<bool> done{false};
  Mem peak = idle;
  std::thread sampler([&] {
    while (!done) {
      Mem m = ReadMem(pid);
      peak.rss_kb = std::max(peak.rss_kb, m.rss_kb);
      peak.anon_kb = std::max(peak.anon_kb, m.anon_kb);
      peak.file_kb = std::max(peak.file_kb, m.file_kb);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  fpgahost::http::Endpoint ep{"127.0.0.1", port};
  fpgahost::http::ClientRequest req;
  req.method = "POST";
  req.target = "/v1/images?name=big";
  req.headers["Authorization"] = "Bearer " + token;
  req.timeout = std::chrono::minutes(10);
  auto t0 = std::chrono::steady_clock::now();
  auto r = fpgahost::http::SendFile(ep, req, file);
  auto t1 = std::chrono::steady_clock::now();
  std::string state = "?";
  if (r.ok() && r->status == 202) {
    std::string id = Json::parse(r->body)["id"];
    fpgahost::http::ClientRequest get;
    get.target = "/v1/images/" + id;
    get.headers = req.headers;
    for (int i = 0; i < 6000; ++i) {
      auto g = fpgahost::http::Send(ep, get);
      state = g.ok() ? Json::parse(g->body).value("state", "?") : "?";
      if (state != "pending") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } else {
    std::fprintf(stderr, "upload failed: %s\n",
                 r.ok() ? r->body.c_str() : r.status().ToString().c_str());
  }
  auto t2 = std::chrono::steady_clock::now();
  done = true;
  sampler.join();
  fpgahost::bench::StopBenchDaemon(daemon);
  fs::remove_all(data);

  double secs = std::chrono::duration<double>(t1 - t0).count();
  std::printf("upload of %llu MiB: %.2f s (%.0f MiB/s), validated %s after %.2f s more\n",
              static_cast<unsigned long long>(size_mib), secs, size_mib / secs, state.c_str(),
              std::chrono::duration<double>(t2 - t1).count());
  std::printf("fpgahostd RSS idle %.1f MiB, peak %.1f MiB: +%.1f MiB (target < 64)\n",
              idle.rss_kb / 1024.0, peak.rss_kb / 1024.0, (peak.rss_kb - idle.rss_kb) / 1024.0);
  std::printf(
      "  of which anonymous: idle %.1f, peak %.1f MiB; file-backed: idle %.1f, peak %.1f MiB\n",
      idle.anon_kb / 1024.0, peak.anon_kb / 1024.0, idle.file_kb / 1024.0, peak.file_kb / 1024.0);
  return state == "available" ? 0 : 1;
}
