// Access to the vendor-made xclbin fixtures (../shared/fixtures/xclbin) and their reports, and
// helpers to make corrupted variants of them.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/json.h"
#include "tests/support/fixtures.h"

namespace fpgahost::images::testing {

// Offsets of header fields (XRT xclbin.h struct axlf) that tests patch.
inline constexpr size_t kOffSignatureLength = 8;
inline constexpr size_t kOffLength = 304;
inline constexpr size_t kOffMode = 332;
inline constexpr size_t kOffInterfaceUuid = 336;
inline constexpr size_t kOffPlatformVbnv = 352;
inline constexpr size_t kOffNumSections = 448;
// Offsets inside one section header, from its "hdr_off" in the layout report.
inline constexpr size_t kSecKind = 0;
inline constexpr size_t kSecName = 4;
inline constexpr size_t kSecOffset = 24;
inline constexpr size_t kSecSize = 32;

inline const std::vector<std::string>& FixtureNames() {
  static const std::vector<std::string> names = {"01_bitstream_only",
                                                 "02_full_hw",
                                                 "03_clock_freq",
                                                 "04_metadata",
                                                 "05_signed",
                                                 "06_hw_emu",
                                                 "07_sw_emu",
                                                 "08_hw_pr_partial_pdi",
                                                 "09_tandem_actionmask",
                                                 "10_empty",
                                                 "11_debug_ip_layout",
                                                 "12_user_signature"};
  return names;
}

inline std::filesystem::path XclbinFixturesDir() {
  return ::fpgahost::testing::SharedFixturesDir() / "xclbin";
}

inline std::string ReadText(const std::filesystem::path& path) {
  StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    ADD_FAILURE() << text.status().ToString();
    return "";
  }
  return *text;
}

inline std::vector<uint8_t> ReadFixture(const std::string& name) {
  std::string text = ReadText(XclbinFixturesDir() / (name + ".xclbin"));
  return std::vector<uint8_t>(text.begin(), text.end());
}

inline Json ReadJsonFile(const std::filesystem::path& path) {
  StatusOr<Json> json = ParseJson(ReadText(path));
  if (!json.ok()) {
    ADD_FAILURE() << path << ": " << json.status().ToString();
    return Json::object();
  }
  return *json;
}

// The field-by-field reading of header and section table (the object under "<name>.xclbin").
inline Json LayoutReport(const std::string& name) {
  Json j = ReadJsonFile(XclbinFixturesDir() / "reports" / (name + ".layout.json"));
  return j.value(name + ".xclbin", Json::object());
}

// The XCLBIN_MIRROR_DATA JSON that xclbinutil embedded.
inline Json MirrorReport(const std::string& name) {
  return ReadJsonFile(XclbinFixturesDir() / "reports" / (name + ".mirror.json"));
}

// What `xclbinutil --info` printed.
inline std::string InfoReport(const std::string& name) {
  return ReadText(XclbinFixturesDir() / "reports" / (name + ".info.txt"));
}

inline std::span<const uint8_t> Bytes(const std::vector<uint8_t>& v) { return v; }

inline void PutLe(std::vector<uint8_t>* bytes, size_t offset, uint64_t value, size_t width) {
  ASSERT_LE(offset + width, bytes->size());
  for (size_t i = 0; i < width; ++i) {
    (*bytes)[offset + i] = static_cast<uint8_t>(value >> (8 * i));
  }
}
inline uint64_t GetLe(const std::vector<uint8_t>& bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{bytes.at(offset + i)} << (8 * i);
  return v;
}

// The section entry of the layout report whose kind name is `kind_name` (first one).
inline Json LayoutSection(const Json& layout, const std::string& kind_name) {
  for (const Json& s : layout.at("sections")) {
    if (s.at("kind_name") == kind_name) return s;
  }
  ADD_FAILURE() << "no " << kind_name << " section in the layout report";
  return Json::object();
}

// "m_sections[<i>]" for the first section of `kind_name`, and the same with its kind and name
// as the validator's messages print them: "m_sections[1] (IP_LAYOUT 'ip_layout')".
inline std::string SectionRef(const Json& layout, const std::string& kind_name) {
  return "m_sections[" + std::to_string(LayoutSection(layout, kind_name).value("index", -1)) + "]";
}
inline std::string SectionLabel(const Json& layout, const std::string& kind_name) {
  return SectionRef(layout, kind_name) + " (" + kind_name + " '" +
         LayoutSection(layout, kind_name).value("name", "") + "')";
}

// The payload of the mirror report's section of `kind` (a number), or null.
inline Json MirrorPayload(const Json& mirror, int kind, const std::string& key) {
  // A file without sections has no "section_header" in its mirror.
  for (const Json& s : mirror.value("section_header", Json::array())) {
    if (s.at("Kind") == std::to_string(kind) && s.contains("payload")) {
      return s.at("payload").value(key, Json());
    }
  }
  return Json();
}

// "0x4000000" -> 0x4000000; decimal otherwise.
inline uint64_t ReportNumber(const Json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  return std::stoull(s, nullptr, s.rfind("0x", 0) == 0 ? 16 : 10);
}

// The value of the first "   <label>   value" line of an xclbinutil --info report, with its
// trailing spaces removed; nullopt when no line has the label.
inline std::optional<std::string> InfoValue(const std::string& info, const std::string& label) {
  size_t pos = 0;
  while (pos < info.size()) {
    size_t end = info.find('\n', pos);
    if (end == std::string::npos) end = info.size();
    std::string line = info.substr(pos, end - pos);
    pos = end + 1;
    size_t at = line.find_first_not_of(' ');
    if (at == std::string::npos || line.compare(at, label.size(), label) != 0) continue;
    std::string value = line.substr(at + label.size());
    value.erase(0, value.find_first_not_of(' ') == std::string::npos
                       ? value.size()
                       : value.find_first_not_of(' '));
    value.erase(value.find_last_not_of(' ') + 1);
    return value;
  }
  return std::nullopt;
}

// The lines of the block under `heading` (e.g. "Memory Configuration") up to the next heading
// or rule, without the heading and its underline.
inline std::vector<std::string> InfoBlock(const std::string& text, const std::string& heading) {
  std::vector<std::string> lines;
  size_t pos = 0;
  bool inside = false;
  int skip = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!inside) {
      if (line == heading) {
        inside = true;
        skip = 1;
      }
      continue;
    }
    if (skip > 0) {
      --skip;
      continue;
    }
    if (line.rfind("====", 0) == 0 || (!line.empty() && line[0] != ' ')) break;
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// The "Label: value" records of an xclbinutil block ("Memory Configuration", "Scalable
// Clocks"), one per blank-line-separated group; a block saying "No ... available." has none.
using InfoRecord = std::map<std::string, std::string>;
inline std::vector<InfoRecord> InfoRecords(const std::string& text, const std::string& heading) {
  std::vector<InfoRecord> out;
  InfoRecord current;
  for (const std::string& line : InfoBlock(text, heading)) {
    size_t colon = line.find(':');
    if (line.find_first_not_of(' ') == std::string::npos || colon == std::string::npos) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
      continue;
    }
    std::string label =
        line.substr(line.find_first_not_of(' '), colon - line.find_first_not_of(' '));
    std::string value = line.substr(colon + 1);
    value.erase(0, std::min(value.size(), value.find_first_not_of(' ')));
    value.erase(value.find_last_not_of(' ') + 1);
    current[label] = value;
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

}  // namespace fpgahost::images::testing
