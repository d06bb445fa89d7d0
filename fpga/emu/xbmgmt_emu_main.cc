// xbmgmt for the emulated fleet: the management-PF commands of XRT's xbmgmt (XRT 2.x syntax)
// that fpgahost uses, over the tree at $FPGAHOST_SYSFS_ROOT (default /sys; it must hold an
// emulated fleet):
//
//   xbmgmt program --device <mgmt bdf> --user <xclbin> [--force]
//       loads through the management PF (fpga/emu/emulated_card.h), whatever holds the user PF
//   xbmgmt reset --device <mgmt bdf> [--type hot] [--force]
//       hot reset: clears the user partition, abandons a hung load; asks for confirmation on
//       stdin unless --force (an empty answer or end of input means yes, as in xbmgmt)
//   xbmgmt examine [--device <mgmt bdf>] [--format JSON --output <file>]
//       the devices present, or a short report of one
//
// Global options --verbose, --batch and --force are accepted anywhere, as XRT's tools do;
// --help and --version print and exit 0. Output follows the real tool's lines ("Downloading
// xclbin on device [...]", "ERROR: ..."); the driver's words that the real xclmgmt would put
// in the kernel log are printed too, prefixed by "xclmgmt <bdf>:". Exit status 0 on success,
// 1 on any failure.
#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "common/files.h"
#include "common/json.h"
#include "fpga/discovery.h"
#include "fpga/emu/emu_area.h"
#include "fpga/emu/emulated_card.h"
#include "fpga/emu/sysfs_tree.h"
#include "fpga/sysfs.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

struct Args {
  std::string command;
  std::map<std::string, std::string> values;  // "device", "user", "type", "format", "output"
  bool force = false;
  bool help = false;
  bool version = false;
};

constexpr char kUsage[] =
    "Usage: xbmgmt [--verbose] [--batch] [--force] <command> [options]\n"
    "\n"
    "Emulated Xilinx Board Management for fpgahost's emulated fleet ($FPGAHOST_SYSFS_ROOT).\n"
    "\n"
    "Commands:\n"
    "  program  --device <bdf> --user <xclbin>   load an xclbin through the management PF\n"
    "  reset    --device <bdf> [--type hot]      hot-reset the card\n"
    "  examine  [--device <bdf>] [--format JSON --output <file>]\n"
    "                                            the devices, or a report of one\n";

int Error(const std::string& message) {
  std::cerr << "ERROR: " << message << "\n";
  return 1;
}

