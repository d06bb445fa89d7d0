// Logging through spdlog. The daemon calls InitLogging once at start; libraries just use
// spdlog's free functions (spdlog::info, ...), which are thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "common/status.h"

namespace fpgahost {

// "trace", "debug", "info", "warn", "error" or "off"; InvalidArgument naming the value
// otherwise.
StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// Logs to stderr at `level` with a timestamped pattern.
void InitLogging(spdlog::level::level_enum level);

}  // namespace fpgahost
