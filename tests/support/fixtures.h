// Where the shared vendor-made fixtures are, if this checkout has them.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

namespace fpgahost::testing {

inline std::filesystem::path SharedFixturesDir() { return FPGAHOST_SHARED_FIXTURES; }

// Skips the calling test, saying why, when ../shared/fixtures is not beside the checkout.
#define SKIP_WITHOUT_SHARED_FIXTURES()                                                   \
  do {                                                                                   \
    if (!std::filesystem::is_directory(::fpgahost::testing::SharedFixturesDir())) {      \
      GTEST_SKIP() << "skipped: shared fixtures not found at "                           \
                   << ::fpgahost::testing::SharedFixturesDir()                           \
                   << " (they sit beside the repository in developer checkouts and CI)"; \
    }                                                                                    \
  } while (false)

}  // namespace fpgahost::testing
