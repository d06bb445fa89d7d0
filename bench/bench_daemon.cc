#include "bench/bench_daemon.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>

#include "fpga/emu/sysfs_tree.h"
#include "host/images/default_shells.h"
#include "images/shell_catalogue.h"

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

BenchDaemon StartFleetDaemon(const std::filesystem::path& bin_dir,
                             const std::filesystem::path& data_dir, int cards,
                             const std::vector<std::string>& args, std::filesystem::path fleet) {
  if (fleet.empty()) fleet = data_dir / "fleet";
  auto catalogue = images::ParseShellCatalogue(DefaultShellCatalogueJson(), "built-in");
  Status made = catalogue.ok()
                    ? fpga::emu::CreateEmulatedFleet(fleet, cards, catalogue->shells().front(),
                                                     /*load_ms=*/0)
                    : catalogue.status();
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.ToString().c_str());
    return {};
  }
  std::vector<std::string> all = {"--sysfs-root",
                                  fleet.string(),
                                  "--xrt-library",
                                  (bin_dir / "fpga/libxrt_emu.so").string(),
                                  "--xbmgmt",
                                  (bin_dir / "fpga/xbmgmt").string(),
                                  "--card-scan-interval",
                                  "60",
                                  "--log-level",
                                  "warn"};
  all.insert(all.end(), args.begin(), args.end());
  BenchDaemon daemon = StartBenchDaemon(bin_dir, data_dir, all);
  if (daemon.port == 0) std::fprintf(stderr, "fpgahostd did not start\n");
  return daemon;
}

void StopBenchDaemon(const BenchDaemon& daemon) {
  if (daemon.pid <= 0) return;
  ::kill(daemon.pid, SIGTERM);
  ::waitpid(daemon.pid, nullptr, 0);
}

}  // namespace fpgahost::bench
