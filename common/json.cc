#include "common/json.h"

#include <fmt/format.h>

#include <cstdint>

namespace fpgahost {
namespace {

template <typename T>
bool HasType(const Json& v) {
  if constexpr (std::is_same_v<T, std::string>) return v.is_string();
  if constexpr (std::is_same_v<T, int64_t>) return v.is_number_integer();
  if constexpr (std::is_same_v<T, uint64_t>) return v.is_number_unsigned();
  if constexpr (std::is_same_v<T, double>) return v.is_number();
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  if constexpr (std::is_same_v<T, Json>) return true;
}

template <typename T>
std::string_view TypeName() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, Json>) return "a JSON value";
}

}  // namespace

StatusOr<Json> ParseJson(std::string_view text) {
  Json out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    // Re-parse through the SAX interface only to find where it broke, for the message.
    struct Where : nlohmann::json_sax<Json> {
      size_t position = 0;
      bool null() override { return true; }
      bool boolean(bool) override { return true; }
      bool number_integer(number_integer_t) override { return true; }
      bool number_unsigned(number_unsigned_t) override { return true; }
      bool number_float(number_float_t, const string_t&) override { return true; }
      bool string(string_t&) override { return true; }
      bool binary(binary_t&) override { return true; }
      bool start_object(std::size_t) override { return true; }
      bool key(string_t&) override { return true; }
      bool end_object() override { return true; }
      bool start_array(std::size_t) override { return true; }
      bool end_array() override { return true; }
      bool parse_error(std::size_t pos, const std::string&,
                       const nlohmann::detail::exception&) override {
        position = pos;
        return false;
      }
    } where;
    Json::sax_parse(text, &where, nlohmann::detail::input_format_t::json, /*strict=*/true,
                    /*ignore_comments=*/false);
    return InvalidArgumentError(
        fmt::format("request body is not valid JSON (at byte {})", where.position),
        "MALFORMED_JSON");
  }
  return out;
}

StatusOr<Json> ParseJsonObject(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return Json::object();
  ASSIGN_OR_RETURN(Json out, ParseJson(text));
  if (!out.is_object()) {
    return InvalidArgumentError("request body must be a JSON object", "MALFORMED_JSON");
  }
  return out;
}

template <typename T>
StatusOr<std::optional<T>> GetOptionalField(const Json& object, std::string_view name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::optional<T>();
  if (!HasType<T>(*it)) {
    return InvalidArgumentError(fmt::format("field '{}' must be {}", name, TypeName<T>()),
                                "INVALID_FIELD");
  }
  return std::optional<T>(it->template get<T>());
}

template <typename T>
StatusOr<T> GetField(const Json& object, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<T> value, GetOptionalField<T>(object, name));
  if (!value) {
    return InvalidArgumentError(fmt::format("field '{}' is required", name), "MISSING_FIELD");
  }
  return std::move(*value);
}

Status CheckKnownFields(const Json& object, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == key;
    if (!known) {
      return InvalidArgumentError(fmt::format("unknown field '{}'", key), "UNKNOWN_FIELD");
    }
  }
  return Status::Ok();
}

#define FPGAHOST_JSON_INSTANTIATE(T)                               \
  template StatusOr<T> GetField<T>(const Json&, std::string_view); \
  template StatusOr<std::optional<T>> GetOptionalField<T>(const Json&, std::string_view);
FPGAHOST_JSON_INSTANTIATE(std::string)
FPGAHOST_JSON_INSTANTIATE(int64_t)
FPGAHOST_JSON_INSTANTIATE(uint64_t)
FPGAHOST_JSON_INSTANTIATE(double)
FPGAHOST_JSON_INSTANTIATE(bool)
FPGAHOST_JSON_INSTANTIATE(Json)
#undef FPGAHOST_JSON_INSTANTIATE

}  // namespace fpgahost
