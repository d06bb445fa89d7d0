#include "bench/bench_daemon.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>

namespace fpgahost::bench {

BenchDaemon StartBenchDaemon(const std::filesystem::path& bin_dir,
                             const std::filesystem::path& data_dir,
                             const std::vector<std::string>& args) {
  std::vector<std::string> argv = {(bin_dir / "host/fpgahostd").string(), "--data-dir",
                                   data_dir.string(), "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  BenchDaemon daemon;
  int out[2];
  if (::pipe(out) != 0) return daemon;
  daemon.pid = ::fork();
  if (daemon.pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execv(c_argv[0], c_argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* in = ::fdopen(out[0], "r");
  char line[512];
  while (daemon.port == 0 && std::fgets(line, sizeof(line), in) != nullptr) {
    std::cmatch m;
    if (std::regex_search(line, m, std::regex(R"(127\.0\.0\.1:(\d+))"))) {
      daemon.port = static_cast<uint16_t>(std::stoi(m[1]));
    }
  }
  return daemon;
}

void StopBenchDaemon(const BenchDaemon& daemon) {
  if (daemon.pid <= 0) return;
  ::kill(daemon.pid, SIGTERM);
  ::waitpid(daemon.pid, nullptr, 0);
}

}  // namespace fpgahost::bench
