// xclbin inspect|validate|pack: offline, no daemon. validate runs the same validator that
// fpgahostd runs on uploads; pack builds xclbins for the emulated fleet from OpenCL C kernels.
#include <fmt/format.h>

#include <filesystem>

#include "common/files.h"
#include "host/cli/command.h"
#include "host/images/default_shells.h"
#include "host/version.h"
#include "images/xclbin_file.h"
#include "images/xclbin_report.h"
#include "images/xclbin_validator.h"
#include "images/xclbin_writer.h"

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

StatusOr<images::ShellCatalogue> LoadShells(const po::variables_map& vm) {
  if (vm.count("shells") != 0u) return images::LoadShellCatalogue(vm["shells"].as<std::string>());
  return images::ParseShellCatalogue(DefaultShellCatalogueJson(), "built-in shell catalogue");
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
    ASSIGN_OR_RETURN(o.shells, LoadShells(vm));
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

// fpgahost xclbin pack: OpenCL C kernels -> an xclbin the emulated fleet loads (see
// images/xclbin_writer.h for what goes into it). The result is checked with the validator (and
// the signature against the signing certificate) before it is written, so a file this writes
// always passes `fpgahost xclbin validate` for the same catalogue.
class XclbinPackCommand : public Command {
 public:
  std::string_view name() const override { return "xclbin pack"; }
  std::string_view summary() const override {
    return "build an emulation xclbin from OpenCL C kernels (like v++ -t sw_emu + xclbinutil)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description&) override {
    o.add_options()("shell", po::value<std::string>()->required(),
                    "target shell, by name in the catalogue (e.g. u250-gen3x16-xdma-4.1)")(
        "shells", po::value<std::string>(), "shell catalogue JSON (default: built-in)")(
        "kernel-source", po::value<std::vector<std::string>>()->required(),
        "OpenCL C file; repeat for more")(
        "out", po::value<std::string>()->required(),
        "xclbin to write (--output is the global table|json switch)")(
        "clock-mhz", po::value<uint32_t>(),
        "kernel clock (default: 300 MHz or the shell's KERNEL limit if lower)")(
        "memory-bank", po::value<std::string>(),
        "bank tag for the kernels' buffers (default: the shell's first DDR bank)")(
        "mode", po::value<std::string>()->default_value("sw_emu"), "sw_emu, hw_emu or hw_emu_pr")(
        "sign-key", po::value<std::string>(), "PEM private key: sign as xclbinutil does")(
        "sign-cert", po::value<std::string>(), "PEM or DER certificate of --sign-key")(
        "digest", po::value<std::string>()->default_value("sha512"), "signature digest")(
        "name", po::value<std::string>(), "design name (default: the first kernel's)")(
        "json", "print JSON (same as --output json)");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(images::ShellCatalogue shells, LoadShells(vm));
    const std::string shell_name = vm["shell"].as<std::string>();
    const images::ShellSpec* shell = shells.FindByName(shell_name);
    if (shell == nullptr) {
      std::string known;
      for (const auto& s : shells.shells()) known += (known.empty() ? "" : ", ") + s.name;
      return InvalidArgumentError(
          fmt::format("shell '{}' is not in the shell catalogue (known: {})", shell_name, known),
          images::kReasonPackInvalid);
    }
    images::EmulationPackOptions o;
    std::string mode = vm["mode"].as<std::string>();
    if (mode == "sw_emu") {
      o.mode = static_cast<uint16_t>(images::XclbinMode::kSwEmu);
    } else if (mode == "hw_emu") {
      o.mode = static_cast<uint16_t>(images::XclbinMode::kHwEmu);
    } else if (mode == "hw_emu_pr") {
      o.mode = static_cast<uint16_t>(images::XclbinMode::kHwEmuPr);
    } else {
      return InvalidArgumentError(
          fmt::format("--mode '{}' is not sw_emu, hw_emu or hw_emu_pr", mode), "USAGE");
    }
    if ((vm.count("sign-key") != 0u) != (vm.count("sign-cert") != 0u)) {
      return InvalidArgumentError("--sign-key and --sign-cert go together", "USAGE");
    }
    for (const std::string& path : vm["kernel-source"].as<std::vector<std::string>>()) {
      StatusOr<std::string> text = ReadFile(path);
      if (!text.ok()) return text.status().WithContext("--kernel-source");
      o.sources.push_back({std::filesystem::path(path).filename().string(), std::move(*text)});
    }
    if (vm.count("clock-mhz") != 0u) o.kernel_clock_mhz = vm["clock-mhz"].as<uint32_t>();
    if (vm.count("memory-bank") != 0u) o.memory_bank = vm["memory-bank"].as<std::string>();
    if (vm.count("name") != 0u) o.design = vm["name"].as<std::string>();
    o.generator_version = FPGAHOST_VERSION;
    ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, images::PackEmulationXclbin(*shell, o));

    images::XclbinValidationOptions check;
    check.shells = shells;
    check.allowed_modes = images::EmulationModes();
    check.signature_policy = images::SignaturePolicy::kNone;
    if (vm.count("sign-key") != 0u) {
      ASSIGN_OR_RETURN(std::string key, ReadFile(vm["sign-key"].as<std::string>()));
      ASSIGN_OR_RETURN(std::string cert, ReadFile(vm["sign-cert"].as<std::string>()));
      ASSIGN_OR_RETURN(
          bytes, images::SignXclbin(std::move(bytes), key, cert, vm["digest"].as<std::string>()));
      ASSIGN_OR_RETURN(check.trusted_certs, images::TrustedCerts::Parse(cert, "--sign-cert"));
      check.signature_policy = images::SignaturePolicy::kRequire;
    }
    StatusOr<images::ValidatedXclbin> v = images::ValidateXclbin(bytes, check);
    if (!v.ok()) return v.status().WithContext("the packed xclbin fails validation");

    const std::string output = vm["out"].as<std::string>();
    RETURN_IF_ERROR(WriteFileAtomically(
        output, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
    Json result = {{"file", output},
                   {"shell", v->shell},
                   {"mode", images::XclbinModeName(v->xclbin.header.mode)},
                   {"xclbin_uuid", images::FormatUuid(v->xclbin.header.uuid)},
                   {"kernels", v->xclbin.KernelNames()},
                   {"compute_units", v->xclbin.ComputeUnitNames()},
                   {"size", bytes.size()},
                   {"signature", std::string(images::SignatureStateName(v->signature))}};
    if (WantJson(ctx, vm)) {
      ctx.out() << result.dump(2) << "\n";
      return Status::Ok();
    }
    std::string kernels;
    for (const auto& k : v->xclbin.KernelNames()) kernels += (kernels.empty() ? "" : ", ") + k;
    ctx.out() << fmt::format(
        "{}: {} bytes, kernels {}, shell {} ({}), xclbin_uuid {}, {}\n", output, bytes.size(),
        kernels, v->shell, result["mode"].get<std::string>(),
        result["xclbin_uuid"].get<std::string>(), result["signature"].get<std::string>());
    return Status::Ok();
  }
};

}  // namespace

void AddXclbinCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<XclbinInspectCommand>());
  out.push_back(std::make_unique<XclbinValidateCommand>());
  out.push_back(std::make_unique<XclbinPackCommand>());
}

}  // namespace fpgahost::cli
