// CPU features a function's code needs: the instruction-set extensions (AVX2, AVX-512, AES-NI,
// SHA, AMX, ...) its x86-64 ELF binaries use, named as Linux names them in /proc/cpuinfo's
// "flags", so that a host can refuse a function it cannot run and the multi-host scheduler
// can place one on a host that can.
//
// How the scan works. Every regular file of an extracted bundle is looked at; files that are
// not ELF, and ELF files for another class or machine (32-bit, AArch64, ...), are skipped. In
// an ELF64 x86-64 file (executable, shared library or object) the sections marked executable
// (SHF_EXECINSTR) are disassembled linearly with Zydis in 64-bit mode, one instruction after
// another; where no instruction decodes, the scan moves on one byte. A file without section
// headers (e.g. sstrip'ed) is scanned through its executable PT_LOAD segments instead. Each
// instruction's Zydis ISA set maps to flags through one documented table (cpu_features.cc,
// kIsaSets): baseline x86-64 (the base ISA, x87, MMX, SSE, SSE2, SYSCALL, ...) and hint
// instructions that run as NOPs on CPUs without them (ENDBR64, MPX's BND prefixes, PREFETCHW,
// CLDEMOTE, `rep bsf`, which compilers emit for TZCNT's sake) are not reported; neither are
// privileged instructions (VMX, SVM, SGX's ENCLS, ...), which a function's slot cannot execute.
// Every AVX-512 instruction reports avx512f, since Intel requires the foundation for every
// subset, plus its subset, plus avx512vl when it works on 128- or 256-bit vectors.
//
// Runtime-dispatched code is counted. Libraries and language runtimes carry code paths for
// several CPUs and choose among them at run time with CPUID (glibc's ifuncs, Go's and Rust's
// standard libraries, OpenSSL): a binary may contain AVX-512 code it never runs on a CPU
// without AVX-512. A linear scan cannot tell such paths from ones the program always takes, so
// it reports them: a conservative answer, which may refuse a function that would have run
// rather than accept one that will fault. The same goes for data in executable sections:
// compilers put none there, but hand-written assembly does (OpenSSL's perlasm keeps constant
// tables in .text), and a linear sweep decodes such bytes as instructions, which can add a
// feature nothing executes (a bundled libcrypto reads as using 3DNow!, for one). What the scan
// can miss is code it does not reach: files past the limit below, and the odd instruction right
// after embedded data, before the sweep falls back into step. Two things keep this acceptable:
//   - only the bundle's own files are scanned. A slot takes the system's libraries (glibc,
//     libstdc++, libssl, ...) from the host's /usr, which fits the host by construction, so the
//     common dispatching code is never counted;
//   - a function can opt out: a file named `fpgahost-cpu-features` at the bundle's root lists
//     the flags the function really needs (whitespace-separated /proc/cpuinfo names, '#' starts
//     a comment; empty means baseline x86-64 only). When it is there, no binary is scanned and
//     the declaration is the function's record, checked against the host like a scan.
//
// Limits: at most CpuScanLimits::max_code_bytes of executable code are disassembled per bundle
// (files in path order); a file whose code would go past that is not scanned and is listed in
// CpuFeatureReport::skipped, so create stays bounded whatever the bundle holds. Zydis decodes
// some 20-30 MB of code a second on one core: the default bounds a create's scan to about ten
// seconds; typical bundles take well under one.
//
// Errors: a file that says it is ELF64 x86-64 but whose headers, section or segment tables point
// outside the file, overflow, or have impossible sizes is InvalidArgument with reason
// MALFORMED_ELF and a message naming the file (a truncated upload, or an attempt to confuse the
// scanner); a declaration file that cannot be read as flag names is InvalidArgument with reason
// INVALID_CPU_FEATURES_FILE; failures of the local file system are Internal (IO_ERROR). Every
// offset and size read from a file is checked against the file before use, so no input makes
// the scanner read out of bounds.
//
// Thread-safe: the functions share no mutable state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fpgahost::functions {

inline constexpr char kReasonMalformedElf[] = "MALFORMED_ELF";
inline constexpr char kReasonInvalidCpuFeaturesFile[] = "INVALID_CPU_FEATURES_FILE";

// The bundle file that declares the function's CPU features instead of the scan.
inline constexpr char kCpuFeaturesFile[] = "fpgahost-cpu-features";

struct CpuScanLimits {
  // Executable bytes disassembled per bundle, over all its files.
  uint64_t max_code_bytes = 256ull << 20;
};

// One scanned file (or the declaration file).
struct FileCpuFeatures {
  std::string path;                   // relative to the bundle's root, '/'-separated
  std::vector<std::string> features;  // /proc/cpuinfo flag names, sorted, unique
  uint64_t code_bytes = 0;            // executable bytes disassembled
};

struct CpuFeatureReport {
  // Every feature any file uses (or the declaration names), sorted, unique.
  std::vector<std::string> features;
  // Every ELF64 x86-64 file scanned, by path, with or without features; or the declaration.
  std::vector<FileCpuFeatures> files;
  // Files not scanned because max_code_bytes would have been exceeded.
  std::vector<std::string> skipped;
  uint64_t code_bytes = 0;
  // The features come from kCpuFeaturesFile, not from a scan.
  bool declared = false;
};

// Scans the extracted bundle under `dir` as described above.
StatusOr<CpuFeatureReport> ScanBundle(const std::filesystem::path& dir,
                                      const CpuScanLimits& limits = {});

// Scans one file's bytes: nullopt when they are not an ELF64 x86-64 file, the features
// otherwise (`name` goes into FileCpuFeatures::path and into error messages). Disassembles at
// most `max_code_bytes`; a file with more executable code is ResourceExhausted.
StatusOr<std::optional<FileCpuFeatures>> ScanElf(std::span<const uint8_t> bytes,
                                                 std::string_view name,
                                                 uint64_t max_code_bytes = UINT64_MAX);

// The CPU of the host: the flags of /proc/cpuinfo (those of its first processor). Tests make
// up their own.
struct HostCpu {
  std::set<std::string> flags;
};

// The "flags" line of the first processor in /proc/cpuinfo-formatted `text`; empty flags when
// there is none (a CPU that is not x86).
HostCpu ParseCpuinfo(std::string_view text);

// Reads and parses `cpuinfo`.
StatusOr<HostCpu> ReadHostCpu(const std::filesystem::path& cpuinfo = "/proc/cpuinfo");

// This machine's CPU, read from /proc/cpuinfo once per process. If that cannot be read, it is
// logged and the CPU has no flags, so every function needing a feature is refused rather than
// run on a CPU that may lack it.
const HostCpu& ThisHostCpu();

// The features of `required` that `host` lacks, sorted.
std::vector<std::string> MissingFeatures(const std::vector<std::string>& required,
                                         const HostCpu& host);

}  // namespace fpgahost::functions
