// Small file-system helpers that return Status instead of throwing. Thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost {

// Creates `dir` and its parents when missing, then checks that it is a directory we can
// write to. `mode` applies to directories this call creates.
Status EnsureWritableDir(const std::filesystem::path& dir, unsigned mode = 0755);

StatusOr<std::string> ReadFile(const std::filesystem::path& path);

// Writes `contents` to a temporary file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the directory: readers see the old file or the new one, never a part.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                           unsigned mode = 0644);

}  // namespace fpgahost
