#include "host/functions/cpu_features.h"

#include <Zydis/Zydis.h>
#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <bitset>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <system_error>

#include "common/files.h"
#include "common/logging.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;

// What each Zydis 4.0 ISA set needs, as /proc/cpuinfo flag names (space-separated; empty for
// nothing to report), in the order of the ZydisISASet enum so that a set is its own index. A
// static_assert below holds the table to the enum: a Zydis with sets this table does not know
// does not compile until they are classified here.
//
// Flag names are Linux's (arch/x86/include/asm/cpufeatures.h): SSE3 is "pni", LZCNT is "abm",
// SHA is "sha_ni", RDFSBASE & co. are "fsgsbase". Sets are reported as the CPUID bits Intel's
// and AMD's manuals tell software to check before using them; in particular every AVX-512
// instruction needs avx512f (the SDM requires the foundation for every subset) and its subset's
// flag, and avx512vl when it works on 128- or 256-bit vectors (Zydis's *_128 and *_256 sets;
// *_128N are EVEX-encoded 128-bit instructions that need no VL, such as VMOVD). VEX-encoded
// AES, GFNI, VAES and VPCLMULQDQ need avx besides their own flag.
//
// Not reported:
//   - baseline x86-64 (what every x86-64 CPU runs): the 8086-486 and Pentium sets, CMOV, x87,
//     MMX, SSE, SSE2, FXSAVE, long mode (SYSCALL, ...), CLFLUSH, RDPMC;
//   - hints, which CPUs without them run as NOPs: PAUSE, long NOPs, PREFETCH/PREFETCHW/
//     PREFETCHWT1 (0F 0D), PREFETCHh, CLDEMOTE, MPX and CET (the decoder is also told to read
//     their opcodes as NOPs, and F3 0F BC as BSF: compilers emit `rep bsf` for speed on CPUs
//     with TZCNT, and it runs as BSF elsewhere);
//   - privileged instructions, which a slot's unprivileged process cannot execute: VMX, SVM,
//     SMX, TDX, SEV-SNP, SGX's ENCLV, PCONFIG, INVPCID, SMAP, INVLPGB, VMFUNC, HRESET, XSAVES;
//   - Knights Corner's MVEX instructions: no x86-64 host runs them, and they only appear where
//     data bytes are decoded as code; and Zydis's "AMD" set, which no instruction of 4.0 has.
// User-level sets with no /proc/cpuinfo flag (PTWRITE, MCOMMIT, Key Locker, user interrupts)
// get a name of their own, which no host lists: a function using them is refused everywhere,
// in keeping with refusing what cannot be shown to run.
struct IsaSetFlags {
  ZydisISASet set;
  const char* flags;
};

