#include "images/xclbin_file.h"

#include "common/digest.h"
#include "common/files.h"

namespace fpgahost::images {

namespace {

StatusOr<std::string> HashFile(const std::filesystem::path& path, uint64_t* size) {
  Sha256 sha;
  *size = 0;
  RETURN_IF_ERROR(ReadFileInChunks(path, 1 << 20, [&](std::string_view piece) {
    sha.Update(piece);
    *size += piece.size();
  }));
  return sha.FinishHex();
}

}  // namespace

StatusOr<XclbinFileResult> ValidateXclbinFile(const std::filesystem::path& path,
                                              const XclbinValidationOptions& options) {
  XclbinFileResult result;
  ASSIGN_OR_RETURN(result.sha256, HashFile(path, &result.size));
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  result.validated = ValidateXclbin(file.bytes(), options);
  return result;
}

}  // namespace fpgahost::images
