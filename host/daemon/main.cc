// fpgahostd: the fpgahost host manager daemon.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common/logging.h"
#include "host/daemon/config.h"
#include "host/daemon/daemon.h"
#include "host/version.h"

namespace {

// The CLI built beside this daemon, so the printed hints work before anything is installed.
std::string CliPath() {
  std::error_code ec;
  auto beside = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "fpgahost";
  return !ec && std::filesystem::exists(beside, ec) ? beside.string() : "fpgahost";
}

}  // namespace

int main(int argc, char** argv) {
  using fpgahost::Daemon;
  auto parsed = fpgahost::ParseDaemonCommandLine(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "fpgahostd: " << parsed.status().message() << " (see fpgahostd --help)\n";
    return 2;
  }
  if (parsed->help) {
    std::cout << parsed->usage;
    return 0;
  }
  if (parsed->version) {
    std::cout << "fpgahostd " << FPGAHOST_VERSION << " (" << FPGAHOST_GIT_COMMIT << ")\n";
    return 0;
  }
  fpgahost::InitLogging(*fpgahost::ParseLogLevel(parsed->config.log_level));

  // Block the stop signals before any thread starts, so every thread inherits the mask and
  // only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = Daemon::Start(parsed->config);
  if (!daemon.ok()) {
    std::cerr << "fpgahostd: " << daemon.status().message() << "\n";
    return 1;
  }
  const Daemon::Started& s = (*daemon)->started();
  std::string endpoint = "http://" + parsed->config.listen_address + ":" + std::to_string(s.port);
  std::cout << "fpgahostd " << FPGAHOST_VERSION << " listening on " << endpoint << "\n"
            << "  data dir: " << s.data_dir.string() << "\n";
  if (s.created_tokens) {
    std::cout << "  first start: created tokens (readable only by you)\n"
              << "    operator:      " << s.operator_token_file.string() << "\n"
              << "    demo customer: " << s.demo_token_file.string() << "\n";
  } else {
    std::cout << "  tokens: " << (s.data_dir / "tokens").string() << "/\n";
  }
  std::string cli = CliPath();
  std::cout << "Try: " << cli << " --endpoint " << endpoint << " health\n"
            << "     " << cli << " --endpoint " << endpoint << " --token-file "
            << (s.data_dir / "tokens" / "demo.token").string() << " whoami\n"
            << "     " << cli << " --endpoint " << endpoint << " --token-file "
            << (s.data_dir / "tokens" / "operator.token").string() << " card list\n"
            << std::flush;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*daemon)->Shutdown();
  spdlog::info("stopped");
  return 0;
}
