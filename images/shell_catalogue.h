// The shells (FPGA platforms) a fleet offers, and the limits images built for them must keep.
//
// A shell is what sits on the card below a customer's image: it is named in an xclbin by its
// interface UUID (m_interface_uuid, for shells that have one) and by its platform VBNV
// (m_platformVBNV). The catalogue is configuration, read from a JSON file (images/shells.json
// is the default):
//
//   {"shells": [{"name": "u250-gen3x16-xdma-4.1",
//                "vbnv": "xilinx_u250_gen3x16_xdma_shell_4_1",
//                "interface_uuid": "12345678-9abc-def0-1122-334455667788",
//                "description": "...",
//                "clocks": [{"type": "KERNEL", "max_mhz": 500},
//                           {"type": "DATA", "name": "DATA_CLK", "max_mhz": 500}],
//                "memory_banks": [{"tag": "bank0", "type": "MEM_DDR4", "size_kb": 16777216}],
//                "limits": {"fpga_temp_warn_c": 88, "fpga_temp_max_c": 97,
//                           "power_warn_w": 200, "power_max_w": 225}}]}
//
// Names, VBNVs and interface UUIDs are unique within a catalogue. "interface_uuid" may be
// omitted for shells without one. A clock limit applies to the clocks of its type, or only to
// the clock called "name" when given (a named limit wins over a type limit). "memory_banks",
// when present, lists the banks a used MEM_TOPOLOGY entry may name. "limits" (each member
// optional, defaults as HealthLimits) are what card health is judged against: at or above a
// warn value a card is degraded, above a max value it is unhealthy; warn <= max.
//
// The validator (images/xclbin_validator.h) uses the catalogue; the fleet emulator will
// create emulated cards from it.
//
// Errors: InvalidArgument (reason INVALID_SHELL_CATALOGUE) with a message naming the file and
// the field ("shells.json: shells[1].clocks[0].max_mhz: ..."); file errors as from ReadFile.
//
// Thread-safety: a ShellCatalogue is immutable after loading; share it freely for reading.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "images/xclbin.h"

namespace fpgahost::images {

inline constexpr char kReasonInvalidShellCatalogue[] = "INVALID_SHELL_CATALOGUE";

struct ClockLimit {
  std::string type;  // "DATA" | "KERNEL" | "SYSTEM", as ClockTypeName()
  std::string name;  // empty: every clock of `type`
  uint32_t max_mhz = 0;
};

struct MemoryBank {
  std::string tag;   // as MEM_TOPOLOGY's m_tag
  std::string type;  // as MemTypeName(); empty: any type
  uint64_t size_kb = 0;
};

// Operating limits of the cards running a shell. Defaults are those of an Alveo U250 (FPGA die
// alarm near 88 C and shutdown near 97 C; 225 W board power); the catalogue sets them per shell.
struct HealthLimits {
  uint32_t fpga_temp_warn_c = 88;
  uint32_t fpga_temp_max_c = 97;
  uint32_t power_warn_w = 200;
  uint32_t power_max_w = 225;
};

struct ShellSpec {
  std::string name;
  std::string vbnv;
  std::string interface_uuid;  // lowercase 8-4-4-4-12, or empty
  std::string description;
  std::vector<ClockLimit> clocks;
  std::vector<MemoryBank> memory_banks;
  HealthLimits limits;

  // The limit for a clock of CLOCK_FREQ_TOPOLOGY: the limit naming it, else the limit of its
  // type, else nullopt.
  std::optional<uint32_t> MaxClockMhz(uint32_t clock_type, std::string_view clock_name) const;
  const MemoryBank* FindMemoryBank(std::string_view tag) const;
};

class ShellCatalogue {
 public:
  ShellCatalogue() = default;

  // Checks uniqueness and well-formedness (as the JSON loader does) and builds a catalogue.
  static StatusOr<ShellCatalogue> Create(std::vector<ShellSpec> shells);

  const std::vector<ShellSpec>& shells() const { return shells_; }
  const ShellSpec* FindByName(std::string_view name) const;
  const ShellSpec* FindByInterfaceUuid(const Uuid& uuid) const;
  const ShellSpec* FindByVbnv(std::string_view vbnv) const;

 private:
  std::vector<ShellSpec> shells_;
};

// `origin` names the source (a path) in error messages.
StatusOr<ShellCatalogue> ParseShellCatalogue(std::string_view json_text, std::string_view origin);
StatusOr<ShellCatalogue> LoadShellCatalogue(const std::filesystem::path& path);
// The catalogue in the file format above, for the API and the emulator.
Json ShellCatalogueToJson(const ShellCatalogue& catalogue);

}  // namespace fpgahost::images
