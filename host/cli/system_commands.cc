// health, version, whoami, tenant create|list.
#include "host/cli/command.h"

namespace fpgahost::cli {
namespace {

class HealthCommand : public Command {
 public:
  std::string_view name() const override { return "health"; }
  std::string_view summary() const override { return "check that fpgahostd answers"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json health, ctx.Call("GET", "/v1/health", nullptr, false));
    PrintObject(ctx, health);
    return Status::Ok();
  }
};

class VersionCommand : public Command {
 public:
  std::string_view name() const override { return "version"; }
  std::string_view summary() const override { return "show the daemon's version"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json version, ctx.Call("GET", "/v1/version", nullptr, false));
    PrintObject(ctx, version);
    return Status::Ok();
  }
};

class WhoamiCommand : public Command {
 public:
  std::string_view name() const override { return "whoami"; }
  std::string_view summary() const override { return "show the tenant and role of the token"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json who, ctx.Call("GET", "/v1/whoami"));
    PrintObject(ctx, who);
    return Status::Ok();
  }
};

class TenantCreateCommand : public Command {
 public:
  std::string_view name() const override { return "tenant create"; }
  std::string_view summary() const override {
    return "create a tenant and print its first token (operator)";
  }
  void DefineOptions(po::options_description& options,
                     po::positional_options_description& positional) override {
    options.add_options()("name", po::value<std::string>()->required(), "tenant name");
    positional.add("name", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    Json body = {{"name", vm["name"].as<std::string>()}};
    ASSIGN_OR_RETURN(Json created, ctx.Call("POST", "/v1/tenants", &body));
    if (ctx.output() == OutputFormat::kJson) {
      PrintObject(ctx, created);
    } else {
      ctx.out() << "tenant  " << created["tenant"].get<std::string>() << "\n"
                << "token   " << created["token"]["secret"].get<std::string>() << "\n"
                << "(the token is shown only now; keep it in a file only you can read)\n";
    }
    return Status::Ok();
  }
};

class TenantListCommand : public Command {
 public:
  std::string_view name() const override { return "tenant list"; }
  std::string_view summary() const override { return "list tenants (operator)"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json list, ctx.Call("GET", "/v1/tenants"));
    PrintTable(ctx, list["tenants"], {"name", "created_at"});
    return Status::Ok();
  }
};

}  // namespace

void AddSystemCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<HealthCommand>());
  out.push_back(std::make_unique<VersionCommand>());
  out.push_back(std::make_unique<WhoamiCommand>());
  out.push_back(std::make_unique<TenantCreateCommand>());
  out.push_back(std::make_unique<TenantListCommand>());
}

}  // namespace fpgahost::cli
