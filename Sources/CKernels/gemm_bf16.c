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
#define KPMAX 576 // input pairs per block at most, K split evenly: a panel is 72 KiB, a token group's block 27 KiB (L1
                  // 32-48 KiB); K = 1152 (SigLIP) in one block, so Y's tiles are stored once, not read back and added
                  // to twice: 87% -> 94% of the probe at 4,900 tokens in the harness (at 256 pairs)
#define NCB 256   // weight rows per block: 8 panels, 576 KiB in L2 (1-2 MiB per core); 256-512 measured alike
#define TBMAX 252 // tokens per block where K is in several (ck_token_block): Y's 252 x 256 floats (252 KiB) stay in
                  // L2 beside the panel. Not for the prefill's 335: split in two, 335 x 14,336 -> 4,096 read the
                  // panels from L3 (87% -> 81% of the probe)

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

// 16 floats rounded to bf16 in the low half of each 32-bit lane, as kernels.inc's bf16_bits (denormals kept, which
// vcvtneps2bf16 flushes; a NaN stays a quiet NaN).
static inline __m512i round16(__m512i u) {
    const __m512i half = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(_mm512_srli_epi32(_mm512_add_epi32(u, half), 16), nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

// The 16 pairs of x[0, 32) rounded, inputs at or past n zero.
static inline __m512i round_pairs(const float *x, ptrdiff_t n) {
    const __m512i even = _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26, 24,
                                          22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __mmask16 m0 = n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
    const __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    return _mm512_permutex2var_epi16(round16(_mm512_maskz_loadu_epi32(m0, x)), even,
                                     round16(_mm512_maskz_loadu_epi32(m1, x + 16)));
}

// A whole group of MR tokens (those from `valid` on are padding: zero) into its block G [pairs][MR]: 16 pairs of
// each token rounded in registers, turned by a 16 x 16 transpose into 16 pairs' 12 tokens, 48 bytes stored at once.
// Three times the speed of rounding a token at a time and storing its pairs 48 bytes apart.
static void pack_group(const float *X, ptrdiff_t ldx, ptrdiff_t valid, ptrdiff_t K, uint32_t *G) {
    const ptrdiff_t pairs = (K + 1) / 2;
    for (ptrdiff_t p0 = 0; p0 < pairs; p0 += 16) {
        __m512i v[16];
        for (int i = 0; i < 16; i++) v[i] = i < MR && i < valid ? round_pairs(X + i * ldx + 2 * p0, K - 2 * p0) : _mm512_setzero_si512();
        ck_transpose16(v);
        for (int j = 0; j < 16 && p0 + j < pairs; j++) _mm512_mask_storeu_epi32(G + (p0 + j) * MR, (1u << MR) - 1, v[j]);
    }
}

// Token t's pairs go to A[t / MR][p][t % MR] (groups of MR tokens, pairs of the whole K): whole groups by pack_group,
// the tokens of a group split between two callers one at a time; the tokens that pad the last group are zero,
// written by whoever packs the last token.
void ck_pack_bf16_activations_avx512bf16(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0,
                                         ptrdiff_t g1, uint32_t *A) {
    const ptrdiff_t pairs = (K + 1) / 2, t0 = 16 * g0, t1 = 16 * g1 < T ? 16 * g1 : T;
    const ptrdiff_t end = t1 < T ? t1 : (T + MR - 1) / MR * MR;
    for (ptrdiff_t t = t0; t < end;) {
        if (t % MR == 0 && t + MR <= end) {
            pack_group(X + t * ldx, ldx, T - t, K, A + t * pairs);
            t += MR;
            continue;
        }
        uint32_t *to = A + t / MR * pairs * MR + t % MR;
        for (ptrdiff_t p0 = 0; p0 < pairs; p0 += 16) {
            uint32_t lanes[16];
            _mm512_storeu_si512(lanes, t < T ? round_pairs(X + t * ldx + 2 * p0, K - 2 * p0) : _mm512_setzero_si512());
            for (ptrdiff_t p = 0; p < 16 && p0 + p < pairs; p++) to[(p0 + p) * MR] = lanes[p];
        }
        t++;
    }
}

// One input pair of the tile: both panel vectors against each token's broadcast pair.
static inline __attribute__((always_inline)) void tile_pair(__m512 acc[MR][2], const uint32_t *A, const uint32_t *P) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(P), b1 = (__m512bh)_mm512_loadu_si512(P + 16);
    for (int t = 0; t < MR; t++) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[t]);
        acc[t][0] = _mm512_dpbf16_ps(acc[t][0], a, b0);
        acc[t][1] = _mm512_dpbf16_ps(acc[t][1], a, b1);
    }
}

