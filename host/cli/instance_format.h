// Text rendering for the `instance` and `slot` commands: an Instance or Slot as /v1/instances
// returns it goes in, the text the CLI prints comes out. No I/O, so every layout is
// unit-tested without a daemon (tests/unit/host/cli/instance_format_test.cc).
//
// Slot output copies AWS F1's fpga-describe-local-image -H, so F1 users and their scripts
// find the columns where they expect them:
//
//   Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    ...
//   AFI          0       img-0123456789abcdef0   loaded            0        ok           ...
//   Type  FpgaImageSlot  VendorId    DeviceId    DBDF
//   AFIDEVICE    0       0x10ee      0x5005      0000:10:00.1
//
// followed by key=value lines (as fpga-describe-local-image -M prints its metrics) for what
// F1 has no column for: the xclbin UUID, the card, and the error message.
//
// Every function tolerates missing or null fields (printed as "-" or "none"): the daemon's
// answer is outside input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace fpgahost::cli {

// A slot state as F1 names it (FPGA_STATUS_*).
struct F1Status {
  std::string name;
  int code;
};

// loaded -> {loaded, 0}, cleared -> {cleared, 1}, loading and clearing -> {busy, 2},
// load_failed -> {load-failed, 7}. A state this CLI does not know keeps its own name, code -1.
F1Status SlotF1Status(std::string_view state);

// F1's ErrorName column: "ok" when the slot has no error, else its code in lower case.
std::string SlotErrorName(const Json& slot);

// F1's ErrorCode column: 0 when the slot has no error, else the FPGA_ERR_* number of the
// nearest F1 error (16 shell mismatch, 20 PCI device missing, 25 unresponsive), or 14
// (unspecified) for the rest.
int SlotErrorCode(const Json& slot);

// True while a load or clear is in progress (F1 "busy").
bool SlotIsBusy(const Json& slot);

// True in pending, stopping and terminating.
bool InstanceIsTransitional(std::string_view state);

// The AFI and AFIDEVICE lines of one slot, with their header lines, then the key=value lines.
std::string FormatSlot(const Json& slot);

// FormatSlot for each slot of a `{"slots": [...]}` array, separated by blank lines.
std::string FormatSlots(const Json& slots);

// Rows of objects as a table with an upper-cased header, in the layout of PrintTable in
// command.h (null and missing cells print "-"). Each line starts with `indent`.
std::string FormatTable(const Json& rows, const std::vector<std::string>& columns,
                        std::string_view indent = "");

// `instance list`: ID NAME TYPE STATE SLOTS CREATED, where SLOTS reads "1/2 loaded" plus
// ", N busy" and ", N failed" when some are.
std::string FormatInstanceList(const Json& instances);

// `instance describe`: the instance's fields, then a table of its slots and their errors.
std::string FormatInstance(const Json& instance);

// `instance types`: NAME VCPUS MEMORY_MIB FPGAS.
std::string FormatInstanceTypes(const Json& types);

// Parses a slot number given on the command line. Errors: InvalidArgument (reason USAGE)
// naming the text, for anything but a non-negative decimal integer that fits an int.
StatusOr<int> ParseSlotNumber(std::string_view text);

// How a waited-for slot operation ended. `load` says whether it was a load (else a clear).
// OK when the slot is loaded (or cleared); otherwise an error whose reason is the slot's
// error code (or SLOT_NOT_LOADED / SLOT_NOT_CLEARED) and whose message is one line naming
// the instance, the slot and the slot's error message.
Status SlotOutcome(const Json& slot, std::string_view instance_id, bool load);

// How a waited-for instance operation ended: OK in `expected`; a `failed` instance is an
// error carrying its error code (or INSTANCE_FAILED) and message on one line; any other
// state is FailedPrecondition, reason INSTANCE_STATE.
Status InstanceOutcome(const Json& instance, std::string_view expected);

}  // namespace fpgahost::cli
