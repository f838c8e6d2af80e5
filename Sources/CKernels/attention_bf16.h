#pragma once
// Attention at bf16 precision, as torch's CPU flash attention computes a bf16 model: queries, keys and values rounded
// to bf16, scores summed in float32 and scaled there, the softmax in float32 (its running sums of the unrounded
// exponentials), the exponentials rounded to bf16 for the product with the values, float32 outputs. The schedule is
// shared by the kernel sets with bf16 products, which supply the two products (attention_amx.c on AMX tiles,
// attention_bf16.c with vdpbf16ps):
//
// keys are rounded once per call as bf16 rows and values transposed per block of KB slots; per block of 32 queries
// (pair-major, as the products read them), S^T [KB][32] = K Q^T, so that the 32 queries lie across the vector lanes:
// the online softmax is lane-wise (no horizontal reductions) and writes P^T pair-major for O^T [dv][32] = O^T alpha +
// V^T P^T, alpha each query's rescaling. No score matrix beyond one [KB][32] block exists. Measured on one Emerald
// Rapids core (512 queries x 4,900 slots, d = 72): ~1.5-2x the schedule with the queries as rows (its row-wise
// softmax reductions were ~45% of the time).
#include "bf16_avx512.h"
#include <math.h>

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target(CK_BF16_TARGET))), apply_to = function)

#define CK_ATTENTION_KB 64 // slots per block

/// A kernel set's part of the schedule: the row width dq of the rounded queries and keys (even, zero past d) and the
/// value columns dv (rows of V^T, zero past d) it wants, and its three steps. pack_queries: 32 rounded query rows
/// (bf16 [32][dq]) into Qt, [2][dq / 2][16] pairs (16 queries per half); scores: St [KB][32] = the block's KB key
/// rows (bf16 [KB][dq]) times the queries, at least its first bn (the softmax masks the rest); accumulate: Ot
/// [dv][32] = Ot alpha (alpha per query, two halves) + V^T P^T, V^T the block's bf16 [dv][KB] and P^T [2][KB / 2][16]
/// pairs of consecutive slots, at least over the first bn slots (the weights past them are zero).
typedef struct {
    ptrdiff_t dq, dv;
    void (*pack_queries)(const uint16_t *Qb, ptrdiff_t dq, uint32_t *Qt);
    void (*scores)(const uint16_t *Kb, ptrdiff_t dq, const uint32_t *Qt, ptrdiff_t bn, float *St);
    void (*accumulate)(const uint16_t *Vt, ptrdiff_t dv, const uint32_t *Pt, ptrdiff_t bn, __m512 alpha0,
                       __m512 alpha1, float *Ot);
} ck_attention_products;

// 16 floats to bf16 (round to nearest even) in the low half of a 256-bit vector.
static inline __m256i ck_bf16x16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

