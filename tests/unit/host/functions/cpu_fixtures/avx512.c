// VPADDD zmm and VMOVDQU64 zmm (AVX512F, 512-bit); VZEROUPPER is AVX.
#include <immintrin.h>

__attribute__((target("avx512f"))) void Add16(int* out, const int* a, const int* b) {
  __m512i x = _mm512_loadu_si512(a);
  __m512i y = _mm512_loadu_si512(b);
  _mm512_storeu_si512(out, _mm512_add_epi32(x, y));
}
