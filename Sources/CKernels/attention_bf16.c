// Attention at bf16 precision with AVX512_BF16 (CPUs without AMX: AMD Zen 4 and later, Intel Cooper Lake):
// attention_bf16.h's schedule with both products as 8 x 32 register tiles of vdpbf16ps. The queries' pairs are the
// vectors (32 queries in two halves), a key's or a value column's pair the broadcast, 16 accumulators per tile: S^T's
// 8 slots over the head's input pairs, O^T's 8 value columns over the block's slot pairs.
#include "attention_bf16.h"

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target(CK_BF16_TARGET))), apply_to = function)

enum { KB = CK_ATTENTION_KB, TILE = 8 };

// acc[i][h] += sum over pairs p of the pair B[i * bi + p] times the 16 pairs X[p * xp + h * xh].
static inline __attribute__((always_inline)) void tile(const uint32_t *B, ptrdiff_t bi, const uint32_t *X,
                                                       ptrdiff_t xp, ptrdiff_t xh, ptrdiff_t pairs,
                                                       __m512 acc[TILE][2]) {
    for (ptrdiff_t p = 0; p < pairs; p++) {
        const __m512bh x0 = (__m512bh)_mm512_loadu_si512(X + p * xp), x1 = (__m512bh)_mm512_loadu_si512(X + p * xp + xh);
        for (int i = 0; i < TILE; i++) {
            const __m512bh b = (__m512bh)_mm512_set1_epi32((int)B[i * bi + p]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], b, x0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], b, x1);
        }
    }
}

// Qt [2][dq / 2][16]: query i's pair p at Qt[i / 16][p][i % 16].
static void pack_queries(const uint16_t *Qb, ptrdiff_t dq, uint32_t *Qt) {
    const ptrdiff_t pairs = dq / 2;
    for (int i = 0; i < 32; i++) {
        const uint32_t *row = (const uint32_t *)(Qb + i * dq);
        for (ptrdiff_t p = 0; p < pairs; p++) Qt[(i / 16) * pairs * 16 + p * 16 + i % 16] = row[p];
    }
}

// The tiles holding the block's bn slots (a last, partial block: 9 of 64 in the 1,225-patch crops' attention).
static void scores(const uint16_t *Kb, ptrdiff_t dq, const uint32_t *Qt, ptrdiff_t bn, float *St) {
    const ptrdiff_t pairs = dq / 2;
    for (ptrdiff_t j = 0; j < bn; j += TILE) {
        __m512 acc[TILE][2];
        for (int i = 0; i < TILE; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        tile((const uint32_t *)(Kb + j * dq), pairs, Qt, 16, pairs * 16, pairs, acc);
        for (int i = 0; i < TILE; i++) {
            _mm512_storeu_ps(St + (j + i) * 32, acc[i][0]);
            _mm512_storeu_ps(St + (j + i) * 32 + 16, acc[i][1]);
        }
    }
}

// Over the pairs holding the block's bn slots (the weights past them are zero).
static void accumulate(const uint16_t *Vt, ptrdiff_t dv, const uint32_t *Pt, ptrdiff_t bn, __m512 a0, __m512 a1,
                       float *Ot) {
    for (ptrdiff_t c = 0; c < dv; c += TILE) {
        __m512 acc[TILE][2];
        for (int i = 0; i < TILE; i++) {
            acc[i][0] = _mm512_mul_ps(_mm512_loadu_ps(Ot + (c + i) * 32), a0);
            acc[i][1] = _mm512_mul_ps(_mm512_loadu_ps(Ot + (c + i) * 32 + 16), a1);
        }
        tile((const uint32_t *)(Vt + c * KB), KB / 2, Pt, 16, KB * 8, (bn + 1) / 2, acc);
        for (int i = 0; i < TILE; i++) {
            _mm512_storeu_ps(Ot + (c + i) * 32, acc[i][0]);
            _mm512_storeu_ps(Ot + (c + i) * 32 + 16, acc[i][1]);
        }
    }
}

int ck_attention_bf16_avx512bf16(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V,
                                 ptrdiff_t ldkv, ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi,
                                 float *O, ptrdiff_t ldo) {
    // Pairs of inputs; value columns a whole number of tiles.
    const ck_attention_products vectors = {(d + 1) / 2 * 2, (d + TILE - 1) / TILE * TILE, pack_queries, scores,
                                           accumulate};
    return ck_attention_bf16_blocks(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo, vectors);
}

#pragma clang attribute pop
#endif
