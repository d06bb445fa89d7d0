// Makes large, valid xclbin files for benchmarks: a small real xclbin whose BITSTREAM is
// moved to the end of the file and grown to the size asked for.
#pragma once

#include <cstdint>
#include <filesystem>

#include "common/status.h"

namespace fpgahost::bench {

// Writes `out` (unless it exists with the right size already) from `base`, with a BITSTREAM
// of about `bytes` bytes of pseudo-random data. The result passes the project's validator.
Status MakeBigXclbin(const std::filesystem::path& base, uint64_t bytes,
                     const std::filesystem::path& out);

}  // namespace fpgahost::bench
