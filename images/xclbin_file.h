// Validating an xclbin that sits in a file, as fpgahostd does with a stored upload and as
// `fpgahost xclbin validate` does offline: the file's SHA-256 and every check of
// ValidateXclbin.
//
// The digest is computed with plain sequential reads (as `openssl dgst` does): mapping a
// gigabyte and faulting it in page by page costs more than hashing it. The checks then run on
// a read-only mapping, of which they touch only the header, the section table and the
// metadata sections, unless a signature is verified (that reads the whole file once more).
// Thread-safe.
#pragma once

#include <filesystem>
#include <string>

#include "images/xclbin_validator.h"

namespace fpgahost::images {

struct XclbinFileResult {
  std::string sha256;  // lowercase hex, of the whole file
  uint64_t size = 0;
  // The validator's verdict: the accepted file, or why it was refused.
  StatusOr<ValidatedXclbin> validated = InternalError("not validated");
};

// Errors are I/O errors only (the file cannot be opened or read); a refused file is a
// successful call whose `validated` holds the refusal.
StatusOr<XclbinFileResult> ValidateXclbinFile(const std::filesystem::path& path,
                                              const XclbinValidationOptions& options);

}  // namespace fpgahost::images
