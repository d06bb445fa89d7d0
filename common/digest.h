// SHA-256 through OpenSSL 3 (hardware-accelerated where the CPU allows).
// Sha256 objects are not thread-safe; the free functions are.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

namespace fpgahost {

// Incremental SHA-256, for data that arrives in pieces (uploads, files read in chunks).
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Lowercase hex of the digest. Ends the computation; call once.
  std::string FinishHex();

 private:
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx_;
};

std::string Sha256Hex(std::string_view data);

// Compares two strings in time that does not depend on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace fpgahost