constexpr IsaSetFlags kIsaSets[] = {
    {ZYDIS_ISA_SET_INVALID, ""},
    {ZYDIS_ISA_SET_ADOX_ADCX, "adx"},
    {ZYDIS_ISA_SET_AES, "aes"},
    {ZYDIS_ISA_SET_AMD, ""},
    {ZYDIS_ISA_SET_AMD3DNOW, "3dnow"},
    {ZYDIS_ISA_SET_AMD_INVLPGB, ""},
    {ZYDIS_ISA_SET_AMX_BF16, "amx_bf16"},
    {ZYDIS_ISA_SET_AMX_INT8, "amx_int8"},
    {ZYDIS_ISA_SET_AMX_TILE, "amx_tile"},
    {ZYDIS_ISA_SET_AVX, "avx"},
    {ZYDIS_ISA_SET_AVX2, "avx2"},
    {ZYDIS_ISA_SET_AVX2GATHER, "avx2"},
    {ZYDIS_ISA_SET_AVX512BW_128, "avx512f avx512bw avx512vl"},
    {ZYDIS_ISA_SET_AVX512BW_128N, "avx512f avx512bw"},
    {ZYDIS_ISA_SET_AVX512BW_256, "avx512f avx512bw avx512vl"},
    {ZYDIS_ISA_SET_AVX512BW_512, "avx512f avx512bw"},
    {ZYDIS_ISA_SET_AVX512BW_KOP, "avx512f avx512bw"},
    {ZYDIS_ISA_SET_AVX512CD_128, "avx512f avx512cd avx512vl"},
    {ZYDIS_ISA_SET_AVX512CD_256, "avx512f avx512cd avx512vl"},
    {ZYDIS_ISA_SET_AVX512CD_512, "avx512f avx512cd"},
    {ZYDIS_ISA_SET_AVX512DQ_128, "avx512f avx512dq avx512vl"},
    {ZYDIS_ISA_SET_AVX512DQ_128N, "avx512f avx512dq"},
    {ZYDIS_ISA_SET_AVX512DQ_256, "avx512f avx512dq avx512vl"},
    {ZYDIS_ISA_SET_AVX512DQ_512, "avx512f avx512dq"},
    {ZYDIS_ISA_SET_AVX512DQ_KOP, "avx512f avx512dq"},
    {ZYDIS_ISA_SET_AVX512DQ_SCALAR, "avx512f avx512dq"},
    {ZYDIS_ISA_SET_AVX512ER_512, "avx512f avx512er"},
    {ZYDIS_ISA_SET_AVX512ER_SCALAR, "avx512f avx512er"},
    {ZYDIS_ISA_SET_AVX512F_128, "avx512f avx512vl"},
    {ZYDIS_ISA_SET_AVX512F_128N, "avx512f"},
    {ZYDIS_ISA_SET_AVX512F_256, "avx512f avx512vl"},
    {ZYDIS_ISA_SET_AVX512F_512, "avx512f"},
    {ZYDIS_ISA_SET_AVX512F_KOP, "avx512f"},
    {ZYDIS_ISA_SET_AVX512F_SCALAR, "avx512f"},
    {ZYDIS_ISA_SET_AVX512PF_512, "avx512f avx512pf"},
    {ZYDIS_ISA_SET_AVX512_4FMAPS_512, "avx512f avx512_4fmaps"},
    {ZYDIS_ISA_SET_AVX512_4FMAPS_SCALAR, "avx512f avx512_4fmaps"},
    {ZYDIS_ISA_SET_AVX512_4VNNIW_512, "avx512f avx512_4vnniw"},
    {ZYDIS_ISA_SET_AVX512_BF16_128, "avx512f avx512_bf16 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_BF16_256, "avx512f avx512_bf16 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_BF16_512, "avx512f avx512_bf16"},
    {ZYDIS_ISA_SET_AVX512_BITALG_128, "avx512f avx512_bitalg avx512vl"},
    {ZYDIS_ISA_SET_AVX512_BITALG_256, "avx512f avx512_bitalg avx512vl"},
    {ZYDIS_ISA_SET_AVX512_BITALG_512, "avx512f avx512_bitalg"},
    {ZYDIS_ISA_SET_AVX512_FP16_128, "avx512f avx512_fp16 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_FP16_128N, "avx512f avx512_fp16"},
    {ZYDIS_ISA_SET_AVX512_FP16_256, "avx512f avx512_fp16 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_FP16_512, "avx512f avx512_fp16"},
    {ZYDIS_ISA_SET_AVX512_FP16_SCALAR, "avx512f avx512_fp16"},
    {ZYDIS_ISA_SET_AVX512_GFNI_128, "avx512f gfni avx512vl"},
    {ZYDIS_ISA_SET_AVX512_GFNI_256, "avx512f gfni avx512vl"},
    {ZYDIS_ISA_SET_AVX512_GFNI_512, "avx512f gfni"},
    {ZYDIS_ISA_SET_AVX512_IFMA_128, "avx512f avx512ifma avx512vl"},
    {ZYDIS_ISA_SET_AVX512_IFMA_256, "avx512f avx512ifma avx512vl"},
    {ZYDIS_ISA_SET_AVX512_IFMA_512, "avx512f avx512ifma"},
    {ZYDIS_ISA_SET_AVX512_VAES_128, "avx512f vaes avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VAES_256, "avx512f vaes avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VAES_512, "avx512f vaes"},
    {ZYDIS_ISA_SET_AVX512_VBMI2_128, "avx512f avx512_vbmi2 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VBMI2_256, "avx512f avx512_vbmi2 avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VBMI2_512, "avx512f avx512_vbmi2"},
    {ZYDIS_ISA_SET_AVX512_VBMI_128, "avx512f avx512vbmi avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VBMI_256, "avx512f avx512vbmi avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VBMI_512, "avx512f avx512vbmi"},
    {ZYDIS_ISA_SET_AVX512_VNNI_128, "avx512f avx512_vnni avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VNNI_256, "avx512f avx512_vnni avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VNNI_512, "avx512f avx512_vnni"},
    {ZYDIS_ISA_SET_AVX512_VP2INTERSECT_128, "avx512f avx512_vp2intersect avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VP2INTERSECT_256, "avx512f avx512_vp2intersect avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VP2INTERSECT_512, "avx512f avx512_vp2intersect"},
    {ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_128, "avx512f vpclmulqdq avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_256, "avx512f vpclmulqdq avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_512, "avx512f vpclmulqdq"},
    {ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_128, "avx512f avx512_vpopcntdq avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_256, "avx512f avx512_vpopcntdq avx512vl"},
    {ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_512, "avx512f avx512_vpopcntdq"},
    {ZYDIS_ISA_SET_AVXAES, "avx aes"},
    {ZYDIS_ISA_SET_AVX_GFNI, "avx gfni"},
    {ZYDIS_ISA_SET_AVX_VNNI, "avx_vnni"},
    {ZYDIS_ISA_SET_BMI1, "bmi1"},
    {ZYDIS_ISA_SET_BMI2, "bmi2"},
    {ZYDIS_ISA_SET_CET, ""},
    {ZYDIS_ISA_SET_CLDEMOTE, ""},
    {ZYDIS_ISA_SET_CLFLUSHOPT, "clflushopt"},
    {ZYDIS_ISA_SET_CLFSH, ""},
    {ZYDIS_ISA_SET_CLWB, "clwb"},
    {ZYDIS_ISA_SET_CLZERO, "clzero"},
    {ZYDIS_ISA_SET_CMOV, ""},
    {ZYDIS_ISA_SET_CMPXCHG16B, "cx16"},
    {ZYDIS_ISA_SET_ENQCMD, "enqcmd"},
    {ZYDIS_ISA_SET_F16C, "f16c"},
    {ZYDIS_ISA_SET_FAT_NOP, ""},
    {ZYDIS_ISA_SET_FCMOV, ""},
    {ZYDIS_ISA_SET_FMA, "fma"},
    {ZYDIS_ISA_SET_FMA4, "fma4"},
    {ZYDIS_ISA_SET_FXSAVE, ""},
    {ZYDIS_ISA_SET_FXSAVE64, ""},
    {ZYDIS_ISA_SET_GFNI, "gfni"},
    {ZYDIS_ISA_SET_HRESET, ""},
    {ZYDIS_ISA_SET_I186, ""},
    {ZYDIS_ISA_SET_I286PROTECTED, ""},
    {ZYDIS_ISA_SET_I286REAL, ""},
    {ZYDIS_ISA_SET_I386, ""},
    {ZYDIS_ISA_SET_I486, ""},
    {ZYDIS_ISA_SET_I486REAL, ""},
    {ZYDIS_ISA_SET_I86, ""},
    {ZYDIS_ISA_SET_INVPCID, ""},
    {ZYDIS_ISA_SET_KEYLOCKER, "keylocker"},
    {ZYDIS_ISA_SET_KEYLOCKER_WIDE, "keylocker_wide"},
    {ZYDIS_ISA_SET_KNCE, ""},
    {ZYDIS_ISA_SET_KNCJKBR, ""},
    {ZYDIS_ISA_SET_KNCSTREAM, ""},
    {ZYDIS_ISA_SET_KNCV, ""},
    {ZYDIS_ISA_SET_KNC_MISC, ""},
    {ZYDIS_ISA_SET_KNC_PF_HINT, ""},
    {ZYDIS_ISA_SET_LAHF, "lahf_lm"},
    {ZYDIS_ISA_SET_LONGMODE, ""},
    {ZYDIS_ISA_SET_LWP, "lwp"},
    {ZYDIS_ISA_SET_LZCNT, "abm"},
    {ZYDIS_ISA_SET_MCOMMIT, "mcommit"},
    {ZYDIS_ISA_SET_MONITOR, "monitor"},
    {ZYDIS_ISA_SET_MONITORX, "mwaitx"},
    {ZYDIS_ISA_SET_MOVBE, "movbe"},
    {ZYDIS_ISA_SET_MOVDIR, ""},  // movdiri or movdir64b, told apart by mnemonic (Collect)
    {ZYDIS_ISA_SET_MPX, ""},
    {ZYDIS_ISA_SET_PADLOCK_ACE, "ace"},
    {ZYDIS_ISA_SET_PADLOCK_PHE, "phe"},
    {ZYDIS_ISA_SET_PADLOCK_PMM, "pmm"},
    {ZYDIS_ISA_SET_PADLOCK_RNG, "rng"},
    {ZYDIS_ISA_SET_PAUSE, ""},
    {ZYDIS_ISA_SET_PCLMULQDQ, "pclmulqdq"},
    {ZYDIS_ISA_SET_PCONFIG, ""},
    {ZYDIS_ISA_SET_PENTIUMMMX, ""},
    {ZYDIS_ISA_SET_PENTIUMREAL, ""},
    {ZYDIS_ISA_SET_PKU, "pku"},
    {ZYDIS_ISA_SET_POPCNT, "popcnt"},
    {ZYDIS_ISA_SET_PPRO, ""},
    {ZYDIS_ISA_SET_PREFETCHWT1, ""},
    {ZYDIS_ISA_SET_PREFETCH_NOP, ""},
    {ZYDIS_ISA_SET_PT, "ptwrite"},
    {ZYDIS_ISA_SET_RDPID, "rdpid"},
    {ZYDIS_ISA_SET_RDPMC, ""},
    {ZYDIS_ISA_SET_RDPRU, "rdpru"},
    {ZYDIS_ISA_SET_RDRAND, "rdrand"},
    {ZYDIS_ISA_SET_RDSEED, "rdseed"},
    {ZYDIS_ISA_SET_RDTSCP, "rdtscp"},
    {ZYDIS_ISA_SET_RDWRFSGS, "fsgsbase"},
    {ZYDIS_ISA_SET_RTM, "rtm"},
    {ZYDIS_ISA_SET_SERIALIZE, "serialize"},
    {ZYDIS_ISA_SET_SGX, "sgx"},
    {ZYDIS_ISA_SET_SGX_ENCLV, ""},
    {ZYDIS_ISA_SET_SHA, "sha_ni"},
    {ZYDIS_ISA_SET_SMAP, ""},
    {ZYDIS_ISA_SET_SMX, ""},
    {ZYDIS_ISA_SET_SNP, ""},
    {ZYDIS_ISA_SET_SSE, ""},
    {ZYDIS_ISA_SET_SSE2, ""},
    {ZYDIS_ISA_SET_SSE2MMX, ""},
    {ZYDIS_ISA_SET_SSE3, "pni"},
    {ZYDIS_ISA_SET_SSE3X87, "pni"},
    {ZYDIS_ISA_SET_SSE4, "sse4_1"},
    {ZYDIS_ISA_SET_SSE42, "sse4_2"},
    {ZYDIS_ISA_SET_SSE4A, "sse4a"},
    {ZYDIS_ISA_SET_SSEMXCSR, ""},
    {ZYDIS_ISA_SET_SSE_PREFETCH, ""},
    {ZYDIS_ISA_SET_SSSE3, "ssse3"},
    {ZYDIS_ISA_SET_SSSE3MMX, "ssse3"},
    {ZYDIS_ISA_SET_SVM, ""},
    {ZYDIS_ISA_SET_TBM, "tbm"},
    {ZYDIS_ISA_SET_TDX, ""},
    {ZYDIS_ISA_SET_TSX_LDTRK, "tsxldtrk"},
    {ZYDIS_ISA_SET_UINTR, "uintr"},
    {ZYDIS_ISA_SET_VAES, "avx vaes"},
    {ZYDIS_ISA_SET_VMFUNC, ""},
    {ZYDIS_ISA_SET_VPCLMULQDQ, "avx vpclmulqdq"},
    {ZYDIS_ISA_SET_VTX, ""},
    {ZYDIS_ISA_SET_WAITPKG, "waitpkg"},
    {ZYDIS_ISA_SET_X87, ""},
    {ZYDIS_ISA_SET_XOP, "xop"},
    {ZYDIS_ISA_SET_XSAVE, "xsave"},
    {ZYDIS_ISA_SET_XSAVEC, "xsavec"},
    {ZYDIS_ISA_SET_XSAVEOPT, "xsaveopt"},
    {ZYDIS_ISA_SET_XSAVES, ""},
};

constexpr bool IsaSetsInEnumOrder() {
  for (size_t i = 0; i < std::size(kIsaSets); ++i) {
    if (static_cast<size_t>(kIsaSets[i].set) != i) return false;
  }
  return true;
}
static_assert(std::size(kIsaSets) == ZYDIS_ISA_SET_MAX_VALUE + 1,
              "kIsaSets must classify every ZydisISASet");
static_assert(IsaSetsInEnumOrder(), "kIsaSets must follow the order of ZydisISASet");

// The ISA sets (and the two MOVDIR instructions) one file's code uses.
struct Used {
  std::bitset<ZYDIS_ISA_SET_MAX_VALUE + 1> sets;
  bool movdiri = false;
  bool movdir64b = false;
};

std::vector<std::string> FlagsOf(const Used& used) {
  std::set<std::string> flags;
  for (size_t i = 0; i < used.sets.size(); ++i) {
    if (!used.sets[i]) continue;
    std::string_view list = kIsaSets[i].flags;
    while (!list.empty()) {
      size_t end = list.find(' ');
      flags.emplace(list.substr(0, end));
      list = end == std::string_view::npos ? "" : list.substr(end + 1);
    }
  }
  if (used.movdiri) flags.emplace("movdiri");
  if (used.movdir64b) flags.emplace("movdir64b");
  return {flags.begin(), flags.end()};
}

// A run of executable bytes inside the file, checked to lie within it.
struct CodeRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct ElfCode {
  bool x86_64_elf = false;  // false: another kind of file, with nothing to scan
  std::vector<CodeRange> ranges;
  uint64_t bytes = 0;  // the ranges' sizes added up, saturating
};

Status Malformed(std::string_view name, std::string_view what) {
  return InvalidArgumentError(fmt::format("{}: malformed ELF64 x86-64 file: {}", name, what),
                              kReasonMalformedElf);
}

// Whether [offset, offset + size) lies within a file of `file_size` bytes, without overflow.
bool Within(uint64_t offset, uint64_t size, uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

// A table of `count` entries of `entsize` bytes at `offset`, checked to lie within the file.
bool TableWithin(uint64_t offset, uint64_t count, uint64_t entsize, uint64_t file_size) {
  if (entsize == 0) return count == 0;
  return count <= file_size / entsize && Within(offset, count * entsize, file_size);
}

// Copies a T out of `bytes` at `offset`; the caller has checked the bounds. memcpy because
// offsets in a file need not be aligned.
template <typename T>
T Load(std::span<const uint8_t> bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

// The executable code of an ELF64 x86-64 file; none when `bytes` are another kind of file.
StatusOr<ElfCode> FindCode(std::span<const uint8_t> bytes, std::string_view name) {
  const uint64_t size = bytes.size();
  if (size < SELFMAG || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) return ElfCode{};
  if (size <= EI_DATA) return ElfCode{};
  if (bytes[EI_CLASS] != ELFCLASS64 || bytes[EI_DATA] != ELFDATA2LSB) return ElfCode{};
  // e_machine follows the 16 identification bytes and the 2-byte e_type.
  constexpr uint64_t kMachineEnd = offsetof(Elf64_Ehdr, e_machine) + sizeof(Elf64_Half);
  if (size < kMachineEnd) return Malformed(name, "the ELF header is truncated");
  if (Load<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_machine)) != EM_X86_64) return ElfCode{};
  if (size < sizeof(Elf64_Ehdr)) return Malformed(name, "the ELF header is truncated");
  const auto eh = Load<Elf64_Ehdr>(bytes, 0);

  ElfCode code;
  code.x86_64_elf = true;
  auto add = [&](uint64_t offset, uint64_t length) {
    if (length == 0) return;
    code.ranges.push_back({offset, length});
    code.bytes = SaturatingAdd(code.bytes, length);
  };

  // Section headers, when there are any: e_shnum 0 with a table means the count is in the
  // first entry's sh_size (for files with 0xff00 sections or more).
  uint64_t shnum = eh.e_shnum;
  if (eh.e_shoff != 0) {
    if (eh.e_shentsize < sizeof(Elf64_Shdr)) {
      return Malformed(name, fmt::format("section header size {} is below {}", eh.e_shentsize,
                                         sizeof(Elf64_Shdr)));
    }
    if (!Within(eh.e_shoff, sizeof(Elf64_Shdr), size)) {
      return Malformed(name, fmt::format("the section header table at {} lies outside the file "
                                         "of {} bytes",
                                         eh.e_shoff, size));
    }
    if (shnum == 0) shnum = Load<Elf64_Shdr>(bytes, eh.e_shoff).sh_size;
    if (!TableWithin(eh.e_shoff, shnum, eh.e_shentsize, size)) {
      return Malformed(name, fmt::format("{} section headers at {} do not fit in the file of {} "
                                         "bytes",
                                         shnum, eh.e_shoff, size));
    }
  } else {
    shnum = 0;
  }
  if (shnum > 0) {
    for (uint64_t i = 0; i < shnum; ++i) {
      const auto sh = Load<Elf64_Shdr>(bytes, eh.e_shoff + i * eh.e_shentsize);
      if ((sh.sh_flags & SHF_EXECINSTR) == 0 || sh.sh_type == SHT_NOBITS) continue;
      if (!Within(sh.sh_offset, sh.sh_size, size)) {
        return Malformed(name, fmt::format("executable section {} ({} bytes at {}) lies outside "
                                           "the file of {} bytes",
                                           i, sh.sh_size, sh.sh_offset, size));
      }
      add(sh.sh_offset, sh.sh_size);
    }
    return code;
  }

  // No section headers: the executable PT_LOAD segments, less the ELF header and program
  // headers that the first segment usually maps too.
  if (eh.e_phoff == 0 || eh.e_phnum == 0) return code;
  if (eh.e_phnum == PN_XNUM) {
    return Malformed(name, "the program header count is in a section header, but there are none");
  }
  if (eh.e_phentsize < sizeof(Elf64_Phdr)) {
    return Malformed(name, fmt::format("program header size {} is below {}", eh.e_phentsize,
                                       sizeof(Elf64_Phdr)));
  }
  if (!TableWithin(eh.e_phoff, eh.e_phnum, eh.e_phentsize, size)) {
    return Malformed(name, fmt::format("{} program headers at {} do not fit in the file of {} "
                                       "bytes",
                                       eh.e_phnum, eh.e_phoff, size));
  }
  const uint64_t phdrs_end = eh.e_phoff + uint64_t{eh.e_phnum} * eh.e_phentsize;
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph = Load<Elf64_Phdr>(bytes, eh.e_phoff + i * eh.e_phentsize);
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    if (!Within(ph.p_offset, ph.p_filesz, size)) {
      return Malformed(name, fmt::format("executable segment {} ({} bytes at {}) lies outside the "
                                         "file of {} bytes",
                                         i, ph.p_filesz, ph.p_offset, size));
    }
    uint64_t begin = ph.p_offset;
    const uint64_t end = ph.p_offset + ph.p_filesz;
    if (begin < sizeof(Elf64_Ehdr)) begin = sizeof(Elf64_Ehdr);
    if (begin >= eh.e_phoff && begin < phdrs_end) begin = phdrs_end;
    if (begin < end) add(begin, end - begin);
  }
  return code;
}

// Disassembles `ranges` of `bytes` linearly, collecting the ISA sets used.
Used Disassemble(std::span<const uint8_t> bytes, const std::vector<CodeRange>& ranges) {
  ZydisDecoder decoder;
  // Neither call can fail with these constant, valid arguments.
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  // Opcodes that CPUs without these extensions run as NOPs (or, for TZCNT, as BSF) decode as
  // such, so that hints and `rep bsf` are not taken for requirements.
  for (ZydisDecoderMode mode : {ZYDIS_DECODER_MODE_MPX, ZYDIS_DECODER_MODE_CET,
                                ZYDIS_DECODER_MODE_CLDEMOTE, ZYDIS_DECODER_MODE_TZCNT}) {
    ZydisDecoderEnableMode(&decoder, mode, ZYAN_FALSE);
  }
  Used used;
  ZydisDecodedInstruction insn;
  for (const CodeRange& r : ranges) {
    const uint8_t* p = bytes.data() + r.offset;
    uint64_t left = r.size;
    while (left > 0) {
      if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&decoder, nullptr, p, left, &insn))) {
        ++p;
        --left;
        continue;
      }
      used.sets.set(insn.meta.isa_set);
      if (insn.meta.isa_set == ZYDIS_ISA_SET_MOVDIR) {
        used.movdiri = used.movdiri || insn.mnemonic == ZYDIS_MNEMONIC_MOVDIRI;
        used.movdir64b = used.movdir64b || insn.mnemonic == ZYDIS_MNEMONIC_MOVDIR64B;
      }
      p += insn.length;
      left -= insn.length;
    }
  }
  return used;
}

