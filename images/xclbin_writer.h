// Writer for xclbin files: the inverse of images/xclbin.h's reader, laid out the way
// xclbinutil lays them out, and the packer behind `fpgahost xclbin pack`, which turns OpenCL C
// kernels into an xclbin for the emulated fleet.
//
// Layout written (XRT's xclbin.h, little-endian), as xclbinutil writes it:
//   - the 456-byte header: magic "xclbin2", m_signature_length -1, the 28 reserved bytes and
//     the 256-byte m_keyBlock all 0xFF, m_uniqueId = m_timeStamp (seconds since the epoch),
//     m_version 2.26.0 (the XRT release whose layouts this follows), m_length = file size;
//   - the section table, 40 bytes per section, in the order given;
//   - the payloads, each starting on an 8-byte boundary (zero padding), sizes unpadded;
//   - xclbinutil's XCLBIN_MIRROR_DATA block: "XCLBIN_MIRROR_DATA_START", a JSON copy of the
//     header and section table (with the typed sections' payloads), "\nXCLBIN_MIRROR_DATA_END".
//     One difference on purpose: "Version" is "2.26.0", where xclbinutil prints raw bytes;
//   - optionally a CMS signature made as `xclbinutil --private-key K --certificate C` makes it
//     (images/xclbin_signature.h says what that is and verifies it).
//
// Typed payload builders take the reader's value types (IpData, MemData, Connection,
// ClockFreq), so Write(Parse(x)) round-trips field by field.
//
// Errors: InvalidArgument with reason XCLBIN_WRITE_INVALID (a name that does not fit its
// fixed-size field, a count over the format's limit, an unusable key or certificate) or
// PACK_INVALID (the packer's inputs: no kernel, unknown bank, clock over the shell's limit, ...),
// with a message naming the field or input.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "images/shell_catalogue.h"
#include "images/xclbin.h"

