#include "host/cards/loadable_image.h"

#include <fmt/format.h>

namespace fpgahost {

StatusOr<LoadRequest> LoadableImage(const ImageRegistry& registry, const images::BlobStore& blobs,
                                    const Principal& who, std::string_view image_id) {
  ASSIGN_OR_RETURN(ImageRecord image, registry.Get(who, image_id));
  if (image.state != "available") {
    return FailedPreconditionError(
        fmt::format("image {} is {}, not available", image.id, image.state), "IMAGE_NOT_AVAILABLE");
  }
  LoadRequest r;
  r.image_id = image.id;
  r.xclbin_uuid = image.details.value("xclbin_uuid", "");
  r.interface_uuid = image.details.value("interface_uuid", "");
  // Shells without an interface UUID are matched by name (VBNV).
  if (r.interface_uuid == "00000000-0000-0000-0000-000000000000") r.interface_uuid.clear();
  r.vbnv = image.details.value("vbnv", "");
  r.file = blobs.PathOf(image.sha256);
  return r;
}

}  // namespace fpgahost
