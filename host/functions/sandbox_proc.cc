#include "host/functions/sandbox_proc.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace fpgahost::functions {
namespace {

// mountinfo escapes blanks, tabs, newlines and backslashes as \ooo.
std::string Unescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = text[i + j];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

}  // namespace

bool MountInfo::read_only() const {
  for (const auto& o : mount_options) {
    if (o == "ro") return true;
  }
  return false;
}

std::vector<std::string> SplitNonEmpty(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string_view TrimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

std::optional<int64_t> ParseInt64(std::string_view text, int base) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<std::string> ReadSmallFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return buffer.str();
}

std::vector<MountInfo> ParseMountinfo(std::string_view text) {
  std::vector<MountInfo> mounts;
  for (std::string_view line : Lines(text)) {
    std::vector<std::string> fields = SplitNonEmpty(line, ' ');
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash + 1 >= fields.size()) continue;
    MountInfo m;
    m.root = Unescape(fields[3]);
    m.mount_point = Unescape(fields[4]);
    m.mount_options = SplitNonEmpty(fields[5], ',');
    m.fstype = fields[dash + 1];
    if (dash + 3 < fields.size()) m.super_options = SplitNonEmpty(fields[dash + 3], ',');
    mounts.push_back(std::move(m));
  }
  return mounts;
}

std::vector<CgroupMembership> ParseProcCgroup(std::string_view text) {
  std::vector<CgroupMembership> out;
  for (std::string_view line : Lines(text)) {
    size_t a = line.find(':');
    size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    out.push_back({std::string(line.substr(0, a)),
                   SplitNonEmpty(line.substr(a + 1, b - a - 1), ','),
                   std::string(line.substr(b + 1))});
  }
  return out;
}

std::map<std::string, std::string> ParseProcStatus(std::string_view text) {
  std::map<std::string, std::string> out;
  for (std::string_view line : Lines(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out[std::string(line.substr(0, colon))] = std::string(TrimWhitespace(line.substr(colon + 1)));
  }
  return out;
}

std::vector<std::string> ParseNetDev(std::string_view text) {
  std::vector<std::string> names;
  for (std::string_view line : Lines(text)) {
    size_t colon = line.find(':');
    // The two header lines have '|' before any ':'.
    if (colon == std::string_view::npos || line.find('|') < colon) continue;
    names.emplace_back(TrimWhitespace(line.substr(0, colon)));
  }
  return names;
}

std::optional<int64_t> MapIdInside(std::string_view id_map, int64_t outside) {
  for (std::string_view line : Lines(id_map)) {
    std::vector<std::string> f = SplitNonEmpty(line, ' ');
    if (f.size() != 3) continue;
    auto inside_start = ParseInt64(f[0]);
    auto outside_start = ParseInt64(f[1]);
    auto count = ParseInt64(f[2]);
    if (!inside_start || !outside_start || !count) continue;
    if (outside >= *outside_start && outside - *outside_start < *count) {
      return *inside_start + (outside - *outside_start);
    }
  }
  return std::nullopt;
}

std::optional<int64_t> ParseTmpfsSize(const std::vector<std::string>& super_options) {
  for (const auto& o : super_options) {
    if (o.rfind("size=", 0) != 0) continue;
    std::string_view value = std::string_view(o).substr(5);
    int64_t unit = 1;
    if (!value.empty()) {
      switch (value.back()) {
        case 'k':
          unit = int64_t{1} << 10;
          break;
        case 'm':
          unit = int64_t{1} << 20;
          break;
        case 'g':
          unit = int64_t{1} << 30;
          break;
        default:
          break;
      }
      if (unit != 1) value.remove_suffix(1);
    }
    auto n = ParseInt64(value);
    if (n) return *n * unit;
  }
  return std::nullopt;
}

}  // namespace fpgahost::functions
