#include "images/shell_catalogue.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/files.h"

namespace fpgahost::images {
namespace {

constexpr size_t kMaxVbnvChars = 63;    // m_platformVBNV is 64 bytes with its NUL
constexpr size_t kMaxMemTagChars = 15;  // m_tag is 16 bytes with its NUL
constexpr uint64_t kMaxClockMhz = 0xFFFF;

Status Bad(std::string_view origin, std::string_view path, std::string_view problem) {
  return InvalidArgumentError(fmt::format("{}: {} {}", origin, path, problem),
                              kReasonInvalidShellCatalogue);
}

std::string JsonTypeName(const Json& v) { return v.is_null() ? "null" : v.type_name(); }

// Reads JSON members by path, so every error names where in the file it is.
class FieldReader {
 public:
  explicit FieldReader(std::string_view origin) : origin_(origin) {}

  Status CheckObject(const Json& v, std::string_view path) const {
    if (!v.is_object()) {
      return Bad(origin_, path, fmt::format("must be an object, not {}", JsonTypeName(v)));
    }
    return Status::Ok();
  }

  Status CheckKnown(const Json& object, std::string_view path,
                    std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : object.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        return Bad(origin_, fmt::format("{}.{}", path, EscapeForDisplay(key)),
                   "is not a known field");
      }
    }
    return Status::Ok();
  }

  StatusOr<std::optional<std::string>> OptionalString(const Json& object, std::string_view path,
                                                      std::string_view key) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string()) {
      return Bad(origin_, fmt::format("{}.{}", path, key),
                 fmt::format("must be a string, not {}", JsonTypeName(*it)));
    }
    return std::optional<std::string>(it->get<std::string>());
  }

  StatusOr<std::string> String(const Json& object, std::string_view path,
                               std::string_view key) const {
    ASSIGN_OR_RETURN(std::optional<std::string> value, OptionalString(object, path, key));
    if (!value) return Bad(origin_, fmt::format("{}.{}", path, key), "is required");
    return std::move(*value);
  }

  StatusOr<uint64_t> Unsigned(const Json& object, std::string_view path,
                              std::string_view key) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
      return Bad(origin_, fmt::format("{}.{}", path, key), "is required");
    }
    if (!it->is_number_unsigned()) {
      return Bad(origin_, fmt::format("{}.{}", path, key),
                 fmt::format("must be a non-negative integer, not {}", it->dump()));
    }
    return it->get<uint64_t>();
  }

  // An optional array member; an absent one reads as empty.
  StatusOr<Json> OptionalArray(const Json& object, std::string_view path,
                               std::string_view key) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return Json::array();
    if (!it->is_array()) {
      return Bad(origin_, fmt::format("{}.{}", path, key),
                 fmt::format("must be an array, not {}", JsonTypeName(*it)));
    }
    return *it;
  }

 private:
  std::string_view origin_;
};

bool IsClockTypeName(std::string_view type) {
  return type == "DATA" || type == "KERNEL" || type == "SYSTEM";
}

bool IsMemTypeName(std::string_view type) {
  for (uint32_t t = 0; t <= kMaxMemType; ++t) {
    if (MemTypeName(t) == type) return true;
  }
  return false;
}

