// fpgahostd's configuration: command-line options and an optional config file
// (`--config FILE`, INI-style `key = value`), both parsed by Boost.Program_options.
// The command line wins over the file. Unknown keys and bad values are errors that name
// the key. See docs/fpgahostd.conf.example for every key.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace fpgahost {

int DefaultHttpThreads();

struct DaemonConfig {
  std::string data_dir;  // state, tokens, images; default ~/.local/share/fpgahost
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string libvirt_uri = "test:///default";
  std::string sysfs_root = "/sys";
  std::string xrt_library = "libxrt_coreutil.so.2";
  std::string xbmgmt = "/opt/xilinx/xrt/bin/xbmgmt";
  std::string log_level = "info";
  // I/O threads of the API (shared with function slots' Runtime APIs): half the CPUs, at least
  // one, leaving the rest to function runtimes, since handlers never block.
  int http_threads = DefaultHttpThreads();
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  std::chrono::seconds idle_timeout{60};
  // How long a change to the host's runtime state (instances, the card ledger, the VFIO
  // binding journal) may stay in the store's WAL before it is fsynced; 0: before the API
  // answers, as every other change (see host/store/state_store.h).
  std::chrono::milliseconds state_sync_interval{1000};

  // Images.
  uint64_t image_max_bytes = uint64_t{2} << 30;
  std::string image_modes = "all";               // hardware | emulation | all
  std::string image_signature_policy = "warn";   // none | warn | require
  std::vector<std::string> image_trusted_certs;  // PEM or DER files
  std::string shell_catalogue;                   // JSON file; empty: the built-in catalogue

  // Cards.
  std::chrono::milliseconds card_scan_interval{5000};
  std::chrono::seconds card_load_timeout{60};
  std::chrono::seconds card_reset_timeout{60};
  std::chrono::seconds card_validate_timeout{300};
  std::string verify_designs_dir;  // hello/ and bandwidth/; empty: those built with fpgahost

  // Instances and the capacity account.
  std::string instance_types;      // JSON file; empty: the built-in types
  std::string instance_boot_disk;  // disk image every instance boots from; empty: none
  std::chrono::seconds instance_shutdown_timeout{30};
  int capacity_vcpus = 0;           // 0: online CPUs x 4
  int64_t capacity_memory_mib = 0;  // 0: physical memory - 512 MiB

  // Functions.
  std::string lambda_region = "us-east-1";  // what ARNs and AWS_REGION say
  std::string slot_init;                    // fpgahost-slot-init; empty: the one beside fpgahostd
  int function_max_slots = 64;
  std::chrono::seconds function_idle_timeout{600};
  int function_concurrency = 1000;                // per tenant, Lambda's account default
  int function_initial_concurrency = 100;         // where a tenant's adaptive limit starts
  int function_min_unreserved = 100;              // what reservations must leave
  std::chrono::seconds function_retry_delay{60};  // first async retry; the second waits twice
  // Where idempotent functions' file dependencies are: <root>/<tenant>/...; empty:
  // <data-dir>/function-data.
  std::string function_data_root;
  // How long a call with a routing key waits for the busy slot that served its key last.
  std::chrono::milliseconds function_affinity_wait{100};
};

struct ParsedCommandLine {
  DaemonConfig config;
  bool help = false;     // --help: print `usage` and exit 0
  bool version = false;  // --version
  std::string usage;
};

// Parses argv (and the file named by --config). Errors are InvalidArgument with one line
// naming the option or key and the problem, e.g. "unknown option 'listn' in fpgahostd.conf".
StatusOr<ParsedCommandLine> ParseDaemonCommandLine(int argc, const char* const* argv);

// The default data dir: $XDG_DATA_HOME/fpgahost, else $HOME/.local/share/fpgahost.
std::string DefaultDataDir();

}  // namespace fpgahost
