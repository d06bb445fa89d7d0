#include "images/xclbin_signature.h"

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/files.h"
#include "images/axlf_layout.h"
#include "images/openssl_util.h"
#include "images/xclbin.h"

namespace fpgahost::images {

struct TrustedCerts::Rep {
  STACK_OF(X509) * certs = nullptr;
  Rep() : certs(sk_X509_new_null()) {
    // Without memory for an empty stack nothing else can work either.
    if (certs == nullptr) std::abort();
  }
  ~Rep() { sk_X509_pop_free(certs, X509_free); }
  Rep(const Rep&) = delete;
  Rep& operator=(const Rep&) = delete;
};

class TrustedCertsAccess {
 public:
  static STACK_OF(X509) * Stack(const TrustedCerts& t) { return t.rep_->certs; }
  static TrustedCerts Make(std::shared_ptr<const TrustedCerts::Rep> rep) {
    TrustedCerts out;
    out.rep_ = std::move(rep);
    return out;
  }
};

namespace {

using namespace axlf;  // NOLINT(google-build-using-namespace): the layout constants

constexpr char kReasonInvalidCertificate[] = "INVALID_CERTIFICATE";

using namespace openssl;  // NOLINT(google-build-using-namespace): the owners above

std::string NameToString(const X509_NAME* name) {
  if (name == nullptr) return "";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// Whether two names have the same DER bytes (X509_NAME keeps the encoding it was read from).
bool SameEncoding(const X509_NAME* a, const X509_NAME* b) {
  const unsigned char* a_der = nullptr;
  const unsigned char* b_der = nullptr;
  size_t a_len = 0;
  size_t b_len = 0;
  if (X509_NAME_get0_der(a, &a_der, &a_len) != 1 || X509_NAME_get0_der(b, &b_der, &b_len) != 1) {
    ERR_clear_error();
    return false;
  }
  return a_len == b_len && std::memcmp(a_der, b_der, a_len) == 0;
}

std::string SerialToHex(const ASN1_INTEGER* serial) {
  if (serial == nullptr) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) return "";
  char* hex = BN_bn2hex(bn);
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The signed content, presented to OpenSSL as a read-only BIO: the header with
// m_signature_length and m_length restored, then the file up to the signature. Streaming it
// this way avoids copying a file that may be hundreds of megabytes.
struct SignedContent {
  std::span<const uint8_t> head;
  std::span<const uint8_t> rest;
  size_t pos = 0;

  size_t total() const { return head.size() + rest.size(); }
};

int SignedContentRead(BIO* bio, char* out, size_t len, size_t* read) {
  auto* c = static_cast<SignedContent*>(BIO_get_data(bio));
  size_t n = 0;
  while (n < len && c->pos < c->total()) {
    bool in_head = c->pos < c->head.size();
    std::span<const uint8_t> part = in_head ? c->head : c->rest;
    size_t at = in_head ? c->pos : c->pos - c->head.size();
    size_t chunk = std::min(len - n, part.size() - at);
    std::memcpy(out + n, part.data() + at, chunk);
    n += chunk;
    c->pos += chunk;
  }
  *read = n;
  return n > 0 ? 1 : 0;
}

long SignedContentCtrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  auto* c = static_cast<SignedContent*>(BIO_get_data(bio));
  switch (cmd) {
    case BIO_CTRL_EOF:
      return c->pos >= c->total() ? 1 : 0;
    case BIO_CTRL_PENDING:
      return static_cast<long>(std::min<size_t>(c->total() - c->pos, LONG_MAX));
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

int SignedContentCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* SignedContentMethod() {
  // Created once and kept for the life of the process; OpenSSL method tables are immutable
  // after set-up, so sharing one across threads is safe.
  static BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "xclbin signed content");
    if (m == nullptr || BIO_meth_set_read_ex(m, SignedContentRead) != 1 ||
        BIO_meth_set_ctrl(m, SignedContentCtrl) != 1 ||
        BIO_meth_set_create(m, SignedContentCreate) != 1) {
      std::abort();
    }
    return m;
  }();
  return method;
}

// A cursor over DER elements, for the few fields OpenSSL parses but neither checks nor has
// an accessor for. Bounds-checked; indefinite lengths are refused.
class DerReader {
 public:
  explicit DerReader(std::span<const uint8_t> der)
      : p_(der.data()), end_(der.data() + der.size()) {}

  bool empty() const { return p_ >= end_; }

