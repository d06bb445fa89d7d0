// The fpgahostd built beside a benchmark, started on a free loopback port for it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fpgahost::bench {

struct BenchDaemon {
  pid_t pid = -1;
  uint16_t port = 0;  // 0 when it did not start
};

// Runs <build>/host/fpgahostd --data-dir `data_dir` --listen 127.0.0.1:0 `args...` and waits
// for it to print where it listens. `bin_dir` is the build directory.
BenchDaemon StartBenchDaemon(const std::filesystem::path& bin_dir,
                             const std::filesystem::path& data_dir,
                             const std::vector<std::string>& args);

// Makes an emulated fleet of `cards` cards (the built-in catalogue's first shell, load time 0)
// in `fleet` (<data_dir>/fleet when empty) and starts fpgahostd on it with the emulated XRT and
// xbmgmt built beside it, a slow card poll and `args`. port 0 when either failed (said on
// stderr).
BenchDaemon StartFleetDaemon(const std::filesystem::path& bin_dir,
                             const std::filesystem::path& data_dir, int cards,
                             const std::vector<std::string>& args,
                             std::filesystem::path fleet = {});

// SIGTERM, then waits for it.
void StopBenchDaemon(const BenchDaemon& daemon);

}  // namespace fpgahost::bench
