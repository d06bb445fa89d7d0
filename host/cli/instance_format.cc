#include "host/cli/instance_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "host/cli/json_text.h"

namespace fpgahost::cli {
namespace {

// The F1 column layout, from fpga-describe-local-image -H.
constexpr std::string_view kAfiHeader =
    "Type  FpgaImageSlot  FpgaImageId             StatusName    StatusCode   ErrorName    "
    "ErrorCode   ShVersion";
constexpr std::string_view kDeviceHeader = "Type  FpgaImageSlot  VendorId    DeviceId    DBDF";

// A slot's state, or "" when the daemon sent none.
std::string State(const Json& j) {
  const Json& s = JsonField(j, "state");
  return s.is_string() ? s.get<std::string>() : "";
}

// The slot's or instance's error code and message, or empty strings when it has none.
std::pair<std::string, std::string> Error(const Json& j) {
  const Json& e = JsonField(j, "error");
  if (!e.is_object()) return {};
  return {JsonText(JsonField(e, "code"), "ERROR"), JsonText(JsonField(e, "message"), "")};
}

// Left-aligns `s` in `width` columns, keeping two spaces after a value that is wider, so
// columns never run together (F1 itself shifts the rest of the line then).
std::string Pad(std::string_view s, size_t width) {
  std::string out(s);
  out.append(out.size() + 2 > width ? 2 : width - out.size(), ' ');
  return out;
}

// Error messages come from the daemon; the CLI promises one line per error.
std::string OneLine(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return s;
}

std::string Plural(const Json& n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", JsonText(n), n == 1 ? one : many);
}

std::string SlotsCell(const Json& instance) {
  const Json& slots = JsonField(instance, "slots");
  if (!slots.is_array()) return "-";
  int loaded = 0, busy = 0, failed = 0;
  for (const Json& s : slots) {
    std::string state = State(s);
    loaded += state == "loaded" ? 1 : 0;
    busy += SlotIsBusy(s) ? 1 : 0;
    failed += state == "load_failed" ? 1 : 0;
  }
  std::string cell = fmt::format("{}/{} loaded", loaded, slots.size());
  if (busy > 0) cell += fmt::format(", {} busy", busy);
  if (failed > 0) cell += fmt::format(", {} failed", failed);
  return cell;
}

}  // namespace

F1Status SlotF1Status(std::string_view state) {
  if (state == "loaded") return {"loaded", 0};
  if (state == "cleared") return {"cleared", 1};
  if (state == "loading" || state == "clearing") return {"busy", 2};
  if (state == "load_failed") return {"load-failed", 7};
  return {state.empty() ? "unknown" : std::string(state), -1};
}

std::string SlotErrorName(const Json& slot) {
  auto [code, message] = Error(slot);
  if (code.empty()) return "ok";
  std::transform(code.begin(), code.end(), code.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return code;
}

int SlotErrorCode(const Json& slot) {
  auto [code, message] = Error(slot);
  if (code.empty()) return 0;
  // FPGA_ERR_* from aws-fpga's fpga_common.h.
  if (code == "XCLBIN_INCOMPATIBLE" || code == "SHELL_NOT_SUPPORTED") return 16;
  if (code == "CARD_NOT_FOUND") return 20;
  if (code == "LOAD_TIMEOUT") return 25;
  return 14;
}

bool SlotIsBusy(const Json& slot) {
  std::string state = State(slot);
  return state == "loading" || state == "clearing";
}

bool InstanceIsTransitional(std::string_view state) {
  return state == "pending" || state == "stopping" || state == "terminating";
}

std::string FormatSlot(const Json& slot) {
  std::string n = JsonText(JsonField(slot, "slot"));
  F1Status status = SlotF1Status(State(slot));
  std::string out;
  out += fmt::format("{}\n", kAfiHeader);
  out += Pad("AFI", 13) + Pad(n, 8) + Pad(JsonText(JsonField(slot, "image_id"), "none"), 24) +
         Pad(status.name, 18) + Pad(std::to_string(status.code), 9) + Pad(SlotErrorName(slot), 17) +
         Pad(std::to_string(SlotErrorCode(slot)), 8) + JsonText(JsonField(slot, "shell"), "none") +
         "\n";
  out += fmt::format("{}\n", kDeviceHeader);
  out += Pad("AFIDEVICE", 13) + Pad(n, 8) + Pad(JsonText(JsonField(slot, "vendor_id")), 12) +
         Pad(JsonText(JsonField(slot, "device_id")), 12) + JsonText(JsonField(slot, "user_bdf")) +
         "\n";
  out += fmt::format("xclbin-uuid={}\n", JsonText(JsonField(slot, "xclbin_uuid"), "none"));
  out += fmt::format("card={}\n", JsonText(JsonField(slot, "card")));
  auto [code, message] = Error(slot);
  if (!code.empty()) out += fmt::format("error-message={}\n", OneLine(message));
  return out;
}

std::string FormatSlots(const Json& slots) {
  std::string out;
  if (!slots.is_array()) return out;
  for (const Json& s : slots) {
    if (!out.empty()) out += "\n";
    out += FormatSlot(s);
  }
  return out;
}

std::string FormatTable(const Json& rows, const std::vector<std::string>& columns,
                        std::string_view indent) {
  std::vector<size_t> widths;
  std::vector<std::string> header;
  for (const std::string& c : columns) {
    std::string upper = c;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    widths.push_back(upper.size());
    header.push_back(std::move(upper));
  }
  std::vector<std::vector<std::string>> cells{header};
  if (rows.is_array()) {
    for (const Json& row : rows) {
      std::vector<std::string> line;
      for (size_t i = 0; i < columns.size(); ++i) {
        line.push_back(JsonText(JsonField(row, columns[i].c_str())));
        widths[i] = std::max(widths[i], line.back().size());
      }
      cells.push_back(std::move(line));
    }
  }
  std::string out;
  for (const auto& line : cells) {
    out += indent;
    for (size_t i = 0; i < line.size(); ++i) {
      out += i + 1 < line.size() ? fmt::format("{:<{}}  ", line[i], widths[i]) : line[i];
    }
    out += "\n";
  }
  return out;
}

std::string FormatInstanceList(const Json& instances) {
  Json rows = Json::array();
  if (instances.is_array()) {
    for (const Json& i : instances) {
      rows.push_back({{"id", JsonField(i, "id")},
                      {"name", JsonField(i, "name")},
                      {"type", JsonField(i, "type")},
                      {"state", JsonField(i, "state")},
                      {"slots", SlotsCell(i)},
                      {"created", JsonField(i, "created_at")}});
    }
  }
  return FormatTable(rows, {"id", "name", "type", "state", "slots", "created"});
}

std::string FormatInstance(const Json& instance) {
  std::string out;
  auto line = [&](std::string_view key, const std::string& value) {
    out += fmt::format("  {:<11} {}\n", key, value);
  };
  const Json& name = JsonField(instance, "name");
  out += JsonText(JsonField(instance, "id"));
  if (name.is_string() && !name.get<std::string>().empty()) out += "  " + name.get<std::string>();
  out += "\n";
  line("type", fmt::format("{}  {}, {} MiB, {}", JsonText(JsonField(instance, "type")),
                           Plural(JsonField(instance, "vcpus"), "vCPU", "vCPUs"),
                           JsonText(JsonField(instance, "memory_mib")),
                           Plural(JsonField(instance, "fpgas"), "FPGA", "FPGAs")));
  line("state", JsonText(JsonField(instance, "state")));
  line("tenant", JsonText(JsonField(instance, "tenant")));
  const Json& domain = JsonField(instance, "domain");
  line("domain", domain.is_object() ? fmt::format("{}  {}", JsonText(JsonField(domain, "name")),
                                                  JsonText(JsonField(domain, "uri")))
                                    : "-");
  line("created", JsonText(JsonField(instance, "created_at")));
  line("updated", JsonText(JsonField(instance, "updated_at")));
  auto [code, message] = Error(instance);
  if (!code.empty()) line("error", fmt::format("{}: {}", code, OneLine(message)));
  const Json& slots = JsonField(instance, "slots");
  if (!slots.is_array() || slots.empty()) {
    line("slots", "none");
    return out;
  }
  out += "  slots\n";
  Json rows = Json::array();
  for (const Json& s : slots) {
    rows.push_back({{"slot", JsonField(s, "slot")},
                    {"state", JsonField(s, "state")},
                    {"image", JsonField(s, "image_id")},
                    {"xclbin_uuid", JsonField(s, "xclbin_uuid")},
                    {"card", JsonField(s, "card")},
                    {"user_bdf", JsonField(s, "user_bdf")}});
  }
  out += FormatTable(rows, {"slot", "state", "image", "xclbin_uuid", "card", "user_bdf"}, "    ");
  for (const Json& s : slots) {
    auto [slot_code, slot_message] = Error(s);
    if (slot_code.empty()) continue;
    out += fmt::format("    slot {} error: {}: {}\n", JsonText(JsonField(s, "slot")), slot_code,
                       OneLine(slot_message));
  }
  return out;
}

std::string FormatInstanceTypes(const Json& types) {
  return FormatTable(types, {"name", "vcpus", "memory_mib", "fpgas"});
}

StatusOr<int> ParseSlotNumber(std::string_view text) {
  int n = 0;
  bool digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                             [](unsigned char c) { return std::isdigit(c) != 0; });
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (!digits || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError(
        fmt::format("the slot must be a non-negative integer (0, 1, ...), not '{}'", text),
        "USAGE");
  }
  return n;
}

Status SlotOutcome(const Json& slot, std::string_view instance_id, bool load) {
  std::string state = State(slot);
  if (state == (load ? "loaded" : "cleared")) return Status::Ok();
  std::string where = fmt::format("slot {} of {}", JsonText(JsonField(slot, "slot")), instance_id);
  auto [code, message] = Error(slot);
  if (!code.empty()) {
    std::string what = load
                           ? fmt::format("loading {} failed", JsonText(JsonField(slot, "image_id")))
                           : fmt::format("clearing failed, the slot is {}", state);
    return FailedPreconditionError(fmt::format("{}: {}: {}", where, what, OneLine(message)), code);
  }
  return FailedPreconditionError(
      fmt::format("{} is {}, not {}", where, state.empty() ? "in no state" : state,
                  load ? "loaded" : "cleared"),
      load ? "SLOT_NOT_LOADED" : "SLOT_NOT_CLEARED");
}

Status InstanceOutcome(const Json& instance, std::string_view expected) {
  std::string state = State(instance);
  if (state == expected) return Status::Ok();
  std::string id = JsonText(JsonField(instance, "id"));
  if (state == "failed") {
    auto [code, message] = Error(instance);
    return FailedPreconditionError(
        fmt::format("instance {} failed: {}", id,
                    message.empty() ? "see `fpgahost instance describe`" : OneLine(message)),
        code.empty() ? "INSTANCE_FAILED" : code);
  }
  return FailedPreconditionError(
      fmt::format("instance {} is {}, not {}", id, state.empty() ? "in no state" : state, expected),
      "INSTANCE_STATE");
}

}  // namespace fpgahost::cli