  // Consumes the next element when it has this tag and class; `content` (optional) gets a
  // reader over its contents.
  bool Take(int tag, int xclass, DerReader* content = nullptr) {
    const unsigned char* q = p_;
    long len = 0;
    int t = 0, c = 0;
    int r = ASN1_get_object(&q, &len, &t, &c, end_ - p_);
    // SEQUENCE, SET and explicit tags are constructed; INTEGER and OBJECT primitive.
    bool constructed = xclass != V_ASN1_UNIVERSAL || tag == V_ASN1_SEQUENCE || tag == V_ASN1_SET;
    if ((r & 0x80) != 0 || (r & 0x01) != 0 || ((r & V_ASN1_CONSTRUCTED) != 0) != constructed ||
        t != tag || c != xclass || len < 0 || len > end_ - q) {
      ERR_clear_error();
      return false;
    }
    if (content != nullptr) *content = DerReader(q, q + len);
    p_ = q + len;
    return true;
  }

  bool TakeIf(int tag, int xclass) {
    DerReader copy = *this;
    if (!copy.Take(tag, xclass)) return false;
    *this = copy;
    return true;
  }

  // A one-byte INTEGER (versions), or -1.
  int SmallInteger() {
    DerReader value(nullptr, nullptr);
    if (!Take(V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &value) || value.end_ - value.p_ != 1) return -1;
    return value.p_[0];
  }

