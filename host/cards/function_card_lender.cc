#include "host/cards/function_card_lender.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "host/cards/loadable_image.h"

namespace fpgahost {

namespace {

namespace fs = std::filesystem;

std::string Owner(std::string_view borrower) {
  return fmt::format("{}{}", kFunctionCardOwnerPrefix, borrower);
}

}  // namespace

void FunctionCardLender::Start() {
  for (const std::string& id : cards_.UnassignAllOf(kFunctionCardOwnerPrefix)) {
    spdlog::info("cards: {} was lent to a function slot of an earlier run; it is free again", id);
  }
}

StatusOr<LoadRequest> FunctionCardLender::Resolve(std::string_view tenant,
                                                  std::string_view image_id) const {
  Principal who;
  who.tenant = std::string(tenant);
  return LoadableImage(images_, blobs_, who, image_id);
}

Status FunctionCardLender::CheckImage(std::string_view tenant, std::string_view image_id) {
  return Resolve(tenant, image_id).status();
}

int FunctionCardLender::Available(std::string_view tenant, std::string_view image_id) {
  StatusOr<LoadRequest> image = Resolve(tenant, image_id);
  return image.ok() ? cards_.CountAssignableFor(*image) : 0;
}

StatusOr<functions::LentCard> FunctionCardLender::Lend(std::string_view tenant,
                                                       std::string_view image_id,
                                                       std::string_view borrower) {
  ASSIGN_OR_RETURN(LoadRequest image, Resolve(tenant, image_id));
  std::string owner = Owner(borrower);
  ASSIGN_OR_RETURN(CardManager::Lent lent, cards_.AssignFor(image, owner));
  functions::LentCard card;
  card.card_id = lent.card.id;
  card.user_bdf = lent.card.user_bdf;
  card.image_id = image.image_id;
  card.xclbin_uuid = image.xclbin_uuid;
  card.xclbin = image.file;
  auto give_back = [&](Status why) -> Status {
    GiveBack(card, borrower);
    return why;
  };
  // The slot's unprivileged user reads the file through the sandbox's bind of it; blobs are
  // written 0600, and the data dir (0700) keeps other host users out whatever the file's mode.
  std::error_code ec;
  fs::permissions(card.xclbin,
                  fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::add, ec);
  if (ec) {
    return give_back(InternalError(fmt::format("cannot make the xclbin of image {} readable: {}",
                                               image.image_id, ec.message())));
  }
  auto started = std::chrono::steady_clock::now();
  // Also when the card was picked for holding the image: Load checks it again (a no-op) and
  // records the image id on the card.
  StatusOr<CardManager::Accepted> accepted = cards_.Load(card.card_id, image, owner);
  if (!accepted.ok()) return give_back(accepted.status());
  if (accepted->started) {
    StatusOr<Json> done = cards_.WaitForCard(card.card_id, load_timeout_);
    if (!done.ok()) return give_back(done.status());
    const Json& state = (*done)["image"];
    if (state.value("state", "") != "loaded" || state["xclbin_uuid"] != image.xclbin_uuid) {
      const Json& error = (*done)["last_error"];
      bool known = error.is_object();
      return give_back(InternalError(
          fmt::format("loading image {} on card {} failed: {}", image.image_id, card.card_id,
                      known ? error.value("message", "") : state.value("state", "")),
          known ? error.value("code", fpga::kReasonLoadFailed) : fpga::kReasonLoadFailed));
    }
    card.loaded = true;
    card.load_time = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
  }
  spdlog::info("cards: {} lent to function slot {} with image {} ({})", card.card_id, borrower,
               card.image_id,
               card.loaded ? fmt::format("loaded in {} ms", card.load_time.count())
                           : std::string("already loaded"));
  return card;
}

bool FunctionCardLender::StillFit(const functions::LentCard& card) {
  StatusOr<Json> view = cards_.Get(card.card_id);
  if (!view.ok()) return false;
  return view->value("present", false) && view->value("admin_state", "") == "active" &&
         (*view)["health"].value("state", "") != "unhealthy";
}

void FunctionCardLender::GiveBack(const functions::LentCard& card, std::string_view borrower) {
  Status s = cards_.Unassign(card.card_id, Owner(borrower));
  if (!s.ok()) {
    spdlog::error("cards: {} could not be given back by function slot {}: {}", card.card_id,
                  borrower, s.ToString());
  }
}

}  // namespace fpgahost
