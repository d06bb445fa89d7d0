// card list|describe|drain|undrain|load|clear|reset|validate|rescan and events: the operator's
// view of /v1/cards and /v1/events.
#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "host/cli/command.h"

namespace fpgahost::cli {
namespace {

void AddCardId(po::options_description& options, po::positional_options_description& pos) {
  options.add_options()("card", po::value<std::string>()->required(),
                        "card id (card-0000-10-00-0)");
  pos.add("card", 1);
}

std::string Text(const Json& v, std::string_view fallback = "-") {
  if (v.is_null()) return std::string(fallback);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.1f}", v.get<double>());
  return v.dump();
}

const Json& At(const Json& j, std::initializer_list<const char*> path) {
  static const Json kNull = nullptr;
  const Json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object() || !cur->contains(key)) return kNull;
    cur = &(*cur)[key];
  }
  return *cur;
}

std::string ImageCell(const Json& card) {
  std::string state = Text(At(card, {"image", "state"}));
  const Json& id = At(card, {"image", "image_id"});
  const Json& uuid = At(card, {"image", "xclbin_uuid"});
  if (!id.is_null()) return state + " " + id.get<std::string>();
  if (!uuid.is_null() && state != "cleared") return state + " " + uuid.get<std::string>();
  return state;
}

Json CardRow(const Json& c) {
  std::string health = Text(At(c, {"health", "state"}));
  const Json& reasons = At(c, {"health", "reasons"});
  if (reasons.is_array() && !reasons.empty()) health += " (" + Text(reasons[0]["code"]) + ")";
  return {{"id", c.value("id", "")},
          {"shell", Text(At(c, {"shell", "name"}), "unknown")},
          {"health", health},
          {"admin", Text(c["admin_state"])},
          {"assignment", Text(c["assignment"])},
          {"operation", Text(c["operation"])},
          {"image", ImageCell(c)},
          {"temp_c", Text(At(c, {"sensors", "fpga_temp_c"}))},
          {"power_w", Text(At(c, {"sensors", "power_w"}))}};
}

void PrintValidation(CliContext& ctx, const Json& validation) {
  if (!validation.is_object()) {
    ctx.out() << "  validation  never run\n";
    return;
  }
  ctx.out() << fmt::format("  validation  {}  (started {}, finished {})\n",
                           Text(validation["state"]), Text(At(validation, {"started_at"})),
                           Text(At(validation, {"finished_at"})));
  const Json& tests = At(validation, {"tests"});
  if (!tests.is_array()) return;
  for (const Json& t : tests) {
    std::string bandwidth;
    if (t.contains("bandwidth_mb_s") && t["bandwidth_mb_s"].is_number()) {
      bandwidth = fmt::format("  {:.1f} MB/s", t["bandwidth_mb_s"].get<double>());
    }
    ctx.out() << fmt::format("    [{}] {:<24}{}  {}\n",
                             t.value("passed", false) ? "PASSED" : "FAILED", t.value("name", ""),
                             bandwidth, t.value("message", ""));
  }
}

void PrintCard(CliContext& ctx, const Json& c) {
  if (ctx.output() == OutputFormat::kJson) {
    ctx.out() << c.dump(2) << "\n";
    return;
  }
  auto line = [&](std::string_view key, const std::string& value) {
    ctx.out() << fmt::format("  {:<11} {}\n", key, value);
  };
  ctx.out() << fmt::format("{}{}\n", c.value("id", ""),
                           c.value("present", false) ? "" : "  (GONE from the PCI bus)");
  line("shell", fmt::format("{}  {}", Text(At(c, {"shell", "name"}), "unknown"),
                            Text(At(c, {"shell", "vbnv"}))));
  line("interface", Text(At(c, {"shell", "interface_uuid"})));
  line("serial", Text(c["serial"]));
  line("mgmt PF", fmt::format("{}  driver {}  device {}", Text(At(c, {"mgmt_pf", "bdf"})),
                              Text(At(c, {"mgmt_pf", "driver"}), "none"),
                              Text(At(c, {"mgmt_pf", "device_id"}))));
  line("user PF",
       fmt::format("{}  driver {}  device {}  iommu group {}", Text(At(c, {"user_pf", "bdf"})),
                   Text(At(c, {"user_pf", "driver"}), "none"),
                   Text(At(c, {"user_pf", "device_id"})), Text(At(c, {"user_pf", "iommu_group"}))));
  line("admin", Text(c["admin_state"]));
  line("assignment", Text(c["assignment"]));
  line("operation", Text(c["operation"]));
  line("image",
       fmt::format("{}  image {}  xclbin {}", Text(At(c, {"image", "state"})),
                   Text(At(c, {"image", "image_id"})), Text(At(c, {"image", "xclbin_uuid"}))));
  if (c["last_error"].is_object()) {
    line("last error", fmt::format("{}: {}", Text(At(c, {"last_error", "code"})),
                                   Text(At(c, {"last_error", "message"}))));
  }
  line("health", Text(At(c, {"health", "state"})));
  const Json& reasons = At(c, {"health", "reasons"});
  if (reasons.is_array()) {
    for (const Json& r : reasons) {
      ctx.out() << fmt::format("    {:<21} {}\n", Text(r["code"]), Text(r["message"]));
    }
  }
  line("sensors",
       fmt::format("fpga {} C  power {} W  firewall {}", Text(At(c, {"sensors", "fpga_temp_c"})),
                   Text(At(c, {"sensors", "power_w"})),
                   Text(At(c, {"sensors", "firewall_status"}))));
  if (c["limits"].is_object()) {
    line("limits", fmt::format("temp warn {} C, max {} C; power warn {} W, max {} W",
                               Text(At(c, {"limits", "fpga_temp_warn_c"})),
                               Text(At(c, {"limits", "fpga_temp_max_c"})),
                               Text(At(c, {"limits", "power_warn_w"})),
                               Text(At(c, {"limits", "power_max_w"}))));
  }
  PrintValidation(ctx, c["validation"]);
}