 private:
  DerReader(const unsigned char* p, const unsigned char* end) : p_(p), end_(end) {}
  const unsigned char* p_;
  const unsigned char* end_;
};

// The version fields of a SignedData (first) and of its SignerInfos (then), or nullopt when
// the structure is not the DER shape of RFC 5652.
std::optional<std::vector<int>> CmsVersions(std::span<const uint8_t> der) {
  DerReader all(der), content_info(der), explicit0(der), signed_data(der), signer_infos(der);
  if (!all.Take(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &content_info) ||
      !content_info.Take(V_ASN1_OBJECT, V_ASN1_UNIVERSAL) ||
      !content_info.Take(0, V_ASN1_CONTEXT_SPECIFIC, &explicit0) ||
      !explicit0.Take(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &signed_data)) {
    return std::nullopt;
  }
  std::vector<int> versions = {signed_data.SmallInteger()};
  if (!signed_data.Take(V_ASN1_SET, V_ASN1_UNIVERSAL) ||       // digestAlgorithms
      !signed_data.Take(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL)) {  // encapContentInfo
    return std::nullopt;
  }
  signed_data.TakeIf(0, V_ASN1_CONTEXT_SPECIFIC);  // certificates
  signed_data.TakeIf(1, V_ASN1_CONTEXT_SPECIFIC);  // crls
  if (!signed_data.Take(V_ASN1_SET, V_ASN1_UNIVERSAL, &signer_infos)) return std::nullopt;
  while (!signer_infos.empty()) {
    DerReader signer_info(der);
    if (!signer_infos.Take(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &signer_info)) return std::nullopt;
    versions.push_back(signer_info.SmallInteger());
  }
  return versions;
}

Status Invalid(std::string message) {
  return InvalidArgumentError(std::move(message), kReasonSignatureInvalid);
}

// Describes who the signature says signed it (issuer and serial), for error messages.
std::string SignerIdOf(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  if (infos == nullptr || sk_CMS_SignerInfo_num(infos) < 1) return "an unnamed signer";
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, 0);
  ASN1_OCTET_STRING* key_id = nullptr;
  X509_NAME* issuer = nullptr;
  ASN1_INTEGER* serial = nullptr;
  if (CMS_SignerInfo_get0_signer_id(si, &key_id, &issuer, &serial) != 1) {
    ERR_clear_error();
    return "an unnamed signer";
  }
  if (issuer == nullptr) return "a signer named by subject key identifier";
  return fmt::format("issuer '{}', serial {}", EscapeForDisplay(NameToString(issuer)),
                     SerialToHex(serial));
}

// The fields of the signature that nothing signs and OpenSSL parses without checking: they
// must hold what signers write, so that changing any byte of a signed file is noticed.
Status CheckUnsignedFields(CMS_ContentInfo* cms, std::span<const uint8_t> der) {
  // Nothing signs the version fields and OpenSSL does not check them. RFC 5652 fixes them for
  // signatures of id-data without attribute certificates: 1 for a signer named by issuer and
  // serial number, 3 for one named by subject key identifier, and the SignedData 3 if any
  // signer is 3, else 1.
  std::optional<std::vector<int>> versions = CmsVersions(der);
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  if (!versions || infos == nullptr || sk_CMS_SignerInfo_num(infos) < 1 ||
      versions->size() != static_cast<size_t>(sk_CMS_SignerInfo_num(infos)) + 1) {
    return Invalid("the CMS signature is not a DER SignedData with signers");
  }
  bool any_v3 = false;
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    ASN1_OCTET_STRING* key_id = nullptr;
    X509_NAME* issuer = nullptr;
    ASN1_INTEGER* serial = nullptr;
    if (CMS_SignerInfo_get0_signer_id(sk_CMS_SignerInfo_value(infos, i), &key_id, &issuer,
                                      &serial) != 1) {
      ERR_clear_error();
      return Invalid(fmt::format("signer {} of the CMS signature has no identifier", i));
    }
    int expected = issuer != nullptr ? 1 : 3;
    any_v3 = any_v3 || expected == 3;
    if ((*versions)[static_cast<size_t>(i) + 1] != expected) {
      return Invalid(fmt::format("signer {} of the CMS signature has version {}, not {}", i,
                                 (*versions)[static_cast<size_t>(i) + 1], expected));
    }
  }
  if (versions->front() != (any_v3 ? 3 : 1)) {
    return Invalid(fmt::format("the CMS SignedData has version {}, not {}", versions->front(),
                               any_v3 ? 3 : 1));
  }
  // Without signed attributes nothing binds the declared content type, so a changed one would
  // still verify; xclbinutil always signs plain data, and anything else is refused.
  if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data) {
    return Invalid("the CMS signature's content type is not id-data, which xclbin signing uses");
  }

  // OpenSSL matches a digest OID it does not know against any provider digest, so a mangled
  // (and unsigned) digestAlgorithm field would still verify; insist on a digest it knows.
  // Algorithm parameters that OpenSSL ignores must be what signers write: none, or NULL.
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    X509_ALGOR* digest = nullptr;
    X509_ALGOR* sig_alg = nullptr;
    CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(infos, i), nullptr, nullptr, &digest,
                             &sig_alg);
    const ASN1_OBJECT* obj = nullptr;
    int param_type = V_ASN1_UNDEF;
    if (digest != nullptr) X509_ALGOR_get0(&obj, &param_type, nullptr, digest);
    int nid = obj != nullptr ? OBJ_obj2nid(obj) : NID_undef;
    if (nid == NID_undef || EVP_get_digestbynid(nid) == nullptr) {
      return Invalid(
          fmt::format("signer {} of the CMS signature names an unknown digest algorithm", i));
    }
    if (param_type != V_ASN1_UNDEF && param_type != V_ASN1_NULL) {
      return Invalid(fmt::format("signer {} of the CMS signature has digest parameters", i));
    }
    obj = nullptr;
    param_type = V_ASN1_UNDEF;
    if (sig_alg != nullptr) X509_ALGOR_get0(&obj, &param_type, nullptr, sig_alg);
    int sig_nid = obj != nullptr ? OBJ_obj2nid(obj) : NID_undef;
    // RSASSA-PSS carries real parameters, which OpenSSL checks itself.
    if (sig_nid != NID_rsassaPss && param_type != V_ASN1_UNDEF && param_type != V_ASN1_NULL) {
      return Invalid(
          fmt::format("signer {} of the CMS signature has signature algorithm parameters", i));
    }
    // OpenSSL takes only the key type from a combined OID such as sha1WithRSAEncryption; its
    // digest half must then agree with the digest actually used.
    int sig_md = NID_undef;
    int sig_pkey = NID_undef;
    if (sig_nid != NID_undef && OBJ_find_sigid_algs(sig_nid, &sig_md, &sig_pkey) == 1 &&
        sig_md != NID_undef && sig_md != nid) {
      return Invalid(
          fmt::format("signer {} of the CMS signature names signature algorithm {} with digest {}",
                      i, OBJ_nid2sn(sig_nid), OBJ_nid2sn(nid)));
    }
  }
  return Status::Ok();
}

