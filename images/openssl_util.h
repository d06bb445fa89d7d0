// OpenSSL objects owned by unique_ptr, and its error queue as text: shared by the signature
// check (xclbin_signature.cc) and the signer (xclbin_writer.cc). Internal to images/.
#pragma once

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

namespace fpgahost::images::openssl {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// The most recent OpenSSL error as text, and an empty error queue for the next caller.
inline std::string TakeOpenSslError() {
  unsigned long err = ERR_peek_last_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  std::string out = reason != nullptr ? reason : fmt::format("OpenSSL error {:#x}", err);
  ERR_clear_error();
  return out;
}

// A read-only memory BIO over `data`, which must outlive it.
inline BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace fpgahost::images::openssl