// Polls the card until its operation is over.
StatusOr<Json> WaitForCard(CliContext& ctx, const std::string& id) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
  while (true) {
    ASSIGN_OR_RETURN(Json card, ctx.Call("GET", "/v1/cards/" + id));
    if (card.value("operation", "") == "idle") return card;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError(
          fmt::format("card {} is still {}", id, card.value("operation", "")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Status LastError(const Json& card, std::string_view what) {
  const Json& e = card["last_error"];
  return Status(
      StatusCode::kFailedPrecondition,
      fmt::format("{} {} failed: {}", what, card.value("id", ""),
                  e.is_object() ? e.value("message", "") : "see `fpgahost card describe`"),
      e.is_object() ? e.value("code", "FAILED") : "FAILED");
}

class CardListCommand : public Command {
 public:
  std::string_view name() const override { return "card list"; }
  std::string_view summary() const override { return "list this host's FPGA cards (operator)"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", "/v1/cards"));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
      return Status::Ok();
    }
    Json rows = Json::array();
    for (const Json& c : res["cards"]) rows.push_back(CardRow(c));
    PrintTable(ctx, rows,
               {"id", "shell", "health", "admin", "assignment", "operation", "image", "temp_c",
                "power_w"});
    return Status::Ok();
  }
};

class CardRescanCommand : public Command {
 public:
  std::string_view name() const override { return "card rescan"; }
  std::string_view summary() const override {
    return "scan the PCI bus for cards now, instead of at the next poll (operator)";
  }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("POST", "/v1/cards/rescan"));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
      return Status::Ok();
    }
    Json rows = Json::array();
    for (const Json& c : res["cards"]) rows.push_back(CardRow(c));
    PrintTable(ctx, rows, {"id", "shell", "health", "admin", "image"});
    return Status::Ok();
  }
};

class CardDescribeCommand : public Command {
 public:
  std::string_view name() const override { return "card describe"; }
  std::string_view summary() const override {
    return "show a card: PFs, shell, health, sensors, image, last validation (operator)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddCardId(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(Json card, ctx.Call("GET", "/v1/cards/" + vm["card"].as<std::string>()));
    PrintCard(ctx, card);
    return Status::Ok();
  }
};

// drain, undrain: immediate.
class CardAdminCommand : public Command {
 public:
  CardAdminCommand(std::string verb, std::string summary)
      : name_("card " + verb), verb_(std::move(verb)), summary_(std::move(summary)) {}
  std::string_view name() const override { return name_; }
  std::string_view summary() const override { return summary_; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddCardId(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["card"].as<std::string>();
    ASSIGN_OR_RETURN(Json card, ctx.Call("POST", fmt::format("/v1/cards/{}/{}", id, verb_)));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << card.dump(2) << "\n";
    } else {
      ctx.out() << fmt::format("{}: {}\n", id, card.value("admin_state", ""));
    }
    return Status::Ok();
  }

 private:
  std::string name_, verb_, summary_;
};