// Hashes the signed content (the file up to the signature, with the header as it was when
// signed) and checks the signature against the trusted certificates.
Status CheckSignatureValue(CMS_ContentInfo* cms, std::span<const uint8_t> bytes,
                           uint64_t signed_size, const TrustedCerts& trusted) {
  std::array<uint8_t, kAxlfHeaderSize> head;
  std::memcpy(head.data(), bytes.data(), head.size());
  // The state of the two header fields when the tool signed: unsigned, unsigned length.
  std::memset(head.data() + kOffSignatureLength, 0xFF, 4);
  for (size_t i = 0; i < 8; ++i) {
    head[kOffLength + i] = static_cast<uint8_t>(signed_size >> (8 * i));
  }
  SignedContent content{head, bytes.subspan(kAxlfHeaderSize, signed_size - kAxlfHeaderSize)};
  BioPtr bio(BIO_new(SignedContentMethod()));
  if (!bio) return InternalError("BIO_new failed");
  BIO_set_data(bio.get(), &content);

  // CMS_NOINTERN: only the operator's certificates may name the signer, never ones shipped
  // inside the signature. CMS_NO_SIGNER_CERT_VERIFY: trust is membership of that list (see the
  // header), not a chain to a CA.
  int ok = CMS_verify(cms, TrustedCertsAccess::Stack(trusted), nullptr, bio.get(), nullptr,
                      CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY);
  if (ok != 1) {
    unsigned long err = ERR_peek_last_error();
    if (ERR_GET_LIB(err) == ERR_LIB_CMS &&
        ERR_GET_REASON(err) == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND) {
      ERR_clear_error();
      return Invalid(
          fmt::format("the file is signed by {}, which is not among the {} trusted certificate(s)",
                      SignerIdOf(cms), trusted.size()));
    }
    if (ERR_GET_LIB(err) == ERR_LIB_CMS && (ERR_GET_REASON(err) == CMS_R_VERIFICATION_FAILURE ||
                                            ERR_GET_REASON(err) == CMS_R_CONTENT_VERIFY_ERROR)) {
      ERR_clear_error();
      return Invalid(fmt::format(
          "the signature by {} does not match the file's content: the file was changed after "
          "signing or signed with another key",
          SignerIdOf(cms)));
    }
    return Invalid(fmt::format("the signature by {} does not verify: {}", SignerIdOf(cms),
                               TakeOpenSslError()));
  }
  return Status::Ok();
}

// OpenSSL finds the signer's certificate by comparing names case-insensitively, as X.509
// allows; insist on the exact bytes, so that no byte of the signature is without effect.
Status CheckSignerNamedExactly(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
    X509* cert = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, &cert, nullptr, nullptr);
    ASN1_OCTET_STRING* key_id = nullptr;
    X509_NAME* issuer = nullptr;
    ASN1_INTEGER* serial = nullptr;
    if (cert == nullptr || CMS_SignerInfo_get0_signer_id(si, &key_id, &issuer, &serial) != 1) {
      ERR_clear_error();
      return Invalid(fmt::format("signer {} of the CMS signature has no certificate", i));
    }
    if (issuer != nullptr && !SameEncoding(issuer, X509_get_issuer_name(cert))) {
      return Invalid(fmt::format(
          "signer {} of the CMS signature spells the issuer differently from the trusted "
          "certificate ({} vs {})",
          i, EscapeForDisplay(NameToString(issuer)),
          EscapeForDisplay(NameToString(X509_get_issuer_name(cert)))));
    }
  }
  return Status::Ok();
}

// Who signed, once the signature has verified (CMS_get0_signers needs that).
XclbinSigner DescribeSigner(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  XclbinSigner signer;
  STACK_OF(X509)* signers = CMS_get0_signers(cms);
  if (signers != nullptr && sk_X509_num(signers) > 0) {
    X509* cert = sk_X509_value(signers, 0);
    signer.subject = NameToString(X509_get_subject_name(cert));
    signer.issuer = NameToString(X509_get_issuer_name(cert));
    signer.serial = SerialToHex(X509_get0_serialNumber(cert));
  }
  sk_X509_free(signers);
  X509_ALGOR* digest = nullptr;
  CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(infos, 0), nullptr, nullptr, &digest, nullptr);
  if (digest != nullptr) {
    const ASN1_OBJECT* obj = nullptr;
    X509_ALGOR_get0(&obj, nullptr, nullptr, digest);
    const char* name = OBJ_nid2sn(OBJ_obj2nid(obj));
    signer.digest = name != nullptr ? name : "";
  }
  ERR_clear_error();
  return signer;
}

}  // namespace

TrustedCerts::TrustedCerts() : rep_(std::make_shared<Rep>()) {}

size_t TrustedCerts::size() const { return static_cast<size_t>(sk_X509_num(rep_->certs)); }

std::vector<std::string> TrustedCerts::Subjects() const {
  std::vector<std::string> out;
  for (int i = 0; i < sk_X509_num(rep_->certs); ++i) {
    out.push_back(NameToString(X509_get_subject_name(sk_X509_value(rep_->certs, i))));
  }
  return out;
}

