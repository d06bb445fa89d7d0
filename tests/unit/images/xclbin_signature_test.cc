#include "images/xclbin_signature.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "images/xclbin.h"
#include "tests/unit/images/xclbin_fixtures.h"
#include "tests/unit/images/xclbin_signing.h"

namespace fpgahost::images {
namespace {

using ::testing::HasSubstr;
using namespace ::fpgahost::images::testing;  // NOLINT(google-build-using-namespace)

// Reasons a modified signed file may be refused with: the signature's, or the structural
// ones when the change breaks the layout first.
const std::set<std::string>& AcceptableRefusals() {
  static const std::set<std::string> reasons = {
      "SIGNATURE_INVALID", "XCLBIN_TRUNCATED",       "XCLBIN_BAD_HEADER", "XCLBIN_BAD_MAGIC",
      "TOO_MANY_SECTIONS", "XCLBIN_LENGTH_MISMATCH", "SIGNATURE_REQUIRED"};
  return reasons;
}

class SignatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    signed_ = ReadFixture("05_signed");
    StatusOr<TrustedCerts> certs = TrustedCerts::Load({XclbinFixturesDir() / "signing_cert.pem"});
    ASSERT_TRUE(certs.ok()) << certs.status().ToString();
    trusted_ = *certs;
  }
  std::vector<uint8_t> signed_;
  TrustedCerts trusted_;
};

TEST_F(SignatureTest, VendorSignedFixtureVerifies) {
  StatusOr<XclbinSigner> signer = VerifyXclbinSignature(Bytes(signed_), trusted_);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ(signer->subject, trusted_.Subjects().at(0));
  EXPECT_FALSE(signer->serial.empty());
  EXPECT_EQ(signer->digest, "SHA512");  // the fixtures' README: "CMS, detached, SHA-512"
}

TEST_F(SignatureTest, DerCertificateWorksLikePem) {
  StatusOr<TrustedCerts> der = TrustedCerts::Load({XclbinFixturesDir() / "signing_cert.der"});
  ASSERT_TRUE(der.ok()) << der.status().ToString();
  EXPECT_EQ(der->Subjects(), trusted_.Subjects());
  EXPECT_TRUE(VerifyXclbinSignature(Bytes(signed_), *der).ok());
}

TEST_F(SignatureTest, SignatureBlobIsTheVendorsDetachedSignature) {
  // The reader puts the signature where xclbinutil dumped it (05_signed.signature.der).
  StatusOr<Xclbin> x = ParseXclbin(Bytes(signed_));
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(x->signatures.pkcs7.has_value());
  std::string dumped = ReadText(XclbinFixturesDir() / "05_signed.signature.der");
  std::span<const uint8_t> blob = Slice(Bytes(signed_), *x->signatures.pkcs7);
  EXPECT_EQ(std::string(blob.begin(), blob.end()), dumped);
}

// Any single changed bit, in the header, the section table, the sections, the mirror data or
// the signature itself, makes the file fail verification. (Every bit of the file was checked
// once; the test covers every bit of the header, table and signature and a sample of the
// payload to stay fast.)
TEST_F(SignatureTest, AnyFlippedBitFailsVerification) {
  StatusOr<Xclbin> x = ParseXclbin(Bytes(signed_));
  ASSERT_TRUE(x.ok());
  const uint64_t table_end = kAxlfHeaderSize + kAxlfSectionHeaderSize * x->sections.size();
  const uint64_t signature_at = x->signatures.pkcs7->offset;
  for (size_t pos = 0; pos < signed_.size(); ++pos) {
    bool every_bit = pos < table_end || pos >= signature_at;
    if (!every_bit && pos % 13 != 0) continue;
    for (int bit = 0; bit < 8; ++bit) {
      if (!every_bit && bit != 0 && bit != 7) continue;
      std::vector<uint8_t> copy = signed_;
      copy[pos] ^= static_cast<uint8_t>(1u << bit);
      StatusOr<XclbinSigner> r = VerifyXclbinSignature(Bytes(copy), trusted_);
      ASSERT_FALSE(r.ok()) << "byte " << pos << " bit " << bit << " still verifies";
      ASSERT_TRUE(AcceptableRefusals().count(std::string(r.status().reason())))
          << "byte " << pos << " bit " << bit << ": " << r.status().ToString();
    }
  }
}

TEST_F(SignatureTest, ContentChangeIsNamedAsSuch) {
  StatusOr<Xclbin> x = ParseXclbin(Bytes(signed_));
  ASSERT_TRUE(x.ok());
  const SectionHeader* bitstream = x->FindSection(SectionKind::kBitstream);
  ASSERT_NE(bitstream, nullptr);
  signed_[bitstream->offset + 10] ^= 0xFF;
  Status s = VerifyXclbinSignature(Bytes(signed_), trusted_).status();
  EXPECT_EQ(s.reason(), "SIGNATURE_INVALID");
  EXPECT_THAT(std::string(s.message()), HasSubstr("does not match the file's content"));
}

