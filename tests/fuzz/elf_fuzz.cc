// libFuzzer target for the CPU feature scanner's ELF reader and disassembly
// (host/functions/cpu_features.h): function bundles are uploaded by users, and every file in
// them is read as a possible ELF64 x86-64 binary. A finding is any crash, sanitizer report,
// uncaught exception or leak; an input that is not such a file, or a malformed one, must only
// give nullopt or MALFORMED_ELF.
//
// Built as `elf_fuzzer` with -DFPGAHOST_FUZZ=ON under clang, and always as `elf_fuzz_replay`,
// which runs it over tests/fuzz/corpus/elf (see CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "host/functions/cpu_features.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fpgahost::functions::kReasonMalformedElf;
  auto r = fpgahost::functions::ScanElf(std::span<const uint8_t>(data, size), "fuzz");
  if (!r.ok() && r.status().reason() != kReasonMalformedElf) std::abort();
  return 0;
}
