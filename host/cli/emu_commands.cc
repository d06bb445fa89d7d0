// emu init: writes the emulated fleet's sysfs tree (offline, no daemon), then scans it with
// the same discovery code fpgahostd uses on /sys and shows what it found.
// emu fault: injects a fault into one card of an emulated fleet (fpga/emu/faults.h); a running
// fpgahostd sees it at its next scan or load.
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <optional>

#include "fpga/discovery.h"
#include "fpga/emu/faults.h"
#include "fpga/emu/sysfs_tree.h"
#include "host/cli/command.h"
#include "host/images/default_shells.h"

namespace fpgahost::cli {
namespace {

class EmuInitCommand : public Command {
 public:
  std::string_view name() const override { return "emu init"; }
  std::string_view summary() const override {
    return "create an emulated fleet of FPGA cards (a sysfs tree) in a directory";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("dir", po::value<std::string>()->required(), "directory for the tree")(
        "cards", po::value<int>()->default_value(4), "number of cards (1-64)")(
        "shell", po::value<std::string>(), "shell name from the catalogue (default: the first)")(
        "shells", po::value<std::string>(), "shell catalogue JSON (default: built-in)")(
        "load-ms", po::value<int>()->default_value(fpga::emu::kDefaultLoadMs),
        "how long a load takes, in milliseconds (0-600000)");
    p.add("dir", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    images::ShellCatalogue catalogue;
    if (vm.count("shells") != 0u) {
      ASSIGN_OR_RETURN(catalogue, images::LoadShellCatalogue(vm["shells"].as<std::string>()));
    } else {
      ASSIGN_OR_RETURN(catalogue, images::ParseShellCatalogue(DefaultShellCatalogueJson(),
                                                              "built-in shell catalogue"));
    }
    std::string shell =
        vm.count("shell") != 0u ? vm["shell"].as<std::string>() : catalogue.shells().front().name;
    std::string dir = vm["dir"].as<std::string>();
    RETURN_IF_ERROR(fpga::emu::CreateEmulatedFleet(dir, vm["cards"].as<int>(), catalogue, shell,
                                                   vm["load-ms"].as<int>()));
    fpga::RealSysfs sysfs(dir);
    ASSIGN_OR_RETURN(std::vector<fpga::CardInfo> cards, fpga::SysfsDeviceScanner(sysfs).Scan());
    Json rows = Json::array();
    for (const auto& c : cards) {
      rows.push_back({{"id", c.id},
                      {"mgmt_bdf", c.mgmt_bdf},
                      {"user_bdf", c.user_bdf},
                      {"vbnv", c.vbnv.value_or("-")},
                      {"serial", c.serial.value_or("-")},
                      {"problems", c.problems.size()}});
    }
    if (ctx.output() == OutputFormat::kTable) {
      ctx.out() << fmt::format("emulated fleet of {} cards ({}) in {}\n", cards.size(), shell, dir);
    }
    PrintTable(ctx, rows, {"id", "mgmt_bdf", "user_bdf", "vbnv", "serial", "problems"});
    return Status::Ok();
  }
};

class EmuFaultCommand : public Command {
 public:
  std::string_view name() const override { return "emu fault"; }
  std::string_view summary() const override {
    return "inject a fault into a card of an emulated fleet (load-fail [N], load-timeout, "
           "slow-load MS, overheat [C], power [W], remove, clear)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("dir", po::value<std::string>()->required(), "the emulated fleet's directory")(
        "card", po::value<std::string>()->required(),
        "card id (card-0000-10-00-0) or the BDF of either PF")(
        "kind", po::value<std::string>()->required(),
        "load-fail | load-timeout | slow-load | overheat | power | remove | clear")(
        "value", po::value<std::string>(),
        "load-fail: loads to fail (1); slow-load: ms; overheat: C (105); power: W (300)");
    p.add("dir", 1).add("card", 1).add("kind", 1).add("value", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(fpga::emu::FaultKind kind,
                     fpga::emu::ParseFaultKind(vm["kind"].as<std::string>()));
    std::optional<double> value;
    if (vm.count("value") != 0u) {
      const std::string& text = vm["value"].as<std::string>();
      double v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
        return InvalidArgumentError(fmt::format("value: '{}' is not a number", text));
      }
      value = v;
    }
    const std::string& card = vm["card"].as<std::string>();
    ASSIGN_OR_RETURN(std::string done,
                     fpga::emu::InjectFault(vm["dir"].as<std::string>(), card, kind, value));
    if (ctx.output() == OutputFormat::kJson) {
      Json result = {{"card", card}, {"fault", fpga::emu::FaultKindName(kind)}, {"result", done}};
      if (value) result["value"] = *value;
      PrintObject(ctx, result);
    } else {
      ctx.out() << done << "\n";
    }
    return Status::Ok();
  }
};

}  // namespace

void AddEmuCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<EmuInitCommand>());
  out.push_back(std::make_unique<EmuFaultCommand>());
}

}  // namespace fpgahost::cli
