// Base64 (RFC 4648, standard alphabet, padded) through OpenSSL: what AWS APIs use for binary
// in JSON (Lambda's ZipFile, CodeSha256, LogResult). Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fpgahost {

std::string Base64Encode(std::string_view bytes);

// nullopt when `text` is not padded base64 (whitespace is not accepted).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace fpgahost
