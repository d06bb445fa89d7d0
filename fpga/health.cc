#include "fpga/health.h"

#include <fmt/format.h>

#include <algorithm>

namespace fpgahost::fpga {

std::string_view HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kHealthy:
      return "healthy";
    case HealthState::kDegraded:
      return "degraded";
    case HealthState::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

void HealthReport::Add(std::string code, std::string message, HealthState severity) {
  reasons.push_back({std::move(code), std::move(message), severity});
  state = std::max(state, severity);
}

const images::ShellSpec* FindCardShell(const CardInfo& card,
                                       const images::ShellCatalogue& catalogue) {
  if (card.interface_uuid) {
    if (std::optional<images::Uuid> uuid = images::ParseUuid(*card.interface_uuid)) {
      if (const images::ShellSpec* shell = catalogue.FindByInterfaceUuid(*uuid)) return shell;
    }
  }
  if (card.vbnv) return catalogue.FindByVbnv(*card.vbnv);
  return nullptr;
}

HealthReport EvaluateCardHealth(const CardInfo& card, const images::ShellSpec* shell) {
  HealthReport r;
  constexpr HealthState kDegraded = HealthState::kDegraded;
  constexpr HealthState kUnhealthy = HealthState::kUnhealthy;

  if (shell == nullptr) {
    r.Add("UNKNOWN_SHELL",
          fmt::format("shell {} (interface UUID {}) is not in the shell catalogue, so no image "
                      "can be checked against it",
                      card.vbnv.value_or("<unread>"), card.interface_uuid.value_or("<none>")),
          kUnhealthy);
  }
  if (card.mgmt_driver != "xclmgmt") {
    r.Add("MGMT_PF_DRIVER",
          card.mgmt_driver.empty()
              ? fmt::format("management PF {} has no driver (needs xclmgmt)", card.mgmt_bdf)
              : fmt::format("management PF {} is bound to {} (needs xclmgmt)", card.mgmt_bdf,
                            card.mgmt_driver),
          kUnhealthy);
  }
  if (card.user_bdf.empty()) {
    r.Add("USER_PF_MISSING", "the card's user PF (function 1) is not on the PCI bus", kUnhealthy);
  } else if (card.user_driver.empty()) {
    r.Add("USER_PF_UNBOUND", fmt::format("user PF {} has no driver bound", card.user_bdf),
          kDegraded);
  }
  if (card.firewall_status && *card.firewall_status != 0) {
    r.Add("FIREWALL_TRIPPED",
          fmt::format("an AXI firewall tripped (status 0x{:x}); reset the card",
                      *card.firewall_status),
          kUnhealthy);
  }

  const images::HealthLimits limits = shell != nullptr ? shell->limits : images::HealthLimits{};
  if (!card.temperature_c) {
    r.Add("SENSOR_UNREADABLE", "the FPGA temperature could not be read", kDegraded);
  } else if (*card.temperature_c >= limits.fpga_temp_max_c) {
    r.Add("TEMPERATURE_CRITICAL",
          fmt::format("FPGA temperature {:.0f} C is at or above the shell's maximum of {} C",
                      *card.temperature_c, limits.fpga_temp_max_c),
          kUnhealthy);
  } else if (*card.temperature_c >= limits.fpga_temp_warn_c) {
    r.Add("TEMPERATURE_HIGH",
          fmt::format("FPGA temperature {:.0f} C is at or above the warning level of {} C",
                      *card.temperature_c, limits.fpga_temp_warn_c),
          kDegraded);
  }
  if (!card.power_w) {
    r.Add("SENSOR_UNREADABLE", "the board power could not be read", kDegraded);
  } else if (*card.power_w > limits.power_max_w) {
    r.Add("POWER_OVER_LIMIT",
          fmt::format("board power {:.1f} W is over the shell's maximum of {} W", *card.power_w,
                      limits.power_max_w),
          kUnhealthy);
  } else if (*card.power_w >= limits.power_warn_w) {
    r.Add("POWER_HIGH",
          fmt::format("board power {:.1f} W is at or above the warning level of {} W",
                      *card.power_w, limits.power_warn_w),
          kDegraded);
  }
  for (const std::string& problem : card.problems) {
    r.Add("SYSFS_PROBLEM", problem, kDegraded);
  }
  return r;
}

}  // namespace fpgahost::fpga
