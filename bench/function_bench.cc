// Function slots, as a Lambda client sees them (issue 6's targets):
//   1. warm invoke round trip of the compiled echo bootstrap (examples/functions/echo-cpp):
//      p50 < 200 us and p99 < 1 ms, over one keep-alive loopback connection, as an SDK keeps
//      it; beside it, GET /v1/health on the same kind of connection (the server's floor);
//   2. cold start: invoke to response on a fresh slot, against bare `bwrap ... /bin/true`
//      with the same namespaces, in the same run: ratio of medians < 3;
//   3. 1,000 concurrent synchronous invocations (one connection each): every one answered,
//      a result or a 429, and the daemon's RSS before, after and at its peak;
//   4. (issue 7) an idempotent function's reused result against the warm invoke of 1., on the
//      same kind of connection: a reuse should answer faster than running;
//   5. (issue 7) an FPGA function (examples/functions/vadd-fpga on the vadd image) with image
//      loads that take `--load-ms` (2 s): the first call after a pre-warm notification against
//      its warm calls (target: within 2x), and the first call of the same function without a
//      notification (about the load time, plus the runtime's initialisation), side by side,
//      over `--fpga` rounds; the cards are reset between rounds so each round loads afresh.
//
//   build/release/bench/function_bench [--warm 5000] [--cold 30] [--concurrent 1000]
//                                      [--reuse 5000] [--fpga 5] [--load-ms 2000]
//                                      [--memory 1769] [--http-threads N]
//
// Starts its own fpgahostd (built beside it) with a temporary data dir on an emulated fleet of
// one card (three with --fpga). `--memory` is the warm function's memory size: CPU is given in
// proportion, as on Lambda (1,769 MB = one vCPU), through the slot's cgroup; 128 MB gets 7% of a
// core.
// `--http-threads` overrides the daemon's I/O threads (default: half the CPUs, at least one).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_daemon.h"
#include "common/base64.h"
#include "common/files.h"
#include "common/json.h"
#include "examples/examples_dir.h"
#include "host/http/http_client.h"

namespace {

namespace fs = std::filesystem;
using fpgahost::Json;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

double Micros(Clock::duration d) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) /
         1000.0;
}

// A minimal keep-alive HTTP/1.1 client: one connection, requests one after another.
class KeepAlive {
 public:
  explicit KeepAlive(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::perror("connect");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~KeepAlive() { ::close(fd_); }

  // Returns the status; the body in `body`.
  int Request(const std::string& method, const std::string& target, const std::string& token,
              const std::string& payload, std::string& body) {
    std::string req = fmt::format(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: "
        "{}\r\n\r\n{}",
        method, target, token, payload.size(), payload);
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return -1;
    }
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return -1;
    }
    std::string head = buf_.substr(0, head_end);
    size_t length = 0;
    for (size_t p = head.find("\r\n"); p != std::string::npos; p = head.find("\r\n", p + 2)) {
      std::string line = head.substr(p + 2, head.find("\r\n", p + 2) - p - 2);
      if (line.size() > 15 && strncasecmp(line.c_str(), "content-length:", 15) == 0) {
        length = std::stoul(line.substr(15));
      }
    }
    while (buf_.size() < head_end + 4 + length) {
      if (!Fill()) return -1;
    }
    body = buf_.substr(head_end + 4, length);
    buf_.erase(0, head_end + 4 + length);
    return std::stoi(head.substr(9, 3));
  }

 private:
  bool Fill() {
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  std::string buf_;
};

long RssKb(pid_t pid, const char* field) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line)) {
    if (line.starts_with(field)) return std::stol(line.substr(std::string(field).size()));
  }
  return -1;
}

bool CreateFunction(uint16_t port, const std::string& token, const std::string& name,
                    const std::string& zip, int memory, const std::string& fpga_image = "") {
  fpgahost::http::ClientRequest req;
  req.method = "POST";
  req.target = "/2015-03-31/functions";
  req.headers["Authorization"] = "Bearer " + token;
  Json body = {{"FunctionName", name},
               {"Runtime", "provided.al2023"},
               {"Role", "arn:aws:iam::000000000000:role/bench"},
               {"Handler", "echo"},
               {"MemorySize", memory},
               {"Timeout", 30},
               {"Code", {{"ZipFile", fpgahost::Base64Encode(zip)}}}};
  if (!fpga_image.empty()) body["FpgaImage"] = fpga_image;
  req.body = body.dump();
  auto r = fpgahost::http::Send({"127.0.0.1", port}, req);
  if (!r.ok() || r->status != 201) {
    std::fprintf(stderr, "create %s: %s\n", name.c_str(),
                 r.ok() ? r->body.c_str() : r.status().ToString().c_str());
    return false;
  }
  return true;
}

