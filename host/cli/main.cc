// fpgahost: the command-line client of fpgahostd.
//
//   fpgahost [global options] <command words> [command options and arguments]
//
// Global options may also follow the command. Exit codes: 0 success, 1 the command failed
// (one line on stderr), 2 usage error.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <sstream>

#include "common/files.h"
#include "host/cli/command.h"

namespace fpgahost::cli {

// instance and slot commands (instance_commands.cc).
void AddInstanceCommands(std::vector<std::unique_ptr<Command>>& out);
// function commands (function_commands.cc).
void AddFunctionCommands(std::vector<std::unique_ptr<Command>>& out);
// credentials commands (credential_commands.cc).
void AddCredentialCommands(std::vector<std::unique_ptr<Command>>& out);

namespace {

constexpr std::string_view kDefaultEndpoint = "http://127.0.0.1:8080";

std::vector<std::string> Words(std::string_view name) {
  std::vector<std::string> out;
  std::istringstream in{std::string(name)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

po::options_description GlobalOptions() {
  po::options_description global("Global options");
  global.add_options()("help,h", "show help for the command (or the list of commands)")(
      "endpoint", po::value<std::string>(),
      "fpgahostd API, default $FPGAHOST_ENDPOINT or http://127.0.0.1:8080")(
      "token", po::value<std::string>(), "API token, default $FPGAHOST_TOKEN")(
      "token-file", po::value<std::string>(),
      "file holding the API token, default $FPGAHOST_TOKEN_FILE")(
      "output,o", po::value<std::string>()->default_value("table"), "table or json");
  return global;
}

const char* Env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): single-threaded CLI
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

StatusOr<std::string> ResolveToken(const po::variables_map& vm) {
  auto from_file = [](const std::string& path) -> StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
      text.pop_back();
    }
    return text;
  };
  if (vm.count("token") != 0u) return vm["token"].as<std::string>();
  if (vm.count("token-file") != 0u) return from_file(vm["token-file"].as<std::string>());
  if (const char* t = Env("FPGAHOST_TOKEN")) return std::string(t);
  if (const char* f = Env("FPGAHOST_TOKEN_FILE")) return from_file(f);
  return std::string();
}

void PrintCommandList(const std::vector<std::unique_ptr<Command>>& commands,
                      std::string_view prefix) {
  std::cout << "Usage: fpgahost [global options] <command> [options]\n\nCommands:\n";
  for (const auto& c : commands) {
    if (c->name().substr(0, prefix.size()) != prefix) continue;
    std::cout << fmt::format("  {:<22} {}\n", c->name(), c->summary());
  }
  std::cout << "\n" << GlobalOptions() << "\nRun 'fpgahost <command> --help' for details.\n";
}

int Main(int argc, char** argv) {
  std::vector<std::unique_ptr<Command>> commands;
  AddSystemCommands(commands);
  AddImageCommands(commands);
  AddCardCommands(commands);
  AddXclbinCommands(commands);
  AddEmuCommands(commands);
  AddInstanceCommands(commands);
  AddFunctionCommands(commands);
  AddCredentialCommands(commands);

  std::vector<std::string> args(argv + 1, argv + argc);
  // The command is the longest run of leading words (after any global options given
  // first) that names one.
  std::vector<std::string> words;
  size_t first_word = 0;
  while (first_word < args.size() && args[first_word].starts_with("-")) {
    const std::string& a = args[first_word];
    bool takes_value = (a == "--endpoint" || a == "--token" || a == "--token-file" ||
                        a == "--output" || a == "-o");
    first_word += takes_value ? 2 : 1;
  }
  for (size_t i = first_word; i < args.size() && !args[i].starts_with("-"); ++i) {
    words.push_back(args[i]);
  }
  Command* command = nullptr;
  size_t used = 0;
  for (const auto& c : commands) {
    std::vector<std::string> name = Words(c->name());
    if (name.size() <= words.size() && name.size() > used &&
        std::equal(name.begin(), name.end(), words.begin())) {
      command = c.get();
      used = name.size();
    }
  }
  bool asked_help = std::find(args.begin(), args.end(), "--help") != args.end() ||
                    std::find(args.begin(), args.end(), "-h") != args.end();
  if (command == nullptr) {
    std::string group = words.empty() ? "" : words.front() + " ";
    bool is_group = false;
    for (const auto& c : commands)
      is_group = is_group || (!words.empty() && c->name().starts_with(group));
    if (words.empty() || is_group) {
      PrintCommandList(commands, group);
      return asked_help ? 0 : 2;
    }
    std::cerr << fmt::format("fpgahost: unknown command '{}' (see fpgahost --help)\n",
                             words.front());
    return 2;
  }

  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i >= first_word && i < first_word + used) continue;
    rest.push_back(args[i]);
  }
  po::options_description own(fmt::format("Options of '{}'", command->name()));
  po::positional_options_description positional;
  command->DefineOptions(own, positional);
  po::options_description all;
  all.add(own).add(GlobalOptions());
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(rest).options(all).positional(positional).run(), vm);
    if (vm.count("help") != 0u) {
      std::cout << fmt::format("Usage: fpgahost {} [options]\n\n{}.\n\n", command->name(),
                               command->summary())
                << all;
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << fmt::format("fpgahost {}: {} (see fpgahost {} --help)\n", command->name(),
                             e.what(), command->name());
    return 2;
  }

  std::string output = vm["output"].as<std::string>();
  if (output != "table" && output != "json") {
    std::cerr << fmt::format("fpgahost: --output must be table or json, not '{}'\n", output);
    return 2;
  }
  std::string endpoint(kDefaultEndpoint);
  if (const char* e = Env("FPGAHOST_ENDPOINT")) endpoint = e;
  if (vm.count("endpoint") != 0u) endpoint = vm["endpoint"].as<std::string>();
  StatusOr<std::string> token = ResolveToken(vm);
  if (!token.ok()) {
    std::cerr << "fpgahost: " << token.status().message() << "\n";
    return 2;
  }
  CliContext ctx(endpoint, *token, output == "json" ? OutputFormat::kJson : OutputFormat::kTable,
                 std::cout);
  Status s = command->Run(ctx, vm);
  if (!s.ok()) {
    std::cerr << fmt::format("fpgahost: error: {}: {}\n", s.reason(), s.message());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fpgahost::cli

int main(int argc, char** argv) { return fpgahost::cli::Main(argc, argv); }
