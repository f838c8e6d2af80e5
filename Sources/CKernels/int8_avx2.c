// Products of quantized weights (Q8_0, Q4_0, Q4_Z in their 16-row groups) with int8-quantized activations on CPUs
// with AVX2 (and the AVX-512 ones without VNNI): a group's chunk is two ymm of 8 rows x 4 weights, multiplied with
// the same 4 activations in every lane by vpmaddubsw (unsigned x signed bytes into int16 pairs) and vpmaddwd
// (pairs into int32 lanes; for 4-bit weights once per block, on the int16 sum of its pairs). 4-bit nibbles are
// the unsigned side (the activations' s takes the zero point 8 off); for Q8_0 the sign of x moves onto w (|q| <= 127
// keeps each pair within int16; a stored q = -128, which no quantizer writes, is read as -127 rather than let its
// negation wrap).
#if defined(__x86_64__)
#include "internal.h"
#include <immintrin.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))
#define PREFETCH 1024

// 4 bytes of each of 8 rows (a half chunk; `mask`: the rows a last group has).
INLINE __m256i load_rows(const unsigned char *p, __m256i mask, int whole) {
    return whole ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskload_epi32((const int *)p, mask);
}

// The products of 8 rows' 4 weights with the same 4 activations, summed in pairs (int16 lanes).
INLINE __m256i pairs4(__m256i w, int32_t x4, const ck_dtype type) {
    const __m256i x = _mm256_set1_epi32(x4);
    return type == CK_Q8_0
        ? _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(
              _mm256_max_epi8(_mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), _mm256_set1_epi8(-127)), x))
        : _mm256_maddubs_epi16(w, x);
}

INLINE __m256i widen(__m256i pairs) { return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)); }

// Tokens [t, t + NT) times group g (whole: 16 rows, a constant in its inlined copies).
INLINE void group_tile(const ck_int8_tokens *x, ptrdiff_t t, const int NT, ck_row_group g, const int whole,
                       const ck_dtype type, float *Y, ptrdiff_t ldy) {
    const int n = g.n;
    const size_t qbytes = ck_q_bytes(type) * (size_t)n;
    __m256i mask[2];
    for (int h = 0; h < 2; h++) {
        const __m256i lane = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * h));
        mask[h] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    }
    const __m256i low = _mm256_set1_epi8(15);
    __m256 acc[2][2];
    for (int h = 0; h < 2; h++) for (int j = 0; j < NT; j++) acc[h][j] = _mm256_setzero_ps();
    for (ptrdiff_t b = 0; b < x->blocks; b++) {
        const unsigned char *q = g.q + (size_t)b * qbytes;
        for (size_t line = 0; line < qbytes; line += 64) _mm_prefetch((const char *)q + PREFETCH + line, _MM_HINT_T0);
        uint16_t d[CK_ROW_GROUP] = {0}, z[CK_ROW_GROUP] = {0};
        memcpy(d, g.scales + 2 * n * b, 2 * (size_t)n);
        if (type == CK_Q4_Z) memcpy(z, g.zeros + 2 * n * b, 2 * (size_t)n);
        __m256i sums[2][2];
        for (int j = 0; j < NT; j++) {
            const int32_t s = type == CK_Q4_Z ? 0 : x->s[(t + j) * x->blocks + b];
            sums[0][j] = sums[1][j] = _mm256_set1_epi32(s);
        }
        const int chunks = (int)ck_q_bytes(type) / 4;
        // 4-bit blocks add their 8 pair sums in int16 (each |pair| <= 2 * 15 * 127 = 3810, so at most 30480) and
        // widen once per block; Q8_0's pairs reach 2 * 127 * 127 and widen at once.
        __m256i pairs[2][2];
        for (int h = 0; h < 2; h++) for (int j = 0; j < NT; j++) pairs[h][j] = _mm256_setzero_si256();
#pragma clang loop unroll(full)
        for (int c = 0; c < chunks; c++) {
            for (int h = 0; h < 2; h++) {
                const __m256i w = load_rows(q + 4 * (n * c + 8 * h), mask[h], whole);
                for (int j = 0; j < NT; j++) {
                    const int32_t *xq = (const int32_t *)(x->q + ((t + j) * x->blocks + b) * CK_Q8_BLOCK);
                    if (type == CK_Q8_0) {
                        sums[h][j] = _mm256_add_epi32(sums[h][j], widen(pairs4(w, xq[c], type)));
                    } else {
                        const __m256i lo = _mm256_and_si256(w, low), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
                        pairs[h][j] = _mm256_add_epi16(pairs[h][j], _mm256_add_epi16(pairs4(lo, xq[c], type), pairs4(hi, xq[4 + c], type)));
                    }
                }
            }
        }
        if (type != CK_Q8_0) {
            for (int h = 0; h < 2; h++) for (int j = 0; j < NT; j++) sums[h][j] = _mm256_add_epi32(sums[h][j], widen(pairs[h][j]));
        }
        for (int h = 0; h < 2; h++) {
            const __m256 scales = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 8 * h)));
            const __m256i zeros = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(z + 8 * h)));
            for (int j = 0; j < NT; j++) {
                const ptrdiff_t at = (t + j) * x->blocks + b;
                __m256i sum = sums[h][j];
                if (type == CK_Q4_Z) sum = _mm256_sub_epi32(sum, _mm256_mullo_epi32(zeros, _mm256_set1_epi32(x->s[at])));
                acc[h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(scales, _mm256_set1_ps(x->d[at])), acc[h][j]);
            }
        }
    }
    for (int j = 0; j < NT; j++) {
        float out[CK_ROW_GROUP];
        _mm256_storeu_ps(out, acc[0][j]);
        _mm256_storeu_ps(out + 8, acc[1][j]);
        memcpy(Y + (t + j) * ldy, out, sizeof(float) * (size_t)n);
    }
}

// A group against 1 or 2 tokens, the type and whole groups' row count constants in each copy.
INLINE void group_tokens(const ck_int8_tokens *x, ptrdiff_t t, int nt, ck_row_group g, const ck_dtype type, float *Y,
                         ptrdiff_t ldy) {
    if (g.n == CK_ROW_GROUP) {
        if (nt == 1) group_tile(x, t, 1, g, 1, type, Y, ldy); else group_tile(x, t, 2, g, 1, type, Y, ldy);
    } else {
        for (ptrdiff_t j = 0; j < nt; j++) group_tile(x, t + j, 1, g, 0, type, Y, ldy);
    }
}

static void tile(const ck_int8_tokens *x, ptrdiff_t t, int nt, ck_row_group g, ck_dtype type, float *Y, ptrdiff_t ldy) {
    switch (type) {
    case CK_Q8_0: group_tokens(x, t, nt, g, CK_Q8_0, Y, ldy); break;
    case CK_Q4_0: group_tokens(x, t, nt, g, CK_Q4_0, Y, ldy); break;
    default: group_tokens(x, t, nt, g, CK_Q4_Z, Y, ldy); break;
    }
}

void ck_matmul_int8_rows_avx2(const void *A, ptrdiff_t T, const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    ck_int8_groups(A, T, W, type, K, ldw, r0, r1, Y, ldy, 2, tile);
}
#pragma clang attribute pop
#endif
