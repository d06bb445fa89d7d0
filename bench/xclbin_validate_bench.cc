// Validating a large xclbin from disk (map, SHA-256, parse and every check), side by side
// with `openssl dgst -sha256` on the same file: the hashing floor of this CPU.
//
//   build/release/bench/xclbin_validate_bench [--size-mib 1024] [--runs 5]
//       [--base tests/fuzz/corpus/xclbin/02_full_hw.xclbin] [--file /tmp/...xclbin]
//
// Both read the file from the page cache (a warm-up run of each comes first), so the
// comparison is of CPU work, not of the disk.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/big_xclbin.h"
#include "images/xclbin_file.h"

namespace {

using Clock = std::chrono::steady_clock;
using fpgahost::Status;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One validation as fpgahostd does it on a stored upload: digest and every check.
Status ValidateOnce(const std::string& path, std::string* digest) {
  fpgahost::images::XclbinValidationOptions options;
  options.max_size = uint64_t{1} << 40;
  options.signature_policy = fpgahost::images::SignaturePolicy::kWarn;
  ASSIGN_OR_RETURN(auto result, fpgahost::images::ValidateXclbinFile(path, options));
  *digest = result.sha256;
  return result.validated.status();
}

double OpensslOnce(const std::string& path, std::string* digest) {
  auto t0 = Clock::now();
  std::string cmd = "openssl dgst -sha256 -r '" + path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[256] = {};
  if (p == nullptr || std::fgets(buf, sizeof(buf), p) == nullptr) return -1;
  ::pclose(p);
  *digest = std::string(buf).substr(0, 64);
  return Seconds(t0, Clock::now());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 1024;
  int runs = 5;
  std::string base =
      std::string(FPGAHOST_SOURCE_DIR) + "/tests/fuzz/corpus/xclbin/02_full_hw.xclbin";
  std::string file = "/tmp/fpgahost-bench-validate.xclbin";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--size-mib")
      size_mib = std::stoull(argv[i + 1]);
    else if (k == "--runs")
      runs = std::stoi(argv[i + 1]);
    else if (k == "--base")
      base = argv[i + 1];
    else if (k == "--file")
      file = argv[i + 1];
  }
  Status made = fpgahost::bench::MakeBigXclbin(base, size_mib << 20, file);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.ToString().c_str());
    return 1;
  }
  uint64_t bytes = std::filesystem::file_size(file);
  std::string ours_digest, their_digest;
  // Warm-up: the file into the page cache, both paths once.
  if (Status s = ValidateOnce(file, &ours_digest); !s.ok()) {
    std::fprintf(stderr, "validation failed: %s\n", s.ToString().c_str());
    return 1;
  }
  OpensslOnce(file, &their_digest);
  if (ours_digest != their_digest) {
    std::fprintf(stderr, "digests differ: %s vs %s\n", ours_digest.c_str(), their_digest.c_str());
    return 1;
  }
  std::vector<double> ours, theirs;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    if (!ValidateOnce(file, &ours_digest).ok()) return 1;
    ours.push_back(Seconds(t0, Clock::now()));
    theirs.push_back(OpensslOnce(file, &their_digest));
  }
  double mib = static_cast<double>(bytes) / (1 << 20);
  double ours_mibs = mib / Median(ours), theirs_mibs = mib / Median(theirs);
  std::printf("file: %s (%.0f MiB), %d runs, medians\n", file.c_str(), mib, runs);
  std::printf("fpgahost validate (sha256 + parse + checks)     : %.3f s  %.0f MiB/s\n",
              Median(ours), ours_mibs);
  std::printf("openssl dgst -sha256:                              %.3f s  %.0f MiB/s\n",
              Median(theirs), theirs_mibs);
  std::printf("ratio (fpgahost / openssl speed): %.2f  (target >= 0.80)\n",
              ours_mibs / theirs_mibs);
  return 0;
}
