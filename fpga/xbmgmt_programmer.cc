#include "fpga/xbmgmt_programmer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "common/subprocess.h"

namespace fpgahost::fpga {
namespace {

constexpr size_t kKeptOutputBytes = 4096;

// The output on one line, for a Status message.
std::string OneLine(std::string_view output) {
  std::string line;
  size_t begin = 0;
  while (begin < output.size()) {
    size_t end = std::min(output.find('\n', begin), output.size());
    std::string_view part = output.substr(begin, end - begin);
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.back()))) {
      part.remove_suffix(1);
    }
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.front()))) {
      part.remove_prefix(1);
    }
    if (!part.empty()) line.append(line.empty() ? "" : "; ").append(part);
    begin = end + 1;
  }
  return line.empty() ? "no output" : line;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  auto lower_equal = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  };
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), lower_equal) !=
         haystack.end();
}

// Runs xbmgmt; a tool that cannot be started is XRT_UNAVAILABLE.
StatusOr<ProcessResult> RunXbmgmt(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
  ProcessOptions options;
  options.timeout = timeout;
  options.max_output_bytes = kKeptOutputBytes;
  StatusOr<ProcessResult> result = RunProcess(argv, options);
  if (!result.ok()) {
    return UnavailableError(fmt::format("xbmgmt is unavailable: {}", result.status().message()),
                            kReasonXrtUnavailable);
  }
  return result;
}

// A failed run as a Status: the tool's words decide the reason where they can.
Status Failure(const std::string& command, const ProcessResult& r, bool loading) {
  std::string output = r.stdout_text + "\n" + r.stderr_text;
  std::string message = fmt::format("{}: {}: {}", command, r.Describe(), OneLine(output));
  // xbmgmt: "Specified device BDF '...' not found".
  if (Contains(output, "not found") && (Contains(output, "device") || Contains(output, "bdf"))) {
    return NotFoundError(message, kReasonCardNotFound);
  }
  if (loading && (Contains(output, "interface uuids do not match") ||
                  Contains(output, "does not match shell"))) {
    return FailedPreconditionError(message, kReasonXclbinIncompatible);
  }
  return InternalError(message, loading ? kReasonLoadFailed : kReasonResetFailed);
}

}  // namespace

XbmgmtProgrammer::XbmgmtProgrammer(std::filesystem::path xbmgmt_path)
    : xbmgmt_path_(std::move(xbmgmt_path)) {}

Status XbmgmtProgrammer::Load(const CardAddress& card, const std::filesystem::path& xclbin,
                              std::chrono::milliseconds timeout) {
  std::string command =
      fmt::format("xbmgmt program --device {} --user {}", card.mgmt_bdf, xclbin.string());
  ASSIGN_OR_RETURN(ProcessResult r, RunXbmgmt({xbmgmt_path_.string(), "program", "--device",
                                               card.mgmt_bdf, "--user", xclbin.string(), "--force"},
                                              timeout));
  if (r.timed_out) {
    return DeadlineExceededError(
        fmt::format("{} did not finish within {} ms and was killed; the card's state is unknown "
                    "until a reset",
                    command, timeout.count()),
        kReasonLoadTimeout);
  }
  if (r.ok()) return Status::Ok();
  return Failure(command, r, /*loading=*/true);
}

Status XbmgmtProgrammer::Reset(const CardAddress& card, std::chrono::milliseconds timeout) {
  std::string command = fmt::format("xbmgmt reset --device {}", card.mgmt_bdf);
  ASSIGN_OR_RETURN(
      ProcessResult r,
      RunXbmgmt({xbmgmt_path_.string(), "reset", "--device", card.mgmt_bdf, "--force"}, timeout));
  if (r.timed_out) {
    return DeadlineExceededError(
        fmt::format("{} did not finish within {} ms and was killed", command, timeout.count()),
        kReasonResetFailed);
  }
  if (r.ok()) return Status::Ok();
  return Failure(command, r, /*loading=*/false);
}

}  // namespace fpgahost::fpga
