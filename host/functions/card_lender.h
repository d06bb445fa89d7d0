// CardLender: where an FPGA function's slots get their cards (DESIGN.md, "placement by the FPGA
// image the function declares").
//
// A function may declare an image (FunctionConfig::fpga_image). Each slot of it holds one card
// for its whole life, with that image loaded: the slot's runtime finds the card's user-PF BDF
// and the xclbin in its environment (FPGAHOST_FPGA_DEVICE, FPGAHOST_XCLBIN) and uses the card
// through XRT (or, on the emulated fleet, the OpenCL platform that runs the xclbin's kernels).
// Cards come from the host's one capacity account, the one instances draw from, and go back to
// it when the slot retires: a card that still holds the image is preferred by the next slot of
// any function declaring that image, so an idle card keeps the last image and a warm-ish start
// skips the load.
//
// Thread-safety: implementations are safe for concurrent use. Lend blocks while an image
// loads (seconds on hardware); the invoker calls it on its starter threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::functions {

// A card lent to one slot.
struct LentCard {
  std::string card_id;
  std::string user_bdf;  // FPGAHOST_FPGA_DEVICE
  std::string image_id;
  std::string xclbin_uuid;
  std::filesystem::path xclbin;  // the image's file on the host, bound into the sandbox
  // The image was loaded for this slot (false: the card held it already).
  bool loaded = false;
  std::chrono::milliseconds load_time{0};
};

class CardLender {
 public:
  virtual ~CardLender() = default;

  // Whether `tenant` may declare `image_id` for a function: the image exists for it (its own,
  // public or shared with it) and is available. NotFound / FailedPrecondition naming why.
  virtual Status CheckImage(std::string_view tenant, std::string_view image_id) = 0;

  // How many cards could be lent now for `image_id` (free, active, healthy, of a matching
  // shell). 0 when the image is unknown.
  virtual int Available(std::string_view tenant, std::string_view image_id) = 0;

  // Lends a card to `borrower` (a slot's name) with `image_id` loaded on it: one that holds it
  // already if any is free, else it is loaded on a free card (blocking until loaded or the
  // load times out; a failed load gives the card back). Errors: FailedPrecondition
  // (INSUFFICIENT_CAPACITY) when no card is free; the image's check as above; the card
  // manager's load errors (LOAD_FAILED, LOAD_TIMEOUT, XCLBIN_INCOMPATIBLE).
  virtual StatusOr<LentCard> Lend(std::string_view tenant, std::string_view image_id,
                                  std::string_view borrower) = 0;

  // Whether a lent card should stay with its slot: false once it is drained or draining by the
  // operator, unhealthy or gone, so the slot retires (when idle) and the card goes back.
  virtual bool StillFit(const LentCard& card) = 0;

  // The slot is done with the card: it is free again (it keeps the image loaded).
  virtual void GiveBack(const LentCard& card, std::string_view borrower) = 0;
};

}  // namespace fpgahost::functions
