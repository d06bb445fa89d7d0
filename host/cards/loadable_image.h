// The image a caller names for a load (into a card, an instance's slot or a function's slots),
// resolved to what the card manager needs: the caller must see the image (own, public or
// shared with it: NotFound otherwise, as if it did not exist) and it must be available
// (FailedPrecondition IMAGE_NOT_AVAILABLE).
#pragma once

#include <string_view>

#include "common/status.h"
#include "host/auth/tokens.h"
#include "host/cards/card_manager.h"
#include "host/images/image_registry.h"
#include "images/blob_store.h"

namespace fpgahost {

StatusOr<LoadRequest> LoadableImage(const ImageRegistry& registry, const images::BlobStore& blobs,
                                    const Principal& who, std::string_view image_id);

}  // namespace fpgahost
