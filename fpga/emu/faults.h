// Fault injection for the emulated fleet: what `fpgahost emu fault DIR CARD KIND [VALUE]` does.
// A fault acts where the real one would show: load faults in the card's state (the loaders of
// fpga/emu/emulated_card.h honour them), sensor faults in the sensor files the drivers publish,
// surprise removal in the PCI tree.
//
//   load-fail [N]     the next N loads (default 1) fail with EIO after their load time
//   load-timeout      loads hang until a reset (which abandons them) or `clear`
//   slow-load MS      loads on this card take MS milliseconds (0..600000)
//   overheat [C]      xmc_fpga_temp reads C degrees (default 105; -40..200)
//   power [W]         the 12 V rails' currents rise so that the board draws W watts
//                     (default 300; 0..2000)
//   firewall [STATUS] an AXI firewall trips: firewall.m.<inst>/detected_status reads STATUS
//                     (default 0x80000, a read that timed out); a hot reset clears it
//   remove            surprise removal: both PFs go, as written "1" to their
//                     bus/pci/devices/<bdf>/remove
//   clear             the card's faults undone: removed PFs come back as a rescan brings them
//                     (bound to xclmgmt and xocl), sensors read healthy again (45 C, 36 W,
//                     no firewall trip),
//                     no load faults; the xclbin the card holds is left alone
//
// Other cards are never touched.
//
// Errors: FailedPrecondition (NOT_AN_EMULATED_FLEET) when `root` holds no emulated fleet;
// NotFound when the fleet has no such card; InvalidArgument for an unknown kind, a value out of
// range or a value given to a kind that takes none; FailedPrecondition for a sensor fault on a
// removed card.
//
// Thread-safety: safe from several threads and processes (see fpga/emu/emu_area.h).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::fpga::emu {

enum class FaultKind {
  kLoadFail,
  kLoadTimeout,
  kSlowLoad,
  kOverheat,
  kPower,
  kFirewall,
  kRemove,
  kClear
};

// "load-fail", ... as above.
StatusOr<FaultKind> ParseFaultKind(std::string_view name);
std::string_view FaultKindName(FaultKind kind);

// `card` is a card id ("card-0000-10-00-0") or the BDF of either of its PFs. Returns a line
// saying what now holds ("card-0000-10-00-0: xmc_fpga_temp now reads 105 C").
StatusOr<std::string> InjectFault(const std::filesystem::path& root, std::string_view card,
                                  FaultKind kind, std::optional<double> value = std::nullopt);

}  // namespace fpgahost::fpga::emu