TEST_F(SignatureTest, UntrustedSignerIsRefused) {
  KeyPtr key = NewRsaKey();
  CertPtr other = SelfSignedCert(key.get(), "someone else");
  StatusOr<TrustedCerts> others = TrustedCerts::Parse(CertToPem(other.get()), "other.pem");
  ASSERT_TRUE(others.ok()) << others.status().ToString();
  Status s = VerifyXclbinSignature(Bytes(signed_), *others).status();
  EXPECT_EQ(s.reason(), "SIGNATURE_INVALID");
  EXPECT_THAT(std::string(s.message()), HasSubstr("not among the 1 trusted certificate"));
  EXPECT_EQ(VerifyXclbinSignature(Bytes(signed_), TrustedCerts()).status().reason(),
            "SIGNATURE_INVALID");
}

TEST_F(SignatureTest, ImpostorCertificateWithTheSignersNameIsRefused) {
  // Same issuer and serial number as the real signer, different key.
  CertPtr real = ReadPemCert(ReadText(XclbinFixturesDir() / "signing_cert.pem"));
  ASSERT_NE(real, nullptr);
  KeyPtr key = NewRsaKey();
  CertPtr impostor = SelfSignedCert(key.get(), "", real.get());
  StatusOr<TrustedCerts> certs = TrustedCerts::Parse(CertToPem(impostor.get()), "impostor.pem");
  ASSERT_TRUE(certs.ok());
  Status s = VerifyXclbinSignature(Bytes(signed_), *certs).status();
  EXPECT_EQ(s.reason(), "SIGNATURE_INVALID");
}

TEST_F(SignatureTest, OurReconstructionMatchesXclbinutilsSigning) {
  // Signing 02 here, as xclbinutil does, gives a file that verifies: the verifier restores
  // exactly the header the signer saw.
  KeyPtr key = ReadPemKey(ReadText(XclbinFixturesDir() / "signing_private.key"));
  CertPtr cert = ReadPemCert(ReadText(XclbinFixturesDir() / "signing_cert.pem"));
  ASSERT_NE(key, nullptr);
  ASSERT_NE(cert, nullptr);
  std::vector<uint8_t> file =
      SignXclbin(ReadFixture("02_full_hw"), key.get(), cert.get(), kXclbinutilSignerFlags);
  EXPECT_TRUE(VerifyXclbinSignature(Bytes(file), trusted_).ok());
  // Signed attributes (openssl cms's default) verify too.
  file = SignXclbin(ReadFixture("02_full_hw"), key.get(), cert.get(), CMS_NOCERTS, EVP_sha256());
  StatusOr<XclbinSigner> signer = VerifyXclbinSignature(Bytes(file), trusted_);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ(signer->digest, "SHA256");
}

TEST_F(SignatureTest, CertificateShippedInsideTheSignatureIsNotTrusted) {
  // An attacker signs with their own key and embeds their certificate; only the operator's
  // list may name signers.
  KeyPtr key = NewRsaKey();
  CertPtr cert = SelfSignedCert(key.get(), "attacker");
  std::vector<uint8_t> file =
      SignXclbin(ReadFixture("02_full_hw"), key.get(), cert.get(), CMS_NOATTR);
  Status s = VerifyXclbinSignature(Bytes(file), trusted_).status();
  EXPECT_EQ(s.reason(), "SIGNATURE_INVALID");
  EXPECT_THAT(std::string(s.message()), HasSubstr("attacker"));
}

TEST_F(SignatureTest, FilesWithoutPkcsSignatureAreNotVerifiable) {
  for (const char* name : {"02_full_hw", "12_user_signature"}) {
    Status s = VerifyXclbinSignature(Bytes(ReadFixture(name)), trusted_).status();
    EXPECT_EQ(s.reason(), "SIGNATURE_REQUIRED") << name;
    EXPECT_THAT(std::string(s.message()), HasSubstr("m_signature_length is -1")) << name;
  }
}

TEST_F(SignatureTest, GarbageInTheSignatureSlotIsInvalid) {
  StatusOr<Xclbin> x = ParseXclbin(Bytes(signed_));
  ASSERT_TRUE(x.ok());
  std::fill(signed_.begin() + static_cast<ptrdiff_t>(x->signatures.pkcs7->offset), signed_.end(),
            0x30);
  Status s = VerifyXclbinSignature(Bytes(signed_), trusted_).status();
  EXPECT_EQ(s.reason(), "SIGNATURE_INVALID");
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a DER CMS signature"));
}

TEST(TrustedCertsTest, BadInputNamesTheSource) {
  StatusOr<TrustedCerts> garbage = TrustedCerts::Parse("not a certificate", "certs/ops.pem");
  EXPECT_EQ(garbage.status().reason(), "INVALID_CERTIFICATE");
  EXPECT_THAT(std::string(garbage.status().message()), HasSubstr("certs/ops.pem"));
  StatusOr<TrustedCerts> broken =
      TrustedCerts::Parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "x");
  EXPECT_EQ(broken.status().reason(), "INVALID_CERTIFICATE");
  EXPECT_FALSE(TrustedCerts::Load({"/nonexistent/cert.pem"}).ok());
}

TEST(TrustedCertsTest, PemFileMayHoldSeveralCertificates) {
  KeyPtr key = NewRsaKey();
  CertPtr a = SelfSignedCert(key.get(), "a");
  CertPtr b = SelfSignedCert(key.get(), "b");
  StatusOr<TrustedCerts> both =
      TrustedCerts::Parse(CertToPem(a.get()) + CertToPem(b.get()), "both.pem");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_THAT(both->Subjects(), ::testing::ElementsAre("CN=a", "CN=b"));
}

}  // namespace
}  // namespace fpgahost::images
