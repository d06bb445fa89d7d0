// VPADDD ymm (AVX2); the unaligned loads/stores and VZEROUPPER are VEX-encoded AVX.
#include <immintrin.h>

__attribute__((target("avx2"))) void Add8(int* out, const int* a, const int* b) {
  __m256i x = _mm256_loadu_si256((const __m256i*)a);
  __m256i y = _mm256_loadu_si256((const __m256i*)b);
  _mm256_storeu_si256((__m256i*)out, _mm256_add_epi32(x, y));
}
