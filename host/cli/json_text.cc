#include "host/cli/json_text.h"

#include <fmt/format.h>

#include <cctype>

namespace fpgahost::cli {

const Json& JsonField(const Json& j, const char* key) {
  static const Json kNull = nullptr;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string JsonText(const Json& v, std::string_view fallback) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return std::string(fallback);
  return v.dump();
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace fpgahost::cli
