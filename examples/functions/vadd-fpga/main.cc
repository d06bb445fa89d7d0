// vadd-fpga: a Lambda custom runtime (`provided.al2023`) in C++ that runs the `vadd` example
// design (examples/vadd) on the FPGA card fpgahostd lends its slot.
//
// Init: opens the xclbin at $FPGAHOST_XCLBIN on $FPGAHOST_FPGA_DEVICE the way the designs' host
// programs do (examples/common/ocl_host.h: XRT's platform on a card, PoCL on the emulated
// fleet) and adds one small vector to prove the device works. When that fails it posts
// /runtime/init/error (errorType VaddInitError) and exits.
//
// Per event {"n": N (1..16777216, default 1024), "seed": S (0..2^32-1, default 1)}: adds
// a[i] = S*i + 1 and b[i] = 2654435761*i + S (mod 2^32) on the device, checks every element of
// the result on the CPU and answers
//   {"passed", "n", "checksum" (sum of the n outputs), "device", "platform", "xclbin_uuid",
//    "card", "image", "kernel_ms"}.
// An event that is not a JSON object, or with a field of the wrong type or out of range, is a
// function error of type VaddInputError naming the field; an OpenCL failure is VaddDeviceError.
// One line per invocation goes to stdout.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "examples/common/ocl_host.h"
#include "examples/functions/common/runtime_client.h"

namespace fpgahost::examples {
namespace {

constexpr char kName[] = "vadd-fpga";
constexpr uint64_t kMaxElements = uint64_t{1} << 24;
constexpr uint64_t kDefaultElements = 1024;
constexpr uint64_t kInitCheckElements = 1024;
// One work-item per element, in work-groups of 64 (as examples/vadd/host.cc).
constexpr size_t kLocalSize = 64;
constexpr uint64_t kMinPoclMemory = uint64_t{256} << 20;

using Json = nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// What PoCL needs inside a slot, where the only writable place is /tmp and /sys is absent.
// Only variables the function's configuration did not set are touched.
void PrepareEnvironment() {
  // PoCL writes each compiled kernel to its cache (default ~/.cache/pocl, read-only here).
  ::setenv("POCL_CACHE_DIR", "/tmp/pocl-cache", 0);
  // PoCL links compiled kernels by running `ld` from PATH.
  ::setenv("PATH", "/usr/bin:/bin", 0);
  // PoCL asks hwloc for the memory size and CPU count, and hwloc reads them from /sys: without
  // it hwloc reports no memory and PoCL aborts the process ("Not enough memory to run on this
  // device"). A synthetic topology gives hwloc the numbers without /sys: the CPUs this process
  // may run on and the function's memory (the machine's when the variable is unset), but at
  // least kMinPoclMemory, as PoCL aborts below 4/3 of 128 MiB too; the cgroup keeps the limit.
  std::error_code ec;
  if (std::getenv("HWLOC_SYNTHETIC") == nullptr &&
      !std::filesystem::exists("/sys/devices/system/cpu", ec)) {
    cpu_set_t set;
    int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set)) : 1;
    uint64_t memory = 0;
    if (std::string mib = Env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"); !mib.empty()) {
      memory = std::strtoull(mib.c_str(), nullptr, 10) << 20;
    }
    if (memory == 0) {
      memory = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
               static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    memory = std::max(memory, kMinPoclMemory);
    std::string topology =
        "numa:1(memory=" + std::to_string(memory) + ") pu:" + std::to_string(cpus);
    ::setenv("HWLOC_SYNTHETIC", topology.c_str(), 1);
  }
}

// The inputs of element i (README.md gives them, and the test recomputes the checksum).
uint32_t InputA(uint32_t seed, uint64_t i) { return static_cast<uint32_t>(seed * i + 1); }
uint32_t InputB(uint32_t seed, uint64_t i) { return static_cast<uint32_t>(2654435761u * i + seed); }

struct RunResult {
  std::string error;  // an OpenCL call failed
  std::string wrong;  // how many elements were wrong and the first, when any were
  uint64_t checksum = 0;
  double kernel_ms = 0;
};

// The device, its program and the buffers, kept across invocations (grown, never shrunk).
class Vadd {
 public:
  // Opens the device; returns "" or why it cannot run.
  std::string Open(const HostOptions& options) {
    std::string error = OpenDesign("vadd", {"vadd"}, options, report_, &session_);
    if (!error.empty()) return error;
    cl_int err = CL_SUCCESS;
    kernel_ = ClKernel(clCreateKernel(session_.program.get(), "vadd", &err));
    if (!ClOk(err, "clCreateKernel(vadd)", &error)) return error;
    // Once before the first event: the device adds correctly, and PoCL has compiled the kernel
    // for this work-group size.
    RunResult check = Run(kInitCheckElements, 1);
    if (!check.error.empty()) return check.error;
    if (!check.wrong.empty()) return "the device added wrongly: " + check.wrong;
    return "";
  }

