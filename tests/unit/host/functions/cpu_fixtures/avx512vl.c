// VPTERNLOGD xmm: EVEX-encoded on a 128-bit vector, so AVX512F and AVX512VL; the loads and
// stores are VEX-encoded AVX.
#include <immintrin.h>

__attribute__((target("avx512f,avx512vl"))) void Select4(int* out, const int* a, const int* b) {
  __m128i x = _mm_loadu_si128((const __m128i*)a);
  __m128i y = _mm_loadu_si128((const __m128i*)b);
  _mm_storeu_si128((__m128i*)out, _mm_ternarylogic_epi32(x, y, x, 0x96));
}
