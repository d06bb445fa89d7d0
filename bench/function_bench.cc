// Function slots, as a Lambda client sees them (issue 6's targets):
//   1. warm invoke round trip of the compiled echo bootstrap (examples/functions/echo-cpp):
//      p50 < 200 us and p99 < 1 ms, over one keep-alive loopback connection, as an SDK keeps
//      it; beside it, GET /v1/health on the same kind of connection (the server's floor);
//   2. cold start: invoke to response on a fresh slot, against bare `bwrap ... /bin/true`
//      with the same namespaces, in the same run: ratio of medians < 3;
//   3. 1,000 concurrent synchronous invocations (one connection each): every one answered,
//      a result or a 429, and the daemon's RSS before, after and at its peak;
//   4. (issue 7) an idempotent function's reused result against the warm invoke of 1., on the
//      same kind of connection: a reuse should answer faster than running.
//
//   build/release/bench/function_bench [--warm 5000] [--cold 30] [--concurrent 1000]
//                                      [--reuse 5000] [--memory 1769] [--http-threads N]
//
// Starts its own fpgahostd (built beside it) with a temporary data dir on a one-card emulated
// fleet. `--memory` is the warm function's memory size: CPU is given in proportion, as on
// Lambda (1,769 MB = one vCPU), through the slot's cgroup; 128 MB gets 7% of a core.
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
                    const std::string& zip, int memory) {
  fpgahost::http::ClientRequest req;
  req.method = "POST";
  req.target = "/2015-03-31/functions";
  req.headers["Authorization"] = "Bearer " + token;
  req.body = Json{{"FunctionName", name},
                  {"Runtime", "provided.al2023"},
                  {"Role", "arn:aws:iam::000000000000:role/bench"},
                  {"Handler", "echo"},
                  {"MemorySize", memory},
                  {"Timeout", 30},
                  {"Code", {{"ZipFile", fpgahost::Base64Encode(zip)}}}}
                 .dump();
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

int main(int argc, char** argv) {
  std::map<std::string, int> opt = {{"--warm", 5000},  {"--cold", 30},     {"--concurrent", 1000},
                                    {"--reuse", 5000}, {"--memory", 1769}, {"--http-threads", 0}};
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
      fpgahost::bench::StartFleetDaemon(bin_dir, data, 1, daemon_args);
  if (daemon.port == 0) return 1;
  std::string token = fpgahost::ReadFile(data / "tokens" / "demo.token").value_or("");
  token = token.substr(0, token.find('\n'));

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
