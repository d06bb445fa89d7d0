// Discovery of an emulated fleet of 64 cards: the first scan in a fresh process (cold: no
// state kept between scans, file data from the page cache) and the median of later ones.
//
//   build/release/bench/discovery_bench [--cards 64] [--runs 20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fpga/discovery.h"
#include "fpga/emu/sysfs_tree.h"
#include "images/shell_catalogue.h"

int main(int argc, char** argv) {
  int cards = 64, runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--cards") cards = std::stoi(argv[i + 1]);
    if (k == "--runs") runs = std::stoi(argv[i + 1]);
  }
  auto catalogue = fpgahost::images::LoadShellCatalogue(std::string(FPGAHOST_SOURCE_DIR) +
                                                        "/images/shells.json");
  if (!catalogue.ok()) return std::fprintf(stderr, "%s\n", catalogue.status().ToString().c_str());
  std::filesystem::path root = "/tmp/fpgahost-bench-fleet";
  auto made = fpgahost::fpga::emu::CreateEmulatedFleet(root, cards, catalogue->shells().front());
  if (!made.ok()) return std::fprintf(stderr, "%s\n", made.ToString().c_str());

  fpgahost::fpga::RealSysfs sysfs(root);
  using Clock = std::chrono::steady_clock;
  std::vector<double> ms;
  size_t found = 0;
  for (int r = 0; r <= runs; ++r) {
    auto t0 = Clock::now();
    auto scan = fpgahost::fpga::SysfsDeviceScanner(sysfs).Scan();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!scan.ok()) return std::fprintf(stderr, "%s\n", scan.status().ToString().c_str());
    found = scan->size();
  }
  double cold = ms.front();
  std::vector<double> warm(ms.begin() + 1, ms.end());
  std::sort(warm.begin(), warm.end());
  std::printf("cards found: %zu of %d\n", found, cards);
  std::printf("first scan in this process: %.2f ms (target < 50 ms)\n", cold);
  std::printf("later scans: median %.2f ms, max %.2f ms over %d runs\n", warm[warm.size() / 2],
              warm.back(), runs);
  std::filesystem::remove_all(root);
  return found == static_cast<size_t>(cards) ? 0 : 1;
}
