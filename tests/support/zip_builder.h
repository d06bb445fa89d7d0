// Zips for tests, built in memory with libzip's write API: Lambda-style code bundles and
// broken ones. Tests using it link PkgConfig::LIBZIP.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zip.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fpgahost::testing {

inline constexpr uint32_t kFile = S_IFREG;
inline constexpr uint32_t kDir = S_IFDIR;

struct Spec {
  std::string name;
  std::string data;
  uint32_t mode = kFile | 0644;  // st_mode, stored in the high 16 bits of the attributes
  zip_uint8_t opsys = ZIP_OPSYS_UNIX;
  zip_int32_t method = ZIP_CM_DEFLATE;
  const char* password = nullptr;  // AES-256 when set
};

inline Spec Bootstrap(uint32_t mode = kFile | 0755) {
  return {"bootstrap", "#!/bin/sh\nexec ./handler\n", mode};
}

// Builds a zip in memory with libzip's write API. A name ending in '/' is a directory entry.
inline std::string MakeZip(const std::vector<Spec>& specs) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* out = zip_source_buffer_create(nullptr, 0, 0, &error);
  EXPECT_NE(out, nullptr);
  zip_source_keep(out);  // survives zip_close, to be read back
  zip_t* zip = zip_open_from_source(out, ZIP_TRUNCATE, &error);
  EXPECT_NE(zip, nullptr) << zip_error_strerror(&error);
  for (const Spec& s : specs) {
    zip_int64_t index;
    if (!s.name.empty() && s.name.back() == '/') {
      index = zip_dir_add(zip, s.name.c_str(), 0);
    } else {
      zip_source_t* data = zip_source_buffer(zip, s.data.data(), s.data.size(), 0);
      index = zip_file_add(zip, s.name.c_str(), data, 0);
      if (index < 0) zip_source_free(data);
    }
    EXPECT_GE(index, 0) << s.name << ": " << zip_strerror(zip);
    if (index < 0) continue;
    auto i = static_cast<zip_uint64_t>(index);
    EXPECT_EQ(zip_file_set_external_attributes(zip, i, 0, s.opsys, s.mode << 16), 0);
    EXPECT_EQ(zip_set_file_compression(zip, i, s.method, 0), 0);
    if (s.password != nullptr) {
      EXPECT_EQ(zip_file_set_encryption(zip, i, ZIP_EM_AES_256, s.password), 0)
          << zip_strerror(zip);
    }
  }
  EXPECT_EQ(zip_close(zip), 0) << zip_strerror(zip);
  zip_stat_t st;
  EXPECT_EQ(zip_source_open(out), 0);
  EXPECT_EQ(zip_source_stat(out, &st), 0);
  std::string bytes(st.size, '\0');
  EXPECT_EQ(zip_source_read(out, bytes.data(), st.size), static_cast<zip_int64_t>(st.size));
  zip_source_close(out);
  zip_source_free(out);
  zip_error_fini(&error);
  return bytes;
}

}  // namespace fpgahost::testing