// The rules of the header comment, for catalogues from JSON and from code alike. Normalises
// interface UUIDs to lowercase 8-4-4-4-12.
Status CheckShells(std::vector<ShellSpec>* shells, std::string_view origin) {
  std::set<std::string> names, vbnvs, uuids;
  for (size_t i = 0; i < shells->size(); ++i) {
    ShellSpec& shell = (*shells)[i];
    std::string path = fmt::format("shells[{}]", i);
    if (shell.name.empty()) return Bad(origin, path + ".name", "must not be empty");
    if (!names.insert(shell.name).second) {
      return Bad(origin, path + ".name",
                 fmt::format("'{}' names another shell too", EscapeForDisplay(shell.name)));
    }
    if (shell.vbnv.empty() || shell.vbnv.size() > kMaxVbnvChars) {
      return Bad(origin, path + ".vbnv",
                 fmt::format("must be 1 to {} characters (it is compared with m_platformVBNV)",
                             kMaxVbnvChars));
    }
    if (!vbnvs.insert(shell.vbnv).second) {
      return Bad(
          origin, path + ".vbnv",
          fmt::format("'{}' is the VBNV of another shell too", EscapeForDisplay(shell.vbnv)));
    }
    if (!shell.interface_uuid.empty()) {
      std::optional<Uuid> uuid = ParseUuid(shell.interface_uuid);
      if (!uuid) {
        return Bad(origin, path + ".interface_uuid",
                   fmt::format("'{}' is not a UUID (32 hex digits, optionally 8-4-4-4-12)",
                               EscapeForDisplay(shell.interface_uuid)));
      }
      if (IsNilUuid(*uuid)) {
        return Bad(origin, path + ".interface_uuid",
                   "is all zeros, which xclbins use for 'no interface UUID'; leave it out "
                   "instead");
      }
      shell.interface_uuid = FormatUuid(*uuid);
      if (!uuids.insert(shell.interface_uuid).second) {
        return Bad(
            origin, path + ".interface_uuid",
            fmt::format("{} is the interface UUID of another shell too", shell.interface_uuid));
      }
    }
    std::set<std::pair<std::string, std::string>> clock_keys;
    for (size_t c = 0; c < shell.clocks.size(); ++c) {
      const ClockLimit& clock = shell.clocks[c];
      std::string clock_path = fmt::format("{}.clocks[{}]", path, c);
      if (!IsClockTypeName(clock.type)) {
        return Bad(origin, clock_path + ".type",
                   fmt::format("'{}' is not DATA, KERNEL or SYSTEM", EscapeForDisplay(clock.type)));
      }
      if (clock.max_mhz == 0 || clock.max_mhz > kMaxClockMhz) {
        return Bad(origin, clock_path + ".max_mhz",
                   fmt::format("must be between 1 and {} (it is {})", kMaxClockMhz, clock.max_mhz));
      }
      if (!clock_keys.emplace(clock.type, clock.name).second) {
        return Bad(origin, clock_path,
                   fmt::format("repeats the limit for {} clock '{}'", clock.type,
                               EscapeForDisplay(clock.name)));
      }
    }
    std::set<std::string> tags;
    for (size_t b = 0; b < shell.memory_banks.size(); ++b) {
      const MemoryBank& bank = shell.memory_banks[b];
      std::string bank_path = fmt::format("{}.memory_banks[{}]", path, b);
      if (bank.tag.empty() || bank.tag.size() > kMaxMemTagChars) {
        return Bad(
            origin, bank_path + ".tag",
            fmt::format("must be 1 to {} characters (it is compared with m_tag)", kMaxMemTagChars));
      }
      if (!tags.insert(bank.tag).second) {
        return Bad(origin, bank_path + ".tag",
                   fmt::format("'{}' names another bank too", EscapeForDisplay(bank.tag)));
      }
      if (!bank.type.empty() && !IsMemTypeName(bank.type)) {
        return Bad(origin, bank_path + ".type",
                   fmt::format("'{}' is not a memory type (MEM_DDR4, MEM_HBM, ...)",
                               EscapeForDisplay(bank.type)));
      }
      if (bank.size_kb == 0) return Bad(origin, bank_path + ".size_kb", "must not be 0");
    }
    const HealthLimits& limits = shell.limits;
    if (limits.fpga_temp_max_c == 0 || limits.fpga_temp_warn_c > limits.fpga_temp_max_c) {
      return Bad(origin, path + ".limits.fpga_temp_warn_c",
                 fmt::format("must be at most fpga_temp_max_c, which must not be 0 (they are {} "
                             "and {})",
                             limits.fpga_temp_warn_c, limits.fpga_temp_max_c));
    }
    if (limits.power_max_w == 0 || limits.power_warn_w > limits.power_max_w) {
      return Bad(
          origin, path + ".limits.power_warn_w",
          fmt::format("must be at most power_max_w, which must not be 0 (they are {} and {})",
                      limits.power_warn_w, limits.power_max_w));
    }
  }
  return Status::Ok();
}

