#include "fpga/emu/faults.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "common/files.h"
#include "fpga/emu/emu_area.h"
#include "fpga/emu/emulated_card.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/sysfs.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

constexpr std::array<std::pair<FaultKind, std::string_view>, 8> kKinds = {{
    {FaultKind::kLoadFail, "load-fail"},
    {FaultKind::kLoadTimeout, "load-timeout"},
    {FaultKind::kSlowLoad, "slow-load"},
    {FaultKind::kOverheat, "overheat"},
    {FaultKind::kPower, "power"},
    {FaultKind::kFirewall, "firewall"},
    {FaultKind::kRemove, "remove"},
    {FaultKind::kClear, "clear"},
}};

constexpr double kDefaultOverheatC = 105;
constexpr double kDefaultPowerW = 300;

// "card-0000-10-00-0" -> "0000:10:00.0"; anything else is taken as a BDF.
std::string BdfOfCard(std::string_view card) {
  if (!card.starts_with("card-") || card.size() != 17) return std::string(card);
  std::string bdf(card.substr(5));
  bdf[4] = ':';
  bdf[7] = ':';
  bdf[10] = '.';
  return bdf;
}

StatusOr<int> WholeNumber(FaultKind kind, std::optional<double> value, double fallback, double min,
                          double max) {
  double v = value.value_or(fallback);
  if (!std::isfinite(v) || v != std::floor(v) || v < min || v > max) {
    return InvalidArgumentError(fmt::format("{}: the value must be a whole number in {}..{}",
                                            FaultKindName(kind), min, max));
  }
  return static_cast<int>(v);
}

// The XMC sensor directory of the card's management PF, when the PF is present.
// The management PF's subdevice directory whose name starts with `prefix` ("xmc.").
StatusOr<fs::path> SubdeviceDir(const fs::path& root, const EmulatedCard& card,
                                std::string_view prefix) {
  RealSysfs files(root);
  std::string device = "bus/pci/devices/" + card.mgmt_bdf();
  if (!files.Exists(device)) {
    return FailedPreconditionError(
        fmt::format("{} is removed (surprise removal); 'clear' brings it back", card.id()));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> entries, files.ListDirectory(device));
  for (const std::string& name : entries) {
    if (name.starts_with(prefix)) return fs::canonical(root / device) / name;
  }
  return NotFoundError(fmt::format("{} has no {}* subdevice", card.id(), prefix));
}

StatusOr<fs::path> SensorDir(const fs::path& root, const EmulatedCard& card) {
  return SubdeviceDir(root, card, "xmc.");
}

Status WriteSensors(const fs::path& dir, const std::vector<std::pair<const char*, int>>& values) {
  for (const auto& [name, value] : values) {
    // Atomic replacement: a concurrent scan reads the old reading or the new one.
    RETURN_IF_ERROR(ReplaceFile(dir / name, fmt::format("{}\n", value)));
  }
  return Status::Ok();
}

// Rail currents (mA) that make the two 12 V rails draw `watts` together, 2/3 on PEX.
std::pair<int, int> RailCurrentsFor(int watts) {
  int total_ma = static_cast<int>(std::lround(watts * 1e6 / kRailMillivolts));
  int pex_ma = static_cast<int>(std::lround(total_ma * 2.0 / 3.0));
  return {pex_ma, total_ma - pex_ma};
}

}  // namespace

StatusOr<FaultKind> ParseFaultKind(std::string_view name) {
  for (const auto& [kind, kind_name] : kKinds) {
    if (kind_name == name) return kind;
  }
  std::string known;
  for (const auto& entry : kKinds) known += (known.empty() ? "" : ", ") + std::string(entry.second);
  return InvalidArgumentError(fmt::format("unknown fault '{}' (one of {})", name, known));
}

std::string_view FaultKindName(FaultKind kind) {
  for (const auto& [k, name] : kKinds) {
    if (k == kind) return name;
  }
  return "?";
}

