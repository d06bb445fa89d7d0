// fpgahostd assembled: the only place that constructs concrete implementations and wires
// them together (store, authentication, API, HTTP server).
//
// Start() does everything that can fail for a user-visible reason before serving (data dir,
// lock, state store, first-start tokens, listening socket) and reports it as one Status;
// Shutdown() stops serving, lets in-flight requests finish and closes the store.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"
#include "host/daemon/config.h"

namespace fpgahost {

class Daemon {
 public:
  struct Started {
    uint16_t port = 0;
    std::filesystem::path data_dir;
    // Set when this start created the first tokens.
    std::filesystem::path operator_token_file;
    std::filesystem::path demo_token_file;
    bool created_tokens = false;
  };

  static StatusOr<std::unique_ptr<Daemon>> Start(const DaemonConfig& config);
  ~Daemon();

  const Started& started() const;
  void Shutdown();

 private:
  struct Parts;
  explicit Daemon(std::unique_ptr<Parts> parts);
  // Function slots: the sandbox, limiter, records and invoker.
  static Status StartFunctions(const DaemonConfig& config, Parts& parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace fpgahost