// Y's MR x 32 tile from a token group's pairs and a panel, plus the tile's 32 biases where `bias` is not NULL (the
// last block of pairs: after the whole sum, as a separate pass would add them, without that pass over Y); the lines
// of `next` (the next group's block, or NULL) fetched meanwhile, as Y's lines are at the start. Every accumulator
// index is a constant (masked stores for a partial tile), so the 24 stay in registers: with a runtime index clang kept
// them on the stack between the loop and the stores, zeroed by a memset call per tile (2.4% of an image's encoding).
static inline __attribute__((always_inline)) void micro_tile(const uint32_t *A, const uint32_t *P, ptrdiff_t pc,
                                                             float *Y, ptrdiff_t ldy, int mr, int ncols, int accumulate,
                                                             const float *bias, const uint32_t *next) {
    for (int t = 0; t < mr; t++) {
        _mm_prefetch((const char *)(Y + t * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(Y + t * ldy + 16), _MM_HINT_T0);
    }
    if (!next) next = A; // lines already in L1: the loop stays free of a branch per pair
    __m512 acc[MR][2];
#pragma clang loop unroll(full)
    for (int t = 0; t < MR; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    ptrdiff_t p = 0;
    for (; p + 4 <= pc; p += 4) {
        _mm_prefetch((const char *)(next + p * MR), _MM_HINT_T0); // 4 x 48 bytes: 3 lines
        for (int q = 0; q < 4; q++) tile_pair(acc, A + (p + q) * MR, P + (p + q) * PR);
    }
    for (; p < pc; p++) tile_pair(acc, A + p * MR, P + p * PR);
    const __mmask16 low = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
    const __mmask16 high = ncols >= PR ? 0xffff : ncols > 16 ? (__mmask16)((1u << (ncols - 16)) - 1) : 0;
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(low, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(high, bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int t = 0; t < MR; t++) {
        if (t >= mr) continue;
        float *y = Y + t * ldy;
        __m512 y0 = acc[t][0], y1 = acc[t][1];
        if (accumulate) {
            y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(low, y));
            y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(high, y + 16));
        }
        if (bias) y0 = _mm512_add_ps(y0, b0), y1 = _mm512_add_ps(y1, b1);
        _mm512_mask_storeu_ps(y, low, y0);
        _mm512_mask_storeu_ps(y + 16, high, y1);
    }
}

// The lines of a block of W's rows to come, fetched into L2 a few per tile of the block before: its panels are packed
// from memory the matrix last read a whole forward pass ago, 16 rows at a time, which stalled on every line (8-12% of
// the prefill's products and of the connector's in perf, the weights read once per 335 tokens).
typedef struct {
    const char *base;
    ptrdiff_t stride, lines_per_row, total, done, per_tile;
} ahead_stream;

static ahead_stream stream_block(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r0, ptrdiff_t rows,
                                 ptrdiff_t p0, ptrdiff_t pc, ptrdiff_t tiles) {
    const char *first = (const char *)(W + r0 * ldw + 2 * p0);
    const ptrdiff_t bytes = (2 * p0 + 2 * pc < K ? 2 * pc : K - 2 * p0) * 2;
    const ptrdiff_t lines = ((uintptr_t)first % 64 + bytes + 63) / 64, total = rows * lines;
    return (ahead_stream){(const char *)((uintptr_t)first / 64 * 64), ldw * 2, lines, total, 0,
                          (total + tiles - 1) / tiles};
}

static inline void stream_some(ahead_stream *s) {
    const ptrdiff_t end = s->done + s->per_tile < s->total ? s->done + s->per_tile : s->total;
    for (; s->done < end; s->done++) {
        _mm_prefetch(s->base + s->done / s->lines_per_row * s->stride + s->done % s->lines_per_row * 64, _MM_HINT_T1);
    }
}

// Y's rows [0, T) x columns [r0, r1). With K in several blocks and many tokens, the tokens go in blocks whose tiles of
// a row block stay in L2 across K (TB x NCB floats) and the row block's panels of all K are packed once, while its
// first token block runs: Y's tiles are read back from L2, not from L3 or memory (4,900 x 256 floats, 4.8 MiB, a row
// block). 4,900 x 4,304 -> 1,152 on two threads (the pool's 8 ranges, harness, three runs alternating): 74-87% ->
// 86-91% of the probe; `bench-ops` fc2 129-133 -> 122-127 ms.
int ck_matmul_bf16_rows_avx512bf16(const uint32_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                                   ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy, const float *bias) {
    const ptrdiff_t pairs = (K + 1) / 2, blocks = (pairs + KPMAX - 1) / KPMAX;
    const ptrdiff_t KP = ((pairs + blocks - 1) / blocks + 15) / 16 * 16; // whole 16-pair vectors for pack_panels
    const ptrdiff_t TB = ck_token_block(T, blocks, TBMAX, MR), kept = TB < T ? blocks : 1; // blocks of panels held
    uint32_t *P = (uint32_t *)ck_thread_scratch((size_t)NCB * KP * kept);
    if (!P) return 0;
    for (ptrdiff_t rb = r0; rb < r1; rb += NCB) {
        const ptrdiff_t rows = r1 - rb < NCB ? r1 - rb : NCB;
        for (ptrdiff_t tb = 0; tb < T; tb += TB) {
            const ptrdiff_t tend = T - tb < TB ? T : tb + TB, tiles = (tend - tb + MR - 1) / MR * ((rows + PR - 1) / PR);
            for (ptrdiff_t pb = 0; pb < pairs; pb += KP) {
                const ptrdiff_t pc = pairs - pb < KP ? pairs - pb : KP;
                const float *block_bias = bias && pb + KP >= pairs ? bias + rb : NULL; // the last block adds it
                uint32_t *panels = P + (kept > 1 ? pb / KP : 0) * NCB * KP;
                if (tb == 0) pack_panels(W, ldw, K, rb, rows, pb, pc, panels);
                // Fetched ahead: the block packed next, the next pairs of these rows while the first token block
                // runs, else the next rows' first pairs during the row block's last pass.
                const int last = tend == T && pb + KP >= pairs;
                const ptrdiff_t nb = tb == 0 && pb + KP < pairs ? rb : last ? rb + NCB : r1;
                const ptrdiff_t np = nb == rb ? pb + KP : 0;
                const ptrdiff_t nrows = nb < r1 ? (r1 - nb < NCB ? r1 - nb : NCB) : 0;
                ahead_stream ahead = {0};
                if (nrows > 0) ahead = stream_block(W, ldw, K, nb, nrows, np, pairs - np < KP ? pairs - np : KP, tiles);
                for (ptrdiff_t t = tb; t < tend; t += MR) {
                    const int mr = T - t < MR ? (int)(T - t) : MR;
                    const uint32_t *group = A + t * pairs + pb * MR;
                    for (ptrdiff_t p = 0; p < rows; p += PR) {
                        const int ncols = rows - p < PR ? (int)(rows - p) : PR;
                        // The group's block comes in with the first panel (half of it ahead), the next group's with
                        // the last.
                        const uint32_t *next = p + PR >= rows ? (t + MR < tend ? group + MR * pairs : NULL)
                                               : p == 0 ? group + pc * MR / 2 : NULL;
                        stream_some(&ahead);
                        micro_tile(group, panels + (p / PR) * pc * PR, pc, Y + t * ldy + rb + p, ldy, mr, ncols, pb > 0,
                                   block_bias ? block_bias + p : NULL, next);
                    }
                }
            }
        }
    }
    return 1;
}

// ---------------------------------------------------------------------------------------------- few tokens
// Decode and short prompts at bf16 precision: W's rows streamed once, as kernels.inc's stream tiles read them (8 rows
// for one token, 4 rows x up to 4 tokens; each row's line 512 bytes ahead and the next tile's row into L2), a line of
// 32 weights per vdpbf16ps against the tokens' 32 inputs rounded to bf16, where the float32 kernels take two
// conversions and two FMAs. Each (row, token) sums its lanes' pairs in one order whatever the tile, so a token's
// outputs do not depend on the call's other tokens. Measured on Zen 4 (2 threads, 8 matrices of 14,336 x 4,096, the
// host's memory alternating between a slow and a fast state): 31-35 GB/s as the float32 tile in the slow state,
// 53-58 against 47-51 GB/s in the fast one, where a plain read of the same bytes takes 59-62.
#define FEW_AHEAD 512

// 32 inputs from k of a token rounded to bf16 pairs, those at or past K zero.
static inline __m512bh few_inputs(const float *x, ptrdiff_t k, ptrdiff_t K) {
    const ptrdiff_t n = K - k;
    if (n >= 32) return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
    const __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    const __mmask16 m1 = n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + k + 16), _mm512_maskz_loadu_ps(m0, x + k));
}

