// Small text helpers the CLI's commands and its formatting library share: reading JSON the
// daemon sent without trusting its shape, and encoding ids for request targets.
#pragma once

#include <string>
#include <string_view>

#include "common/json.h"

namespace fpgahost::cli {

// j[key], or null when `j` is not an object or has no such key.
const Json& JsonField(const Json& j, const char* key);

// A string as it is, null as `fallback`, anything else as JSON text.
std::string JsonText(const Json& v, std::string_view fallback = "-");

// `s` percent-encoded for a path segment or query value: ids and names go into targets, and
// a stray '/' or '?' must not change what is asked for.
std::string PercentEncode(std::string_view s);

}  // namespace fpgahost::cli
