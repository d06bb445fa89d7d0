// instance create|list|describe|stop|start|terminate|types and slot load|clear|describe: the
// customer's view of /v1/instances and the FPGA slots in them. Slot output follows AWS F1's
// fpga-load-local-image / fpga-clear-local-image / fpga-describe-local-image; the layouts
// live in instance_format.h.
#include <fmt/format.h>

#include <cctype>
#include <chrono>
#include <thread>

#include "host/cli/command.h"
#include "host/cli/instance_format.h"

namespace fpgahost::cli {
namespace {

constexpr auto kWaitLimit = std::chrono::minutes(30);
constexpr auto kPollInterval = std::chrono::milliseconds(250);
// How long one GET ?wait= may wait in the daemon (below the client's 30 s request timeout).
constexpr auto kServerWait = std::chrono::seconds(20);

std::string InstancePath(const std::string& id) { return "/v1/instances/" + PercentEncode(id); }

std::string SlotPath(const std::string& id, int slot) {
  return fmt::format("{}/slots/{}", InstancePath(id), slot);
}

void AddInstanceId(po::options_description& o, po::positional_options_description& p) {
  o.add_options()("instance", po::value<std::string>()->required(),
                  "instance id (i-0123456789abcdef0)");
  p.add("instance", 1);
}

void AddWait(po::options_description& o, const char* what) { o.add_options()("wait", what); }

// Reads a member of the daemon's answer without throwing on a surprising shape.
const Json& Get(const Json& j, const char* key) {
  static const Json kNull = nullptr;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Str(const Json& j, const char* key) {
  const Json& v = Get(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

void Print(CliContext& ctx, const Json& json, const std::string& text) {
  if (ctx.output() == OutputFormat::kJson) {
    ctx.out() << json.dump(2) << "\n";
  } else {
    ctx.out() << text;
  }
}

// Waits until the instance leaves pending, stopping or terminating: the daemon answers
// GET ?wait=N when it does (or after N seconds, and the CLI asks again).
StatusOr<Json> WaitForInstance(CliContext& ctx, const std::string& id, Json last) {
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (true) {
    StatusOr<Json> instance =
        ctx.Call("GET", InstancePath(id) + fmt::format("?wait={}", kServerWait.count()));
    // A terminated instance the daemon has already forgotten is as terminated as it gets.
    if (!instance.ok() && instance.status().code() == StatusCode::kNotFound &&
        Str(last, "state") == "terminating") {
      last["state"] = "terminated";
      return last;
    }
    if (!instance.ok()) return instance.status();
    last = *std::move(instance);
    if (!InstanceIsTransitional(Str(last, "state"))) return last;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError(fmt::format("instance {} is still {}", id, Str(last, "state")));
    }
    // A daemon without ?wait answers at once: do not spin on it.
    std::this_thread::sleep_for(kPollInterval);
  }
}

// Polls the slot until its load or clear is over.
StatusOr<Json> WaitForSlot(CliContext& ctx, const std::string& id, int slot) {
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (true) {
    ASSIGN_OR_RETURN(Json s, ctx.Call("GET", SlotPath(id, slot)));
    if (!SlotIsBusy(s)) return s;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError(
          fmt::format("slot {} of {} is still {}", slot, id, Str(s, "state")));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

class InstanceCreateCommand : public Command {
 public:
  std::string_view name() const override { return "instance create"; }
  std::string_view summary() const override {
    return "launch an instance of a type (see instance types)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description&) override {
    o.add_options()("type", po::value<std::string>()->required(), "instance type (fpga.small)")(
        "name", po::value<std::string>(), "a name for the instance");
    AddWait(o, "wait until the instance left pending; exit 1 if it failed");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    Json body = {{"type", vm["type"].as<std::string>()}};
    if (vm.count("name") != 0u) body["name"] = vm["name"].as<std::string>();
    ASSIGN_OR_RETURN(Json instance, ctx.Call("POST", "/v1/instances", &body));
    if (vm.count("wait") == 0u) {
      Print(ctx, instance, FormatInstance(instance));
      return Status::Ok();
    }
    std::string id = Str(instance, "id");
    if (id.empty()) return InternalError("the daemon's answer names no instance id");
    ASSIGN_OR_RETURN(instance, WaitForInstance(ctx, id, instance));
    Print(ctx, instance, FormatInstance(instance));
    return InstanceOutcome(instance, "running");
  }
};

class InstanceListCommand : public Command {
 public:
  std::string_view name() const override { return "instance list"; }
  std::string_view summary() const override { return "list your instances"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", "/v1/instances"));
    Print(ctx, res, FormatInstanceList(Get(res, "instances")));
    return Status::Ok();
  }
};

class InstanceDescribeCommand : public Command {
 public:
  std::string_view name() const override { return "instance describe"; }
  std::string_view summary() const override { return "show an instance and its FPGA slots"; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddInstanceId(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(Json instance,
                     ctx.Call("GET", InstancePath(vm["instance"].as<std::string>())));
    Print(ctx, instance, FormatInstance(instance));
    return Status::Ok();
  }
};

// stop, start, terminate: ask for the change, optionally wait for it.
class InstanceActionCommand : public Command {
 public:
  InstanceActionCommand(std::string verb, std::string expected, std::string summary)
      : name_("instance " + verb),
        verb_(std::move(verb)),
        expected_(std::move(expected)),
        summary_(std::move(summary)) {}
  std::string_view name() const override { return name_; }
  std::string_view summary() const override { return summary_; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddInstanceId(o, p);
    std::string help = fmt::format("wait until the instance is {}; exit 1 if it is not", expected_);
    AddWait(o, help.c_str());
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["instance"].as<std::string>();
    Json instance;
    if (verb_ == "terminate") {
      ASSIGN_OR_RETURN(instance, ctx.Call("DELETE", InstancePath(id)));
    } else {
      ASSIGN_OR_RETURN(instance, ctx.Call("POST", fmt::format("{}/{}", InstancePath(id), verb_)));
    }
    bool wait = vm.count("wait") != 0u;
    if (wait) {
      ASSIGN_OR_RETURN(instance, WaitForInstance(ctx, id, instance));
    }
    Print(ctx, instance, fmt::format("{}: {}\n", id, Str(instance, "state")));
    return wait ? InstanceOutcome(instance, expected_) : Status::Ok();
  }

 private:
  std::string name_, verb_, expected_, summary_;
};

class InstanceTypesCommand : public Command {
 public:
  std::string_view name() const override { return "instance types"; }
  std::string_view summary() const override {
    return "list the instance types: vCPUs, memory, FPGAs";
  }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", "/v1/instance-types"));
    Print(ctx, res, FormatInstanceTypes(Get(res, "instance_types")));
    return Status::Ok();
  }
};

void AddSlotArgs(po::options_description& o, po::positional_options_description& p,
                 bool slot_required) {
  AddInstanceId(o, p);
  auto* slot = po::value<std::string>();
  if (slot_required) slot->required();
  o.add_options()("slot", slot, "FPGA slot number (0, 1, ...)");
  p.add("slot", 1);
}

// load and clear: start the operation, optionally wait for it, print the slot the way F1's
// fpga-load-local-image does.
class SlotOperationCommand : public Command {
 public:
  explicit SlotOperationCommand(bool load) : load_(load) {}
  std::string_view name() const override { return load_ ? "slot load" : "slot clear"; }
  std::string_view summary() const override {
    return load_ ? "load an image into an instance's FPGA slot (like fpga-load-local-image)"
                 : "clear an instance's FPGA slot (like fpga-clear-local-image)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddSlotArgs(o, p, true);
    if (load_) {
      o.add_options()("image", po::value<std::string>()->required(), "image id (img-...)");
      p.add("image", 1);
    }
    AddWait(o, load_ ? "wait until the load finished; exit 1 if it failed"
                     : "wait until the slot is cleared; exit 1 if it is not");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["instance"].as<std::string>();
    ASSIGN_OR_RETURN(int n, ParseSlotNumber(vm["slot"].as<std::string>()));
    std::string target = SlotPath(id, n) + "/image";
    Json slot;
    if (load_) {
      std::string image = vm["image"].as<std::string>();
      if (image.empty()) return InvalidArgumentError("the image id is empty", "USAGE");
      Json body = {{"image_id", image}};
      ASSIGN_OR_RETURN(slot, ctx.Call("PUT", target, &body));
    } else {
      ASSIGN_OR_RETURN(slot, ctx.Call("DELETE", target));
    }
    bool wait = vm.count("wait") != 0u;
    if (wait) {
      ASSIGN_OR_RETURN(slot, WaitForSlot(ctx, id, n));
    }
    Print(ctx, slot, FormatSlot(slot));
    return wait ? SlotOutcome(slot, id, load_) : Status::Ok();
  }

 private:
  bool load_;
};

class SlotDescribeCommand : public Command {
 public:
  std::string_view name() const override { return "slot describe"; }
  std::string_view summary() const override {
    return "show an instance's FPGA slots, or one (like fpga-describe-local-image)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddSlotArgs(o, p, false);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["instance"].as<std::string>();
    if (vm.count("slot") == 0u) {
      ASSIGN_OR_RETURN(Json res, ctx.Call("GET", InstancePath(id) + "/slots"));
      Print(ctx, res, FormatSlots(Get(res, "slots")));
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(int n, ParseSlotNumber(vm["slot"].as<std::string>()));
    ASSIGN_OR_RETURN(Json slot, ctx.Call("GET", SlotPath(id, n)));
    Print(ctx, slot, FormatSlot(slot));
    return Status::Ok();
  }
};

}  // namespace

void AddInstanceCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<InstanceCreateCommand>());
  out.push_back(std::make_unique<InstanceListCommand>());
  out.push_back(std::make_unique<InstanceDescribeCommand>());
  out.push_back(
      std::make_unique<InstanceActionCommand>("stop", "stopped", "stop a running instance"));
  out.push_back(
      std::make_unique<InstanceActionCommand>("start", "running", "start a stopped instance"));
  out.push_back(std::make_unique<InstanceActionCommand>(
      "terminate", "terminated", "terminate an instance and release its FPGAs"));
  out.push_back(std::make_unique<InstanceTypesCommand>());
  out.push_back(std::make_unique<SlotOperationCommand>(true));
  out.push_back(std::make_unique<SlotOperationCommand>(false));
  out.push_back(std::make_unique<SlotDescribeCommand>());
}

}  // namespace fpgahost::cli
