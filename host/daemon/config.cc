#include "host/daemon/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/logging.h"

namespace fpgahost {
namespace po = boost::program_options;

namespace {

// "127.0.0.1:8080" or "[::1]:8080" into address and port.
Status ParseListen(std::string_view text, DaemonConfig& config) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError(
        fmt::format("listen '{}' must be ADDRESS:PORT, e.g. 127.0.0.1:8080", text));
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return InvalidArgumentError(
        fmt::format("listen '{}' has a bad port '{}' (0-65535; 0 picks a free one)", text, port));
  }
  config.listen_address = std::string(host);
  config.listen_port = static_cast<uint16_t>(value);
  return Status::Ok();
}

template <typename T>
Status CheckRange(std::string_view key, T value, T lo, T hi) {
  if (value < lo || value > hi) {
    return InvalidArgumentError(
        fmt::format("{} = {} is out of range ({} to {})", key, value, lo, hi));
  }
  return Status::Ok();
}

}  // namespace

std::string DefaultDataDir() {
  const char* xdg = std::getenv("XDG_DATA_HOME");  // NOLINT(concurrency-mt-unsafe): at start
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/fpgahost";
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe): at start
  return std::string(home != nullptr ? home : ".") + "/.local/share/fpgahost";
}

int DefaultHttpThreads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
}

