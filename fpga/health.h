// Card health: what a scan of a card says about whether it may take work.
//
// EvaluateCardHealth judges one CardInfo against the operating limits of its shell
// (images::HealthLimits from the shell catalogue):
//
//   unhealthy (no new work)                   degraded (works; look at it)
//   UNKNOWN_SHELL    shell not in catalogue    TEMPERATURE_HIGH  temp >= fpga_temp_warn_c
//   TEMPERATURE_CRITICAL temp >= max           POWER_HIGH        power >= power_warn_w
//   POWER_OVER_LIMIT power > power_max_w       SENSOR_UNREADABLE temperature or power unread
//   FIREWALL_TRIPPED an AXI firewall tripped   USER_PF_UNBOUND   no driver on the user PF
//   MGMT_PF_DRIVER   mgmt PF not on xclmgmt    SYSFS_PROBLEM     any other file discovery
//   USER_PF_MISSING  no user PF                                  could not read (one each)
//
// The card manager adds what only it knows (CARD_GONE, LOAD_HUNG) with Add(). The state is
// the worst of the reasons; no reason means healthy.
//
// Plain functions and value types; thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fpga/card.h"
#include "images/shell_catalogue.h"

namespace fpgahost::fpga {

enum class HealthState { kHealthy, kDegraded, kUnhealthy };

std::string_view HealthStateName(HealthState state);

struct HealthReason {
  std::string code;     // stable, as in the table above
  std::string message;  // for people: names the sensor, value and limit
  HealthState severity = HealthState::kDegraded;

  bool operator==(const HealthReason&) const = default;
};

struct HealthReport {
  HealthState state = HealthState::kHealthy;
  std::vector<HealthReason> reasons;

  void Add(std::string code, std::string message, HealthState severity);
  bool operator==(const HealthReport&) const = default;
};

// The catalogue's shell for the card: by interface UUID when the card publishes one, else by
// VBNV. nullptr when neither is known to the catalogue.
const images::ShellSpec* FindCardShell(const CardInfo& card,
                                       const images::ShellCatalogue& catalogue);

// `shell` is FindCardShell's answer (nullptr: unknown shell).
HealthReport EvaluateCardHealth(const CardInfo& card, const images::ShellSpec* shell);

}  // namespace fpgahost::fpga