StatusOr<ShellSpec> ReadShell(const FieldReader& r, const Json& j, const std::string& path) {
  RETURN_IF_ERROR(r.CheckObject(j, path));
  RETURN_IF_ERROR(r.CheckKnown(
      j, path,
      {"name", "vbnv", "interface_uuid", "description", "clocks", "memory_banks", "limits"}));
  ShellSpec shell;
  ASSIGN_OR_RETURN(shell.name, r.String(j, path, "name"));
  ASSIGN_OR_RETURN(shell.vbnv, r.String(j, path, "vbnv"));
  ASSIGN_OR_RETURN(std::optional<std::string> uuid, r.OptionalString(j, path, "interface_uuid"));
  shell.interface_uuid = uuid.value_or("");
  ASSIGN_OR_RETURN(std::optional<std::string> description,
                   r.OptionalString(j, path, "description"));
  shell.description = description.value_or("");

  ASSIGN_OR_RETURN(Json clocks, r.OptionalArray(j, path, "clocks"));
  for (size_t c = 0; c < clocks.size(); ++c) {
    std::string clock_path = fmt::format("{}.clocks[{}]", path, c);
    const Json& cj = clocks[c];
    RETURN_IF_ERROR(r.CheckObject(cj, clock_path));
    RETURN_IF_ERROR(r.CheckKnown(cj, clock_path, {"type", "name", "max_mhz"}));
    ClockLimit clock;
    ASSIGN_OR_RETURN(clock.type, r.String(cj, clock_path, "type"));
    ASSIGN_OR_RETURN(std::optional<std::string> name, r.OptionalString(cj, clock_path, "name"));
    clock.name = name.value_or("");
    ASSIGN_OR_RETURN(uint64_t max_mhz, r.Unsigned(cj, clock_path, "max_mhz"));
    // Out-of-range values are caught by CheckShells; clamp so the message shows them.
    clock.max_mhz = static_cast<uint32_t>(std::min<uint64_t>(max_mhz, UINT32_MAX));
    shell.clocks.push_back(std::move(clock));
  }

  ASSIGN_OR_RETURN(Json banks, r.OptionalArray(j, path, "memory_banks"));
  for (size_t b = 0; b < banks.size(); ++b) {
    std::string bank_path = fmt::format("{}.memory_banks[{}]", path, b);
    const Json& bj = banks[b];
    RETURN_IF_ERROR(r.CheckObject(bj, bank_path));
    RETURN_IF_ERROR(r.CheckKnown(bj, bank_path, {"tag", "type", "size_kb"}));
    MemoryBank bank;
    ASSIGN_OR_RETURN(bank.tag, r.String(bj, bank_path, "tag"));
    ASSIGN_OR_RETURN(std::optional<std::string> type, r.OptionalString(bj, bank_path, "type"));
    bank.type = type.value_or("");
    ASSIGN_OR_RETURN(bank.size_kb, r.Unsigned(bj, bank_path, "size_kb"));
    shell.memory_banks.push_back(std::move(bank));
  }

  auto limits = j.find("limits");
  if (limits != j.end() && !limits->is_null()) {
    std::string limits_path = path + ".limits";
    RETURN_IF_ERROR(r.CheckObject(*limits, limits_path));
    RETURN_IF_ERROR(
        r.CheckKnown(*limits, limits_path,
                     {"fpga_temp_warn_c", "fpga_temp_max_c", "power_warn_w", "power_max_w"}));
    auto read = [&](std::string_view key, uint32_t* out) -> Status {
      if (!limits->contains(key)) return Status::Ok();
      ASSIGN_OR_RETURN(uint64_t value, r.Unsigned(*limits, limits_path, key));
      *out = static_cast<uint32_t>(std::min<uint64_t>(value, UINT32_MAX));
      return Status::Ok();
    };
    RETURN_IF_ERROR(read("fpga_temp_warn_c", &shell.limits.fpga_temp_warn_c));
    RETURN_IF_ERROR(read("fpga_temp_max_c", &shell.limits.fpga_temp_max_c));
    RETURN_IF_ERROR(read("power_warn_w", &shell.limits.power_warn_w));
    RETURN_IF_ERROR(read("power_max_w", &shell.limits.power_max_w));
  }
  return shell;
}

}  // namespace

std::optional<uint32_t> ShellSpec::MaxClockMhz(uint32_t clock_type,
                                               std::string_view clock_name) const {
  std::string type = ClockTypeName(clock_type);
  std::optional<uint32_t> by_type;
  for (const ClockLimit& limit : clocks) {
    if (limit.type != type) continue;
    if (!limit.name.empty() && limit.name == clock_name) return limit.max_mhz;
    if (limit.name.empty()) by_type = limit.max_mhz;
  }
  return by_type;
}

