// Whether bubblewrap can make a sandbox's namespaces here, for tests that skip where it cannot.
#pragma once

#include <string>

#include "common/subprocess.h"

namespace fpgahost::testing {

// Empty when bwrap, run as the user running the tests, can create every namespace; else why not.
inline std::string BwrapUnusableReason() {
  static const std::string reason = [] {
    auto run = RunProcess({"bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/",
                           "--proc", "/proc", "--dev", "/dev", "true"},
                          ProcessOptions{});
    if (!run.ok()) return "bwrap is not installed: " + run.status().ToString();
    if (!run->ok()) return "bwrap cannot create namespaces here: " + run->stderr_text;
    return std::string();
  }();
  return reason;
}

}  // namespace fpgahost::testing
