// credentials create|list|delete: the tenant's AWS-style access keys (/v1/credentials), with
// which the AWS CLI and SDKs call fpgahostd's Lambda-compatible API (--endpoint-url).
#include <fmt/format.h>

#include "host/cli/command.h"

namespace fpgahost::cli {
namespace {

// What the AWS CLI should put in its credential scope. AWS_DEFAULT_REGION must match the
// daemon's `lambda-region` only for the ARNs to read alike (the signature accepts any
// region); until an API reports that setting (looked for in /v1/version as
// "lambda_region"), its default is printed.
constexpr std::string_view kDefaultLambdaRegion = "us-east-1";

std::string LambdaRegion(CliContext& ctx) {
  StatusOr<Json> version = ctx.Call("GET", "/v1/version", nullptr, /*needs_token=*/false);
  if (version.ok() && version->is_object() && version->contains("lambda_region") &&
      (*version)["lambda_region"].is_string()) {
    return (*version)["lambda_region"].get<std::string>();
  }
  return std::string(kDefaultLambdaRegion);
}

std::string Str(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

class CredentialsCreateCommand : public Command {
 public:
  std::string_view name() const override { return "credentials create"; }
  std::string_view summary() const override {
    return "create an access key for the AWS CLI and SDKs (the secret is shown once)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description&) override {
    o.add_options()("description", po::value<std::string>(), "what the key is for");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    Json body = Json::object();
    if (vm.count("description") != 0u) body["description"] = vm["description"].as<std::string>();
    ASSIGN_OR_RETURN(Json key, ctx.Call("POST", "/v1/credentials", &body));
    if (ctx.output() == OutputFormat::kJson) {
      PrintObject(ctx, key);
      return Status::Ok();
    }
    std::string id = Str(key, "access_key_id"), secret = Str(key, "secret_access_key");
    ctx.out() << fmt::format(
        "access key id      {}\n"
        "secret access key  {}\n"
        "tenant             {}\n"
        "(the secret is shown only now; keep it where only you can read it)\n"
        "\n"
        "For the AWS CLI (aws lambda ... --endpoint-url <fpgahostd endpoint>):\n"
        "AWS_ACCESS_KEY_ID={}\n"
        "AWS_SECRET_ACCESS_KEY={}\n"
        "AWS_DEFAULT_REGION={}\n",
        id, secret, Str(key, "tenant"), id, secret, LambdaRegion(ctx));
    return Status::Ok();
  }
};

class CredentialsListCommand : public Command {
 public:
  std::string_view name() const override { return "credentials list"; }
  std::string_view summary() const override { return "list your access keys (no secrets)"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", "/v1/credentials"));
    PrintTable(ctx, res["credentials"], {"access_key_id", "description", "created_at"});
    return Status::Ok();
  }
};

class CredentialsDeleteCommand : public Command {
 public:
  std::string_view name() const override { return "credentials delete"; }
  std::string_view summary() const override { return "delete one of your access keys"; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("key", po::value<std::string>()->required(), "access key id (AKIA...)");
    p.add("key", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["key"].as<std::string>();
    RETURN_IF_ERROR(ctx.Call("DELETE", "/v1/credentials/" + PercentEncode(id)).status());
    if (ctx.output() == OutputFormat::kJson) {
      PrintObject(ctx, Json{{"access_key_id", id}, {"deleted", true}});
    } else {
      ctx.out() << fmt::format("deleted {}\n", id);
    }
    return Status::Ok();
  }
};

}  // namespace

void AddCredentialCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<CredentialsCreateCommand>());
  out.push_back(std::make_unique<CredentialsListCommand>());
  out.push_back(std::make_unique<CredentialsDeleteCommand>());
}

}  // namespace fpgahost::cli
