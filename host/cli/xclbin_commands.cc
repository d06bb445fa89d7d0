// xclbin inspect|validate: offline, no daemon. validate runs the same validator that
// fpgahostd runs on uploads.
#include <fmt/format.h>

#include "common/files.h"
#include "host/cli/command.h"
#include "host/images/default_shells.h"
#include "images/xclbin_file.h"
#include "images/xclbin_report.h"
#include "images/xclbin_validator.h"

namespace fpgahost::cli {
namespace {

void AddFile(po::options_description& o, po::positional_options_description& p) {
  o.add_options()("file", po::value<std::string>()->required(), "xclbin file")(
      "json", "print JSON (same as --output json)");
  p.add("file", 1);
}

bool WantJson(CliContext& ctx, const po::variables_map& vm) {
  return ctx.output() == OutputFormat::kJson || vm.count("json") != 0u;
}

class XclbinInspectCommand : public Command {
 public:
  std::string_view name() const override { return "xclbin inspect"; }
  std::string_view summary() const override {
    return "show what an xclbin holds (like xclbinutil --info)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFile(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string path = vm["file"].as<std::string>();
    ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
    StatusOr<images::Xclbin> x = images::ParseXclbin(file.bytes());
    if (!x.ok()) return x.status().WithContext(path);
    if (WantJson(ctx, vm)) {
      ctx.out() << images::XclbinToJson(*x).dump(2) << "\n";
    } else {
      ctx.out() << images::XclbinToText(*x);
    }
    return Status::Ok();
  }
};

class XclbinValidateCommand : public Command {
 public:
  std::string_view name() const override { return "xclbin validate"; }
  std::string_view summary() const override {
    return "check an xclbin as fpgahostd would before accepting it";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFile(o, p);
    o.add_options()("cert", po::value<std::vector<std::string>>(),
                    "trusted signing certificate (PEM or DER); repeat for more")(
        "policy", po::value<std::string>()->default_value("warn"),
        "signature policy: none, warn or require")("shells", po::value<std::string>(),
                                                   "shell catalogue JSON (default: built-in)")(
        "modes", po::value<std::string>()->default_value("all"), "hardware, emulation or all");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    images::XclbinValidationOptions o;
    if (vm.count("shells") != 0u) {
      ASSIGN_OR_RETURN(o.shells, images::LoadShellCatalogue(vm["shells"].as<std::string>()));
    } else {
      ASSIGN_OR_RETURN(o.shells, images::ParseShellCatalogue(DefaultShellCatalogueJson(),
                                                             "built-in shell catalogue"));
    }
    auto policy = images::ParseSignaturePolicy(vm["policy"].as<std::string>());
    if (!policy) {
      return InvalidArgumentError(
          fmt::format("--policy '{}' is not none, warn or require", vm["policy"].as<std::string>()),
          "USAGE");
    }
    o.signature_policy = *policy;
    std::string modes = vm["modes"].as<std::string>();
    if (modes != "hardware" && modes != "emulation" && modes != "all") {
      return InvalidArgumentError(
          fmt::format("--modes '{}' is not hardware, emulation or all", modes), "USAGE");
    }
    o.allowed_modes.clear();
    if (modes != "emulation") o.allowed_modes = images::HardwareModes();
    if (modes != "hardware") {
      for (auto m : images::EmulationModes()) o.allowed_modes.push_back(m);
    }
    o.max_size = uint64_t{1} << 40;
    if (vm.count("cert") != 0u) {
      std::vector<std::filesystem::path> certs;
      for (const auto& c : vm["cert"].as<std::vector<std::string>>()) certs.emplace_back(c);
      ASSIGN_OR_RETURN(o.trusted_certs, images::TrustedCerts::Load(certs));
    }
    std::string path = vm["file"].as<std::string>();
    ASSIGN_OR_RETURN(images::XclbinFileResult file, images::ValidateXclbinFile(path, o));
    const StatusOr<images::ValidatedXclbin>& v = file.validated;
    if (!v.ok()) return v.status().WithContext(path);
    Json warnings = Json::array();
    for (const auto& w : v->warnings)
      warnings.push_back({{"code", w.code}, {"message", w.message}});
    Json result = {{"file", path},
                   {"valid", true},
                   {"shell", v->shell},
                   {"mode", images::XclbinModeName(v->xclbin.header.mode)},
                   {"xclbin_uuid", images::FormatUuid(v->xclbin.header.uuid)},
                   {"sha256", file.sha256},
                   {"size", file.size},
                   {"signature", std::string(images::SignatureStateName(v->signature))},
                   {"warnings", warnings}};
    if (v->signer) result["signer"] = v->signer->subject;
    if (WantJson(ctx, vm)) {
      ctx.out() << result.dump(2) << "\n";
      return Status::Ok();
    }
    ctx.out() << fmt::format("{}: valid for shell {} ({}), signature {}\n", path, v->shell,
                             result["mode"].get<std::string>(),
                             result["signature"].get<std::string>());
    for (const auto& w : v->warnings)
      ctx.out() << fmt::format("warning: {}: {}\n", w.code, w.message);
    return Status::Ok();
  }
};

}  // namespace

void AddXclbinCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<XclbinInspectCommand>());
  out.push_back(std::make_unique<XclbinValidateCommand>());
}

}  // namespace fpgahost::cli