static inline __attribute__((always_inline)) void few_tile(const uint16_t *Xb, ptrdiff_t KP, const uint16_t *W,
                                                            ptrdiff_t K, ptrdiff_t ldw, int nr, const int NT,
                                                            const int R, float *Y, ptrdiff_t ldy) {
    __m512 acc[8][4];
    for (int i = 0; i < R; i++)
        for (int t = 0; t < NT; t++) acc[i][t] = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < K; k += 32) {
        const __mmask32 m = K - k >= 32 ? 0xffffffffu : (__mmask32)((1u << (K - k)) - 1);
        __m512bh x[4];
        for (int t = 0; t < NT; t++) x[t] = (__m512bh)_mm512_loadu_si512(Xb + t * KP + k);
        for (int i = 0; i < R; i++) {
            if (i >= nr) break;
            const uint16_t *w = W + i * ldw + k;
            _mm_prefetch((const char *)w + FEW_AHEAD, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + R * ldw), _MM_HINT_T1);
            const __m512bh v = (__m512bh)_mm512_maskz_loadu_epi16(m, w);
            for (int t = 0; t < NT; t++) acc[i][t] = _mm512_dpbf16_ps(acc[i][t], x[t], v);
        }
    }
    for (int i = 0; i < R && i < nr; i++)
        for (int t = 0; t < NT; t++) Y[t * ldy + i] = _mm512_reduce_add_ps(acc[i][t]);
}