// Bare bubblewrap with the namespaces and mounts a slot has, running /bin/true.
double BareBwrapMicros() {
  std::vector<const char*> argv = {
      "bwrap",     "--unshare-all", "--unshare-user", "--die-with-parent",
      "--ro-bind", "/usr",          "/usr",           "--symlink",
      "usr/lib",   "/lib",          "--symlink",      "usr/lib64",
      "/lib64",    "--symlink",     "usr/bin",        "/bin",
      "--proc",    "/proc",         "--dev",          "/dev",
      "--tmpfs",   "/tmp",          "/bin/true",      nullptr};
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp("bwrap", const_cast<char* const*>(argv.data()));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  double us = Micros(Clock::now() - t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::fprintf(stderr, "bwrap failed\n");
  return us;
}

}  // namespace

// One HTTP call with `token`; the parsed body (null when it is not JSON or the call failed).
Json Call(uint16_t port, const std::string& token, const std::string& method,
          const std::string& target, const std::string& body = "") {
  fpgahost::http::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.headers["Authorization"] = "Bearer " + token;
  req.timeout = std::chrono::seconds(120);
  auto r = fpgahost::http::Send({"127.0.0.1", port}, req);
  return r.ok() ? Json::parse(r->body, nullptr, false) : Json();
}

// The record of the invocation that answered with request id `id`.
Json RecordOf(uint16_t port, const std::string& token, const std::string& id) {
  Json r = Call(port, token, "GET", "/v1/invocations?request_id=" + id);
  return r.is_object() && !r["invocations"].empty() ? r["invocations"][0] : Json::object();
}

