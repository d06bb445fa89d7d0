#include "host/cards/design_runner.h"

#include <fmt/format.h>

#include "common/subprocess.h"

namespace fpgahost {

std::vector<VerifyDesign> VerifyDesignsIn(const std::filesystem::path& dir) {
  std::vector<VerifyDesign> designs;
  for (const char* name : {"hello", "bandwidth"}) {
    designs.push_back({name, dir / name / (std::string(name) + ".xclbin"),
                       dir / name / (std::string(name) + "_host")});
  }
  return designs;
}

StatusOr<Json> HostProgramRunner::Run(const VerifyDesign& design, const fpga::CardAddress& card,
                                      std::chrono::milliseconds timeout) {
  ProcessOptions options;
  options.timeout = timeout;
  options.environment = environment_;
  StatusOr<ProcessResult> run = RunProcess(
      {design.host_program.string(), "--xclbin", design.xclbin.string(), "--device", card.user_bdf},
      options);
  if (!run.ok()) {
    return UnavailableError(fmt::format("{}: {}", design.name, run.status().message()),
                            "VALIDATE_UNAVAILABLE");
  }
  if (run->timed_out) {
    return DeadlineExceededError(fmt::format("{}'s host program {}", design.name, run->Describe()),
                                 "VALIDATE_TIMEOUT");
  }
  // The report is the last line that parses as a JSON object (programs print one).
  std::string_view out = run->stdout_text;
  while (!out.empty()) {
    size_t start = out.rfind('\n', out.size() > 1 ? out.size() - 2 : 0);
    std::string_view line = start == std::string_view::npos ? out : out.substr(start + 1);
    Json report = Json::parse(line, nullptr, false);
    if (report.is_object()) return report;
    if (start == std::string_view::npos) break;
    out = out.substr(0, start);
  }
  Json whole = Json::parse(run->stdout_text, nullptr, false);
  if (whole.is_object()) return whole;
  std::string tail =
      run->stderr_text.substr(run->stderr_text.size() > 300 ? run->stderr_text.size() - 300 : 0);
  return InternalError(fmt::format("{}'s host program ended ({}) without a JSON report; stderr: {}",
                                   design.name, run->Describe(), tail),
                       "VALIDATE_BAD_OUTPUT");
}

}  // namespace fpgahost
