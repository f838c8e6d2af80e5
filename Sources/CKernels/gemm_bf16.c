// Products of BF16 weights with activations rounded to bf16, on CPUs with AVX512_BF16: vdpbf16ps adds, in each of
// 16 float32 lanes, the two products of a pair of bf16 inputs (exact in float32) to the accumulator, twice the work
// of an FMA per instruction. Same schedule as the float32 packed GEMM (kernels.inc): blocks of KP input pairs x NCB
// weight rows packed into panels of 32 rows, pair-major (panel[p][32] holds each row's pair p in one 32-bit lane),
// then groups of MR tokens' pairs broadcast against them, MR x 32 accumulators. The activations are rounded to bf16
// and laid out in those groups once per call (ck_pack_bf16_activations), not once per thread or per row block.
// With cached operands the tile runs at the instruction's probe rate; the blocking costs the rest (packing,
// misses on Y's tiles, on the next group's activations: both prefetched a tile ahead).
#include "bf16_avx512.h"
#include <string.h>

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target(CK_BF16_TARGET))), apply_to = function)

#define MR 12   // tokens per register tile: 24 accumulators and 2 panel vectors of the 32 zmm registers
#define PR 32   // weight rows per panel (two vectors)
#define KP 256  // input pairs per block: a panel is 32 KiB, a token group's block 12 KiB (L1 32-48 KiB)
#define NCB 512 // weight rows per block: 16 panels, 512 KiB in L2 (1-2 MiB per core); measured best of 256-1024

// Rows [r0, r0 + rows) x pairs [p0, p0 + pc) of W (bf16 [rows][ldw], K inputs) into panels; rows past `rows` and the
// half of a pair past K are zero. 16 rows x 16 whole pairs at a time by a transpose (a tenth of the prefill's time
// when it was a pair at a time: a block's panels serve only T / MR token groups), the rest lane by lane.
static void pack_panels(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t p0,
                        ptrdiff_t pc, uint32_t *P) {
    const ptrdiff_t padded = (rows + PR - 1) / PR * PR;
    const ptrdiff_t whole = (K - 2 * p0) / 2 < pc ? (K - 2 * p0) / 2 : pc, vectors = whole / 16 * 16;
    for (ptrdiff_t r = 0; r < padded; r += 16) {
        uint32_t *panel = P + (r / PR) * pc * PR + r % PR;
        for (ptrdiff_t p = 0; p < vectors; p += 16) {
            __m512i v[16];
            for (int i = 0; i < 16; i++)
                v[i] = r + i < rows ? _mm512_loadu_si512(W + (r0 + r + i) * ldw + 2 * (p0 + p)) : _mm512_setzero_si512();
            ck_transpose16(v);
            for (int j = 0; j < 16; j++) _mm512_storeu_si512(panel + (p + j) * PR, v[j]);
        }
        for (int i = 0; i < 16; i++) {
            uint32_t *lane = panel + i;
            const uint16_t *row = r + i < rows ? W + (r0 + r + i) * ldw + 2 * p0 : NULL; // none past the matrix
            for (ptrdiff_t p = vectors; p < pc; p++) {
                uint32_t pair = 0;
                if (row && p < whole) memcpy(&pair, row + 2 * p, 4);
                else if (row && p == whole) pair = row[2 * whole]; // an odd K: its last input, a zero partner
                lane[p * PR] = pair;
            }
        }
    }
}

size_t ck_bf16_activation_bytes_avx512bf16(ptrdiff_t T, ptrdiff_t K) {
    return (size_t)((T + MR - 1) / MR * MR) * (size_t)((K + 1) / 2) * 4;
}

// Token t's pairs go to A[t / MR][p][t % MR] (groups of MR tokens, pairs of the whole K), rounded 256 pairs at a
// time into a buffer on the stack; the tokens that pad the last group are zero, written by whoever packs the last
// token.
void ck_pack_bf16_activations_avx512bf16(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0,
                                         ptrdiff_t g1, uint32_t *A) {
    enum { CHUNK = 256 };
    const ptrdiff_t pairs = (K + 1) / 2, t0 = 16 * g0, t1 = 16 * g1 < T ? 16 * g1 : T;
    const ptrdiff_t end = t1 < T ? t1 : (T + MR - 1) / MR * MR;
    uint32_t chunk[CHUNK];
    for (ptrdiff_t t = t0; t < end; t++) {
        uint32_t *to = A + t / MR * pairs * MR + t % MR;
        for (ptrdiff_t p0 = 0; p0 < pairs; p0 += CHUNK) {
            const ptrdiff_t n = pairs - p0 < CHUNK ? pairs - p0 : CHUNK, inputs = K - 2 * p0 < 2 * n ? K - 2 * p0 : 2 * n;
            if (t < T) ck_round_to_bf16(X + t * ldx + 2 * p0, 1, inputs, ldx, (uint16_t *)chunk, 2 * n);
            else memset(chunk, 0, sizeof chunk);
            for (ptrdiff_t p = 0; p < n; p++) to[(p0 + p) * MR] = chunk[p];
        }
    }
}

// Y's MR x 32 tile from a token group's pairs and a panel; the lines of `next` (the next group's block, or NULL)
// fetched meanwhile, as Y's lines are at the start.
static inline __attribute__((always_inline)) void micro_tile(const uint32_t *A, const uint32_t *P, ptrdiff_t pc,
                                                             float *Y, ptrdiff_t ldy, int mr, int ncols, int accumulate,
                                                             const uint32_t *next) {
    for (int t = 0; t < mr; t++) {
        _mm_prefetch((const char *)(Y + t * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(Y + t * ldy + 16), _MM_HINT_T0);
    }
    __m512 acc[MR][2];
    for (int t = 0; t < MR; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < pc; p++) {
        if (next && p % 4 == 0) _mm_prefetch((const char *)(next + p * MR), _MM_HINT_T0); // 4 x 48 bytes: 3 lines
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

int ck_matmul_bf16_rows_avx512bf16(const uint32_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                                   ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    uint32_t *P = (uint32_t *)ck_thread_scratch((size_t)NCB * KP);
    if (!P) return 0;
    const ptrdiff_t pairs = (K + 1) / 2;
    for (ptrdiff_t rb = r0; rb < r1; rb += NCB) {
        const ptrdiff_t rows = r1 - rb < NCB ? r1 - rb : NCB;
        for (ptrdiff_t pb = 0; pb < pairs; pb += KP) {
            const ptrdiff_t pc = pairs - pb < KP ? pairs - pb : KP;
            pack_panels(W, ldw, K, rb, rows, pb, pc, P);
            for (ptrdiff_t t = 0; t < T; t += MR) {
                const int mr = T - t < MR ? (int)(T - t) : MR;
                const uint32_t *group = A + t * pairs + pb * MR;
                for (ptrdiff_t p = 0; p < rows; p += PR) {
                    const int ncols = rows - p < PR ? (int)(rows - p) : PR;
                    // The group's block comes in with the first panel (half of it ahead), the next group's with the last.
                    const uint32_t *next = p + PR >= rows ? (t + MR < T ? group + MR * pairs : NULL)
                                           : p == 0 ? group + pc * MR / 2 : NULL;
                    micro_tile(group, P + (p / PR) * pc * PR, pc, Y + t * ldy + rb + p, ldy, mr, ncols, pb > 0, next);
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