// clear, reset, load: start an operation, optionally wait for it.
class CardOperationCommand : public Command {
 public:
  CardOperationCommand(std::string verb, std::string summary)
      : name_("card " + verb), verb_(std::move(verb)), summary_(std::move(summary)) {}
  std::string_view name() const override { return name_; }
  std::string_view summary() const override { return summary_; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddCardId(o, p);
    if (verb_ == "load") {
      o.add_options()("image", po::value<std::string>()->required(), "image id (img-...)");
      p.add("image", 1);
    }
    o.add_options()("wait", "wait until the operation finished; exit 1 if it failed");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["card"].as<std::string>();
    Json body = Json::object();
    if (verb_ == "load") body["image_id"] = vm["image"].as<std::string>();
    ASSIGN_OR_RETURN(Json card, ctx.Call("POST", fmt::format("/v1/cards/{}/{}", id, verb_),
                                         verb_ == "load" ? &body : nullptr));
    if (vm.count("wait") != 0u) {
      ASSIGN_OR_RETURN(card, WaitForCard(ctx, id));
      std::string state =
          At(card, {"image", "state"}).is_string() ? card["image"]["state"].get<std::string>() : "";
      bool ok = verb_ == "load" ? state == "loaded" : state == "cleared";
      if (!ok) return LastError(card, verb_);
    }
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << card.dump(2) << "\n";
    } else {
      ctx.out() << fmt::format("{}: operation {}, image {}\n", id, Text(card["operation"]),
                               ImageCell(card));
    }
    return Status::Ok();
  }

 private:
  std::string name_, verb_, summary_;
};

class CardValidateCommand : public Command {
 public:
  std::string_view name() const override { return "card validate"; }
  std::string_view summary() const override {
    return "verify a free card with the example designs, like xbutil validate (operator)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddCardId(o, p);
    o.add_options()("no-wait", "start the validation and return at once");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string id = vm["card"].as<std::string>();
    ASSIGN_OR_RETURN(Json card, ctx.Call("POST", fmt::format("/v1/cards/{}/validate", id)));
    if (vm.count("no-wait") != 0u) {
      PrintCard(ctx, card);
      return Status::Ok();
    }
    if (ctx.output() == OutputFormat::kTable) {
      ctx.out() << fmt::format("validating {} ...\n", id) << std::flush;
    }
    ASSIGN_OR_RETURN(card, WaitForCard(ctx, id));
    const Json& validation = card["validation"];
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << validation.dump(2) << "\n";
    } else {
      PrintValidation(ctx, validation);
    }
    if (At(card, {"validation", "state"}) != "passed") {
      int failed = 0;
      for (const Json& t : At(card, {"validation", "tests"}))
        failed += t.value("passed", false) ? 0 : 1;
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("validation of {} {}: {} test(s) failed", id,
                                Text(At(card, {"validation", "state"})), failed),
                    "VALIDATION_FAILED");
    }
    return Status::Ok();
  }
};

class EventsCommand : public Command {
 public:
  std::string_view name() const override { return "events"; }
  std::string_view summary() const override { return "show the event log (operator)"; }
  void DefineOptions(po::options_description& o, po::positional_options_description&) override {
    o.add_options()("subject", po::value<std::string>(), "only events about this id (a card...)")(
        "kind", po::value<std::string>(), "only this kind (card.health) or family (card)")(
        "after", po::value<int64_t>()->default_value(0), "only events after this sequence number")(
        "limit", po::value<int>()->default_value(100), "at most this many (1-1000)")(
        "follow", "keep printing new events until interrupted");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    int64_t after = vm["after"].as<int64_t>();
    bool follow = vm.count("follow") != 0u;
    while (true) {
      std::string target =
          fmt::format("/v1/events?after={}&limit={}", after, vm["limit"].as<int>());
      if (vm.count("subject") != 0u) target += "&subject=" + vm["subject"].as<std::string>();
      if (vm.count("kind") != 0u) target += "&kind=" + vm["kind"].as<std::string>();
      ASSIGN_OR_RETURN(Json res, ctx.Call("GET", target));
      const Json& events = res["events"];
      if (ctx.output() == OutputFormat::kJson) {
        for (const Json& e : events) ctx.out() << e.dump() << "\n";
      } else {
        for (const Json& e : events) {
          ctx.out() << fmt::format("{:>6}  {}  {:<16} {:<20} {}\n", e.value("seq", 0),
                                   e.value("time", ""), e.value("kind", ""), e.value("subject", ""),
                                   Text(e["detail"]));
        }
      }
      ctx.out() << std::flush;
      after = res.value("next_after", after);
      if (!follow) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
};

}  // namespace

void AddCardCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<CardListCommand>());
  out.push_back(std::make_unique<CardDescribeCommand>());
  out.push_back(std::make_unique<CardRescanCommand>());
  out.push_back(std::make_unique<CardAdminCommand>(
      "drain", "take a card out of service: no new work once what runs on it ends (operator)"));
  out.push_back(std::make_unique<CardAdminCommand>("undrain", "put a card back in service"));
  out.push_back(std::make_unique<CardOperationCommand>(
      "load", "load an image on a free card through XRT (operator)"));
  out.push_back(std::make_unique<CardOperationCommand>(
      "clear", "clear the image from a free card (operator)"));
  out.push_back(std::make_unique<CardOperationCommand>(
      "reset", "hot-reset a card through its management PF (operator)"));
  out.push_back(std::make_unique<CardValidateCommand>());
  out.push_back(std::make_unique<EventsCommand>());
}

}  // namespace fpgahost::cli
