// The binary layout of an xclbin (struct axlf and its sections, as XRT's xclbin.h lays them
// out; everything little-endian): the offsets the reader (xclbin.cc), the writer
// (xclbin_writer.cc) and the signature code share. Internal to images/.
#pragma once

#include <cstddef>
#include <string_view>

namespace fpgahost::images::axlf {

// Fields of struct axlf.
inline constexpr size_t kOffSignatureLength = 8;
inline constexpr size_t kOffReserved = 12;
inline constexpr size_t kReservedSize = 28;
inline constexpr size_t kOffKeyBlock = 40;
inline constexpr size_t kKeyBlockSize = 256;
inline constexpr size_t kOffUniqueId = 296;
inline constexpr size_t kOffLength = 304;
inline constexpr size_t kOffTimeStamp = 312;
inline constexpr size_t kOffFeatureRomTimeStamp = 320;
inline constexpr size_t kOffVersionPatch = 328;
inline constexpr size_t kOffVersionMajor = 330;
inline constexpr size_t kOffVersionMinor = 331;
inline constexpr size_t kOffMode = 332;
inline constexpr size_t kOffActionMask = 334;
inline constexpr size_t kOffInterfaceUuid = 336;
inline constexpr size_t kOffPlatformVbnv = 352;
inline constexpr size_t kVbnvSize = 64;
inline constexpr size_t kOffUuid = 416;
inline constexpr size_t kOffDebugBin = 432;
inline constexpr size_t kDebugBinSize = 16;
inline constexpr size_t kOffNumSections = 448;

// Fields of one axlf_section_header.
inline constexpr size_t kSecOffKind = 0;
inline constexpr size_t kSecOffName = 4;
inline constexpr size_t kSecNameSize = 16;
inline constexpr size_t kSecOffOffset = 24;
inline constexpr size_t kSecOffSize = 32;

// Typed sections: where the entry array starts (after the count and the padding the C
// compiler puts before the first entry) and the size of one entry.
inline constexpr size_t kIpLayoutEntries = 8, kIpDataSize = 80, kIpNameSize = 64;
inline constexpr size_t kMemTopologyEntries = 8, kMemDataSize = 40, kMemTagSize = 16;
inline constexpr size_t kConnectivityEntries = 4, kConnectionSize = 12;
inline constexpr size_t kClockTopologyEntries = 2, kClockFreqSize = 136, kClockNameSize = 128;
inline constexpr size_t kDebugIpLayoutEntries = 8, kDebugIpDataSize = 144;

// The JSON copy of header and section table xclbinutil appends.
inline constexpr std::string_view kMirrorStart = "XCLBIN_MIRROR_DATA_START";
inline constexpr std::string_view kMirrorEnd = "XCLBIN_MIRROR_DATA_END";

}  // namespace fpgahost::images::axlf
