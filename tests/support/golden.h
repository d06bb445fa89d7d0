// Golden files: expected outputs kept beside the tests that check them, compared byte for byte.
// FPGAHOST_REGENERATE_GOLDEN=1 rewrites them from the current code instead (then review the
// diff before committing), as libvirt's VIR_TEST_REGENERATE_OUTPUT does.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/files.h"

namespace fpgahost::testing {

inline void ExpectGolden(const std::filesystem::path& path, const std::string& actual) {
  const char* regenerate = std::getenv("FPGAHOST_REGENERATE_GOLDEN");
  if (regenerate != nullptr && std::string(regenerate) == "1") {
    ASSERT_TRUE(WriteFileAtomically(path, actual).ok()) << path;
    return;
  }
  StatusOr<std::string> expected = ReadFile(path);
  ASSERT_TRUE(expected.ok()) << path << " is missing; run with FPGAHOST_REGENERATE_GOLDEN=1";
  EXPECT_EQ(actual, *expected) << "output differs from " << path
                               << " (FPGAHOST_REGENERATE_GOLDEN=1 regenerates it)";
}

}  // namespace fpgahost::testing
