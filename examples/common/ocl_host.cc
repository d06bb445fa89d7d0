#include "examples/common/ocl_host.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "images/xclbin.h"

// Under AddressSanitizer, PoCL and the LLVM inside it leave allocations behind at exit (made
// while compiling kernels, not by these programs), and LeakSanitizer would fail every run. The
// suppressions are compiled in so that they hold whatever ASAN_OPTIONS says, and leaks of the
// programs' own code still count.
#if defined(__SANITIZE_ADDRESS__)
#define FPGAHOST_EXAMPLES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FPGAHOST_EXAMPLES_ASAN 1
#endif
#endif
#ifdef FPGAHOST_EXAMPLES_ASAN
extern "C" __attribute__((used, visibility("default"))) const char* __lsan_default_suppressions() {
  return "leak:libLLVM\nleak:libpocl\nleak:libOpenCL\n";
}
extern "C" __attribute__((used, visibility("default"))) const char* __lsan_default_options() {
  return "print_suppressions=0";
}
#endif

namespace fpgahost::examples {
namespace {

// XRT's clGetDeviceInfo extension for the PCIe bus/device/function of a device
// (cl_ext_xilinx.h); other platforms answer CL_INVALID_VALUE.
constexpr cl_device_info kClDevicePcieBdf = 0x1120;

constexpr char kXilinxPlatform[] = "Xilinx";

std::string PlatformString(cl_platform_id p, cl_platform_info what) {
  size_t size = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return "";
  std::string s(size, '\0');
  if (clGetPlatformInfo(p, what, size, s.data(), nullptr) != CL_SUCCESS) return "";
  s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
  return s;
}

std::string DeviceString(cl_device_id d, cl_device_info what) {
  size_t size = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return "";
  std::string s(size, '\0');
  if (clGetDeviceInfo(d, what, size, s.data(), nullptr) != CL_SUCCESS) return "";
  s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
  return s;
}

std::vector<cl_device_id> Devices(cl_platform_id p) {
  cl_uint n = 0;
  if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::vector<cl_device_id> out(n);
  if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n, out.data(), nullptr) != CL_SUCCESS) return {};
  return out;
}

// "0000:03:00.1" matches "03:00.1" and the other way round.
bool SameBdf(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  const std::string& longer = a.size() >= b.size() ? a : b;
  const std::string& shorter = a.size() >= b.size() ? b : a;
  return longer.compare(longer.size() - shorter.size(), shorter.size(), shorter) == 0;
}

void Usage(const std::string& design, const std::string& size_help) {
  std::cerr << fmt::format(
      "usage: {}_host --xclbin PATH [--device BDF] [--size N]\n"
      "  --xclbin PATH   the {} xclbin (built by `fpgahost xclbin pack` for the emulated fleet,\n"
      "                  or by v++ for a card)\n"
      "  --device BDF    the card to use on XRT's platform (default: the first)\n"
      "  --size N        {}\n"
      "Prints one JSON object on stdout; exit 0 passed, 1 failed, 2 usage or set-up error.\n",
      design, design, size_help);
}

// Parses argv; returns an error text for a bad command line, "" when fine, "help" for --help.
std::string ParseArgs(int argc, char** argv, HostOptions* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return "help";
    std::string value;
    size_t eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a == "--xclbin" || a == "--device" || a == "--size") {
      if (i + 1 >= argc) return fmt::format("{} needs a value", a);
      value = argv[++i];
    }
    if (a == "--xclbin") {
      o->xclbin = value;
    } else if (a == "--device") {
      o->device_bdf = value;
    } else if (a == "--size") {
      try {
        size_t used = 0;
        unsigned long long n = std::stoull(value, &used, 0);
        if (used != value.size() || n == 0 || value.front() == '-') throw std::invalid_argument("");
        o->size = n;
      } catch (const std::exception&) {
        return fmt::format("--size '{}' is not a positive number", value);
      }
    } else {
      return fmt::format("unknown argument '{}'", a);
    }
  }
  if (o->xclbin.empty()) return "--xclbin is required";
  return "";
}

