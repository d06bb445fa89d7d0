// DesignRunner: runs a verification design's host program against a card, for `card validate`.
//
// A design (examples/<name>/) is an xclbin plus a host program that uses only the OpenCL API:
// `<name>_host --xclbin FILE --device USER_BDF` prints one JSON object
//   {"design": ..., "passed": bool, "tests": [{"name", "passed", "message",
//                                              "bandwidth_mb_s"?}, ...], "error"?: ...}
// and exits 0 (all passed), 1 (a test failed) or 2 (usage or set-up error). On hardware the
// program finds XRT's Xilinx OpenCL platform; on the emulated fleet it finds PoCL and runs the
// kernel source the xclbin carries. The card manager has loaded the xclbin before it calls Run.
//
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "fpga/programmer.h"

namespace fpgahost {

struct VerifyDesign {
  std::string name;  // "hello", "bandwidth"
  std::filesystem::path xclbin;
  std::filesystem::path host_program;
};

// The designs `card validate` runs, in order, from a directory laid out as the build's
// examples/ (<name>/<name>.xclbin and <name>/<name>_host): hello, then bandwidth.
std::vector<VerifyDesign> VerifyDesignsIn(const std::filesystem::path& dir);

class DesignRunner {
 public:
  virtual ~DesignRunner() = default;

  // The program's JSON report. Errors: DeadlineExceeded (reason VALIDATE_TIMEOUT) when it runs
  // longer than `timeout` (it is killed); Internal (reason VALIDATE_BAD_OUTPUT) when it exits
  // without printing a JSON object; Unavailable (reason VALIDATE_UNAVAILABLE) when the program
  // cannot be started. A report with failed tests is not an error.
  virtual StatusOr<Json> Run(const VerifyDesign& design, const fpga::CardAddress& card,
                             std::chrono::milliseconds timeout) = 0;
};

// Runs the host program as a child process (common/subprocess.h):
// `<host_program> --xclbin <xclbin> --device <user bdf>` with `environment` added.
class HostProgramRunner : public DesignRunner {
 public:
  explicit HostProgramRunner(std::vector<std::pair<std::string, std::string>> environment = {})
      : environment_(std::move(environment)) {}

  StatusOr<Json> Run(const VerifyDesign& design, const fpga::CardAddress& card,
                     std::chrono::milliseconds timeout) override;

 private:
  const std::vector<std::pair<std::string, std::string>> environment_;
};

}  // namespace fpgahost