  const Report& report() const { return report_; }

  RunResult Run(uint64_t n, uint32_t seed) {
    RunResult r;
    if (std::string e = Reserve(n); !e.empty()) {
      r.error = e;
      return r;
    }
    for (uint64_t i = 0; i < n; ++i) {
      a_[i] = InputA(seed, i);
      b_[i] = InputB(seed, i);
    }
    const size_t bytes = n * sizeof(cl_uint);
    cl_command_queue q = session_.queue.get();
    cl_kernel k = kernel_.get();
    cl_mem ma = da_.get(), mb = db_.get(), mout = dout_.get();
    cl_uint count = static_cast<cl_uint>(n);
    size_t global = (n + kLocalSize - 1) / kLocalSize * kLocalSize;
    size_t local = kLocalSize;
    std::string& error = r.error;
    if (!ClOk(clEnqueueWriteBuffer(q, ma, CL_FALSE, 0, bytes, a_.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer(a)", &error) ||
        !ClOk(clEnqueueWriteBuffer(q, mb, CL_FALSE, 0, bytes, b_.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer(b)", &error) ||
        !ClOk(clSetKernelArg(k, 0, sizeof(cl_mem), &ma), "clSetKernelArg(0)", &error) ||
        !ClOk(clSetKernelArg(k, 1, sizeof(cl_mem), &mb), "clSetKernelArg(1)", &error) ||
        !ClOk(clSetKernelArg(k, 2, sizeof(cl_mem), &mout), "clSetKernelArg(2)", &error) ||
        !ClOk(clSetKernelArg(k, 3, sizeof(cl_uint), &count), "clSetKernelArg(3)", &error) ||
        !ClOk(clFinish(q), "clFinish (writing the inputs)", &error)) {
      return r;
    }
    // The kernel alone: the transfers are before and after.
    auto start = std::chrono::steady_clock::now();
    if (!ClOk(clEnqueueNDRangeKernel(q, k, 1, nullptr, &global, &local, 0, nullptr, nullptr),
              "clEnqueueNDRangeKernel", &error) ||
        !ClOk(clFinish(q), "clFinish (running the kernel)", &error)) {
      return r;
    }
    r.kernel_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!ClOk(clEnqueueReadBuffer(q, mout, CL_TRUE, 0, bytes, out_.data(), 0, nullptr, nullptr),
              "clEnqueueReadBuffer(out)", &error)) {
      return r;
    }
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t expected = a_[i] + b_[i];
      r.checksum += out_[i];
      if (out_[i] != expected && wrong++ == 0) {
        r.wrong = "element " + std::to_string(i) + ": got " + std::to_string(out_[i]) +
                  ", expected " + std::to_string(expected);
      }
    }
    if (wrong > 0) {
      r.wrong = std::to_string(wrong) + " of " + std::to_string(n) + " wrong; " + r.wrong;
    }
    return r;
  }

 private:
  std::string Reserve(uint64_t n) {
    if (n <= capacity_) return "";
    std::string error;
    cl_int err = CL_SUCCESS;
    const size_t bytes = n * sizeof(cl_uint);
    // All three or none: a failure leaves the buffers that fit the smaller sizes in place.
    ClMem a(clCreateBuffer(session_.context.get(), CL_MEM_READ_ONLY, bytes, nullptr, &err));
    if (!ClOk(err, "clCreateBuffer(a)", &error)) return error;
    ClMem b(clCreateBuffer(session_.context.get(), CL_MEM_READ_ONLY, bytes, nullptr, &err));
    if (!ClOk(err, "clCreateBuffer(b)", &error)) return error;
    ClMem out(clCreateBuffer(session_.context.get(), CL_MEM_WRITE_ONLY, bytes, nullptr, &err));
    if (!ClOk(err, "clCreateBuffer(out)", &error)) return error;
    da_ = std::move(a);
    db_ = std::move(b);
    dout_ = std::move(out);
    a_.resize(n);
    b_.resize(n);
    out_.resize(n);
    capacity_ = n;
    return "";
  }

  Report report_{"vadd"};
  Session session_;
  ClKernel kernel_;
  uint64_t capacity_ = 0;
  ClMem da_, db_, dout_;
  std::vector<cl_uint> a_, b_, out_;
};

struct Event {
  uint64_t n = kDefaultElements;
  uint32_t seed = 1;
};

// Parses an event; returns "" or the message of a VaddInputError, which names the field. An
// empty event (an invocation without payload) takes the defaults.
std::string ParseEvent(std::string_view body, Event* event) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return "";
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "event: must be a JSON object, got text that is not JSON";
  if (!j.is_object()) return std::string("event: must be a JSON object, got ") + j.type_name();
  // Positive JSON integers are nlohmann's unsigned numbers; negative ones and fractions are not.
  auto bad = [](std::string_view field, uint64_t min, uint64_t max, const Json& value) {
    std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return std::string(field) + ": must be an integer from " + std::to_string(min) + " to " +
           std::to_string(max) + ", got " + text;
  };
  if (auto it = j.find("n"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() < 1 ||
        it->get<uint64_t>() > kMaxElements) {
      return bad("n", 1, kMaxElements, *it);
    }
    event->n = it->get<uint64_t>();
  }
  if (auto it = j.find("seed"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > UINT32_MAX) {
      return bad("seed", 0, UINT32_MAX, *it);
    }
    event->seed = static_cast<uint32_t>(it->get<uint64_t>());
  }
  return "";
}

// The answer to an event that ran.
std::string Answer(const Vadd& vadd, const Event& event, const RunResult& r, const Json& card,
                   const Json& image) {
  Json out = {{"passed", r.wrong.empty()},
              {"n", event.n},
              {"checksum", r.checksum},
              {"device", vadd.report().device()},
              {"platform", vadd.report().platform()},
              {"xclbin_uuid", vadd.report().xclbin_uuid()},
              {"card", card},
              {"image", image},
              {"kernel_ms", std::round(r.kernel_ms * 1000) / 1000}};
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json EnvOrNull(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? Json(v) : Json(nullptr);
}

std::string ErrorBody(std::string_view type, const std::string& message) {
  // Messages carry text from devices and files, which may not be UTF-8.
  return Json{{"errorMessage", message}, {"errorType", type}}.dump(-1, ' ', false,
                                                                   Json::error_handler_t::replace);
}

// One write per line, unbuffered: the line reaches the log even if the slot is killed next.
void Log(const std::string& line) {
  std::string text = std::string(kName) + ": " + line + "\n";
  ssize_t ignored = ::write(1, text.data(), text.size());
  (void)ignored;
}

[[noreturn]] void FailInit(RuntimeClient& client, const std::string& message) {
  std::fprintf(stderr, "%s: init failed: %s\n", kName, message.c_str());
  RuntimeResponse ack;
  client.Exchange("POST", kInitErrorPath, "", "",
                  "Lambda-Runtime-Function-Error-Type: VaddInitError\r\n",
                  ErrorBody("VaddInitError", message), ack);
  std::exit(1);
}

int Main() {
  std::string api = Env("AWS_LAMBDA_RUNTIME_API");
  if (api.empty()) Die(kName, "AWS_LAMBDA_RUNTIME_API is not set");
  RuntimeClient client(api, kName);
  PrepareEnvironment();

  auto init_start = std::chrono::steady_clock::now();
  HostOptions options;
  options.xclbin = Env("FPGAHOST_XCLBIN");
  options.device_bdf = Env("FPGAHOST_FPGA_DEVICE");
  if (options.xclbin.empty()) {
    FailInit(client, "FPGAHOST_XCLBIN is not set: the function has no FPGA image to run vadd on");
  }
  Vadd vadd;
  if (std::string error = vadd.Open(options); !error.empty()) FailInit(client, error);
  // fpgahostd says which image it loaded; the file must be that one.
  std::string expected_uuid = Env("FPGAHOST_XCLBIN_UUID");
  if (!expected_uuid.empty() && expected_uuid != vadd.report().xclbin_uuid()) {
    FailInit(client, options.xclbin + " has xclbin uuid " + vadd.report().xclbin_uuid() +
                         ", not FPGAHOST_XCLBIN_UUID " + expected_uuid);
  }
  std::fprintf(
      stderr, "%s: ready on %s, %s (%.0f ms)\n", kName, vadd.report().platform().c_str(),
      vadd.report().device().c_str(),
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - init_start)
          .count());

  const Json card = EnvOrNull("FPGAHOST_CARD_ID");
  const Json image = EnvOrNull("FPGAHOST_IMAGE_ID");
  // Primed as Lambda functions prime in init: one event through the whole path (parse, run,
  // answer), so a pre-warmed slot's first call costs what later ones do; the code and pages it
  // touches for the first time are touched here.
  {
    Event primer;
    std::string ignored = ParseEvent(R"({"n": 1024, "seed": 1})", &primer);
    ignored = Answer(vadd, primer, vadd.Run(primer.n, primer.seed), card, image);
  }
  RuntimeResponse next;
  RuntimeResponse ack;
  while (true) {
    client.Exchange("GET", kNextPath, "", "", "", "", next);
    if (next.status != 200 || next.request_id.empty()) {
      std::fprintf(stderr, "%s: invocation/next answered %d: %s\n", kName, next.status,
                   next.body.c_str());
      return 1;
    }
    const std::string& id = next.request_id;
    Event event;
    std::string error_type;
    std::string error = ParseEvent(next.body, &event);
    if (!error.empty()) {
      error_type = "VaddInputError";
    } else {
      RunResult r = vadd.Run(event.n, event.seed);
      if (!r.error.empty()) {
        error_type = "VaddDeviceError";
        error = r.error;
      } else {
        char line[160];
        std::snprintf(line, sizeof line, "n=%llu seed=%u %s, kernel %.3f ms",
                      static_cast<unsigned long long>(event.n), event.seed,
                      r.wrong.empty() ? "passed" : "FAILED", r.kernel_ms);
        Log("request " + id + " " + line + (r.wrong.empty() ? "" : ": " + r.wrong));
        client.Exchange("POST", kInvocationPath, id, "/response", "",
                        Answer(vadd, event, r, card, image), ack);
      }
    }
    if (!error_type.empty()) {
      Log("request " + id + " " + error_type + ": " + error);
      client.Exchange("POST", kInvocationPath, id, "/error",
                      "Lambda-Runtime-Function-Error-Type: " + error_type + "\r\n",
                      ErrorBody(error_type, error), ack);
    }
    if (ack.status != 202) {
      // Lambda refused the answer (a stale id): say so and carry on, as Lambda's runtimes do.
      std::fprintf(stderr, "%s: request %s: the Runtime API answered %d: %s\n", kName, id.c_str(),
                   ack.status, ack.body.c_str());
    }
  }
}

}  // namespace
}  // namespace fpgahost::examples

int main() { return fpgahost::examples::Main(); }
