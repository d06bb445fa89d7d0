// Resource ids and secrets, drawn from a CSPRNG (OpenSSL's RAND_bytes).
//
// Ids look like AWS's: a prefix, a dash and 17 lowercase hex digits ("img-0123456789abcdef0").
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace fpgahost {

inline constexpr int kIdHexDigits = 17;

// A fresh id "<prefix>-<17 hex>". Aborts if the system has no entropy (a broken invariant:
// nothing sensible can continue without it).
std::string NewId(std::string_view prefix);

// True when `id` is "<prefix>-" followed by exactly 17 lowercase hex digits.
bool IsValidId(std::string_view id, std::string_view prefix);

// `bytes` random bytes, hex-encoded (2 * bytes characters).
std::string RandomHex(int bytes);

}  // namespace fpgahost