const MemoryBank* ShellSpec::FindMemoryBank(std::string_view tag) const {
  for (const MemoryBank& bank : memory_banks) {
    if (bank.tag == tag) return &bank;
  }
  return nullptr;
}

StatusOr<ShellCatalogue> ShellCatalogue::Create(std::vector<ShellSpec> shells) {
  RETURN_IF_ERROR(CheckShells(&shells, "shell catalogue"));
  ShellCatalogue out;
  out.shells_ = std::move(shells);
  return out;
}

const ShellSpec* ShellCatalogue::FindByName(std::string_view name) const {
  for (const ShellSpec& s : shells_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const ShellSpec* ShellCatalogue::FindByInterfaceUuid(const Uuid& uuid) const {
  std::string text = FormatUuid(uuid);
  for (const ShellSpec& s : shells_) {
    if (!s.interface_uuid.empty() && s.interface_uuid == text) return &s;
  }
  return nullptr;
}

const ShellSpec* ShellCatalogue::FindByVbnv(std::string_view vbnv) const {
  for (const ShellSpec& s : shells_) {
    if (s.vbnv == vbnv) return &s;
  }
  return nullptr;
}

StatusOr<ShellCatalogue> ParseShellCatalogue(std::string_view json_text, std::string_view origin) {
  Json root;
  // nlohmann reports where the text breaks only through its exception; it is caught here and
  // never leaves this function.
  try {
    root = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    std::string_view what = e.what();
    size_t tag_end = what.find("] ");
    if (tag_end != std::string_view::npos) what.remove_prefix(tag_end + 2);
    return InvalidArgumentError(fmt::format("{}: not valid JSON: {}", origin, what),
                                kReasonInvalidShellCatalogue);
  }
  FieldReader r(origin);
  RETURN_IF_ERROR(r.CheckObject(root, "the top level"));
  RETURN_IF_ERROR(r.CheckKnown(root, "the top level", {"shells"}));
  auto it = root.find("shells");
  if (it == root.end() || !it->is_array() || it->empty()) {
    return Bad(origin, "shells", "must be a non-empty array of shells");
  }
  std::vector<ShellSpec> shells;
  for (size_t i = 0; i < it->size(); ++i) {
    ASSIGN_OR_RETURN(ShellSpec shell, ReadShell(r, (*it)[i], fmt::format("shells[{}]", i)));
    shells.push_back(std::move(shell));
  }
  RETURN_IF_ERROR(CheckShells(&shells, origin));
  ASSIGN_OR_RETURN(ShellCatalogue out, ShellCatalogue::Create(std::move(shells)));
  return out;
}

StatusOr<ShellCatalogue> LoadShellCatalogue(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseShellCatalogue(text, path.string());
}

Json ShellCatalogueToJson(const ShellCatalogue& catalogue) {
  Json shells = Json::array();
  for (const ShellSpec& s : catalogue.shells()) {
    Json shell = {{"name", s.name}, {"vbnv", s.vbnv}};
    if (!s.interface_uuid.empty()) shell["interface_uuid"] = s.interface_uuid;
    if (!s.description.empty()) shell["description"] = s.description;
    Json clocks = Json::array();
    for (const ClockLimit& c : s.clocks) {
      Json clock = {{"type", c.type}, {"max_mhz", c.max_mhz}};
      if (!c.name.empty()) clock["name"] = c.name;
      clocks.push_back(std::move(clock));
    }
    shell["clocks"] = std::move(clocks);
    Json banks = Json::array();
    for (const MemoryBank& b : s.memory_banks) {
      Json bank = {{"tag", b.tag}, {"size_kb", b.size_kb}};
      if (!b.type.empty()) bank["type"] = b.type;
      banks.push_back(std::move(bank));
    }
    shell["memory_banks"] = std::move(banks);
    shell["limits"] = {{"fpga_temp_warn_c", s.limits.fpga_temp_warn_c},
                       {"fpga_temp_max_c", s.limits.fpga_temp_max_c},
                       {"power_warn_w", s.limits.power_warn_w},
                       {"power_max_w", s.limits.power_max_w}};
    shells.push_back(std::move(shell));
  }
  return Json{{"shells", std::move(shells)}};
}

}  // namespace fpgahost::images
