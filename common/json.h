// JSON helpers over nlohmann::json that turn bad input into Status errors naming the field,
// so API handlers never throw and never crash on a client's bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost {

using Json = nlohmann::json;

// Parses a request body. Errors: InvalidArgument, reason MALFORMED_JSON, with the byte offset.
StatusOr<Json> ParseJson(std::string_view text);

// Parses a body that must be a JSON object (an empty body counts as {}).
StatusOr<Json> ParseJsonObject(std::string_view text);

// Reads field `name` of `object` as T. A missing field is InvalidArgument
// (reason MISSING_FIELD); a field of the wrong type is InvalidArgument (reason INVALID_FIELD).
// T is one of std::string, int64_t, uint64_t, double, bool, Json.
template <typename T>
StatusOr<T> GetField(const Json& object, std::string_view name);

// As GetField, but a missing (or null) field gives std::nullopt.
template <typename T>
StatusOr<std::optional<T>> GetOptionalField(const Json& object, std::string_view name);

// Rejects any member of `object` not in `allowed`, naming it (reason UNKNOWN_FIELD), so a
// misspelt field is an error, not silently ignored.
Status CheckKnownFields(const Json& object, std::initializer_list<std::string_view> allowed);

}  // namespace fpgahost
