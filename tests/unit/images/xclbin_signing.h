// Test-only signing of xclbins the way xclbinutil does it, and throwaway keys and
// certificates, to check the verifier against signatures made here.
#pragma once

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/images/xclbin_fixtures.h"

namespace fpgahost::images::testing {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

inline KeyPtr NewRsaKey() { return KeyPtr(EVP_RSA_gen(2048)); }

inline KeyPtr ReadPemKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

inline CertPtr ReadPemCert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

inline std::string CertToPem(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// A self-signed certificate for `key`. With `like`, it copies that certificate's subject,
// issuer and serial number: an impostor the verifier can only tell apart by its key.
inline CertPtr SelfSignedCert(EVP_PKEY* key, const std::string& common_name, X509* like = nullptr) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  if (like != nullptr) {
    X509_set_serialNumber(cert.get(), X509_get_serialNumber(like));
    X509_set_subject_name(cert.get(), X509_get_subject_name(like));
    X509_set_issuer_name(cert.get(), X509_get_issuer_name(like));
  } else {
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 4242);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(cert.get(), name);
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_sign(cert.get(), key, EVP_sha256());
  return cert;
}

// Signs an unsigned xclbin as `xclbinutil --private-key --certificate` does: a detached DER
// CMS SignedData over the whole file, appended, with m_signature_length and m_length updated.
// `cms_flags` adds to the signer flags (xclbinutil: CMS_NOCERTS | CMS_NOATTR |
// CMS_NOSMIMECAP).
inline std::vector<uint8_t> SignXclbin(std::vector<uint8_t> bytes, EVP_PKEY* key, X509* cert,
                                       unsigned int cms_flags, const EVP_MD* md = EVP_sha512()) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(
      BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), BIO_free);
  std::unique_ptr<CMS_ContentInfo, decltype(&CMS_ContentInfo_free)> cms(
      CMS_sign(nullptr, nullptr, nullptr, nullptr,
               CMS_PARTIAL | CMS_BINARY | CMS_DETACHED | (cms_flags & CMS_NOCERTS)),
      CMS_ContentInfo_free);
  EXPECT_NE(cms, nullptr);
  EXPECT_NE(CMS_add1_signer(cms.get(), cert, key, md, CMS_BINARY | cms_flags), nullptr);
  EXPECT_EQ(CMS_final(cms.get(), in.get(), nullptr, CMS_BINARY), 1);
  unsigned char* der = nullptr;
  int len = i2d_CMS_ContentInfo(cms.get(), &der);
  EXPECT_GT(len, 0);
  std::vector<uint8_t> out = std::move(bytes);
  PutLe(&out, kOffSignatureLength, static_cast<uint32_t>(len), 4);
  PutLe(&out, kOffLength, out.size() + static_cast<size_t>(len), 8);
  out.insert(out.end(), der, der + len);
  OPENSSL_free(der);
  return out;
}

inline constexpr unsigned int kXclbinutilSignerFlags = CMS_NOCERTS | CMS_NOATTR | CMS_NOSMIMECAP;

}  // namespace fpgahost::images::testing