StatusOr<std::string> InjectFault(const fs::path& root, std::string_view card_name, FaultKind kind,
                                  std::optional<double> value) {
  if (!IsEmulatedFleet(root)) {
    return FailedPreconditionError(
        fmt::format("{} holds no emulated fleet (no {})", root.string(), kFleetMarker),
        kReasonNotAnEmulatedFleet);
  }
  ASSIGN_OR_RETURN(EmulatedCard card, EmulatedCard::Find(root, BdfOfCard(card_name)));
  bool takes_value = kind == FaultKind::kLoadFail || kind == FaultKind::kSlowLoad ||
                     kind == FaultKind::kOverheat || kind == FaultKind::kPower ||
                     kind == FaultKind::kFirewall;
  if (value && !takes_value) {
    return InvalidArgumentError(fmt::format("{} takes no value", FaultKindName(kind)));
  }
  const std::string id = card.id();

  switch (kind) {
    case FaultKind::kLoadFail: {
      ASSIGN_OR_RETURN(int n, WholeNumber(kind, value, 1, 1, 1'000'000));
      ASSIGN_OR_RETURN(CardState state, UpdateCardState(root, card.mgmt_bdf(), [n](CardState& s) {
                         s.faults.load_fail = n;
                       }));
      return fmt::format("{}: the next {} load(s) will fail", id, state.faults.load_fail);
    }
    case FaultKind::kLoadTimeout: {
      RETURN_IF_ERROR(UpdateCardState(root, card.mgmt_bdf(), [](CardState& s) {
                        s.faults.load_timeout = true;
                      }).status());
      return fmt::format("{}: loads will hang until a reset or 'clear'", id);
    }
    case FaultKind::kSlowLoad: {
      if (!value) return InvalidArgumentError("slow-load needs a load time in milliseconds");
      ASSIGN_OR_RETURN(int ms, WholeNumber(kind, value, 0, 0, kMaxLoadMs));
      RETURN_IF_ERROR(UpdateCardState(root, card.mgmt_bdf(), [ms](CardState& s) {
                        s.faults.load_ms = ms;
                      }).status());
      return fmt::format("{}: loads will take {} ms", id, ms);
    }
    case FaultKind::kOverheat: {
      ASSIGN_OR_RETURN(int celsius, WholeNumber(kind, value, kDefaultOverheatC, -40, 200));
      ASSIGN_OR_RETURN(fs::path dir, SensorDir(root, card));
      RETURN_IF_ERROR(WriteSensors(dir, {{"xmc_fpga_temp", celsius}}));
      return fmt::format("{}: xmc_fpga_temp now reads {} C", id, celsius);
    }
    case FaultKind::kPower: {
      ASSIGN_OR_RETURN(int watts, WholeNumber(kind, value, kDefaultPowerW, 0, 2000));
      ASSIGN_OR_RETURN(fs::path dir, SensorDir(root, card));
      auto [pex_ma, aux_ma] = RailCurrentsFor(watts);
      RETURN_IF_ERROR(WriteSensors(dir, {{"xmc_12v_pex_vol", kRailMillivolts},
                                         {"xmc_12v_aux_vol", kRailMillivolts},
                                         {"xmc_12v_pex_curr", pex_ma},
                                         {"xmc_12v_aux_curr", aux_ma}}));
      return fmt::format("{}: the 12 V rails now draw {} W", id, watts);
    }
    case FaultKind::kFirewall: {
      ASSIGN_OR_RETURN(int status, WholeNumber(kind, value, 0x80000, 1, 0x7fffffff));
      ASSIGN_OR_RETURN(fs::path dir, SubdeviceDir(root, card, "firewall."));
      RETURN_IF_ERROR(WriteSensors(dir, {{"detected_status", status}, {"detected_level", 1}}));
      return fmt::format("{}: AXI firewall tripped (status 0x{:x})", id, status);
    }
    case FaultKind::kRemove: {
      RealSysfs files(root);
      bool removed_any = false;
      for (const std::string& bdf : {card.user_bdf(), card.mgmt_bdf()}) {
        if (!files.Exists("bus/pci/devices/" + bdf)) continue;
        RETURN_IF_ERROR(RemovePciDevice(root, bdf));
        removed_any = true;
      }
      return fmt::format("{}: {}", id,
                         removed_any ? "removed from the PCI bus" : "was already removed");
    }
    case FaultKind::kClear: {
      RETURN_IF_ERROR(RescanPciBus(root, {card.mgmt_bdf(), card.user_bdf()}));
      ASSIGN_OR_RETURN(fs::path dir, SensorDir(root, card));
      RETURN_IF_ERROR(WriteSensors(dir, {{"xmc_fpga_temp", kHealthyTempC},
                                         {"xmc_12v_pex_vol", kRailMillivolts},
                                         {"xmc_12v_aux_vol", kRailMillivolts},
                                         {"xmc_12v_pex_curr", kHealthyPexMilliamps},
                                         {"xmc_12v_aux_curr", kHealthyAuxMilliamps}}));
      ASSIGN_OR_RETURN(fs::path firewall, SubdeviceDir(root, card, "firewall."));
      RETURN_IF_ERROR(WriteSensors(firewall, {{"detected_status", 0}, {"detected_level", 0}}));
      RETURN_IF_ERROR(UpdateCardState(root, card.mgmt_bdf(), [](CardState& s) {
                        s.faults = CardFaults{};
                      }).status());
      return fmt::format("{}: faults cleared", id);
    }
  }
  return InternalError("unhandled fault kind");
}

}  // namespace fpgahost::fpga::emu
