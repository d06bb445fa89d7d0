#include "bench/big_xclbin.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "common/files.h"
#include "images/xclbin.h"

namespace fpgahost::bench {
namespace fs = std::filesystem;

namespace {

template <typename T>
void Put(std::string& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(value));
}

}  // namespace

Status MakeBigXclbin(const fs::path& base, uint64_t bytes, const fs::path& out) {
  ASSIGN_OR_RETURN(std::string head, ReadFile(base));
  auto span = std::span(reinterpret_cast<const uint8_t*>(head.data()), head.size());
  ASSIGN_OR_RETURN(images::XclbinLayout layout, images::ParseXclbinLayout(span));
  if (layout.header.signature_length > 0) {
    return InvalidArgumentError("the base file must not be signed");
  }
  size_t bit = layout.sections.size();
  for (size_t i = 0; i < layout.sections.size(); ++i) {
    if (layout.sections[i].kind == 0) bit = i;  // BITSTREAM
  }
  if (bit == layout.sections.size()) return InvalidArgumentError("the base has no BITSTREAM");

  head.resize((head.size() + 7) / 8 * 8, '\0');
  uint64_t offset = head.size();
  uint64_t total = offset + bytes;
  std::error_code ec;
  if (fs::exists(out, ec) && fs::file_size(out, ec) == total) return Status::Ok();

  // The old bitstream stays where it was, unreferenced; the section now points at the tail.
  size_t hdr = images::kAxlfHeaderSize + bit * images::kAxlfSectionHeaderSize;
  Put<uint64_t>(head, hdr + 24, offset);
  Put<uint64_t>(head, hdr + 32, bytes);
  Put<uint64_t>(head, 304, total);  // m_length

  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  f.write(head.data(), static_cast<std::streamsize>(head.size()));
  std::mt19937_64 rng(42);
  std::vector<uint64_t> block(1 << 17);  // 1 MiB
  for (uint64_t left = bytes; left > 0;) {
    for (auto& w : block) w = rng();
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size() * sizeof(uint64_t)));
    f.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
  f.close();
  if (!f) return InternalError(fmt::format("cannot write {}", out.string()));
  return Status::Ok();
}

}  // namespace fpgahost::bench
