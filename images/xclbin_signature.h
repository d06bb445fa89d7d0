// Checks the PKCS#7 (CMS) signature of an xclbin, as `xclbinutil --private-key K
// --certificate C` writes it.
//
// What xclbinutil signs: the whole unsigned file, with m_signature_length = -1 and m_length =
// the unsigned size. The signature is a DER CMS SignedData, detached, carrying no
// certificates and (normally) no signed attributes; it is appended to the file,
// m_signature_length becomes its size and m_length grows by it. So the check restores those
// two header fields, hashes the first m_length - m_signature_length bytes and verifies the
// signature over them.
//
// Trust model: the operator lists the signing certificates themselves (PEM or DER). The
// signer named in the signature (issuer + serial number) must be one of them, and its key
// must verify the signature; certificates embedded in the signature are ignored, there is
// no CA chain building and validity dates are not checked (images outlive certificates;
// xclbinutil's own verification does the same). Remove a certificate from the list to
// revoke it.
//
// xclbinutil's other "signature", a free-text block appended after m_length
// (--add-signature), proves nothing and is not verifiable: see XclbinSignatures::user.
//
// Errors (InvalidArgument): SIGNATURE_REQUIRED when the file has no PKCS#7 signature,
// SIGNATURE_INVALID when it has one that does not verify against the trusted certificates,
// and the reader's structural errors (images/xclbin.h) for files that cannot be read.
//
// Thread-safety: TrustedCerts is immutable once built and may be shared by threads
// verifying concurrently; the functions are thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fpgahost::images {

inline constexpr char kReasonSignatureRequired[] = "SIGNATURE_REQUIRED";
inline constexpr char kReasonSignatureInvalid[] = "SIGNATURE_INVALID";

// A set of trusted signing certificates. Cheap to copy (copies share the certificates).
class TrustedCerts {
 public:
  TrustedCerts();  // empty: trusts no one

  // Reads one DER certificate or any number of PEM certificates from `data`. `origin` names
  // the source in error messages. Errors: InvalidArgument (reason INVALID_CERTIFICATE).
  static StatusOr<TrustedCerts> Parse(std::string_view data, std::string_view origin);
  // Reads every file (PEM or DER) and merges them.
  static StatusOr<TrustedCerts> Load(const std::vector<std::filesystem::path>& files);

  size_t size() const;
  bool empty() const { return size() == 0; }
  // Subjects of the certificates, RFC 2253 style, for logs and reports.
  std::vector<std::string> Subjects() const;

 private:
  friend class TrustedCertsAccess;
  struct Rep;
  std::shared_ptr<const Rep> rep_;
};

// Who signed a file whose signature verified.
struct XclbinSigner {
  std::string subject;  // of the trusted certificate that verified, RFC 2253 style
  std::string issuer;
  std::string serial;  // hex
  std::string digest;  // "SHA512", ...
};

// Verifies the PKCS#7 signature of a whole xclbin file (`bytes`) against `trusted`.
// The signed content is streamed from `bytes` with the header fields restored, without
// copying the file.
StatusOr<XclbinSigner> VerifyXclbinSignature(std::span<const uint8_t> bytes,
                                             const TrustedCerts& trusted);

}  // namespace fpgahost::images