// 2^t for t <= 0 (scaled scores minus their maximum, in log2 units): 2^n (vscalefps, 0 far below) times a degree-4
// polynomial of f = t - n in [-1/2, 1/2], minimax in relative error with its constant term 1 (2^0 exactly 1): error
// < 2.9e-6 in float32, far below the bf16 rounding of the weights; the degree-5 Taylor polynomial it replaced had
// 3.3e-6 with one more FMA per 16 exponentials. Masked scores give what they give (inf, NaN): the caller's mask
// replaces them by 0.
static inline __m512 ck_exp2_nonpositive(__m512 t) {
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(9.5828185e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5906370e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4024099e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9312418e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// Rows [0, rows) x columns [0, d) of a float32 matrix (row stride ld) as bf16 [rows][dq], zero past d.
static inline void ck_round_rows(const float *X, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t d, ptrdiff_t dq, uint16_t *out) {
    for (ptrdiff_t i = 0; i < rows; i++) {
        for (ptrdiff_t c = 0; c < dq; c += 16) {
            const __mmask16 m = d - c >= 16 ? 0xffff : d - c <= 0 ? 0 : (__mmask16)((1u << (d - c)) - 1);
            const __mmask16 w = dq - c >= 16 ? 0xffff : (__mmask16)((1u << (dq - c)) - 1);
            _mm256_mask_storeu_epi16(out + i * dq + c, w, ck_bf16x16(_mm512_maskz_loadu_ps(m, X + i * ld + c)));
        }
    }
}

// Values of slots [0, rows) (rows <= KB; zero past them and past d) transposed: Vt [dv][KB] bf16, 16 slots x 16
// columns at a time through an in-register transpose.
static inline void ck_transpose_values(const float *V, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t d, ptrdiff_t dv,
                                       uint16_t *Vt) {
    for (ptrdiff_t c = 0; c < dv; c += 16) {
        const __mmask16 m = d - c >= 16 ? 0xffff : d - c <= 0 ? 0 : (__mmask16)((1u << (d - c)) - 1);
        for (ptrdiff_t j = 0; j < CK_ATTENTION_KB; j += 16) {
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                v[i] = j + i < rows ? (__m512i)_mm512_maskz_loadu_ps(m, V + (j + i) * ld + c) : _mm512_setzero_si512();
            }
            ck_transpose16(v);
            for (int i = 0; i < 16 && c + i < dv; i++) {
                _mm256_storeu_si256((__m256i *)(Vt + (c + i) * CK_ATTENTION_KB + j), ck_bf16x16((__m512)v[i]));
            }
        }
    }
}

// The online softmax over a block for the 32 queries, two halves of 16 lanes: St [KB][32] holds the block's
// unscaled scores (slot-major, the queries across), masked to each query's [lo, hi) unless `whole`; folds them into
// the running maxima and sums (of scaled scores), writes exp(scaled score - max) as bf16 pairs of consecutive slots
// into Pt [2][KB / 2][16], and each query's rescaling exp(old max - new max) into alpha. The halves interleave and
// the maxima and sums run in independent chains, so that their latencies overlap: each chain a named register (with
// m[h][j & 1] clang kept the maxima on the stack, a store-to-load chain: a fifth of the block's time). Inlined with
// `whole` a constant (a block every query sees whole: no masks at all), which with the former cut the softmax
// from 445 to 337 ns a block (C harness, one thread) and sped the whole attention up 3.5% (4,900 x 4,900, d 72).
static inline __attribute__((always_inline)) void ck_softmax_block(const float *St, ptrdiff_t bn, ptrdiff_t j0,
                                                                   float scale, const int32_t *lo, const int32_t *hi,
                                                                   int whole, float *rowmax, float *rowsum,
                                                                   uint32_t *Pt, __m512 alpha[2]) {
    enum { KB = CK_ATTENTION_KB };
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
    __mmask16 keep[2][KB];
    __m512 m[2][2] = {{minus_inf, minus_inf}, {minus_inf, minus_inf}};
    for (int h = 0; h < 2 && !whole; h++) {
        const __m512i l = _mm512_loadu_si512(lo + 16 * h), u = _mm512_loadu_si512(hi + 16 * h);
        for (ptrdiff_t j = 0; j < KB; j++) {
            const __m512i slot = _mm512_set1_epi32((int)(j0 + j));
            keep[h][j] = j >= bn ? 0 : _mm512_cmple_epi32_mask(l, slot) & _mm512_cmplt_epi32_mask(slot, u);
        }
    }
    for (ptrdiff_t j = 0; j < KB; j += 2) {
        for (int h = 0; h < 2; h++) {
            const __m512 s0 = _mm512_loadu_ps(St + j * 32 + 16 * h), s1 = _mm512_loadu_ps(St + (j + 1) * 32 + 16 * h);
            m[h][0] = whole ? _mm512_max_ps(m[h][0], s0) : _mm512_mask_max_ps(m[h][0], keep[h][j], m[h][0], s0);
            m[h][1] = whole ? _mm512_max_ps(m[h][1], s1) : _mm512_mask_max_ps(m[h][1], keep[h][j + 1], m[h][1], s1);
        }
    }
    // In log2 units (the running maxima too): the scaled score s scale log2 e rounded, its maximum subtracted (exactly
    // 0 for the largest, whose weight is then exactly 1, as torch's exp(0)), then 2^x. Torch rounds s scale, subtracts
    // and multiplies by log2 e: one multiplication more on the FMA ports the products use (1.5% of the kernel's time).
    // An FMA of s, scale log2 e and the maximum instead left the largest weight 1 - 3e-5 for scores of 1,000.
    const __m512 a = _mm512_set1_ps(scale * 1.44269504088896341f);
    __m512 b[2], sum[2][2]; // per half: the maximum
    for (int h = 0; h < 2; h++) {
        const __m512 old = _mm512_loadu_ps(rowmax + 16 * h);
        const __m512 max = _mm512_max_ps(old, _mm512_mul_ps(_mm512_max_ps(m[h][0], m[h][1]), a));
        // No slot before (O^T and the sum still 0) or none yet: 1.
        const __mmask16 empty = _mm512_cmp_ps_mask(old, minus_inf, _CMP_EQ_OQ);
        b[h] = max;
        alpha[h] = _mm512_mask_mov_ps(ck_exp2_nonpositive(_mm512_sub_ps(old, max)), empty, _mm512_set1_ps(1));
        _mm512_storeu_ps(rowmax + 16 * h, max);
        sum[h][0] = sum[h][1] = _mm512_setzero_ps();
    }
    for (ptrdiff_t j = 0; j < KB; j += 2) {
        for (int h = 0; h < 2; h++) {
            const __m512 x0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(St + j * 32 + 16 * h), a), b[h]);
            const __m512 x1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(St + (j + 1) * 32 + 16 * h), a), b[h]);
            __m512 e0 = ck_exp2_nonpositive(x0), e1 = ck_exp2_nonpositive(x1);
            if (!whole) e0 = _mm512_maskz_mov_ps(keep[h][j], e0), e1 = _mm512_maskz_mov_ps(keep[h][j + 1], e1);
            sum[h][0] = _mm512_add_ps(sum[h][0], e0);
            sum[h][1] = _mm512_add_ps(sum[h][1], e1);
            _mm512_storeu_si512(Pt + h * KB * 8 + (j / 2) * 16,
                                _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
        }
    }
    for (int h = 0; h < 2; h++) {
        _mm512_storeu_ps(rowsum + 16 * h, _mm512_fmadd_ps(_mm512_loadu_ps(rowsum + 16 * h), alpha[h],
                                                          _mm512_add_ps(sum[h][0], sum[h][1])));
    }
}

