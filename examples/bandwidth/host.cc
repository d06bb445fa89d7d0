// bandwidth: measures how fast data moves host -> device (clEnqueueWriteBuffer), device ->
// host (clEnqueueReadBuffer) and device -> device (the `bandwidth` kernel copying between two
// global buffers), for buffers from 4 KiB up to --size bytes, and checks that every byte
// arrived intact. Each test reports its bandwidth at the largest size as bandwidth_mb_s
// (MB = 10^6 bytes; the kernel copy counts the bytes copied, not read plus written) and the
// figures for every size in its message.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "examples/common/ocl_host.h"

namespace fpgahost::examples {
namespace {

constexpr uint64_t kDefaultMaxBytes = uint64_t{16} << 20;
constexpr uint64_t kMinBytes = 4096;
constexpr uint64_t kWordBytes = 16;  // a uint4, what the kernel copies per work-item
constexpr int kRepeats = 3;          // the best of a few runs, after one warm-up

// 4096, 65536, 1 MiB, ... (x16) up to and including `max` (rounded down to whole words).
std::vector<uint64_t> Sizes(uint64_t max) {
  max = std::max(kWordBytes, max / kWordBytes * kWordBytes);
  std::vector<uint64_t> out;
  for (uint64_t s = kMinBytes; s < max; s *= 16) out.push_back(s);
  out.push_back(max);
  return out;
}

std::string Human(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

// A pattern that differs for every 8-byte word and every run, so stale data shows.
void Fill(std::vector<uint8_t>& v, uint64_t seed) {
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    std::memcpy(v.data() + i, &x, 8);
  }
}

std::string FirstDifference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                            uint64_t bytes) {
  for (size_t i = 0; i < bytes; ++i) {
    if (got[i] != want[i]) {
      return fmt::format("byte {} of {} is {:#04x}, expected {:#04x}", i, Human(bytes), got[i],
                         want[i]);
    }
  }
  return "";
}

struct Measured {
  uint64_t bytes;
  double mb_s;
};

std::string Summary(const std::vector<Measured>& m) {
  std::string out;
  for (const Measured& x : m) {
    out += fmt::format("{}{}: {:.1f} MB/s", out.empty() ? "" : ", ", Human(x.bytes), x.mb_s);
  }
  return out;
}

// Times `op` kRepeats times after a warm-up; returns the best MB/s, or 0 with `error` set.
template <typename Op>
double Best(uint64_t bytes, Op op, std::string* error) {
  if (!op(error)) return 0;
  double best = 0;
  for (int r = 0; r < kRepeats; ++r) {
    double start = NowSeconds();
    if (!op(error)) return 0;
    double seconds = std::max(NowSeconds() - start, 1e-9);
    best = std::max(best, static_cast<double>(bytes) / seconds / 1e6);
  }
  return best;
}

void Run(Session& s, const HostOptions& options, Report& report) {
  std::vector<uint64_t> sizes = Sizes(options.size.value_or(kDefaultMaxBytes));
  const uint64_t max = sizes.back();
  cl_command_queue q = s.queue.get();
  std::string error;
  cl_int err = CL_SUCCESS;
  ClKernel kernel(clCreateKernel(s.program.get(), "bandwidth", &err));
  ClMem src(clCreateBuffer(s.context.get(), CL_MEM_READ_WRITE, max, nullptr, &err));
  ClMem dst;
  if (err == CL_SUCCESS) {
    dst = ClMem(clCreateBuffer(s.context.get(), CL_MEM_READ_WRITE, max, nullptr, &err));
  }
  if (!kernel || !ClOk(err, "clCreateKernel/clCreateBuffer", &error)) {
    for (const char* name : {"host-to-device", "device-to-host", "kernel-copy"}) {
      report.Add(name, false, error.empty() ? "clCreateKernel(bandwidth) failed" : error);
    }
    return;
  }
  cl_mem msrc = src.get(), mdst = dst.get();
  std::vector<uint8_t> pattern(max), back(max);

  // host -> device, then device -> host of the same bytes, size by size.
  std::vector<Measured> h2d, d2h;
  std::string h2d_error, d2h_error;
  for (uint64_t bytes : sizes) {
    Fill(pattern, bytes);
    double w = Best(
        bytes,
        [&](std::string* e) {
          return ClOk(
              clEnqueueWriteBuffer(q, msrc, CL_TRUE, 0, bytes, pattern.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer", e);
        },
        &h2d_error);
    if (!h2d_error.empty()) break;
    h2d.push_back({bytes, w});
    std::fill(back.begin(), back.end(), uint8_t{0});
    double r = Best(
        bytes,
        [&](std::string* e) {
          return ClOk(
              clEnqueueReadBuffer(q, msrc, CL_TRUE, 0, bytes, back.data(), 0, nullptr, nullptr),
              "clEnqueueReadBuffer", e);
        },
        &d2h_error);
    if (d2h_error.empty()) d2h_error = FirstDifference(back, pattern, bytes);
    if (!d2h_error.empty()) break;
    d2h.push_back({bytes, r});
  }
  report.Add("host-to-device", h2d_error.empty() && h2d.size() == sizes.size(),
             h2d_error.empty() ? Summary(h2d) : h2d_error,
             h2d.empty() ? std::nullopt : std::optional<double>(h2d.back().mb_s));
  report.Add("device-to-host", d2h_error.empty() && d2h.size() == sizes.size(),
             d2h_error.empty() ? Summary(d2h) + "; data intact" : d2h_error,
             d2h.empty() ? std::nullopt : std::optional<double>(d2h.back().mb_s));

  // device -> device through the kernel; the source holds the last pattern written.
  std::vector<Measured> copy;
  std::string copy_error;
  if (!h2d_error.empty()) copy_error = "not run: the source buffer could not be written";
  for (uint64_t bytes : sizes) {
    if (!copy_error.empty()) break;
    Fill(pattern, ~bytes);
    cl_ulong words = bytes / kWordBytes;
    size_t local = 64;
    size_t global = (static_cast<size_t>(words) + local - 1) / local * local;
    if (!ClOk(clEnqueueWriteBuffer(q, msrc, CL_TRUE, 0, bytes, pattern.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer", &copy_error) ||
        !ClOk(clSetKernelArg(kernel.get(), 0, sizeof(cl_mem), &msrc), "clSetKernelArg(0)",
              &copy_error) ||
        !ClOk(clSetKernelArg(kernel.get(), 1, sizeof(cl_mem), &mdst), "clSetKernelArg(1)",
              &copy_error) ||
        !ClOk(clSetKernelArg(kernel.get(), 2, sizeof(cl_ulong), &words), "clSetKernelArg(2)",
              &copy_error)) {
      break;
    }
    double c = Best(
        bytes,
        [&](std::string* e) {
          return ClOk(clEnqueueNDRangeKernel(q, kernel.get(), 1, nullptr, &global, &local, 0,
                                             nullptr, nullptr),
                      "clEnqueueNDRangeKernel", e) &&
                 ClOk(clFinish(q), "clFinish", e);
        },
        &copy_error);
    if (!copy_error.empty()) break;
    std::fill(back.begin(), back.end(), uint8_t{0});
    if (!ClOk(clEnqueueReadBuffer(q, mdst, CL_TRUE, 0, bytes, back.data(), 0, nullptr, nullptr),
              "clEnqueueReadBuffer", &copy_error)) {
      break;
    }
    copy_error = FirstDifference(back, pattern, bytes);
    if (!copy_error.empty()) break;
    copy.push_back({bytes, c});
  }
  report.Add("kernel-copy", copy_error.empty() && copy.size() == sizes.size(),
             copy_error.empty() ? Summary(copy) + "; data intact" : copy_error,
             copy.empty() ? std::nullopt : std::optional<double>(copy.back().mb_s));
}

}  // namespace
}  // namespace fpgahost::examples

int main(int argc, char** argv) {
  return fpgahost::examples::RunDesign("bandwidth", {"bandwidth"},
                                       "largest buffer in bytes (default 16777216)", argc, argv,
                                       fpgahost::examples::Run);
}
