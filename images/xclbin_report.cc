#include "images/xclbin_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

namespace fpgahost::images {
namespace {

constexpr size_t kMaxUserMetadataChars = 4096;
constexpr size_t kMaxMetadataDepth = 64;
constexpr std::string_view kRule =
    "==============================================================================\n";

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra;
    uint32_t min;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// JSON strings must be UTF-8; nlohmann throws at dump() time otherwise.
std::string JsonText(std::string_view raw) {
  if (IsValidUtf8(raw)) return std::string(raw);
  return EscapeForDisplay(raw, std::numeric_limits<size_t>::max());
}

std::string Hex(uint64_t v) { return fmt::format("0x{:x}", v); }

// How deeply arrays and objects nest in `text`, read as JSON (strings skipped).
size_t NestingDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Parses metadata JSON without exceptions; nullopt when it is not JSON. Deeply nested JSON is
// left as text: copying, comparing and dumping a Json recurse once per level, and a file could
// otherwise exhaust the stack of whoever prints the report.
std::optional<Json> ParseMetadataJson(const std::string& text) {
  if (NestingDepth(text) > kMaxMetadataDepth) return std::nullopt;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// A string member of nested objects ("xclbin", "generated_by", "name"), or "".
std::string NestedString(const Json& j, std::initializer_list<std::string_view> path) {
  const Json* cur = &j;
  for (std::string_view key : path) {
    if (!cur->is_object()) return "";
    auto it = cur->find(key);
    if (it == cur->end()) return "";
    cur = &*it;
  }
  return cur->is_string() ? cur->get<std::string>() : "";
}

std::vector<std::pair<std::string, std::string>> KeyValues(const Xclbin& x) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!x.keyvalue_metadata) return out;
  std::optional<Json> j = ParseMetadataJson(*x.keyvalue_metadata);
  if (!j || !j->is_object()) return out;
  auto it = j->find("key_values");
  if (it == j->end() || !it->is_array()) return out;
  for (const Json& kv : *it) {
    if (!kv.is_object()) continue;
    out.emplace_back(NestedString(kv, {"key"}), NestedString(kv, {"value"}));
  }
  return out;
}

// "v++ (2023.2) on Mon Jan  1 00:00:00 2024", as xclbinutil says it, from BUILD_METADATA.
std::string GeneratedBy(const Xclbin& x) {
  if (!x.build_metadata) return "";
  std::optional<Json> j = ParseMetadataJson(*x.build_metadata);
  if (!j) return "";
  std::string name = NestedString(*j, {"build_metadata", "xclbin", "generated_by", "name"});
  if (name.empty()) return "";
  std::string version = NestedString(*j, {"build_metadata", "xclbin", "generated_by", "version"});
  std::string when = NestedString(*j, {"build_metadata", "xclbin", "generated_by", "time_stamp"});
  return fmt::format("{} ({}) on {}", name, version, when);
}

std::string SignatureText(const Xclbin& x) {
  if (x.signatures.pkcs7) {
    return fmt::format("Present - Signed PKCS - Offset: {}, Size: {}",
                       Hex(x.signatures.pkcs7->offset), Hex(x.signatures.pkcs7->size));
  }
  if (x.signatures.user) return "Present - " + EscapeForDisplay(x.signatures.user->signature);
  return "Not present";
}

std::string MemName(const Xclbin& x, int32_t index) {
  if (!x.mem_topology || index < 0 || static_cast<size_t>(index) >= x.mem_topology->size()) {
    return fmt::format("<bank {}>", index);
  }
  return EscapeForDisplay((*x.mem_topology)[static_cast<size_t>(index)].tag);
}

void Line(std::string* out, std::string_view label, std::string_view value, int width = 23) {
  *out += fmt::format("   {:<{}} {}\n", label, width, value);
}

void Heading(std::string* out, std::string_view title) {
  *out += fmt::format("{}\n{}\n", title, std::string(title.size(), '-'));
}

// "A, B, C" wrapped under the value column, as xclbinutil wraps its section list.
std::string WrappedList(const std::vector<std::string>& items) {
  constexpr size_t kWidth = 78, kIndent = 27;
  std::string out, line;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string item = items[i] + (i + 1 < items.size() ? "," : "");
    if (!line.empty() && kIndent + line.size() + 1 + item.size() > kWidth) {
      out += line + "\n" + std::string(kIndent, ' ');
      line.clear();
    }
    line += (line.empty() ? "" : " ") + item;
  }
  return out + line;
}

}  // namespace