bool ValidFlagName(std::string_view name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

constexpr uint64_t kMaxDeclarationBytes = 4096;

Status InvalidDeclaration(std::string_view what) {
  return InvalidArgumentError(fmt::format("{}: {}", kCpuFeaturesFile, what),
                              kReasonInvalidCpuFeaturesFile);
}

// The declaration file's flags.
StatusOr<std::vector<std::string>> ParseDeclaration(std::string_view text) {
  constexpr size_t kMaxFlags = 64;
  std::set<std::string> flags;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? "" : text.substr(eol + 1);
    line = line.substr(0, line.find('#'));
    while (!line.empty()) {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) break;
      line.remove_prefix(start);
      size_t end = std::min(line.find_first_of(" \t\r"), line.size());
      std::string_view flag = line.substr(0, end);
      line.remove_prefix(end);
      if (!ValidFlagName(flag)) {
        return InvalidDeclaration(
            fmt::format("'{}' is not a /proc/cpuinfo flag name (1-32 of a-z, 0-9, _)", flag));
      }
      flags.emplace(flag);
    }
  }
  if (flags.size() > kMaxFlags) {
    return InvalidDeclaration(
        fmt::format("{} flags; at most {} are allowed", flags.size(), kMaxFlags));
  }
  return std::vector<std::string>(flags.begin(), flags.end());
}

}  // namespace

