// vadd: adds two vectors on the device and checks every element of the result. A second run
// adds only the first half and checks that the kernel left the rest of the output alone.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "examples/common/ocl_host.h"

namespace fpgahost::examples {
namespace {

constexpr uint64_t kDefaultElements = uint64_t{1} << 20;
constexpr cl_uint kUntouched = 0xDEADBEEF;

// Runs vadd on `n` of the `total` elements; returns "" or what went wrong. `out` gets the
// whole output buffer.
std::string Add(Session& s, cl_kernel kernel, const std::vector<cl_uint>& a,
                const std::vector<cl_uint>& b, cl_uint n, std::vector<cl_uint>* out) {
  std::string error;
  cl_int err = CL_SUCCESS;
  const size_t bytes = a.size() * sizeof(cl_uint);
  ClMem da(clCreateBuffer(s.context.get(), CL_MEM_READ_ONLY, bytes, nullptr, &err));
  if (!ClOk(err, "clCreateBuffer(a)", &error)) return error;
  ClMem db(clCreateBuffer(s.context.get(), CL_MEM_READ_ONLY, bytes, nullptr, &err));
  if (!ClOk(err, "clCreateBuffer(b)", &error)) return error;
  ClMem dout(clCreateBuffer(s.context.get(), CL_MEM_READ_WRITE, bytes, nullptr, &err));
  if (!ClOk(err, "clCreateBuffer(out)", &error)) return error;
  out->assign(a.size(), kUntouched);
  cl_mem ma = da.get(), mb = db.get(), mout = dout.get();
  // One work-item per element, in work-groups of 64 (the global size rounded up).
  size_t local = 64;
  size_t global = (static_cast<size_t>(n) + local - 1) / local * local;
  cl_command_queue q = s.queue.get();
  if (!ClOk(clEnqueueWriteBuffer(q, ma, CL_FALSE, 0, bytes, a.data(), 0, nullptr, nullptr),
            "clEnqueueWriteBuffer(a)", &error) ||
      !ClOk(clEnqueueWriteBuffer(q, mb, CL_FALSE, 0, bytes, b.data(), 0, nullptr, nullptr),
            "clEnqueueWriteBuffer(b)", &error) ||
      !ClOk(clEnqueueWriteBuffer(q, mout, CL_FALSE, 0, bytes, out->data(), 0, nullptr, nullptr),
            "clEnqueueWriteBuffer(out)", &error) ||
      !ClOk(clSetKernelArg(kernel, 0, sizeof(cl_mem), &ma), "clSetKernelArg(0)", &error) ||
      !ClOk(clSetKernelArg(kernel, 1, sizeof(cl_mem), &mb), "clSetKernelArg(1)", &error) ||
      !ClOk(clSetKernelArg(kernel, 2, sizeof(cl_mem), &mout), "clSetKernelArg(2)", &error) ||
      !ClOk(clSetKernelArg(kernel, 3, sizeof(cl_uint), &n), "clSetKernelArg(3)", &error) ||
      !ClOk(clEnqueueNDRangeKernel(q, kernel, 1, nullptr, &global, &local, 0, nullptr, nullptr),
            "clEnqueueNDRangeKernel", &error) ||
      !ClOk(clEnqueueReadBuffer(q, mout, CL_TRUE, 0, bytes, out->data(), 0, nullptr, nullptr),
            "clEnqueueReadBuffer(out)", &error)) {
    return error;
  }
  return "";
}

// Compares every element; names the first wrong one and counts them all.
std::string Check(const std::vector<cl_uint>& a, const std::vector<cl_uint>& b,
                  const std::vector<cl_uint>& out, size_t n) {
  size_t wrong = 0;
  std::string first;
  for (size_t i = 0; i < out.size(); ++i) {
    cl_uint expected = i < n ? a[i] + b[i] : kUntouched;
    if (out[i] == expected) continue;
    if (wrong++ == 0) {
      first = fmt::format("element {}: got {:#x}, expected {:#x}{}", i, out[i], expected,
                          i < n ? "" : " (beyond n, must stay untouched)");
    }
  }
  if (wrong == 0) return "";
  return fmt::format("{} of {} elements wrong; first {}", wrong, out.size(), first);
}

void Run(Session& s, const HostOptions& options, Report& report) {
  uint64_t elements = options.size.value_or(kDefaultElements);
  if (elements > UINT32_MAX / 2) {
    return report.Add("vadd", false, fmt::format("--size {} is over {}", elements, UINT32_MAX / 2));
  }
  std::string error;
  cl_int err = CL_SUCCESS;
  ClKernel kernel(clCreateKernel(s.program.get(), "vadd", &err));
  if (!ClOk(err, "clCreateKernel(vadd)", &error)) return report.Add("vadd", false, error);

  // Values that make a carry out of every byte likely, so that a wrong element width shows.
  std::vector<cl_uint> a(elements), b(elements), out;
  for (size_t i = 0; i < elements; ++i) {
    a[i] = static_cast<cl_uint>(i * 2654435761u);
    b[i] = static_cast<cl_uint>(~i + 0x01010101u);
  }
  double start = NowSeconds();
  error = Add(s, kernel.get(), a, b, static_cast<cl_uint>(elements), &out);
  if (error.empty()) error = Check(a, b, out, elements);
  report.Add("vadd", error.empty(),
             error.empty() ? fmt::format("{} elements correct ({:.1f} ms)", elements,
                                         (NowSeconds() - start) * 1e3)
                           : error);

  size_t half = std::max<size_t>(1, static_cast<size_t>(elements / 2));
  error = Add(s, kernel.get(), a, b, static_cast<cl_uint>(half), &out);
  if (error.empty()) error = Check(a, b, out, half);
  report.Add("vadd-partial", error.empty(),
             error.empty()
                 ? fmt::format("first {} of {} elements added, the rest untouched", half, elements)
                 : error);
}

}  // namespace
}  // namespace fpgahost::examples

int main(int argc, char** argv) {
  return fpgahost::examples::RunDesign("vadd", {"vadd"}, "number of elements (default 1048576)",
                                       argc, argv, fpgahost::examples::Run);
}