// The tokens' inputs are rounded once per call into the thread's scratch, [T][KP] (KP: K in whole lines, zeros past
// it): rounding them again for every tile of rows was 2-3% slower in the harness.
int ck_matmul_bf16_few_avx512bf16(const float *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K,
                                  ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    const ptrdiff_t KP = (K + 31) / 32 * 32;
    uint16_t *Xb = (uint16_t *)ck_thread_scratch((size_t)(T * KP + 1) / 2);
    if (!Xb) return 0;
    for (ptrdiff_t t = 0; t < T; t++) {
        for (ptrdiff_t k = 0; k < KP; k += 32) _mm512_storeu_si512(Xb + t * KP + k, (__m512i)few_inputs(X + t * ldx, k, K));
    }
    for (ptrdiff_t rb = r0; rb < r1; rb += 32) {
        const ptrdiff_t rend = rb + 32 < r1 ? rb + 32 : r1;
        for (ptrdiff_t t = 0; t < T; t += 4) {
            const ptrdiff_t nt = T - t < 4 ? T - t : 4;
            const int rows = nt == 1 ? 8 : 4;
            for (ptrdiff_t r = rb; r < rend; r += rows) {
                const int nr = rend - r < rows ? (int)(rend - r) : rows;
                const uint16_t *x = Xb + t * KP, *w = W + r * ldw;
                float *y = Y + t * ldy + r;
                switch (nt) { // the token count and the row count constants: every accumulator stays in a register
                case 1: few_tile(x, KP, w, K, ldw, nr, 1, 8, y, ldy); break;
                case 2: few_tile(x, KP, w, K, ldw, nr, 2, 4, y, ldy); break;
                case 3: few_tile(x, KP, w, K, ldw, nr, 3, 4, y, ldy); break;
                default: few_tile(x, KP, w, K, ldw, nr, 4, 4, y, ldy); break;
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