Json XclbinToJson(const Xclbin& x) {
  const AxlfHeader& h = x.header;
  Json j;
  j["file_size"] = x.file_size;
  j["length"] = h.length;
  j["version"] = h.Version();
  j["mode"] = XclbinModeName(h.mode);
  j["mode_value"] = h.mode;
  j["action_mask"] = ActionMaskNames(h.action_mask);
  j["unique_id"] = h.unique_id;
  j["time_stamp"] = h.time_stamp;
  j["feature_rom_time_stamp"] = h.feature_rom_time_stamp;
  j["uuid"] = FormatUuid(h.uuid);
  j["interface_uuid"] = FormatUuid(h.interface_uuid);
  j["platform_vbnv"] = JsonText(h.platform_vbnv);
  j["debug_bin"] = JsonText(h.debug_bin);

  Json signature = {{"pkcs7", nullptr}, {"user", nullptr}};
  if (x.signatures.pkcs7) {
    signature["pkcs7"] = {{"offset", x.signatures.pkcs7->offset},
                          {"size", x.signatures.pkcs7->size}};
  }
  if (x.signatures.user) {
    signature["user"] = {{"offset", x.signatures.user->offset},
                         {"size", x.signatures.user->size},
                         {"signature", JsonText(x.signatures.user->signature)},
                         {"signed_by", JsonText(x.signatures.user->signed_by)}};
  }
  j["signature"] = std::move(signature);

  Json sections = Json::array();
  for (size_t i = 0; i < x.sections.size(); ++i) {
    const SectionHeader& s = x.sections[i];
    sections.push_back({{"index", i},
                        {"kind", SectionKindName(s.kind)},
                        {"kind_value", s.kind},
                        {"name", JsonText(s.name)},
                        {"offset", s.offset},
                        {"size", s.size}});
  }
  j["sections"] = std::move(sections);

  Json kernels = Json::array();
  for (const std::string& k : x.KernelNames()) kernels.push_back(JsonText(k));
  j["kernels"] = std::move(kernels);
  if (x.ip_layout) {
    Json ips = Json::array();
    for (const IpData& ip : *x.ip_layout) {
      Json e = {{"type", IpTypeName(ip.type)},
                {"name", JsonText(ip.name)},
                {"base_address", Hex(ip.base_address)},
                {"properties", Hex(ip.properties)}};
      if (ip.type == kIpTypeKernel) {
        e["interrupt_enabled"] = ip.interrupt_enabled();
        e["interrupt_id"] = ip.interrupt_id();
        e["ip_control"] = IpControlName(ip.ip_control());
      }
      ips.push_back(std::move(e));
    }
    j["ip_layout"] = std::move(ips);
  }
  if (x.mem_topology) {
    Json mems = Json::array();
    for (const MemData& m : *x.mem_topology) {
      mems.push_back({{"type", MemTypeName(m.type)},
                      {"used", m.used},
                      {"size_kb", m.size_kb},
                      {"base_address", Hex(m.base_address)},
                      {"tag", JsonText(m.tag)}});
    }
    j["mem_topology"] = std::move(mems);
  }
  if (x.connectivity) {
    Json conns = Json::array();
    for (const Connection& c : *x.connectivity) {
      conns.push_back({{"arg_index", c.arg_index},
                       {"ip_layout_index", c.ip_layout_index},
                       {"mem_data_index", c.mem_data_index}});
    }
    j["connectivity"] = std::move(conns);
  }
  if (x.clocks) {
    Json clocks = Json::array();
    for (const ClockFreq& c : *x.clocks) {
      clocks.push_back(
          {{"name", JsonText(c.name)}, {"type", ClockTypeName(c.type)}, {"freq_mhz", c.freq_mhz}});
    }
    j["clocks"] = std::move(clocks);
  }
  if (x.debug_ip_count) j["debug_ip_count"] = *x.debug_ip_count;
  for (auto [key, text] : {std::pair{"build_metadata", &x.build_metadata},
                           std::pair{"keyvalue_metadata", &x.keyvalue_metadata}}) {
    if (!*text) continue;
    std::optional<Json> parsed = ParseMetadataJson(**text);
    j[key] = parsed ? std::move(*parsed) : Json(JsonText(**text));
  }
  if (x.user_metadata) {
    j["user_metadata"] = {{"size", x.user_metadata->size()},
                          {"text", EscapeForDisplay(*x.user_metadata, kMaxUserMetadataChars)}};
  }
  if (x.emulation_data) {
    j["emulation_data"] = {{"offset", x.emulation_data->offset}, {"size", x.emulation_data->size}};
  }
  if (x.mirror) {
    j["mirror"] = {{"start", x.mirror->start}, {"end", x.mirror->end}};
  }
  return j;
}

