// libFuzzer target for everything in images/ that reads outside bytes: the xclbin reader, the
// streaming prefix check, the validator (with and without a shell catalogue, under each
// signature policy, against a real signing certificate so mutated signatures reach the CMS
// verification) and the reports. A finding is any crash, sanitizer report, uncaught exception
// or leak.
//
// Built as `xclbin_fuzzer` with -DFPGAHOST_FUZZ=ON under clang, and always as
// `xclbin_fuzz_replay`, which runs it over tests/fuzz/corpus/xclbin (see CMakeLists.txt).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "images/shell_catalogue.h"
#include "images/xclbin.h"
#include "images/xclbin_report.h"
#include "images/xclbin_signature.h"
#include "images/xclbin_validator.h"

namespace {

using fpgahost::StatusOr;
using namespace fpgahost::images;  // NOLINT(google-build-using-namespace)

// The throwaway certificate that signed the corpus's 05_signed.xclbin (shared fixtures).
constexpr char kSigningCertPem[] = R"(-----BEGIN CERTIFICATE-----
MIIDKTCCAhGgAwIBAgIUb7XQ36+Ph0SeZF2+9mLkxxpu4cgwDQYJKoZIhvcNAQEL
BQAwJDEiMCAGA1UEAwwZeGNsYmluIGNvcnB1cyB0ZXN0IHNpZ25lcjAeFw0yNjEx
MjgwNDI5NDdaFw0zNjExMjUwNDI5NDdaMCQxIjAgBgNVBAMMGXhjbGJpbiBjb3Jw
dXMgdGVzdCBzaWduZXIwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDo
g65LeUX9tl6eBOFdF89+xo0yxTdiWT7d44hdw2pcDSjgUqegu8ph8RTCSVVrvXcC
btOWX7LKZb+RyO8hWeIQ/4qOqUf1yWU5Ws3lDLd8TFCymvYKO0VyM+rhBj1tNuB8
Su7IGhB+cLwOdXrbjvjTSIAtKumYLJr3V1ItszzS6kQv9VJa7RX8c0bTXIlafJrO
EjiFhKr+ZoQBf1UNCrtm3RhvteWMx6Cq+XDH08q96iBXC4G5fxRIftL0O1MZaOpz
BYXP37TY1y0hgMmPAuS4eCaj0GC8deCXiDGyQ267ElxLrTljtMSunvepKyHIWjJA
KfHYnWsolC1/cWUJ+lxNAgMBAAGjUzBRMB0GA1UdDgQWBBShgxyI7KnUoQ1lUh72
rs3YdVNwyDAfBgNVHSMEGDAWgBShgxyI7KnUoQ1lUh72rs3YdVNwyDAPBgNVHRMB
Af8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQBFkHb6DAHxtBflAnM2d5VtXt/f
Sh6+pXGC3W9RDbpEWYSrHm8ISKBQu3U2Xyc0/TvnuGFKcIsTPVKlaMV8c4FmaTGH
KPLGzAfr644Ary4bosq9w3VV07Bd5BC0q7VHPcNrEyF/1/6QrdqvowUEbzpyWkg3
vCKS092xHsXWIByKU/V1exI/nWFpjgnh8Jhm3Us9MHFs8pEof09iEcBY9EYcRHHl
BJtjT8JHOyKsQ4p0lmoVIjfLfVHCoqQylQlyox2dODJf33YWnw3eVlH7YseBeUwK
FrUDWTF6zdzmsu0k+MGrIUBnprShSGvb7JhII6mzoKpWzT2BNoV8Ekd3JjbO
-----END CERTIFICATE-----
)";

ShellCatalogue FuzzCatalogue() {
  ShellSpec u250;
  u250.name = "u250";
  u250.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
  u250.interface_uuid = "12345678-9abc-def0-1122-334455667788";
  u250.clocks = {{"DATA", "", 500}, {"KERNEL", "", 500}, {"SYSTEM", "", 300}};
  u250.memory_banks = {{"HOST", "", 1 << 24}, {"DDR[0]", "MEM_DDR4", 1 << 24}};
  ShellSpec u55c;
  u55c.name = "u55c";
  u55c.vbnv = "xilinx_u55c_gen3x16_xdma_3_202210_1";
  u55c.interface_uuid = "d7612a7c-701e-012c-1095-9c59e9cad082";
  u55c.clocks = {{"KERNEL", "KERNEL_CLK", 300}, {"KERNEL", "", 500}, {"DATA", "", 500}};
  StatusOr<ShellCatalogue> catalogue = ShellCatalogue::Create({u250, u55c});
  return catalogue.ok() ? *catalogue : ShellCatalogue();
}

const std::array<XclbinValidationOptions, 3>& AllOptions() {
  static const std::array<XclbinValidationOptions, 3> options = [] {
    std::array<XclbinValidationOptions, 3> o;
    StatusOr<TrustedCerts> certs = TrustedCerts::Parse(kSigningCertPem, "fuzz certificate");
    // Hardware fleet, catalogue, signatures required and checked.
    o[0].shells = FuzzCatalogue();
    o[0].signature_policy = SignaturePolicy::kRequire;
    if (certs.ok()) o[0].trusted_certs = *certs;
    // Emulated fleet, no catalogue, warnings only.
    o[1].allowed_modes = EmulationModes();
    o[1].signature_policy = SignaturePolicy::kWarn;
    if (certs.ok()) o[1].trusted_certs = *certs;
    // Every mode, small limits, no signature checks.
    o[2].shells = FuzzCatalogue();
    o[2].allowed_modes = HardwareModes();
    for (XclbinMode m : EmulationModes()) o[2].allowed_modes.push_back(m);
    o[2].max_sections = 8;
    o[2].max_size = 8192;
    o[2].signature_policy = SignaturePolicy::kNone;
    return o;
  }();
  return options;
}

void Exercise(const Xclbin& x) {
  // dump() throws on invalid UTF-8; the report promises it never has any.
  std::string json = XclbinToJson(x).dump();
  std::string text = XclbinToText(x);
  (void)x.KernelNames();
  (void)x.ComputeUnitNames();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  StatusOr<Xclbin> x = ParseXclbin(bytes);
  if (x.ok()) Exercise(*x);

  for (const XclbinValidationOptions& options : AllOptions()) {
    // The streaming check sees what an upload would have delivered by then.
    uint64_t needed = XclbinPrefixBytesNeeded(bytes.first(std::min<size_t>(size, 456)), options);
    std::span<const uint8_t> prefix = bytes.first(std::min<size_t>(size, needed));
    CheckXclbinPrefix(prefix, size, options).IgnoreError();
    CheckXclbinPrefix(prefix, std::nullopt, options).IgnoreError();
    StatusOr<ValidatedXclbin> v = ValidateXclbin(bytes, options);
    if (v.ok()) Exercise(v->xclbin);
  }
  if (!AllOptions()[0].trusted_certs.empty()) {
    VerifyXclbinSignature(bytes, AllOptions()[0].trusted_certs).status().IgnoreError();
  }
  return 0;
}