StatusOr<std::optional<FileCpuFeatures>> ScanElf(std::span<const uint8_t> bytes,
                                                 std::string_view name, uint64_t max_code_bytes) {
  ASSIGN_OR_RETURN(ElfCode code, FindCode(bytes, name));
  if (!code.x86_64_elf) return std::optional<FileCpuFeatures>();
  if (code.bytes > max_code_bytes) {
    return ResourceExhaustedError(fmt::format("{}: {} bytes of executable code; the limit is {}",
                                              name, code.bytes, max_code_bytes));
  }
  FileCpuFeatures f;
  f.path = std::string(name);
  f.features = FlagsOf(Disassemble(bytes, code.ranges));
  f.code_bytes = code.bytes;
  return std::optional<FileCpuFeatures>(std::move(f));
}

StatusOr<CpuFeatureReport> ScanBundle(const fs::path& dir, const CpuScanLimits& limits) {
  CpuFeatureReport report;
  std::error_code ec;
  const fs::path declaration = dir / kCpuFeaturesFile;
  if (fs::is_regular_file(fs::symlink_status(declaration, ec))) {
    uint64_t bytes = fs::file_size(declaration, ec);
    if (ec) return ErrnoError(fmt::format("cannot stat {}", declaration.string()), ec.value());
    if (bytes > kMaxDeclarationBytes) {
      return InvalidDeclaration(
          fmt::format("{} bytes; at most {} are allowed", bytes, kMaxDeclarationBytes));
    }
    ASSIGN_OR_RETURN(std::string text, ReadFile(declaration));
    ASSIGN_OR_RETURN(report.features, ParseDeclaration(text));
    report.files.push_back({kCpuFeaturesFile, report.features, 0});
    report.declared = true;
    return report;
  }

  // Regular files only (a bundle holds no symlinks or devices, but a directory might), in path
  // order, so that which files the limit leaves out does not depend on directory order.
  std::vector<std::string> paths;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!fs::is_regular_file(it->symlink_status(type_ec))) continue;
    paths.push_back(it->path().lexically_relative(dir).generic_string());
  }
  if (ec) return ErrnoError(fmt::format("cannot list {}", dir.string()), ec.value());
  std::sort(paths.begin(), paths.end());

  std::set<std::string> all;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(dir / path));
    ASSIGN_OR_RETURN(ElfCode code, FindCode(file.bytes(), path));
    if (!code.x86_64_elf) continue;
    if (code.bytes > limits.max_code_bytes - report.code_bytes) {
      report.skipped.push_back(path);
      continue;
    }
    FileCpuFeatures f;
    f.path = path;
    f.features = FlagsOf(Disassemble(file.bytes(), code.ranges));
    f.code_bytes = code.bytes;
    report.code_bytes += code.bytes;
    all.insert(f.features.begin(), f.features.end());
    report.files.push_back(std::move(f));
  }
  report.features.assign(all.begin(), all.end());
  return report;
}