std::optional<Args> Parse(int argc, char** argv, std::string& error) {
  Args args;
  const std::map<std::string, std::string> with_value = {
      {"--device", "device"}, {"-d", "device"}, {"--user", "user"},     {"-u", "user"},
      {"--type", "type"},     {"-t", "type"},   {"--format", "format"}, {"-f", "format"},
      {"--output", "output"}, {"-o", "output"}, {"--report", "report"}, {"-r", "report"}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    bool inline_value = false;
    if (size_t eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (auto it = with_value.find(a); it != with_value.end()) {
      if (!inline_value) {
        if (i + 1 >= argc) {
          error = "the option '" + a + "' requires an argument";
          return std::nullopt;
        }
        value = argv[++i];
      }
      args.values[it->second] = value;
    } else if (a == "--force") {
      args.force = true;
    } else if (a == "--verbose" || a == "--batch") {
    } else if (a == "--help" || a == "-h") {
      args.help = true;
    } else if (a == "--version") {
      args.version = true;
    } else if (!a.starts_with("-") && args.command.empty()) {
      args.command = a;
    } else {
      error = "Unrecognized arguments:\n  " + a;
      return std::nullopt;
    }
  }
  return args;
}

fs::path SysfsRoot() {
  const char* root = std::getenv("FPGAHOST_SYSFS_ROOT");  // NOLINT(concurrency-mt-unsafe)
  return (root != nullptr && *root != '\0') ? fs::path(root) : fs::path("/sys");
}

// The management PF named by --device, present and bound to xclmgmt, as xbmgmt finds devices.
std::optional<EmulatedCard> FindDevice(const fs::path& root, const Args& args, int& status) {
  auto it = args.values.find("device");
  if (it == args.values.end() || it->second.empty()) {
    status = Error("Please specify a device using --device option");
    return std::nullopt;
  }
  StatusOr<EmulatedCard> card = EmulatedCard::Find(root, it->second);
  if (!card.ok() || card->mgmt_bdf() != it->second || !card->Bound(card->mgmt_bdf(), "xclmgmt")) {
    status = Error(fmt::format("Specified device BDF '{}' not found", it->second));
    return std::nullopt;
  }
  return std::move(*card);
}

void PrintDriverFailure(const EmulatedCard& card, const DriverResult& result, const char* what) {
  std::cout << "ERROR: " << what << ": " << std::generic_category().message(result.error) << "\n";
  std::cout << "xclmgmt " << card.mgmt_bdf() << ": " << result.message << "\n";
}

int Program(const fs::path& root, const Args& args) {
  int status = 1;
  std::optional<EmulatedCard> card = FindDevice(root, args, status);
  if (!card) return status;
  auto user = args.values.find("user");
  if (user == args.values.end() || user->second.empty()) {
    return Error("Missing flash operation.  No action taken.");
  }
  StatusOr<MappedFile> file = MappedFile::Open(user->second);
  if (!file.ok()) return Error(fmt::format("Could not open {} for reading", user->second));
  std::cout << "Downloading xclbin on device [" << card->mgmt_bdf() << "]..." << std::endl;
  DriverResult result = card->Load(file->bytes(), LoadPath::kMgmtPf);
  if (!result.ok()) {
    PrintDriverFailure(*card, result, "Failed to download xclbin");
    return 1;
  }
  std::cout << "INFO: Successfully downloaded xclbin\n";
  return 0;
}

int Reset(const fs::path& root, const Args& args) {
  std::string type = args.values.count("type") ? args.values.at("type") : "hot";
  const std::vector<std::string> known = {"hot", "kernel", "ert", "ecc", "soft-kernel", "aie"};
  if (std::find(known.begin(), known.end(), type) == known.end()) {
    return Error("reset not supported");
  }
  if (type != "hot") return Error(fmt::format("'{}' reset is not emulated; use 'hot'", type));
  int status = 1;
  std::optional<EmulatedCard> card = FindDevice(root, args, status);
  if (!card) return status;
  std::cout << "Performing 'HOT Reset' on \n  -[" << card->mgmt_bdf() << "]\n";
  std::cout << "Are you sure you wish to proceed? [Y/n]: ";
  std::string answer;
  if (args.force) {
    std::cout << "Y (Force override)" << std::endl;
  } else {
    std::cout.flush();
    if (!std::getline(std::cin, answer)) std::cout << "\n";  // no input: the default, yes
  }
  if (!answer.empty() && answer != "y" && answer != "Y") {
    std::cout << "Action canceled.\n";
    return 1;
  }
  DriverResult result = card->Reset();
  if (!result.ok()) {
    PrintDriverFailure(*card, result, "Failed to reset device");
    return 1;
  }
  std::cout << "Successfully reset Device[" << card->mgmt_bdf() << "]\n";
  return 0;
}

Json DeviceReport(const fs::path& root, const CardInfo& info) {
  Json report = {{"bdf", info.mgmt_bdf},
                 {"vbnv", info.vbnv.value_or("")},
                 {"interface_uuid", info.interface_uuid.value_or("")},
                 {"serial_number", info.serial.value_or("")},
                 {"user_pf", info.user_bdf},
                 {"user_pf_driver", info.user_driver}};
  if (info.temperature_c) report["fpga_temperature_c"] = *info.temperature_c;
  if (info.power_w) report["power_w"] = *info.power_w;
  // The emulated card's own view (no real xbmgmt report shows these).
  if (StatusOr<CardState> state = ReadCardState(root, info.mgmt_bdf); state.ok()) {
    report["xclbin_uuid"] = state->xclbin_uuid == kNilUuid ? "" : state->xclbin_uuid;
    Json faults = Json::object();
    if (state->faults.load_fail > 0) faults["load_fail"] = state->faults.load_fail;
    if (state->faults.load_timeout) faults["load_timeout"] = true;
    if (state->faults.load_ms) faults["load_ms"] = *state->faults.load_ms;
    report["injected_faults"] = faults;
  }
  return report;
}

int Examine(const fs::path& root, const Args& args) {
  RealSysfs sysfs(root);
  StatusOr<std::vector<CardInfo>> cards = SysfsDeviceScanner(sysfs).Scan();
  if (!cards.ok()) return Error(std::string(cards.status().message()));
  Json devices = Json::array();
  std::optional<std::string> only;
  if (args.values.count("device")) {
    int status = 1;
    std::optional<EmulatedCard> card = FindDevice(root, args, status);
    if (!card) return status;
    only = card->mgmt_bdf();
  }
  for (const CardInfo& info : *cards) {
    if (info.mgmt_driver != "xclmgmt" || (only && info.mgmt_bdf != *only)) continue;
    devices.push_back(DeviceReport(root, info));
  }

  auto format = args.values.find("format");
  if (format != args.values.end()) {
    if (format->second != "JSON" && format->second != "json") {
      return Error(fmt::format("Unsupported format '{}'; only JSON is", format->second));
    }
    std::string text = Json{{"devices", devices}}.dump(2) + "\n";
    auto output = args.values.find("output");
    if (output == args.values.end()) {
      std::cout << text;
      return 0;
    }
    std::error_code ec;
    if (fs::exists(output->second, ec) && !args.force) {
      return Error(
          fmt::format("The output file '{}' already exists. Please either remove it or "
                      "execute this command again with the '--force' option to "
                      "overwrite it.",
                      output->second));
    }
    if (Status s = WriteFileAtomically(output->second, text); !s.ok()) {
      return Error(std::string(s.message()));
    }
    std::cout << "Successfully wrote the JSON file: " << output->second << "\n";
    return 0;
  }

  if (!only) {
    std::cout << "Devices present\n";
    for (const Json& d : devices) {
      std::cout << fmt::format("  [{}] : {}\n", d["bdf"].get<std::string>(),
                               d["vbnv"].get<std::string>());
    }
    if (devices.empty()) std::cout << "  0 devices found\n";
    return 0;
  }
  const Json& d = devices.at(0);
  auto field = [&](const char* key) -> std::string {
    if (!d.contains(key)) return "N/A";
    if (!d[key].is_string()) return d[key].dump();
    std::string text = d[key].get<std::string>();
    return text.empty() ? "N/A" : text;
  };
  std::string rule(52, '-');
  std::cout << rule << "\n"
            << fmt::format("[{}] : {}\n", field("bdf"), field("vbnv")) << rule << "\n"
            << "Platform\n"
            << fmt::format("  {:<22} : {}\n", "Interface UUID", field("interface_uuid"))
            << fmt::format("  {:<22} : {}\n", "Serial Number", field("serial_number"))
            << fmt::format("  {:<22} : {}\n", "FPGA Temperature (C)", field("fpga_temperature_c"))
            << fmt::format("  {:<22} : {}\n", "Power (W)", field("power_w"))
            << fmt::format("  {:<22} : {} ({})\n", "User PF", field("user_pf"),
                           field("user_pf_driver"))
            << "Emulated card\n"
            << fmt::format("  {:<22} : {}\n", "Xclbin UUID",
                           field("xclbin_uuid") == "N/A" ? "none (cleared)" : field("xclbin_uuid"))
            << fmt::format("  {:<22} : {}\n", "Injected faults",
                           d.contains("injected_faults") && !d["injected_faults"].empty()
                               ? d["injected_faults"].dump()
                               : "none");
  return 0;
}

int Main(int argc, char** argv) {
  std::string error;
  std::optional<Args> args = Parse(argc, argv, error);
  if (!args) {
    std::cerr << error << "\n\n" << kUsage;
    return 1;
  }
  if (args->version) {
    std::cout << "xbmgmt (emulated by fpgahost for its emulated fleet)\n";
    return 0;
  }
  if (args->help || args->command.empty()) {
    std::cout << kUsage;
    return 0;
  }
  fs::path root = SysfsRoot();
  if (!IsEmulatedFleet(root)) {
    return Error(
        fmt::format("{} holds no emulated fleet; this xbmgmt drives emulated cards only "
                    "(set FPGAHOST_SYSFS_ROOT)",
                    root.string()));
  }
  if (args->command == "program") return Program(root, *args);
  if (args->command == "reset") return Reset(root, *args);
  if (args->command == "examine") return Examine(root, *args);
  std::cerr << "ERROR: Unknown command: '" << args->command << "'\n\n" << kUsage;
  return 1;
}

}  // namespace
}  // namespace fpgahost::fpga::emu

int main(int argc, char** argv) {
  try {
    return fpgahost::fpga::emu::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 1;
  }
}