// Chooses the platform and device, and builds the program. Returns "" or an error text.
std::string OpenSession(const HostOptions& o, const std::string& xclbin_bytes,
                        const images::Xclbin& xclbin, Report& report, Session* s) {
  cl_uint n = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &n);
  if (err != CL_SUCCESS || n == 0) {
    return fmt::format("no OpenCL platform found ({}); is an ICD (XRT, PoCL) installed?",
                       err != CL_SUCCESS ? ClErrorName(err) : "none registered");
  }
  std::vector<cl_platform_id> platforms(n);
  std::string error;
  if (!ClOk(clGetPlatformIDs(n, platforms.data(), nullptr), "clGetPlatformIDs", &error)) {
    return error;
  }
  for (cl_platform_id p : platforms) {
    if (PlatformString(p, CL_PLATFORM_NAME) == kXilinxPlatform) {
      s->platform = p;
      s->xilinx = true;
    }
  }
  if (s->platform == nullptr) {
    for (cl_platform_id p : platforms) {
      if (!Devices(p).empty()) {
        s->platform = p;
        break;
      }
    }
  }
  if (s->platform == nullptr) return "no OpenCL platform has a device";
  report.set_platform(PlatformString(s->platform, CL_PLATFORM_NAME));
  std::vector<cl_device_id> devices = Devices(s->platform);
  if (devices.empty()) {
    return fmt::format("OpenCL platform {} has no device",
                       PlatformString(s->platform, CL_PLATFORM_NAME));
  }
  if (!o.device_bdf.empty() && s->xilinx) {
    for (cl_device_id d : devices) {
      if (SameBdf(DeviceString(d, kClDevicePcieBdf), o.device_bdf)) s->device = d;
    }
    if (s->device == nullptr) {
      return fmt::format("no device of platform Xilinx has PCIe BDF {}", o.device_bdf);
    }
  } else {
    if (!o.device_bdf.empty()) {
      std::cerr << fmt::format("note: device {} ignored: platform {} has no PCIe devices\n",
                               o.device_bdf, PlatformString(s->platform, CL_PLATFORM_NAME));
    }
    s->device = devices.front();
  }
  report.set_device(DeviceString(s->device, CL_DEVICE_NAME));
  std::cerr << fmt::format("platform {}, device {}\n",
                           PlatformString(s->platform, CL_PLATFORM_NAME),
                           DeviceString(s->device, CL_DEVICE_NAME));

  s->context = ClContext(clCreateContext(nullptr, 1, &s->device, nullptr, nullptr, &err));
  if (!ClOk(err, "clCreateContext", &error)) return error;
  s->queue = ClQueue(clCreateCommandQueue(s->context.get(), s->device, 0, &err));
  if (!ClOk(err, "clCreateCommandQueue", &error)) return error;

  if (s->xilinx) {
    const auto* bin = reinterpret_cast<const unsigned char*>(xclbin_bytes.data());
    size_t size = xclbin_bytes.size();
    cl_int status = CL_SUCCESS;
    s->program = ClProgram(
        clCreateProgramWithBinary(s->context.get(), 1, &s->device, &size, &bin, &status, &err));
    if (!ClOk(err, "clCreateProgramWithBinary (loading the xclbin)", &error)) return error;
  } else {
    if (!xclbin.emulation_data || xclbin.emulation_data->size == 0) {
      return fmt::format(
          "{} has no EMULATION_DATA section with kernel source, so it cannot run on {}; pack "
          "it with `fpgahost xclbin pack` or run it on a card through XRT",
          o.xclbin, PlatformString(s->platform, CL_PLATFORM_NAME));
    }
    const char* src = xclbin_bytes.data() + xclbin.emulation_data->offset;
    size_t length = xclbin.emulation_data->size;
    s->program = ClProgram(clCreateProgramWithSource(s->context.get(), 1, &src, &length, &err));
    if (!ClOk(err, "clCreateProgramWithSource", &error)) return error;
  }
  std::cerr << "building the program...\n";
  err = clBuildProgram(s->program.get(), 1, &s->device, "", nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (clGetProgramBuildInfo(s->program.get(), s->device, CL_PROGRAM_BUILD_LOG, 0, nullptr,
                              &log_size) == CL_SUCCESS &&
        log_size > 0) {
      log.resize(log_size);
      clGetProgramBuildInfo(s->program.get(), s->device, CL_PROGRAM_BUILD_LOG, log_size, log.data(),
                            nullptr);
      log.resize(log.find('\0') == std::string::npos ? log.size() : log.find('\0'));
      std::cerr << log << "\n";
    }
    std::string first_line = log.substr(0, log.find('\n'));
    return fmt::format("clBuildProgram: {}{}", ClErrorName(err),
                       first_line.empty() ? "" : ": " + first_line);
  }
  return "";
}

}  // namespace

