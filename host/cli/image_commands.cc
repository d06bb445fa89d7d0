// image upload|list|describe|delete|share|unshare: the customer's view of /v1/images.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "host/cli/command.h"

namespace fpgahost::cli {
namespace {

void AddImageId(po::options_description& options, po::positional_options_description& pos) {
  options.add_options()("image", po::value<std::string>()->required(), "image id (img-...)");
  pos.add("image", 1);
}

// Polls until the image leaves `pending`; a failed image is an error carrying its reason.
StatusOr<Json> WaitForImage(CliContext& ctx, const std::string& id) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
  while (true) {
    ASSIGN_OR_RETURN(Json image, ctx.Call("GET", "/v1/images/" + PercentEncode(id)));
    std::string state = image.value("state", "");
    if (state != "pending") return image;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError(fmt::format("image {} is still pending", id));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status FailedImageError(const Json& image) {
  const Json& e = image["error"];
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("image {} failed validation: {}", image.value("id", ""),
                            e.is_object() ? e.value("message", "") : ""),
                e.is_object() ? e.value("code", "IMAGE_FAILED") : "IMAGE_FAILED");
}

class ImageUploadCommand : public Command {
 public:
  std::string_view name() const override { return "image upload"; }
  std::string_view summary() const override { return "upload an xclbin as a new image"; }
  void DefineOptions(po::options_description& options,
                     po::positional_options_description& pos) override {
    options.add_options()("file", po::value<std::string>()->required(), "xclbin file")(
        "name", po::value<std::string>(), "image name (default: the file name)")(
        "description", po::value<std::string>()->default_value(""), "description")(
        "wait", "wait until validation finished; exit 1 if the image failed");
    pos.add("file", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string file = vm["file"].as<std::string>();
    std::string name = vm.count("name") != 0u ? vm["name"].as<std::string>()
                                              : std::filesystem::path(file).filename().string();
    std::string target = fmt::format("/v1/images?name={}&description={}", PercentEncode(name),
                                     PercentEncode(vm["description"].as<std::string>()));
    ASSIGN_OR_RETURN(Json image, ctx.Upload(target, file));
    if (vm.count("wait") != 0u) {
      ASSIGN_OR_RETURN(image, WaitForImage(ctx, image.value("id", "")));
      PrintObject(ctx, image);
      if (image.value("state", "") == "failed") return FailedImageError(image);
      return Status::Ok();
    }
    PrintObject(ctx, image);
    return Status::Ok();
  }
};

class ImageListCommand : public Command {
 public:
  std::string_view name() const override { return "image list"; }
  std::string_view summary() const override {
    return "list images: your own, shared with you, and public ones";
  }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json list, ctx.Call("GET", "/v1/images"));
    PrintTable(ctx, list["images"], {"id", "name", "state", "owner", "shell", "mode", "size"});
    return Status::Ok();
  }
};

class ImageDescribeCommand : public Command {
 public:
  std::string_view name() const override { return "image describe"; }
  std::string_view summary() const override { return "show one image"; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddImageId(o, p);
    o.add_options()("wait", "wait while the image is pending");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["image"].as<std::string>();
    Json image;
    if (vm.count("wait") != 0u) {
      ASSIGN_OR_RETURN(image, WaitForImage(ctx, id));
    } else {
      ASSIGN_OR_RETURN(image, ctx.Call("GET", "/v1/images/" + PercentEncode(id)));
    }
    PrintObject(ctx, image);
    return Status::Ok();
  }
};

class ImageDeleteCommand : public Command {
 public:
  std::string_view name() const override { return "image delete"; }
  std::string_view summary() const override { return "delete one of your images"; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddImageId(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(
        Json image,
        ctx.Call("DELETE", "/v1/images/" + PercentEncode(vm["image"].as<std::string>())));
    PrintObject(ctx, Json{{"id", image["id"]}, {"state", image["state"]}});
    return Status::Ok();
  }
};

// share and unshare: read the permissions, change them, write them back.
class ImagePermissionCommand : public Command {
 public:
  explicit ImagePermissionCommand(bool share) : share_(share) {}
  std::string_view name() const override { return share_ ? "image share" : "image unshare"; }
  std::string_view summary() const override {
    return share_ ? "let a tenant (or everyone) load your image"
                  : "stop sharing your image with a tenant (or everyone)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddImageId(o, p);
    o.add_options()("tenant", po::value<std::vector<std::string>>(), "tenant; repeat for more")(
        "public", share_ ? "share with every tenant" : "stop sharing with every tenant");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::vector<std::string> tenants;
    if (vm.count("tenant") != 0u) tenants = vm["tenant"].as<std::vector<std::string>>();
    bool everyone = vm.count("public") != 0u;
    if (tenants.empty() && !everyone) {
      return InvalidArgumentError("give --tenant T (repeatable) or --public", "USAGE");
    }
    std::string target =
        "/v1/images/" + PercentEncode(vm["image"].as<std::string>()) + "/permissions";
    ASSIGN_OR_RETURN(Json perms, ctx.Call("GET", target));
    std::vector<std::string> now = perms.value("tenants", std::vector<std::string>());
    for (const std::string& t : tenants) {
      auto it = std::find(now.begin(), now.end(), t);
      if (share_ && it == now.end()) now.push_back(t);
      if (!share_ && it != now.end()) now.erase(it);
    }
    Json body = {{"public", everyone ? share_ : perms.value("public", false)}, {"tenants", now}};
    ASSIGN_OR_RETURN(Json result, ctx.Call("PUT", target, &body));
    PrintObject(ctx, result);
    return Status::Ok();
  }

 private:
  bool share_;
};

}  // namespace

void AddImageCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<ImageUploadCommand>());
  out.push_back(std::make_unique<ImageListCommand>());
  out.push_back(std::make_unique<ImageDescribeCommand>());
  out.push_back(std::make_unique<ImageDeleteCommand>());
  out.push_back(std::make_unique<ImagePermissionCommand>(true));
  out.push_back(std::make_unique<ImagePermissionCommand>(false));
}

}  // namespace fpgahost::cli