StatusOr<TrustedCerts> TrustedCerts::Parse(std::string_view data, std::string_view origin) {
  if (data.size() > INT_MAX) {
    return InvalidArgumentError(fmt::format("{}: certificate file too large", origin),
                                kReasonInvalidCertificate);
  }
  auto rep = std::make_shared<Rep>();
  ERR_clear_error();
  if (data.find("-----BEGIN") != std::string_view::npos) {
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!bio) return InternalError("BIO_new_mem_buf failed");
    while (true) {
      X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
      if (!cert) {
        // Running out of PEM blocks is the normal end; anything else is a broken certificate.
        unsigned long err = ERR_peek_last_error();
        if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE &&
            sk_X509_num(rep->certs) > 0) {
          ERR_clear_error();
          break;
        }
        return InvalidArgumentError(
            fmt::format("{}: certificate {} is not a readable PEM X.509 certificate: {}", origin,
                        sk_X509_num(rep->certs) + 1, TakeOpenSslError()),
            kReasonInvalidCertificate);
      }
      if (sk_X509_push(rep->certs, cert.get()) <= 0) return InternalError("sk_X509_push failed");
      cert.release();  // owned by the stack now
    }
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(data.size())));
    if (!cert || p != reinterpret_cast<const unsigned char*>(data.data()) + data.size()) {
      return InvalidArgumentError(
          fmt::format("{}: not a PEM or DER X.509 certificate: {}", origin, TakeOpenSslError()),
          kReasonInvalidCertificate);
    }
    if (sk_X509_push(rep->certs, cert.get()) <= 0) return InternalError("sk_X509_push failed");
    cert.release();
  }
  return TrustedCertsAccess::Make(std::move(rep));
}

StatusOr<TrustedCerts> TrustedCerts::Load(const std::vector<std::filesystem::path>& files) {
  auto rep = std::make_shared<Rep>();
  for (const std::filesystem::path& file : files) {
    ASSIGN_OR_RETURN(std::string data, ReadFile(file));
    ASSIGN_OR_RETURN(TrustedCerts certs, Parse(data, file.string()));
    STACK_OF(X509)* stack = TrustedCertsAccess::Stack(certs);
    for (int i = 0; i < sk_X509_num(stack); ++i) {
      X509* cert = sk_X509_value(stack, i);
      if (X509_up_ref(cert) != 1) return InternalError("X509_up_ref failed");
      if (sk_X509_push(rep->certs, cert) <= 0) {
        X509_free(cert);
        return InternalError("sk_X509_push failed");
      }
    }
  }
  return TrustedCertsAccess::Make(std::move(rep));
}

StatusOr<XclbinSigner> VerifyXclbinSignature(std::span<const uint8_t> bytes,
                                             const TrustedCerts& trusted) {
  ASSIGN_OR_RETURN(XclbinLayout layout, ParseXclbinLayout(bytes));
  const AxlfHeader& h = layout.header;
  if (h.signature_length <= 0) {
    return InvalidArgumentError(
        fmt::format("the file has no PKCS#7 signature (m_signature_length is {})",
                    h.signature_length),
        kReasonSignatureRequired);
  }
  if (bytes.size() < h.length) {
    return InvalidArgumentError(
        fmt::format("file is {} bytes but m_length says {}", bytes.size(), h.length),
        kReasonTruncated);
  }
  // ParseXclbinLayout guarantees TableEnd() <= SignedEnd() <= m_length <= bytes.size().
  const uint64_t signed_size = layout.SignedEnd();
  std::span<const uint8_t> signature =
      bytes.subspan(signed_size, static_cast<size_t>(h.signature_length));

  ERR_clear_error();
  const unsigned char* p = signature.data();
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(signature.size())));
  if (!cms) {
    return Invalid(fmt::format(
        "the {} bytes at offset {} (m_signature_length) are not a DER CMS signature: {}",
        signature.size(), signed_size, TakeOpenSslError()));
  }
  if (p != signature.data() + signature.size()) {
    return Invalid(fmt::format("{} bytes follow the CMS signature inside m_signature_length",
                               signature.data() + signature.size() - p));
  }
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    return Invalid("the CMS signature is not SignedData");
  }
  if (CMS_is_detached(cms.get()) != 1) {
    return Invalid("the CMS signature embeds its content; xclbin signatures are detached");
  }
  RETURN_IF_ERROR(CheckUnsignedFields(cms.get(), signature));
  RETURN_IF_ERROR(CheckSignatureValue(cms.get(), bytes, signed_size, trusted));
  RETURN_IF_ERROR(CheckSignerNamedExactly(cms.get()));
  return DescribeSigner(cms.get());
}

}  // namespace fpgahost::images