// 5. FPGA functions: prewarmed first call vs warm calls vs an unannounced first call. Returns
// false when something did not work (said on stderr).
bool FpgaFunctions(const fs::path& bin_dir, const fs::path& data, uint16_t port,
                   const std::string& token, const std::string& op, int rounds, int load_ms) {
  fs::path fleet = data / "fleet";
  Json cards = Call(port, op, "GET", "/v1/cards")["cards"];
  for (const Json& c : cards) {
    std::string cmd = fmt::format("{} emu fault {} {} slow-load {} >/dev/null",
                                  (bin_dir / "host" / "fpgahost").string(), fleet.string(),
                                  c["id"].get<std::string>(), load_ms);
    if (std::system(cmd.c_str()) != 0)
      return std::fprintf(stderr, "%s failed\n", cmd.c_str()), false;
  }
  fs::path xclbin = fs::path(FPGAHOST_EXAMPLES_DIR) / "vadd" / "vadd.xclbin";
  fpgahost::http::ClientRequest up;
  up.method = "POST";
  up.target = "/v1/images?name=vadd";
  up.headers["Authorization"] = "Bearer " + token;
  auto uploaded = fpgahost::http::SendFile({"127.0.0.1", port}, up, xclbin.string());
  if (!uploaded.ok() || uploaded->status != 202)
    return std::fprintf(stderr, "upload failed\n"), false;
  std::string image = Json::parse(uploaded->body)["id"];
  for (int i = 0; i < 1000 && Call(port, token, "GET", "/v1/images/" + image)["state"] == "pending";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto zip = fpgahost::ReadFile(fs::path(FPGAHOST_EXAMPLES_DIR) / "functions" / "vadd-fpga.zip");
  if (!zip.ok()) return std::fprintf(stderr, "no vadd-fpga.zip\n"), false;

  const std::string event = R"({"n":1024,"seed":5})";
  std::vector<double> prewarmed, warm, back_to_back, unannounced, load, init;
  // Every call compared is made after this pause: a slot's runtime (here PoCL's worker threads)
  // answers a call after a pause slower than one right after another, whatever its start.
  const auto pause = std::chrono::milliseconds(100);
  for (int round = 0; round < rounds; ++round) {
    std::string ahead = fmt::format("vadd-ahead-{}", round);
    std::string behind = fmt::format("vadd-behind-{}", round);
    if (!CreateFunction(port, token, ahead, *zip, 512, image) ||
        !CreateFunction(port, token, behind, *zip, 512, image)) {
      return false;
    }
    // Announced: the client announces, waits until the slot is initialised, then calls, all on
    // one keep-alive connection (as an SDK keeps one).
    KeepAlive c(port);
    std::string body;
    c.Request("POST", "/v1/functions/" + ahead + "/prewarm", token, R"({"count":1})", body);
    bool ready = false;
    for (int i = 0; i < 600 && !ready; ++i) {
      c.Request("GET", "/v1/function-slots", token, "", body);
      Json slots = Json::parse(body, nullptr, false)["slots"];
      for (const Json& s : slots) {
        ready = ready || (s["function"] == ahead && s["state"] == "idle");
      }
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!ready) {
      std::fprintf(stderr, "the pre-warmed slot never became idle: %s\n", body.c_str());
      return false;
    }
    const std::string invoke = "/2015-03-31/functions/" + ahead + "/invocations";
    std::this_thread::sleep_for(pause);
    auto t0 = Clock::now();
    int status = c.Request("POST", invoke, token, event, body);
    prewarmed.push_back(Micros(Clock::now() - t0));
    if (status != 200 || body.find(R"("passed":true)") == std::string::npos) {
      return std::fprintf(stderr, "pre-warmed call: %d %s\n", status, body.c_str()), false;
    }
    for (int i = 0; i < 70; ++i) {
      if (i < 20) std::this_thread::sleep_for(pause);
      t0 = Clock::now();
      status = c.Request("POST", invoke, token, event, body);
      (i < 20 ? warm : back_to_back).push_back(Micros(Clock::now() - t0));
      if (status != 200) {
        return std::fprintf(stderr, "warm call: %d %s\n", status, body.c_str()), false;
      }
    }
    // Unannounced: its first call waits for a card, the load and the runtime's init.
    t0 = Clock::now();
    status =
        c.Request("POST", "/2015-03-31/functions/" + behind + "/invocations", token, event, body);
    unannounced.push_back(Micros(Clock::now() - t0));
    if (status != 200 || body.find(R"("passed":true)") == std::string::npos) {
      return std::fprintf(stderr, "unannounced call: %d %s\n", status, body.c_str()), false;
    }
    Json records = Call(port, token, "GET", "/v1/invocations?function=" + behind);
    if (records.is_object() && !records["invocations"].empty()) {
      load.push_back(records["invocations"][0].value("image_load_ms", 0.0) * 1000);
      init.push_back(records["invocations"][0].value("init_ms", 0.0) * 1000);
    }
    // Next round from cleared cards: the functions go (their slots and cards with them), and
    // every card is reset.
    for (const std::string& f : {ahead, behind}) {
      Call(port, token, "DELETE", "/2015-03-31/functions/" + f);
    }
    for (const Json& card : cards) {
      std::string target = "/v1/cards/" + card["id"].get<std::string>();
      for (int i = 0; i < 500 && Call(port, op, "GET", target)["assignment"] != "free"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      Call(port, op, "POST", target + "/reset");
      for (int i = 0; i < 500 && Call(port, op, "GET", target)["operation"] != "idle"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  double warm50 = Percentile(warm, 0.5), prewarmed50 = Percentile(prewarmed, 0.5);
  std::printf("FPGA function (vadd-fpga, n=1024, image loads take %d ms), %d rounds:\n", load_ms,
              rounds);
  std::printf("  warm call, after a 100 ms pause:    n=%zu p50 %.2f ms  p90 %.2f ms\n", warm.size(),
              warm50 / 1000, Percentile(warm, 0.9) / 1000);
  std::printf("  warm call, back to back:            n=%zu p50 %.2f ms  p90 %.2f ms\n",
              back_to_back.size(), Percentile(back_to_back, 0.5) / 1000,
              Percentile(back_to_back, 0.9) / 1000);
  std::printf(
      "  first call after a prewarm (pause): n=%zu p50 %.2f ms  max %.2f ms  (%.2fx warm, "
      "target < 2)\n",
      prewarmed.size(), prewarmed50 / 1000, Percentile(prewarmed, 1.0) / 1000,
      prewarmed50 / warm50);
  std::printf(
      "  first call without a notification:  n=%zu p50 %.1f ms  (image load p50 %.1f ms, "
      "runtime init p50 %.1f ms)\n",
      unannounced.size(), Percentile(unannounced, 0.5) / 1000, Percentile(load, 0.5) / 1000,
      Percentile(init, 0.5) / 1000);
  return true;
}

int main(int argc, char** argv) {
  std::map<std::string, int> opt = {{"--warm", 5000},  {"--cold", 30},     {"--concurrent", 1000},
                                    {"--reuse", 5000}, {"--memory", 1769}, {"--http-threads", 0},
                                    {"--fpga", 5},     {"--load-ms", 2000}};
  for (int i = 1; i + 1 < argc; i += 2) opt[argv[i]] = std::stoi(argv[i + 1]);

  fs::path bin_dir = fs::read_symlink("/proc/self/exe").parent_path().parent_path();
  fs::path zip_path = fs::path(FPGAHOST_EXAMPLES_DIR) / "functions" / "echo-cpp.zip";
  auto zip = fpgahost::ReadFile(zip_path);
  if (!zip.ok()) {
    std::fprintf(stderr, "%s: build the examples first\n", zip_path.c_str());
    return 1;
  }
  std::vector<std::string> daemon_args = {"--function-max-slots", "256"};
  if (opt["--http-threads"] > 0) {
    daemon_args.insert(daemon_args.end(),
                       {"--http-threads", std::to_string(opt["--http-threads"])});
  }
  char tmpl[] = "/tmp/function_bench.XXXXXX";
  fs::path data = ::mkdtemp(tmpl);
  fpgahost::bench::BenchDaemon daemon =
      fpgahost::bench::StartFleetDaemon(bin_dir, data, opt["--fpga"] > 0 ? 3 : 1, daemon_args);
  if (daemon.port == 0) return 1;
  std::string token = fpgahost::ReadFile(data / "tokens" / "demo.token").value_or("");
  token = token.substr(0, token.find('\n'));
  std::string op = fpgahost::ReadFile(data / "tokens" / "operator.token").value_or("");
  op = op.substr(0, op.find('\n'));

  // 1. Warm.
  if (!CreateFunction(daemon.port, token, "echo", *zip, opt["--memory"])) return 1;
  const std::string payload = R"({"message":"hello","n":42})";
  std::vector<double> warm, floor;
  {
    KeepAlive c(daemon.port);
    std::string body;
    for (int i = 0; i < 200; ++i) {  // the cold start and warm-up, not counted
      c.Request("POST", "/2015-03-31/functions/echo/invocations", token, payload, body);
    }
    for (int i = 0; i < opt["--warm"]; ++i) {
      auto t0 = Clock::now();
      int status =
          c.Request("POST", "/2015-03-31/functions/echo/invocations", token, payload, body);
      warm.push_back(Micros(Clock::now() - t0));
      if (status != 200 || body != payload) {
        std::fprintf(stderr, "warm invoke %d: status %d body %s\n", i, status, body.c_str());
        return 1;
      }
    }
    for (int i = 0; i < opt["--warm"]; ++i) {
      auto t0 = Clock::now();
      c.Request("GET", "/v1/health", token, "", body);
      floor.push_back(Micros(Clock::now() - t0));
    }
  }
  std::printf(
      "warm invoke (echo-cpp, %d MB, keep-alive): n=%zu p50 %.1f us  p90 %.1f us  p99 "
      "%.1f us  max %.1f us\n",
      opt["--memory"], warm.size(), Percentile(warm, 0.5), Percentile(warm, 0.9),
      Percentile(warm, 0.99), Percentile(warm, 1.0));
  std::printf("GET /v1/health (same connection kind):   n=%zu p50 %.1f us  p99 %.1f us\n",
              floor.size(), Percentile(floor, 0.5), Percentile(floor, 0.99));

  // 2. Cold: a function of its own per iteration (the same code, stored once), each invoked
  // once on a fresh connection; and bare bwrap, interleaved.
  std::vector<double> cold, bare;
  for (int i = 0; i < opt["--cold"]; ++i) {
    std::string name = fmt::format("cold-{}", i);
    if (!CreateFunction(daemon.port, token, name, *zip, 128)) return 1;
    KeepAlive c(daemon.port);
    std::string body;
    auto t0 = Clock::now();
    int status =
        c.Request("POST", "/2015-03-31/functions/" + name + "/invocations", token, payload, body);
    cold.push_back(Micros(Clock::now() - t0));
    if (status != 200) {
      std::fprintf(stderr, "cold invoke: %d %s\n", status, body.c_str());
      return 1;
    }
    bare.push_back(BareBwrapMicros());
  }
  double cold50 = Percentile(cold, 0.5), bare50 = Percentile(bare, 0.5);
  std::printf("cold invoke (echo-cpp, 128 MB):          n=%zu p50 %.1f ms  p90 %.1f ms\n",
              cold.size(), cold50 / 1000, Percentile(cold, 0.9) / 1000);
  std::printf("bare bwrap /bin/true:                    n=%zu p50 %.1f ms  p90 %.1f ms\n",
              bare.size(), bare50 / 1000, Percentile(bare, 0.9) / 1000);
  if (!cold.empty()) {
    std::printf("cold / bare bwrap, ratio of medians:     %.2f (target < 3)\n", cold50 / bare50);
  }

  // 4. Idempotent reuse: the same echo, declared idempotent (no dependencies), the same event
  // every time: the first call runs, the rest are answered from its result.
  if (opt["--reuse"] > 0) {
    if (!CreateFunction(daemon.port, token, "echo-idem", *zip, opt["--memory"])) return 1;
    KeepAlive c(daemon.port);
    std::string body;
    if (c.Request("PUT", "/v1/functions/echo-idem/idempotency", token, "{}", body) != 200) {
      std::fprintf(stderr, "declaring echo-idem idempotent: %s\n", body.c_str());
      return 1;
    }
    std::vector<double> reuse;
    for (int i = 0; i < 200; ++i) {  // the one run, and warm-up
      c.Request("POST", "/2015-03-31/functions/echo-idem/invocations", token, payload, body);
    }
    for (int i = 0; i < opt["--reuse"]; ++i) {
      auto t0 = Clock::now();
      int status =
          c.Request("POST", "/2015-03-31/functions/echo-idem/invocations", token, payload, body);
      reuse.push_back(Micros(Clock::now() - t0));
      if (status != 200 || body != payload) {
        std::fprintf(stderr, "reused invoke %d: status %d body %s\n", i, status, body.c_str());
        return 1;
      }
    }
    // The records say whether they ran.
    c.Request("GET", "/v1/invocations?function=echo-idem&limit=1", token, "", body);
    bool reused = body.find(R"("start":"reused")") != std::string::npos;
    std::printf(
        "idempotent reuse (echo-cpp, keep-alive):   n=%zu p50 %.1f us  p90 %.1f us  p99 %.1f us "
        " (%s; warm invoke above: p50 %.1f us)\n",
        reuse.size(), Percentile(reuse, 0.5), Percentile(reuse, 0.9), Percentile(reuse, 0.99),
        reused ? "recorded as reused" : "NOT recorded as reused", Percentile(warm, 0.5));
    if (!reused) return 1;
  }

  // 5. Before 3., whose idle slots would fill the memory a pre-warm may not evict from.
  if (opt["--fpga"] > 0 &&
      !FpgaFunctions(bin_dir, data, daemon.port, token, op, opt["--fpga"], opt["--load-ms"])) {
    return 1;
  }

  // 3. Concurrent.
  long rss_before = RssKb(daemon.pid, "VmRSS:");
  int n = opt["--concurrent"];
  std::atomic<int> ok{0}, throttled{0}, other{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      fpgahost::http::ClientRequest req;
      req.method = "POST";
      req.target = "/2015-03-31/functions/echo/invocations";
      req.headers["Authorization"] = "Bearer " + token;
      req.body = fmt::format(R"({{"i":{}}})", i);
      req.timeout = std::chrono::seconds(120);
      auto r = fpgahost::http::Send({"127.0.0.1", daemon.port}, req);
      if (r.ok() && r->status == 200 && r->body == req.body) {
        ++ok;
      } else if (r.ok() && r->status == 429) {
        ++throttled;
      } else {
        ++other;
        std::fprintf(stderr, "concurrent %d: %s\n", i,
                     r.ok() ? fmt::format("{} {}", r->status, r->body).c_str()
                            : r.status().ToString().c_str());
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = Micros(Clock::now() - t0) / 1e6;
  long rss_after = RssKb(daemon.pid, "VmRSS:");
  long rss_peak = RssKb(daemon.pid, "VmHWM:");
  std::printf("%d concurrent invokes: %d ok, %d throttled (429), %d other, in %.2f s\n", n,
              ok.load(), throttled.load(), other.load(), seconds);
  std::printf("daemon RSS: before %ld KiB, after %ld KiB, peak %ld KiB\n", rss_before, rss_after,
              rss_peak);

  fpgahost::bench::StopBenchDaemon(daemon);
  std::error_code ec;
  fs::remove_all(data, ec);
  return other.load() == 0 ? 0 : 1;
}
