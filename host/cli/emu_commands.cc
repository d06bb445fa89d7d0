// emu init: writes the emulated fleet's sysfs tree (offline, no daemon), then scans it with
// the same discovery code fpgahostd uses on /sys and shows what it found.
#include <fmt/format.h>

#include "fpga/discovery.h"
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
        "shells", po::value<std::string>(), "shell catalogue JSON (default: built-in)");
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
    RETURN_IF_ERROR(fpga::emu::CreateEmulatedFleet(dir, vm["cards"].as<int>(), catalogue, shell));
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

}  // namespace

void AddEmuCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<EmuInitCommand>());
}

}  // namespace fpgahost::cli