// The block's outputs: rows [0, rows) of O (stride ldo) are Ot [dv][32]'s columns divided by their queries' sums,
// their first d values; 16 x 16 in-register transposes, so that each row is written in whole vectors (a scalar store
// per value was 1-2% of the kernel's time, and its lines shared with the next head's were written in small pieces).
static inline void ck_store_outputs(const float *Ot, ptrdiff_t dv, const float *rowsum, ptrdiff_t rows, ptrdiff_t d,
                                    float *O, ptrdiff_t ldo) {
    for (int h = 0; h < 2 && 16 * h < rows; h++) {
        for (ptrdiff_t c = 0; c < d; c += 16) {
            __m512i v[16];
            for (int r = 0; r < 16; r++) {
                v[r] = c + r < dv ? _mm512_loadu_si512(Ot + (c + r) * 32 + 16 * h) : _mm512_setzero_si512();
            }
            ck_transpose16(v);
            const __mmask16 m = d - c >= 16 ? 0xffff : (__mmask16)((1u << (d - c)) - 1);
            for (int i = 0; i < 16 && 16 * h + i < rows; i++) {
                const float sum = rowsum[16 * h + i], inverse = sum > 0 ? 1 / sum : 0; // no slots: zeros
                _mm512_mask_storeu_ps(O + (16 * h + i) * ldo + c, m, _mm512_mul_ps((__m512)v[i], _mm512_set1_ps(inverse)));
            }
        }
    }
}