namespace fpgahost::images {

inline constexpr char kReasonXclbinWriteInvalid[] = "XCLBIN_WRITE_INVALID";
inline constexpr char kReasonPackInvalid[] = "PACK_INVALID";

// One section to write. `mirror` is what xclbinutil puts under "payload" in the mirror data for
// this kind (null for opaque sections); the typed builders fill it.
struct XclbinSection {
  uint32_t kind = 0;  // SectionKind
  std::string name;   // m_sectionName, at most 15 bytes
  std::vector<uint8_t> payload;
  nlohmann::ordered_json mirror;
};

// Header fields a caller chooses; the rest (magic, lengths, counts) follow from the sections.
struct XclbinHeaderFields {
  uint16_t mode = static_cast<uint16_t>(XclbinMode::kFlat);
  uint16_t action_mask = 0;
  Uuid interface_uuid{};
  std::string platform_vbnv;           // at most 63 bytes
  std::optional<Uuid> uuid;            // nullopt: a new random UUID
  std::optional<uint64_t> time_stamp;  // nullopt: now; m_uniqueId gets the same value
  uint64_t feature_rom_time_stamp = 0;
  uint8_t version_major = 2;
  uint8_t version_minor = 26;
  uint16_t version_patch = 0;
  std::string debug_bin;  // at most 15 bytes
};

struct XclbinWriteOptions {
  bool mirror_data = true;  // append XCLBIN_MIRROR_DATA as xclbinutil does
};

// xclbinutil's name for a section it adds: the kind's name in lower case, cut to 15 bytes
// ("ip_layout", "clock_freq_topo", "emulation_data").
std::string DefaultSectionName(uint32_t kind);

// m_ip_data[].properties of a kernel: interrupt enable, interrupt id (0..127), IP_CONTROL.
inline constexpr uint8_t kIpControlHs = 0;
inline constexpr uint8_t kIpControlChain = 1;
uint32_t KernelIpProperties(bool interrupt_enabled, uint8_t interrupt_id, uint8_t ip_control);

// Typed sections, with xclbinutil's sizes (entries start after the count and the C padding;
// an empty list is the count alone, padded) and mirror payloads.
StatusOr<XclbinSection> IpLayoutSection(const std::vector<IpData>& ips);
StatusOr<XclbinSection> MemTopologySection(const std::vector<MemData>& mems);
StatusOr<XclbinSection> ConnectivitySection(const std::vector<Connection>& connections);
StatusOr<XclbinSection> ClockFreqTopologySection(const std::vector<ClockFreq>& clocks);
// The ASK_GROUP_TOPOLOGY and ASK_GROUP_CONNECTIVITY sections xclbinutil adds on its own when a
// file has a MEM_TOPOLOGY, for the case where no kernel argument spans several contiguous banks
// (the only case the packer makes): the group topology is a copy of the memory topology, and
// the group connectivity lists the connections of groupable banks (DDR, HBM, DRAM) and the
// others, then every connection again, in xclbinutil's order. Errors: XCLBIN_WRITE_INVALID when
// an argument of one compute unit connects to several contiguous groupable banks.
StatusOr<std::vector<XclbinSection>> MemoryGroupSections(
    const std::vector<MemData>& mems, const std::vector<Connection>& connections);
// An opaque section (EMULATION_DATA, EMBEDDED_METADATA, BITSTREAM, ...). An empty name gets
// DefaultSectionName(kind).
XclbinSection DataSection(SectionKind kind, std::string_view payload, std::string name = {});
// A JSON metadata section (BUILD_METADATA, KEYVALUE_METADATA): the text of `json`, with it as
// the mirror payload.
XclbinSection JsonSection(SectionKind kind, const nlohmann::ordered_json& json);

// The whole unsigned file.
StatusOr<std::vector<uint8_t>> WriteXclbin(const XclbinHeaderFields& header,
                                           const std::vector<XclbinSection>& sections,
                                           const XclbinWriteOptions& options = {});

// Signs an unsigned xclbin as xclbinutil does: a detached DER CMS SignedData over the whole
// file (no certificates, no signed attributes), appended, with m_signature_length set to its
// size and m_length grown by it. `private_key_pem` is a PEM private key; `certificate` a PEM
// or DER X.509 certificate; `digest` an OpenSSL digest name ("sha512", xclbinutil's default).
StatusOr<std::vector<uint8_t>> SignXclbin(std::vector<uint8_t> unsigned_xclbin,
                                          std::string_view private_key_pem,
                                          std::string_view certificate,
                                          std::string_view digest = "sha512");

// ---- OpenCL C kernels --------------------------------------------------------------------

enum class OpenClAddressSpace { kPrivate, kGlobal, kConstant, kLocal };

struct OpenClKernelArg {
  std::string name;
  std::string type;  // as written, qualifiers and address space removed: "int*", "uint"
  OpenClAddressSpace address_space = OpenClAddressSpace::kPrivate;
  bool pointer = false;
  // Whether the argument is a buffer in device memory, which CONNECTIVITY maps to a bank.
  bool global_memory() const {
    return pointer && (address_space == OpenClAddressSpace::kGlobal ||
                       address_space == OpenClAddressSpace::kConstant);
  }
};

struct OpenClKernel {
  std::string name;
  std::vector<OpenClKernelArg> args;
};

// The kernels (`__kernel`/`kernel` functions with a body) of OpenCL C source, in source order.
// Comments, string and character literals and preprocessor lines are skipped; macros are not
// expanded, so a kernel made by a macro is not found. Errors: PACK_INVALID, naming `origin` and
// the line, for a kernel whose parameter list cannot be read.
StatusOr<std::vector<OpenClKernel>> FindOpenClKernels(std::string_view source,
                                                      std::string_view origin);

// ---- Packing for the emulated fleet ------------------------------------------------------

struct KernelSourceFile {
  std::string name;  // file name, as shown in compiler messages
  std::string text;
};

struct EmulationPackOptions {
  std::string design;  // names the design in the metadata; empty: the first kernel's name
  std::vector<KernelSourceFile> sources;
  uint16_t mode = static_cast<uint16_t>(XclbinMode::kSwEmu);  // an emulation mode
  std::optional<uint32_t> kernel_clock_mhz;  // nullopt: min(300, the shell's KERNEL limit)
  std::string memory_bank;  // a tag of the shell's banks; empty: DefaultMemoryBank()
  std::optional<Uuid> uuid;
  std::optional<uint64_t> time_stamp;
  std::string generator_name = "fpgahost xclbin pack";
  std::string generator_version;
};

// The bank the packer connects buffers to when none is named: the shell's first DDR bank,
// else its first HBM bank, else its first bank with a memory type; nullptr when none.
const MemoryBank* DefaultMemoryBank(const ShellSpec& shell);

// The EMULATION_DATA payload: the sources as one OpenCL C program, each file preceded by
// `#line 1 "<name>"` so that compiler messages name the file, and ending in a newline. It can
// be given as it is to clCreateProgramWithSource.
std::string EmulationSource(const std::vector<KernelSourceFile>& sources);

// Builds an xclbin for the emulated fleet from OpenCL C sources, for `shell`:
//   header        m_mode options.mode, the shell's interface UUID and VBNV;
//   MEM_TOPOLOGY  the bank used (tag, type and size from the shell), m_used = 1;
//   IP_LAYOUT     one IP_KERNEL compute unit "<kernel>:<kernel>_1" per kernel, at distinct
//                 64 KiB-aligned base addresses from 0x1800000, interrupts on, AP_CTRL_CHAIN;
//   CONNECTIVITY  each __global/__constant pointer argument -> the bank;
//   CLOCK_FREQ_TOPOLOGY  DATA_CLK and KERNEL_CLK within the shell's limits;
//   EMULATION_DATA       EmulationSource(options.sources);
//   EMBEDDED_METADATA and BUILD_METADATA describing kernels, arguments and register offsets
//   as v++ does (so xclbinutil --info lists the kernels); the group sections as xclbinutil.
// Errors: PACK_INVALID for no source, no kernel, two kernels of one name, a name too long for
// IP_LAYOUT, a mode that is not emulation, a bank the shell does not have, a clock of 0 or over
// the shell's limit.
StatusOr<std::vector<uint8_t>> PackEmulationXclbin(const ShellSpec& shell,
                                                   const EmulationPackOptions& options);

}  // namespace fpgahost::images
