// What the example designs' host programs share: the command line, the choice of OpenCL
// platform and device, building the program an xclbin carries, and the JSON report that
// fpgahostd's `card validate` parses.
//
//   <design>_host --xclbin PATH [--device BDF] [--size N]
//
// Platform: the one named "Xilinx" (XRT's OpenCL) when present, given the whole xclbin with
// clCreateProgramWithBinary, on the device whose CL_DEVICE_PCIE_BDF matches --device (else the
// first); otherwise the first platform with a device (PoCL here), given the OpenCL C source
// that the xclbin's EMULATION_DATA section carries (`fpgahost xclbin pack` puts it there).
//
// Output contract: exactly one JSON object on stdout,
//   {"design": "...", "platform": "...", "device": "...", "xclbin": "<path>",
//    "xclbin_uuid": "...", "passed": true|false,
//    "tests": [{"name": "...", "passed": true|false, "message": "...",
//               "bandwidth_mb_s": 1234.5 (bandwidth tests only)}, ...],
//    "error": "..." (only when the design could not run)}
// with progress on stderr. Exit 0 when every test passed, 1 when a test failed, 2 for a usage
// or set-up error (bad arguments, unreadable xclbin, xclbin of another design, no OpenCL
// device, program that does not build); a set-up error still prints the object, passed=false,
// with "error".
//
// The programs call only the OpenCL C API (through the ICD loader); the xclbin is read with
// fpgahost's own reader. Single-threaded.
#pragma once

#include <CL/cl.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fpgahost::examples {

// Owns one OpenCL object; releases it on destruction.
template <typename T, cl_int (*Release)(T)>
class ClHandle {
 public:
  ClHandle() = default;
  explicit ClHandle(T handle) : handle_(handle) {}
  ClHandle(ClHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  ClHandle& operator=(ClHandle&& other) noexcept {
    if (this != &other) {
      Reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ClHandle(const ClHandle&) = delete;
  ClHandle& operator=(const ClHandle&) = delete;
  ~ClHandle() { Reset(); }

  T get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  void Reset() {
    if (handle_ != nullptr) Release(handle_);
    handle_ = nullptr;
  }

 private:
  T handle_ = nullptr;
};

using ClContext = ClHandle<cl_context, clReleaseContext>;
using ClQueue = ClHandle<cl_command_queue, clReleaseCommandQueue>;
using ClProgram = ClHandle<cl_program, clReleaseProgram>;
using ClKernel = ClHandle<cl_kernel, clReleaseKernel>;
using ClMem = ClHandle<cl_mem, clReleaseMemObject>;

// "CL_OUT_OF_RESOURCES" for an OpenCL error code; "CL error <n>" for codes without a name.
std::string ClErrorName(cl_int err);

// An OpenCL call that failed: "<what>: CL_..." in `error`. Returns true when err is CL_SUCCESS.
bool ClOk(cl_int err, const std::string& what, std::string* error);

struct HostOptions {
  std::string xclbin;
  std::string device_bdf;        // empty: the first device
  std::optional<uint64_t> size;  // the design says what it counts
};

// The tests a design ran, and the JSON object printed at the end.
class Report {
 public:
  explicit Report(std::string design) : design_(std::move(design)) {}

  void set_platform(std::string v) { platform_ = std::move(v); }
  void set_device(std::string v) { device_ = std::move(v); }
  void set_xclbin(std::string path, std::string uuid) {
    xclbin_ = std::move(path);
    xclbin_uuid_ = std::move(uuid);
  }
  const std::string& platform() const { return platform_; }
  const std::string& device() const { return device_; }
  const std::string& xclbin_uuid() const { return xclbin_uuid_; }

  // Records one test (and says so on stderr).
  void Add(std::string name, bool passed, std::string message,
           std::optional<double> bandwidth_mb_s = std::nullopt);

  // Prints the object and returns the exit code: 0 all passed, 1 a test failed or none ran.
  int Finish();
  // Prints the object with `error` and returns 2.
  int Fail(const std::string& error);

 private:
  struct Test {
    std::string name;
    bool passed;
    std::string message;
    std::optional<double> bandwidth_mb_s;
  };
  void Print(const std::string* error, bool passed) const;

  std::string design_;
  std::string platform_;
  std::string device_;
  std::string xclbin_;
  std::string xclbin_uuid_;
  std::vector<Test> tests_;
};

// A context, an in-order queue and the built program, on the chosen device.
struct Session {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  ClContext context;
  ClQueue queue;
  ClProgram program;
  bool xilinx = false;  // XRT's platform: the program is the xclbin itself
};

// What RunDesign does before `run`, for programs with a command line of their own or none (the
// vadd-fpga function): reads options.xclbin, checks that it holds every kernel of `kernels` in
// its IP_LAYOUT (else it is not a `design` xclbin), and opens `session` on it, filling in the
// report's xclbin, platform and device. Returns "" or what went wrong: the "error" RunDesign
// reports.
std::string OpenDesign(const std::string& design, const std::vector<std::string>& kernels,
                       const HostOptions& options, Report& report, Session* session);

// Parses the command line, reads the xclbin (which must hold every kernel of `kernels` in its
// IP_LAYOUT), opens a session and calls `run`, then prints the report. Returns the exit code
// for main(). `size_help` says what --size counts for this design.
int RunDesign(const std::string& design, const std::vector<std::string>& kernels,
              const std::string& size_help, int argc, char** argv,
              const std::function<void(Session&, const HostOptions&, Report&)>& run);

// Seconds since an arbitrary start, for timing transfers.
double NowSeconds();

}  // namespace fpgahost::examples