// ck_attention at bf16 precision on the kernel set's products (0 if the scratch could not be allocated).
static inline int ck_attention_bf16_blocks(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V,
                                           ptrdiff_t ldkv, ptrdiff_t d, float scale, const int32_t *lo,
                                           const int32_t *hi, float *O, ptrdiff_t ldo, ck_attention_products products) {
    enum { KB = CK_ATTENTION_KB };
    const ptrdiff_t mp = (m + 31) / 32 * 32, dq = products.dq, dv = products.dv;
    ptrdiff_t first = PTRDIFF_MAX, last = 0;
    for (ptrdiff_t i = 0; i < m; i++) {
        if (lo[i] >= hi[i]) continue;
        first = lo[i] < first ? lo[i] : first;
        last = hi[i] > last ? hi[i] : last;
    }
    if (last == 0) first = 0;
    const ptrdiff_t blocks = (last - first + KB - 1) / KB;
    // In floats: queries as bf16 rows and pair-major, keys as bf16 rows, values transposed per block, scores,
    // probabilities, the output, and per query the running max and sum and the range.
    const size_t floats = (size_t)mp * dq / 2 + 32 * (size_t)dq / 2 + (size_t)blocks * KB * dq / 2 +
                          (size_t)blocks * dv * KB / 2 + KB * 32 + KB * 16 + 32 * (size_t)dv + 4 * (size_t)mp;
    float *scratch = ck_thread_scratch(floats);
    if (!scratch) return 0;
    uint16_t *Qb = (uint16_t *)scratch;
    uint32_t *Qt = (uint32_t *)(Qb + mp * dq);
    uint16_t *Kr = (uint16_t *)(Qt + 32 * dq / 2), *Vt = Kr + blocks * KB * dq;
    float *St = (float *)(Vt + blocks * dv * KB);
    uint32_t *Pt = (uint32_t *)(St + KB * 32);
    float *Ot = (float *)(Pt + KB * 16), *rowmax = Ot + 32 * dv, *rowsum = rowmax + mp;
    int32_t *plo = (int32_t *)(rowsum + mp), *phi = plo + mp; // the ranges, empty ones padding to whole blocks
    for (ptrdiff_t i = 0; i < mp; i++) {
        plo[i] = i < m ? lo[i] : 0;
        phi[i] = i < m && lo[i] < hi[i] ? hi[i] : plo[i];
    }
    ck_round_rows(Q, ldq, m, d, dq, Qb);
    memset(Qb + m * dq, 0, (size_t)(mp - m) * dq * 2);
    ck_round_rows(K + first * ldkv, ldkv, last - first, d, dq, Kr);
    memset(Kr + (last - first) * dq, 0, (size_t)(blocks * KB - (last - first)) * dq * 2);
    for (ptrdiff_t b = 0; b < blocks; b++) {
        const ptrdiff_t j0 = first + b * KB, bn = last - j0 < KB ? last - j0 : KB;
        ck_transpose_values(V + j0 * ldkv, ldkv, bn, d, dv, Vt + b * dv * KB);
    }
    for (ptrdiff_t q0 = 0; q0 < m; q0 += 32) {
        const int32_t *bl = plo + q0, *bh = phi + q0;
        ptrdiff_t from = PTRDIFF_MAX, to = 0;
        for (int i = 0; i < 32; i++) {
            if (bl[i] >= bh[i]) continue;
            from = bl[i] < from ? bl[i] : from;
            to = bh[i] > to ? bh[i] : to;
        }
        const ptrdiff_t b0 = to > 0 ? (from - first) / KB : 0, b1 = to > 0 ? (to - first + KB - 1) / KB : 0;
        products.pack_queries(Qb + q0 * dq, dq, Qt);
        for (int i = 0; i < 32; i++) rowmax[i] = -INFINITY, rowsum[i] = 0;
        memset(Ot, 0, sizeof(float) * 32 * dv);
        for (ptrdiff_t b = b0; b < b1; b++) {
            const ptrdiff_t j0 = first + b * KB, bn = last - j0 < KB ? last - j0 : KB;
            products.scores(Kr + b * KB * dq, dq, Qt, bn, St);
            int whole = bn == KB;
            for (int i = 0; i < 32; i++) whole &= bl[i] <= j0 && bh[i] >= j0 + KB;
            __m512 alpha[2];
            if (whole) ck_softmax_block(St, bn, j0, scale, bl, bh, 1, rowmax, rowsum, Pt, alpha); // two copies
            else ck_softmax_block(St, bn, j0, scale, bl, bh, 0, rowmax, rowsum, Pt, alpha);
            products.accumulate(Vt + b * dv * KB, dv, Pt, bn, alpha[0], alpha[1], Ot);
        }
        ck_store_outputs(Ot, dv, rowsum, m - q0 < 32 ? m - q0 : 32, d, O + q0 * ldo, ldo);
    }
    return 1;
}

#pragma clang attribute pop
#endif