StatusOr<ParsedCommandLine> ParseDaemonCommandLine(int argc, const char* const* argv) {
  ParsedCommandLine out;
  DaemonConfig& c = out.config;
  std::string listen;
  int64_t idle_seconds = c.idle_timeout.count();
  int64_t max_header = static_cast<int64_t>(c.max_header_bytes);
  int64_t max_body = static_cast<int64_t>(c.max_body_bytes);
  int64_t image_max = static_cast<int64_t>(c.image_max_bytes);
  double scan_seconds = std::chrono::duration<double>(c.card_scan_interval).count();
  double sync_seconds = std::chrono::duration<double>(c.state_sync_interval).count();
  int64_t load_timeout = c.card_load_timeout.count();
  int64_t shutdown_timeout = c.instance_shutdown_timeout.count();
  int64_t reset_timeout = c.card_reset_timeout.count();
  int64_t validate_timeout = c.card_validate_timeout.count();
  int64_t function_idle = c.function_idle_timeout.count();
  int64_t retry_delay = c.function_retry_delay.count();
  int64_t affinity_wait = c.function_affinity_wait.count();

  // clang-format off: one option a line reads better than what the formatter makes of it.
  po::options_description cli_only("Command line");
  cli_only.add_options()("help,h", "print this help and exit")(
      "version", "print the version and exit")("config,c", po::value<std::string>(),
                                               "read options from this file (key = value)");

  po::options_description settings("Settings (command line or config file)");
  settings.add_options()("data-dir", po::value<std::string>(&c.data_dir),
                         "state, tokens and images (default: $XDG_DATA_HOME/fpgahost or "
                         "~/.local/share/fpgahost)")(
      "listen", po::value<std::string>(&listen)->default_value("127.0.0.1:8080"),
      "API address:port; port 0 picks a free one")(
      "libvirt-uri", po::value<std::string>(&c.libvirt_uri)->default_value(c.libvirt_uri),
      "libvirt connection (qemu:///system in production)")(
      "sysfs-root", po::value<std::string>(&c.sysfs_root)->default_value(c.sysfs_root),
      "where PCI devices are found (an emulated tree in development)")(
      "xrt-library", po::value<std::string>(&c.xrt_library)->default_value(c.xrt_library),
      "XRT library loaded at run time to program cards through their user PF")(
      "xbmgmt", po::value<std::string>(&c.xbmgmt)->default_value(c.xbmgmt),
      "XRT's xbmgmt tool: loads through the management PF and resets cards")(
      "state-sync-interval", po::value<double>(&sync_seconds)->default_value(sync_seconds),
      "seconds the host's runtime state may wait in the WAL before it is fsynced; 0: every "
      "change is fsynced before the API answers")(
      "log-level", po::value<std::string>(&c.log_level)->default_value(c.log_level),
      "trace, debug, info, warn, error or off")(
      "http-threads", po::value<int>(&c.http_threads)->default_value(c.http_threads),
      "API I/O threads, shared with function slots (default: half the CPUs, at least one)")(
      "http-max-header-bytes", po::value<int64_t>(&max_header)->default_value(max_header),
      "largest request header accepted (431 above)")(
      "http-max-body-bytes", po::value<int64_t>(&max_body)->default_value(max_body),
      "largest JSON request body accepted (413 above)")(
      "http-idle-timeout", po::value<int64_t>(&idle_seconds)->default_value(idle_seconds),
      "seconds before an idle connection is closed")(
      "image-max-bytes", po::value<int64_t>(&image_max)->default_value(image_max),
      "largest xclbin accepted for upload (413 above)")(
      "image-modes", po::value<std::string>(&c.image_modes)->default_value(c.image_modes),
      "xclbin modes accepted: hardware, emulation or all")(
      "image-signature-policy",
      po::value<std::string>(&c.image_signature_policy)->default_value(c.image_signature_policy),
      "none, warn (a bad signature fails, a missing one warns) or require")(
      "image-trusted-cert", po::value<std::vector<std::string>>(&c.image_trusted_certs),
      "certificate (PEM or DER) trusted to sign xclbins; repeat for more")(
      "shell-catalogue", po::value<std::string>(&c.shell_catalogue),
      "JSON file of the shells this fleet has (default: the built-in catalogue)")(
      "card-scan-interval", po::value<double>(&scan_seconds)->default_value(scan_seconds),
      "seconds between PCI rescans and sensor polls")(
      "card-load-timeout", po::value<int64_t>(&load_timeout)->default_value(load_timeout),
      "seconds a card load may take before it is abandoned")(
      "card-reset-timeout", po::value<int64_t>(&reset_timeout)->default_value(reset_timeout),
      "seconds a card reset or clear may take")(
      "card-validate-timeout",
      po::value<int64_t>(&validate_timeout)->default_value(validate_timeout),
      "seconds each verification design's host program may run")(
      "verify-designs-dir", po::value<std::string>(&c.verify_designs_dir),
      "directory with hello/ and bandwidth/ verification designs (default: those built with "
      "fpgahost)")(
      "instance-types", po::value<std::string>(&c.instance_types),
      "JSON file of the instance types this host offers (default: the built-in types)")(
      "instance-boot-disk", po::value<std::string>(&c.instance_boot_disk),
      "disk image (qcow2 or raw) every instance boots from (default: none)")(
      "instance-shutdown-timeout",
      po::value<int64_t>(&shutdown_timeout)->default_value(shutdown_timeout),
      "seconds a stopping instance's guest gets to power off before it is powered off")(
      "capacity-vcpus", po::value<int>(&c.capacity_vcpus)->default_value(0),
      "vCPUs this host gives out (0: online CPUs x 4)")(
      "capacity-memory-mib", po::value<int64_t>(&c.capacity_memory_mib)->default_value(0),
      "MiB of memory this host gives out (0: physical memory - 512 MiB)")(
      "lambda-region", po::value<std::string>(&c.lambda_region)->default_value(c.lambda_region),
      "the AWS region the Lambda-compatible API answers for (in ARNs; clients sign for it)")(
      "slot-init", po::value<std::string>(&c.slot_init),
      "the fpgahost-slot-init launcher of function sandboxes (default: beside fpgahostd)")(
      "function-max-slots",
      po::value<int>(&c.function_max_slots)->default_value(c.function_max_slots),
      "function slots this host runs at most (each within the capacity account)")(
      "function-idle-timeout", po::value<int64_t>(&function_idle)->default_value(function_idle),
      "seconds an idle warm function slot is kept before it retires")(
      "function-concurrency",
      po::value<int>(&c.function_concurrency)->default_value(c.function_concurrency),
      "concurrent executions per tenant, at most (Lambda's account limit)")(
      "function-initial-concurrency",
      po::value<int>(&c.function_initial_concurrency)
          ->default_value(c.function_initial_concurrency),
      "where a tenant's adaptive concurrency limit starts; it rises with demand")(
      "function-min-unreserved",
      po::value<int>(&c.function_min_unreserved)->default_value(c.function_min_unreserved),
      "concurrency that reservations must leave to a tenant's other functions")(
      "function-retry-delay", po::value<int64_t>(&retry_delay)->default_value(retry_delay),
      "seconds before an asynchronous invocation that failed is retried (twice that the second "
      "time)")(
      "function-data-root", po::value<std::string>(&c.function_data_root),
      "where idempotent functions' file dependencies are, a directory per tenant (default: "
      "<data-dir>/function-data)")(
      "function-affinity-wait", po::value<int64_t>(&affinity_wait)->default_value(affinity_wait),
      "milliseconds a call with a routing key waits for the busy slot that served its key last "
      "(0: never waits)");
  // clang-format on

  po::options_description all;
  all.add(cli_only).add(settings);
  std::ostringstream usage;
  usage << "Usage: fpgahostd [options]\n\nRuns the fpgahost host manager.\n\n" << all;
  out.usage = usage.str();

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    if (vm.count("config") != 0u) {
      std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) {
        return InvalidArgumentError(fmt::format("cannot read config file '{}'", path));
      }
      try {
        po::store(po::parse_config_file(file, settings, /*allow_unregistered=*/false), vm);
      } catch (const po::error& e) {
        return InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return InvalidArgumentError(e.what());
  }
  out.help = vm.count("help") != 0u;
  out.version = vm.count("version") != 0u;

  RETURN_IF_ERROR(ParseListen(listen, c));
  if (c.data_dir.empty()) c.data_dir = DefaultDataDir();
  RETURN_IF_ERROR(ParseLogLevel(c.log_level).status());
  RETURN_IF_ERROR(CheckRange<int64_t>("http-threads", c.http_threads, 1, 64));
  RETURN_IF_ERROR(CheckRange<int64_t>("http-max-header-bytes", max_header, 1024, 1 << 20));
  RETURN_IF_ERROR(CheckRange<int64_t>("http-max-body-bytes", max_body, 1024, int64_t{1} << 34));
  RETURN_IF_ERROR(CheckRange<int64_t>("http-idle-timeout", idle_seconds, 1, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("image-max-bytes", image_max, 1024, int64_t{1} << 40));
  c.image_max_bytes = static_cast<uint64_t>(image_max);
  if (c.image_modes != "hardware" && c.image_modes != "emulation" && c.image_modes != "all") {
    return InvalidArgumentError(
        fmt::format("image-modes '{}' is not one of hardware, emulation, all", c.image_modes));
  }
  if (c.image_signature_policy != "none" && c.image_signature_policy != "warn" &&
      c.image_signature_policy != "require") {
    return InvalidArgumentError(fmt::format(
        "image-signature-policy '{}' is not one of none, warn, require", c.image_signature_policy));
  }
  if (!(scan_seconds >= 0.05 && scan_seconds <= 3600)) {
    return InvalidArgumentError(
        fmt::format("card-scan-interval {} is out of range (0.05 to 3600 seconds)", scan_seconds));
  }
  c.card_scan_interval = std::chrono::milliseconds(static_cast<int64_t>(scan_seconds * 1000));
  if (!(sync_seconds >= 0 && sync_seconds <= 60)) {
    return InvalidArgumentError(
        fmt::format("state-sync-interval {} is out of range (0 to 60 seconds)", sync_seconds));
  }
  c.state_sync_interval = std::chrono::milliseconds(static_cast<int64_t>(sync_seconds * 1000));
  RETURN_IF_ERROR(CheckRange<int64_t>("card-load-timeout", load_timeout, 1, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("card-reset-timeout", reset_timeout, 1, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("card-validate-timeout", validate_timeout, 1, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("instance-shutdown-timeout", shutdown_timeout, 0, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("capacity-vcpus", c.capacity_vcpus, 0, 1 << 20));
  RETURN_IF_ERROR(
      CheckRange<int64_t>("capacity-memory-mib", c.capacity_memory_mib, 0, int64_t{1} << 40));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-max-slots", c.function_max_slots, 1, 100000));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-idle-timeout", function_idle, 1, 86400));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-concurrency", c.function_concurrency, 1, 100000));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-initial-concurrency",
                                      c.function_initial_concurrency, 1, c.function_concurrency));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-min-unreserved", c.function_min_unreserved, 0,
                                      c.function_concurrency));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-retry-delay", retry_delay, 0, 3600));
  RETURN_IF_ERROR(CheckRange<int64_t>("function-affinity-wait", affinity_wait, 0, 60000));
  c.function_affinity_wait = std::chrono::milliseconds(affinity_wait);
  c.function_idle_timeout = std::chrono::seconds(function_idle);
  c.function_retry_delay = std::chrono::seconds(retry_delay);
  c.instance_shutdown_timeout = std::chrono::seconds(shutdown_timeout);
  c.card_load_timeout = std::chrono::seconds(load_timeout);
  c.card_reset_timeout = std::chrono::seconds(reset_timeout);
  c.card_validate_timeout = std::chrono::seconds(validate_timeout);
  c.max_header_bytes = static_cast<size_t>(max_header);
  c.max_body_bytes = static_cast<size_t>(max_body);
  c.idle_timeout = std::chrono::seconds(idle_seconds);
  return out;
}

}  // namespace fpgahost
