// AESENC (AES-NI), legacy SSE encoding; MOVDQU is SSE2.
#include <immintrin.h>

__attribute__((target("aes"))) void AesRound(void* out, const void* state, const void* key) {
  __m128i s = _mm_loadu_si128((const __m128i*)state);
  __m128i k = _mm_loadu_si128((const __m128i*)key);
  _mm_storeu_si128((__m128i*)out, _mm_aesenc_si128(s, k));
}
