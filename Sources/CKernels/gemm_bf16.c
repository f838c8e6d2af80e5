// Products of BF16 weights with activations rounded to bf16, on CPUs with AVX512_BF16: vdpbf16ps adds, in each of
// 16 float32 lanes, the two products of a pair of bf16 inputs (exact in float32) to the accumulator, twice the work
// of an FMA per instruction. Same schedule as the float32 packed GEMM (kernels.inc): blocks of KP input pairs x NC
// weight rows packed once into panels of 32 rows, pair-major (panel[p][32] holds each row's pair p in one 32-bit
// lane), then groups of MR tokens' pairs broadcast against them, MR x 32 accumulators. The activations come rounded
// to bf16 once per call (ck_pack_bf16_activations), not once per thread.
#include "internal.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16"))), apply_to = function)

#define MR 12   // tokens per register tile: 24 accumulators and 2 panel vectors of the 32 zmm registers
#define PR 32   // weight rows per panel (two vectors)
#define KP 256  // input pairs per block: a panel is 32 KiB, the token group 12 KiB (L1 48 KiB, L2 2 MiB per core)
#define NCB 256 // weight rows per block: 8 panels, 256 KiB in L2

// Rows [r0, r0 + rows) x pairs [p0, p0 + pc) of W (bf16 [rows][ldw], K inputs) into panels; rows past `rows` and the
// half of a pair past K are zero.
static void pack_panels(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p0,
                        ptrdiff_t pc, uint32_t *P) {
    const ptrdiff_t padded = (rows + PR - 1) / PR * PR;
    for (ptrdiff_t r = 0; r < padded; r++) {
        uint32_t *panel = P + (r / PR) * pc * PR + r % PR;
        if (r >= rows) {
            for (ptrdiff_t p = 0; p < pc; p++) panel[p * PR] = 0;
            continue;
        }
        const uint16_t *row = W + (r0 + r) * ldw + 2 * p0;
        const ptrdiff_t whole = (K - 2 * p0) / 2 < pc ? (K - 2 * p0) / 2 : pc;
        for (ptrdiff_t p = 0; p < whole; p++) memcpy(panel + p * PR, row + 2 * p, 4);
        if (whole < pc) panel[whole * PR] = row[2 * whole]; // an odd K: its last input with a zero partner
    }
}

// Tokens [0, mr) x pairs [p0, p0 + pc) of the rounded activations (bf16 [T][ldx], pairs zero-padded) into A[p][MR].
static void pack_tokens(const uint16_t *X, ptrdiff_t ldx, int mr, ptrdiff_t p0, ptrdiff_t pc, uint32_t *A) {
    for (int t = 0; t < MR; t++) {
        const uint16_t *x = X + t * ldx + 2 * p0;
        for (ptrdiff_t p = 0; p < pc; p++) {
            uint32_t pair = 0;
            if (t < mr) memcpy(&pair, x + 2 * p, 4);
            A[p * MR + t] = pair;
        }
    }
}

static inline __attribute__((always_inline)) void micro_tile(const uint32_t *A, const uint32_t *P, ptrdiff_t pc,
                                                             float *Y, ptrdiff_t ldy, int mr, int ncols, int accumulate) {
    __m512 acc[MR][2];
    for (int t = 0; t < MR; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < pc; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(P + p * PR), b1 = (__m512bh)_mm512_loadu_si512(P + p * PR + 16);
        for (int t = 0; t < MR; t++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[p * MR + t]);
            acc[t][0] = _mm512_dpbf16_ps(acc[t][0], a, b0);
            acc[t][1] = _mm512_dpbf16_ps(acc[t][1], a, b1);
        }
    }
    for (int t = 0; t < mr; t++) {
        float *y = Y + t * ldy;
        if (ncols == PR) {
            if (accumulate) {
                acc[t][0] = _mm512_add_ps(acc[t][0], _mm512_loadu_ps(y));
                acc[t][1] = _mm512_add_ps(acc[t][1], _mm512_loadu_ps(y + 16));
            }
            _mm512_storeu_ps(y, acc[t][0]);
            _mm512_storeu_ps(y + 16, acc[t][1]);
        } else {
            float lanes[PR];
            _mm512_storeu_ps(lanes, acc[t][0]);
            _mm512_storeu_ps(lanes + 16, acc[t][1]);
            for (int j = 0; j < ncols; j++) y[j] = accumulate ? y[j] + lanes[j] : lanes[j];
        }
    }
}

int ck_matmul_bf16_rows_avx512bf16(const uint16_t *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K,
                                   ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    uint32_t *P = (uint32_t *)ck_thread_scratch((size_t)NCB * KP + (size_t)KP * MR);
    if (!P) return 0;
    uint32_t *A = P + (size_t)NCB * KP;
    const ptrdiff_t pairs = (K + 1) / 2;
    for (ptrdiff_t rb = r0; rb < r1; rb += NCB) {
        const ptrdiff_t rows = r1 - rb < NCB ? r1 - rb : NCB;
        for (ptrdiff_t pb = 0; pb < pairs; pb += KP) {
            const ptrdiff_t pc = pairs - pb < KP ? pairs - pb : KP;
            pack_panels(W, ldw, K, rb, rows, pb, pc, P);
            for (ptrdiff_t t = 0; t < T; t += MR) {
                const int mr = T - t < MR ? (int)(T - t) : MR;
                pack_tokens(X + t * ldx, ldx, mr, pb, pc, A);
                for (ptrdiff_t p = 0; p < rows; p += PR) {
                    const int ncols = rows - p < PR ? (int)(rows - p) : PR;
                    micro_tile(A, P + (p / PR) * pc * PR, pc, Y + t * ldy + rb + p, ldy, mr, ncols, pb > 0);
                }
            }
        }
    }
    return 1;
}

// vdpbf16ps throughput: 24 independent accumulator chains, as the GEMM tile keeps. Returns flops done (4 per lane).
double ck_bf16_probe_avx512bf16(long iterations) {
    __m512 acc[2 * MR];
    for (int i = 0; i < 2 * MR; i++) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6); // 1, 1e-7
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 2 * MR; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    float sink = 0;
    for (int i = 0; i < 2 * MR; i++) sink += _mm512_reduce_add_ps(acc[i]);
    ck_probe_sink = sink;
    return 4.0 * 16 * 2 * MR * (double)iterations;
}

#pragma clang attribute pop
#endif