HostCpu ParseCpuinfo(std::string_view text) {
  HostCpu cpu;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? "" : text.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    key = key.substr(0, key.find_last_not_of(" \t") + 1);
    if (key != "flags") continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty()) {
      size_t start = value.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      value.remove_prefix(start);
      size_t end = std::min(value.find_first_of(" \t"), value.size());
      cpu.flags.emplace(value.substr(0, end));
      value.remove_prefix(end);
    }
    break;  // the first processor's
  }
  return cpu;
}

StatusOr<HostCpu> ReadHostCpu(const fs::path& cpuinfo) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(cpuinfo));
  return ParseCpuinfo(text);
}

const HostCpu& ThisHostCpu() {
  static const HostCpu cpu = [] {
    StatusOr<HostCpu> read = ReadHostCpu();
    if (read.ok()) return *std::move(read);
    spdlog::warn(
        "functions: cannot read the CPU's features ({}); functions that need any are "
        "refused",
        read.status().ToString());
    return HostCpu{};
  }();
  return cpu;
}

std::vector<std::string> MissingFeatures(const std::vector<std::string>& required,
                                         const HostCpu& host) {
  std::set<std::string> missing;
  for (const std::string& f : required) {
    if (host.flags.count(f) == 0) missing.insert(f);
  }
  return {missing.begin(), missing.end()};
}

}  // namespace fpgahost::functions
