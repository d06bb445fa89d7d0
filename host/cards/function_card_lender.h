// FunctionCardLender: the function slots' CardLender (host/functions/card_lender.h) over the
// card manager, so a card lent to a slot is assigned in the same ledger instances draw from
// (assignment "function:<slot name>", shown in `card list`), and loads go through the card
// manager's own path (XRT while the host holds the user PF), one operation per card.
//
// Function slots do not survive a restart of fpgahostd: Start() frees every card a previous
// run had lent (their images stay loaded, ready for the next slot).
//
// Thread-safe.
#pragma once

#include <chrono>
#include <string_view>

#include "host/cards/card_manager.h"
#include "host/functions/card_lender.h"
#include "host/images/image_registry.h"
#include "images/blob_store.h"

namespace fpgahost {

// The prefix of the assignment of cards lent to function slots.
inline constexpr char kFunctionCardOwnerPrefix[] = "function:";

class FunctionCardLender : public functions::CardLender {
 public:
  FunctionCardLender(CardManager& cards, const ImageRegistry& images,
                     const images::BlobStore& blobs, std::chrono::milliseconds load_timeout)
      : cards_(cards), images_(images), blobs_(blobs), load_timeout_(load_timeout) {}

  // Frees the cards an earlier run lent to slots that are gone.
  void Start();

  Status CheckImage(std::string_view tenant, std::string_view image_id) override;
  int Available(std::string_view tenant, std::string_view image_id) override;
  StatusOr<functions::LentCard> Lend(std::string_view tenant, std::string_view image_id,
                                     std::string_view borrower) override;
  bool StillFit(const functions::LentCard& card) override;
  void GiveBack(const functions::LentCard& card, std::string_view borrower) override;

 private:
  StatusOr<LoadRequest> Resolve(std::string_view tenant, std::string_view image_id) const;

  CardManager& cards_;
  const ImageRegistry& images_;
  const images::BlobStore& blobs_;
  const std::chrono::milliseconds load_timeout_;
};

}  // namespace fpgahost