std::string XclbinToText(const Xclbin& x) {
  const AxlfHeader& h = x.header;
  std::string out;
  out += kRule;
  Heading(&out, "xclbin Information");
  std::string generated_by = GeneratedBy(x);
  Line(&out, "Generated by:", generated_by.empty() ? "<unknown>" : EscapeForDisplay(generated_by));
  Line(&out, "Version:", h.Version());
  std::vector<std::string> kernels;
  for (const std::string& k : x.KernelNames()) kernels.push_back(EscapeForDisplay(k));
  Line(&out, "Kernels:", kernels.empty() ? "<none>" : fmt::format("{}", fmt::join(kernels, ", ")));
  Line(&out, "Signature:", SignatureText(x));
  if (h.action_mask != 0) {
    Line(&out,
         "Action Mask(s):", fmt::format("{}", fmt::join(ActionMaskNames(h.action_mask), " ")));
  }
  Line(&out, "Mode:", fmt::format("{} ({})", XclbinModeName(h.mode), h.mode));
  Line(&out, "UUID (xclbin):", FormatUuid(h.uuid));
  std::vector<std::string> kinds;
  for (const SectionHeader& s : x.sections) kinds.push_back(SectionKindName(s.kind));
  Line(&out, "Sections:", kinds.empty() ? "<none>" : WrappedList(kinds));
  Line(&out, "File Size:", fmt::format("{} bytes (m_length {})", x.file_size, h.length));
  if (x.debug_ip_count) Line(&out, "Debug IPs:", std::to_string(*x.debug_ip_count));
  if (x.user_metadata) {
    Line(&out, "User Metadata:", fmt::format("{} bytes", x.user_metadata->size()));
  }
  if (x.emulation_data) {
    Line(&out, "Emulation Data:", fmt::format("{} bytes", x.emulation_data->size));
  }

  out += kRule;
  Heading(&out, "Hardware Platform (Shell) Information");
  Line(&out, "Platform VBNV:",
       h.platform_vbnv.empty() ? "<not defined>" : EscapeForDisplay(h.platform_vbnv));
  Line(&out, "Static UUID:", FormatUuid(h.interface_uuid));
  Line(&out, "Feature ROM TimeStamp:", std::to_string(h.feature_rom_time_stamp));
  out += "\n";

  Heading(&out, "Scalable Clocks");
  if (!x.clocks || x.clocks->empty()) {
    out += "   No scalable clock data available.\n";
  } else {
    for (size_t i = 0; i < x.clocks->size(); ++i) {
      const ClockFreq& c = (*x.clocks)[i];
      if (i > 0) out += "\n";
      Line(&out, "Name:", EscapeForDisplay(c.name), 10);
      Line(&out, "Index:", std::to_string(i), 10);
      Line(&out, "Type:", ClockTypeName(c.type), 10);
      Line(&out, "Frequency:", fmt::format("{} MHz", c.freq_mhz), 10);
    }
  }
  out += "\n";

  Heading(&out, "Memory Configuration");
  if (!x.mem_topology || x.mem_topology->empty()) {
    out += "   No memory configuration data available.\n";
  } else {
    for (size_t i = 0; i < x.mem_topology->size(); ++i) {
      const MemData& m = (*x.mem_topology)[i];
      if (i > 0) out += "\n";
      Line(&out, "Name:", EscapeForDisplay(m.tag), 13);
      Line(&out, "Index:", std::to_string(i), 13);
      Line(&out, "Type:", MemTypeName(m.type), 13);
      Line(&out, "Base Address:", Hex(m.base_address), 13);
      // m_size is in KB; a size past 2^54 KB does not fit a byte count and is shown in KB.
      Line(&out, "Address Size:",
           m.size_kb <= (std::numeric_limits<uint64_t>::max() >> 10)
               ? Hex(m.size_kb << 10)
               : fmt::format("{} KB", Hex(m.size_kb)),
           13);
      Line(&out, "Bank Used:", m.used ? "Yes" : "No", 13);
    }
  }

  out += kRule;
  Heading(&out, "Compute Units");
  std::map<int32_t, std::vector<std::string>> args_by_ip;
  if (x.connectivity) {
    for (const Connection& c : *x.connectivity) {
      args_by_ip[c.ip_layout_index].push_back(
          fmt::format("{} -> {}", c.arg_index, MemName(x, c.mem_data_index)));
    }
  }
  bool any_cu = false;
  if (x.ip_layout) {
    for (size_t i = 0; i < x.ip_layout->size(); ++i) {
      const IpData& ip = (*x.ip_layout)[i];
      if (!ip.is_kernel()) continue;
      if (any_cu) out += "\n";
      any_cu = true;
      Line(&out, "Name:", EscapeForDisplay(ip.name), 13);
      Line(&out, "Kernel:", EscapeForDisplay(ip.kernel_name()), 13);
      Line(&out, "Type:", IpTypeName(ip.type), 13);
      Line(&out, "Base Address:", Hex(ip.base_address), 13);
      if (ip.type == kIpTypeKernel) {
        Line(&out, "Control:", IpControlName(ip.ip_control()), 13);
        Line(&out, "Interrupt:",
             ip.interrupt_enabled() ? fmt::format("enabled, id {}", ip.interrupt_id())
                                    : std::string("disabled"),
             13);
      }
      auto it = args_by_ip.find(static_cast<int32_t>(i));
      if (it != args_by_ip.end()) {
        Line(&out, "Arguments:", fmt::format("{}", fmt::join(it->second, ", ")), 13);
      }
    }
  }
  if (!any_cu) out += "   No compute units.\n";

  out += kRule;
  Heading(&out, "Sections");
  if (x.sections.empty()) {
    out += "   No sections.\n";
  } else {
    out += fmt::format("   {:<6} {:<23} {:<16} {:<12} {}\n", "Index", "Kind", "Name", "Offset",
                       "Size");
    for (size_t i = 0; i < x.sections.size(); ++i) {
      const SectionHeader& s = x.sections[i];
      out += fmt::format("   {:<6} {:<23} {:<16} {:<12} {}\n", i, SectionKindName(s.kind),
                         EscapeForDisplay(s.name), Hex(s.offset), Hex(s.size));
    }
  }

  out += kRule;
  Heading(&out, "User Added Key Value Pairs");
  std::vector<std::pair<std::string, std::string>> kvs = KeyValues(x);
  if (kvs.empty()) {
    out += "   <empty>\n";
  } else {
    for (size_t i = 0; i < kvs.size(); ++i) {
      out += fmt::format("   {}) '{}' = '{}'\n", i + 1, EscapeForDisplay(kvs[i].first),
                         EscapeForDisplay(kvs[i].second));
    }
  }
  out += kRule;
  return out;
}

}  // namespace fpgahost::images
