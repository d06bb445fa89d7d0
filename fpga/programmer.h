// Programmer: puts an xclbin on a card, and CardResetter: returns a card to a cleared state.
//
// Two ways to load exist on an Alveo host, and fpgahost uses both:
//   - XrtProgrammer (fpga/xrt_programmer.h) loads through the user PF with XRT's C API
//     (xrtDeviceOpenByBDF + xrtDeviceLoadXclbin), while the host holds the user PF (xocl);
//   - XbmgmtProgrammer (fpga/xbmgmt_programmer.h) loads through the management PF with
//     `xbmgmt program --device <mgmt bdf> --user <xclbin>`, which works while the user PF is
//     inside a VM (bound to vfio-pci).
// Clearing and resetting always go through the management PF (`xbmgmt reset`), which the host
// keeps whatever happens to the user PF; XbmgmtProgrammer is also the CardResetter.
//
// Calls block until the card is done or `timeout` passes; the card manager runs them on its
// own threads and keeps one operation per card at a time. Implementations check nothing about
// tenants or images: the card manager has already validated the xclbin against the card's
// shell. What the card itself refuses (a shell mismatch found by the driver, a failed
// download) comes back as an error with the driver's or tool's words in the message.
//
// Errors (reasons are stable, the API shows them):
//   Unavailable,       XRT_UNAVAILABLE     the XRT library or the xbmgmt tool is missing, or
//                                          lacks a symbol; the message names which
//   NotFound,          CARD_NOT_FOUND      no device at that BDF (surprise removal)
//   FailedPrecondition,XCLBIN_INCOMPATIBLE the card's shell refused the xclbin
//   DeadlineExceeded,  LOAD_TIMEOUT        not done within `timeout`; the card's state is
//                                          unknown until a reset
//   Internal,          LOAD_FAILED /       anything else the driver or tool reported
//                      RESET_FAILED
//
// Thread-safety: implementations are safe for concurrent use on different cards.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::fpga {

inline constexpr char kReasonXrtUnavailable[] = "XRT_UNAVAILABLE";
inline constexpr char kReasonCardNotFound[] = "CARD_NOT_FOUND";
inline constexpr char kReasonXclbinIncompatible[] = "XCLBIN_INCOMPATIBLE";
inline constexpr char kReasonLoadTimeout[] = "LOAD_TIMEOUT";
inline constexpr char kReasonLoadFailed[] = "LOAD_FAILED";
inline constexpr char kReasonResetFailed[] = "RESET_FAILED";

// Where a card is: its two PCI functions.
struct CardAddress {
  std::string mgmt_bdf;  // "0000:10:00.0"
  std::string user_bdf;  // "0000:10:00.1"
};

class Programmer {
 public:
  virtual ~Programmer() = default;

  // "xrt" or "xbmgmt": shown in events and card descriptions.
  virtual std::string_view name() const = 0;

  // Loads the xclbin file onto the card. On success the card runs it and the loaded xclbin
  // UUID that discovery reads back is the file's m_header.uuid.
  virtual Status Load(const CardAddress& card, const std::filesystem::path& xclbin,
                      std::chrono::milliseconds timeout) = 0;
};

class CardResetter {
 public:
  virtual ~CardResetter() = default;

  // Hot-resets the card through its management PF: the user partition is cleared (no xclbin
  // loaded afterwards) and a hung load is abandoned.
  virtual Status Reset(const CardAddress& card, std::chrono::milliseconds timeout) = 0;
};

}  // namespace fpgahost::fpga
