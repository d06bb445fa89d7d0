// SHA256RNDS2 (SHA extensions).
#include <immintrin.h>

__attribute__((target("sha"))) void Sha256Rounds(void* out, const void* a, const void* b,
                                                 const void* k) {
  __m128i x = _mm_loadu_si128((const __m128i*)a);
  __m128i y = _mm_loadu_si128((const __m128i*)b);
  __m128i z = _mm_loadu_si128((const __m128i*)k);
  _mm_storeu_si128((__m128i*)out, _mm_sha256rnds2_epu32(x, y, z));
}