std::string ClErrorName(cl_int err) {
  switch (err) {
#define FPGAHOST_CL_ERROR(name) \
  case name:                    \
    return #name;
    FPGAHOST_CL_ERROR(CL_SUCCESS)
    FPGAHOST_CL_ERROR(CL_DEVICE_NOT_FOUND)
    FPGAHOST_CL_ERROR(CL_DEVICE_NOT_AVAILABLE)
    FPGAHOST_CL_ERROR(CL_COMPILER_NOT_AVAILABLE)
    FPGAHOST_CL_ERROR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    FPGAHOST_CL_ERROR(CL_OUT_OF_RESOURCES)
    FPGAHOST_CL_ERROR(CL_OUT_OF_HOST_MEMORY)
    FPGAHOST_CL_ERROR(CL_PROFILING_INFO_NOT_AVAILABLE)
    FPGAHOST_CL_ERROR(CL_MEM_COPY_OVERLAP)
    FPGAHOST_CL_ERROR(CL_IMAGE_FORMAT_MISMATCH)
    FPGAHOST_CL_ERROR(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    FPGAHOST_CL_ERROR(CL_BUILD_PROGRAM_FAILURE)
    FPGAHOST_CL_ERROR(CL_MAP_FAILURE)
    FPGAHOST_CL_ERROR(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    FPGAHOST_CL_ERROR(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    FPGAHOST_CL_ERROR(CL_COMPILE_PROGRAM_FAILURE)
    FPGAHOST_CL_ERROR(CL_LINKER_NOT_AVAILABLE)
    FPGAHOST_CL_ERROR(CL_LINK_PROGRAM_FAILURE)
    FPGAHOST_CL_ERROR(CL_DEVICE_PARTITION_FAILED)
    FPGAHOST_CL_ERROR(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    FPGAHOST_CL_ERROR(CL_INVALID_VALUE)
    FPGAHOST_CL_ERROR(CL_INVALID_DEVICE_TYPE)
    FPGAHOST_CL_ERROR(CL_INVALID_PLATFORM)
    FPGAHOST_CL_ERROR(CL_INVALID_DEVICE)
    FPGAHOST_CL_ERROR(CL_INVALID_CONTEXT)
    FPGAHOST_CL_ERROR(CL_INVALID_QUEUE_PROPERTIES)
    FPGAHOST_CL_ERROR(CL_INVALID_COMMAND_QUEUE)
    FPGAHOST_CL_ERROR(CL_INVALID_HOST_PTR)
    FPGAHOST_CL_ERROR(CL_INVALID_MEM_OBJECT)
    FPGAHOST_CL_ERROR(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    FPGAHOST_CL_ERROR(CL_INVALID_IMAGE_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_SAMPLER)
    FPGAHOST_CL_ERROR(CL_INVALID_BINARY)
    FPGAHOST_CL_ERROR(CL_INVALID_BUILD_OPTIONS)
    FPGAHOST_CL_ERROR(CL_INVALID_PROGRAM)
    FPGAHOST_CL_ERROR(CL_INVALID_PROGRAM_EXECUTABLE)
    FPGAHOST_CL_ERROR(CL_INVALID_KERNEL_NAME)
    FPGAHOST_CL_ERROR(CL_INVALID_KERNEL_DEFINITION)
    FPGAHOST_CL_ERROR(CL_INVALID_KERNEL)
    FPGAHOST_CL_ERROR(CL_INVALID_ARG_INDEX)
    FPGAHOST_CL_ERROR(CL_INVALID_ARG_VALUE)
    FPGAHOST_CL_ERROR(CL_INVALID_ARG_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_KERNEL_ARGS)
    FPGAHOST_CL_ERROR(CL_INVALID_WORK_DIMENSION)
    FPGAHOST_CL_ERROR(CL_INVALID_WORK_GROUP_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_WORK_ITEM_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_GLOBAL_OFFSET)
    FPGAHOST_CL_ERROR(CL_INVALID_EVENT_WAIT_LIST)
    FPGAHOST_CL_ERROR(CL_INVALID_EVENT)
    FPGAHOST_CL_ERROR(CL_INVALID_OPERATION)
    FPGAHOST_CL_ERROR(CL_INVALID_GL_OBJECT)
    FPGAHOST_CL_ERROR(CL_INVALID_BUFFER_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_MIP_LEVEL)
    FPGAHOST_CL_ERROR(CL_INVALID_GLOBAL_WORK_SIZE)
    FPGAHOST_CL_ERROR(CL_INVALID_PROPERTY)
#undef FPGAHOST_CL_ERROR
    default:
      return fmt::format("CL error {}", err);
  }
}

bool ClOk(cl_int err, const std::string& what, std::string* error) {
  if (err == CL_SUCCESS) return true;
  *error = fmt::format("{}: {}", what, ClErrorName(err));
  return false;
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Report::Add(std::string name, bool passed, std::string message,
                 std::optional<double> bandwidth_mb_s) {
  std::cerr << fmt::format("{} {}: {}\n", passed ? "PASS" : "FAIL", name, message);
  tests_.push_back(Test{std::move(name), passed, std::move(message), bandwidth_mb_s});
}

void Report::Print(const std::string* error, bool passed) const {
  nlohmann::ordered_json tests = nlohmann::ordered_json::array();
  for (const Test& t : tests_) {
    nlohmann::ordered_json j{{"name", t.name}, {"passed", t.passed}, {"message", t.message}};
    // A tenth of a MB/s is all the precision a timing of this kind has.
    if (t.bandwidth_mb_s) j["bandwidth_mb_s"] = std::round(*t.bandwidth_mb_s * 10) / 10;
    tests.push_back(std::move(j));
  }
  nlohmann::ordered_json out{
      {"design", design_}, {"platform", platform_},       {"device", device_},
      {"xclbin", xclbin_}, {"xclbin_uuid", xclbin_uuid_}, {"passed", passed},
      {"tests", tests}};
  if (error != nullptr) out["error"] = *error;
  // Text from devices and files may not be UTF-8; replace rather than throw.
  std::cout << out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

int Report::Finish() {
  bool passed = !tests_.empty() &&
                std::all_of(tests_.begin(), tests_.end(), [](const Test& t) { return t.passed; });
  Print(nullptr, passed);
  return passed ? 0 : 1;
}

int Report::Fail(const std::string& error) {
  std::cerr << fmt::format("{}: error: {}\n", design_, error);
  Print(&error, false);
  return 2;
}

std::string OpenDesign(const std::string& design, const std::vector<std::string>& kernels,
                       const HostOptions& options, Report& report, Session* session) {
  StatusOr<std::string> bytes = ReadFile(options.xclbin);
  if (!bytes.ok()) return std::string(bytes.status().message());
  StatusOr<images::Xclbin> xclbin = images::ParseXclbin(std::string_view(*bytes));
  if (!xclbin.ok()) {
    return fmt::format("{}: not a readable xclbin: {}", options.xclbin, xclbin.status().message());
  }
  report.set_xclbin(options.xclbin, images::FormatUuid(xclbin->header.uuid));
  std::vector<std::string> present = xclbin->KernelNames();
  for (const std::string& k : kernels) {
    if (std::find(present.begin(), present.end(), k) == present.end()) {
      std::string list;
      for (const std::string& p : present) list += (list.empty() ? "" : ", ") + p;
      return fmt::format("{} is not a {} xclbin: it has no kernel '{}' (kernels: {})",
                         options.xclbin, design, k, list.empty() ? "none" : list);
    }
  }
  return OpenSession(options, *bytes, *xclbin, report, session);
}

int RunDesign(const std::string& design, const std::vector<std::string>& kernels,
              const std::string& size_help, int argc, char** argv,
              const std::function<void(Session&, const HostOptions&, Report&)>& run) {
  Report report(design);
  HostOptions options;
  std::string usage_error = ParseArgs(argc, argv, &options);
  if (usage_error == "help") {
    Usage(design, size_help);
    return 0;
  }
  if (!usage_error.empty()) {
    Usage(design, size_help);
    return report.Fail(usage_error);
  }

  Session session;
  std::string error = OpenDesign(design, kernels, options, report, &session);
  if (!error.empty()) return report.Fail(error);
  run(session, options, report);
  return report.Finish();
}

}  // namespace fpgahost::examples
