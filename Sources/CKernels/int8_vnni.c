// Products of quantized weights (Q8_0, Q4_0, Q4_Z in their 16-row groups) with int8-quantized activations on CPUs
// with AVX512_VNNI. One zmm holds 4 weights of each of a group's 16 rows (a chunk, as stored), and vpdpbusd sums
// their products with the same 4 activations broadcast to every lane (64 products, one instruction): 16 rows' sums
// side by side, with no shuffles, no horizontal sums and one scale vector per block. Each thread streams its groups
// as one run of memory. Q8_0's q are read as stored (q + 128, the unsigned side of vpdpbusd), 4-bit nibbles as
// they are; the activations' s (-z sum(q_x)) starts each block's integer sums, which takes the zero point off.
#if defined(__x86_64__)
#include "internal.h"
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))
// Bytes ahead that each group's stream is prefetched: into L1 2 KB ahead (2-4 KB measured 1.2-1.3x faster than 512 B
// on Emerald Rapids), and into L2 16 KB ahead, which keeps more lines in flight than one core's L1 misses can
// (1.11-1.21x more GB/s from memory in a harness of 2 threads, 1-4 tokens, 1024-14336 inputs).
#define PREFETCH 2048
#define PREFETCH_L2 16384

// Tokens [t, t + NT) times the group g of n rows (n and NT constants in each inlined copy, but for a last group's n).
INLINE void group_tile(const ck_int8_tokens *x, ptrdiff_t t, const int NT, ck_row_group g, const int n,
                       const ck_dtype type, float *Y, ptrdiff_t ldy) {
    const __mmask16 lanes = (__mmask16)((1u << n) - 1);
    const size_t qbytes = ck_q_bytes(type) * (size_t)n;
    const __m512i low = _mm512_set1_epi8(15);
    __m512 acc[4];
    for (int j = 0; j < NT; j++) acc[j] = _mm512_setzero_ps();
    for (ptrdiff_t b = 0; b < x->blocks; b++) {
        const unsigned char *q = g.q + (size_t)b * qbytes;
        for (size_t line = 0; line < qbytes; line += 64) {
            _mm_prefetch((const char *)q + PREFETCH + line, _MM_HINT_T0);
            _mm_prefetch((const char *)q + PREFETCH_L2 + line, _MM_HINT_T2);
        }
        if (b % 16 == 0) _mm_prefetch((const char *)g.scales + 2 * n * b + PREFETCH / 8, _MM_HINT_T0);
        const __m512 scales = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, g.scales + 2 * n * b));
        __m512i i0[4], i1[4];
        const int32_t *xq[4];
        for (int j = 0; j < NT; j++) {
            const ptrdiff_t at = (t + j) * x->blocks + b;
            xq[j] = (const int32_t *)(x->q + at * CK_Q8_BLOCK);
            i0[j] = type == CK_Q4_Z ? _mm512_setzero_si512() : _mm512_set1_epi32(x->s[at]);
            i1[j] = _mm512_setzero_si512();
        }
        if (type == CK_Q8_0) {
#pragma clang loop unroll(full)
            for (int c = 0; c < 8; c += 2) {
                const __m512i w0 = _mm512_maskz_loadu_epi32(lanes, q + 4 * n * c);
                const __m512i w1 = _mm512_maskz_loadu_epi32(lanes, q + 4 * n * (c + 1));
                for (int j = 0; j < NT; j++) {
                    i0[j] = _mm512_dpbusd_epi32(i0[j], w0, _mm512_set1_epi32(xq[j][c]));
                    i1[j] = _mm512_dpbusd_epi32(i1[j], w1, _mm512_set1_epi32(xq[j][c + 1]));
                }
            }
        } else {
#pragma clang loop unroll(full)
            for (int c = 0; c < 4; c++) {
                const __m512i w = _mm512_maskz_loadu_epi32(lanes, q + 4 * n * c);
                const __m512i lo = _mm512_and_si512(w, low), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low);
                for (int j = 0; j < NT; j++) {
                    i0[j] = _mm512_dpbusd_epi32(i0[j], lo, _mm512_set1_epi32(xq[j][c]));
                    i1[j] = _mm512_dpbusd_epi32(i1[j], hi, _mm512_set1_epi32(xq[j][4 + c]));
                }
            }
        }
        const __m512i zeros = type == CK_Q4_Z ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, g.zeros + 2 * n * b))
                                              : _mm512_setzero_si512();
        for (int j = 0; j < NT; j++) {
            const ptrdiff_t at = (t + j) * x->blocks + b;
            __m512i sum = _mm512_add_epi32(i0[j], i1[j]);
            if (type == CK_Q4_Z) sum = _mm512_sub_epi32(sum, _mm512_mullo_epi32(zeros, _mm512_set1_epi32(x->s[at])));
            // The integer sums are exact in float32 (|sum| < 2^24).
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(scales, _mm512_set1_ps(x->d[at])), acc[j]);
        }
    }
    for (int j = 0; j < NT; j++) _mm512_mask_storeu_ps(Y + (t + j) * ldy, lanes, acc[j]);
}

// A group against 1-4 tokens, the type and whole groups' row count constants in each copy.
INLINE void group_tokens(const ck_int8_tokens *x, ptrdiff_t t, int nt, ck_row_group g, const ck_dtype type, float *Y,
                         ptrdiff_t ldy) {
#define TILE(NT, N) group_tile(x, t, NT, g, N, type, Y, ldy)
    if (g.n == CK_ROW_GROUP) {
        switch (nt) {
        case 1: TILE(1, CK_ROW_GROUP); break;
        case 2: TILE(2, CK_ROW_GROUP); break;
        case 3: TILE(3, CK_ROW_GROUP); break;
        default: TILE(4, CK_ROW_GROUP); break;
        }
    } else {
        for (ptrdiff_t j = 0; j < nt; j++) TILE(1, g.n), t++;
    }
#undef TILE
}

static void tile(const ck_int8_tokens *x, ptrdiff_t t, int nt, ck_row_group g, ck_dtype type, float *Y, ptrdiff_t ldy) {
    switch (type) {
    case CK_Q8_0: group_tokens(x, t, nt, g, CK_Q8_0, Y, ldy); break;
    case CK_Q4_0: group_tokens(x, t, nt, g, CK_Q4_0, Y, ldy); break;
    default: group_tokens(x, t, nt, g, CK_Q4_Z, Y, ldy); break;
    }
}

void ck_matmul_int8_rows_vnni(const void *A, ptrdiff_t T, const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    ck_int8_groups(A, T, W, type, K, ldw, r0, r1, Y, ldy, 4, tile);
}
#pragma clang attribute pop
#endif
