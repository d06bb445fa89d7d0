// hello: the verification design. Runs the `hello` kernel once and checks that the buffer it
// wrote holds "Hello World\n". Passing proves the image loaded, a compute unit ran and its
// writes reached device memory and came back.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "examples/common/ocl_host.h"

namespace fpgahost::examples {
namespace {

constexpr char kExpected[] = "Hello World\n";
constexpr size_t kBufferBytes = 1024;

// Shows control characters of the device's answer, for the message.
std::string Visible(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void Run(Session& s, const HostOptions& /*options*/, Report& report) {
  std::string error;
  cl_int err = CL_SUCCESS;
  ClKernel kernel(clCreateKernel(s.program.get(), "hello", &err));
  if (!ClOk(err, "clCreateKernel(hello)", &error)) return report.Add("hello-world", false, error);
  // Filled with 0xFF first, so that a kernel that wrote nothing cannot pass by luck.
  std::vector<char> host(kBufferBytes, static_cast<char>(0xFF));
  ClMem buffer(clCreateBuffer(s.context.get(), CL_MEM_READ_WRITE, host.size(), nullptr, &err));
  if (!ClOk(err, "clCreateBuffer", &error)) return report.Add("hello-world", false, error);
  cl_mem mem = buffer.get();
  size_t one = 1;
  if (!ClOk(clEnqueueWriteBuffer(s.queue.get(), mem, CL_TRUE, 0, host.size(), host.data(), 0,
                                 nullptr, nullptr),
            "clEnqueueWriteBuffer", &error) ||
      !ClOk(clSetKernelArg(kernel.get(), 0, sizeof(cl_mem), &mem), "clSetKernelArg", &error) ||
      !ClOk(clEnqueueNDRangeKernel(s.queue.get(), kernel.get(), 1, nullptr, &one, &one, 0, nullptr,
                                   nullptr),
            "clEnqueueNDRangeKernel", &error) ||
      !ClOk(clEnqueueReadBuffer(s.queue.get(), mem, CL_TRUE, 0, host.size(), host.data(), 0,
                                nullptr, nullptr),
            "clEnqueueReadBuffer", &error)) {
    return report.Add("hello-world", false, error);
  }
  std::string got(host.data(), host.size());
  got.resize(got.find('\0') == std::string::npos ? 64 : got.find('\0'));
  bool passed = got == kExpected;
  report.Add("hello-world", passed,
             passed ? fmt::format("the kernel wrote \"{}\"", Visible(got))
                    : fmt::format("the kernel wrote \"{}\", expected \"{}\"", Visible(got),
                                  Visible(kExpected)));
}

}  // namespace
}  // namespace fpgahost::examples

int main(int argc, char** argv) {
  return fpgahost::examples::RunDesign("hello", {"hello"}, "not used by this design", argc, argv,
                                       fpgahost::examples::Run);
}
