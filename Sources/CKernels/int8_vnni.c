// Products of Q8_0, Q4_0 and Q4_Z weights with int8-quantized activations on CPUs with AVX512_VNNI (vpdpbusd: 64
// products of unsigned by signed bytes summed into 16 int32 lanes, one instruction). The row layout stays as stored;
// a step takes 4 blocks (128 weights) of a row, whose bytes fill one zmm (4-bit: 4 x 16 bytes of nibbles, split into
// low and high nibbles) or two (8-bit), against activations laid out once per call to match, and whose 4 f16
// scales become one vector. The per-block scalar work that bounds the AVX2 kernel (a scale product and a zero-point
// offset per block and token) is done 16 lanes at a time.
#if defined(__x86_64__)
#include "internal.h"
#include <immintrin.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)

#define GROUP 4 // blocks per step
#define PREFETCH 1024 // bytes ahead in each row (256-4096 measured alike on Zen 5: the hardware prefetcher leads)
#define INLINE static inline __attribute__((always_inline))

// One token's activations for one step of 4 blocks b0..b3, as the weights' zmm hold them (int32 lane L takes 4 bytes).
// 4-bit weights: a = [b0 q[0:16], b1 q[0:16], b2 q[0:16], b3 q[0:16]] meets the low nibbles (Q4's byte j holds
// weights j and j + 16), b the same of q[16:32] the high ones; for the zero point (w = d (q - z)) s[L] is the sum
// of the 8 q lane L takes (Q4_Z), or as int32 -8 times it (Q4_0: where the integer sums start); d[L] = its block's
// scale. 8-bit weights: a = b0 b1, b = b2 b3 as q + 128 (vpdpbusd
// takes the activations as the unsigned side; the 128 sum(w) it adds is taken off per row); s and d are the scales
// of a's and b's lanes.
typedef struct {
    int8_t a[64], b[64];
    union { float f[16]; int32_t i[16]; } s;
    float d[16];
} step_x;

INLINE ptrdiff_t step_count(ptrdiff_t K) { return ((K + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK + GROUP - 1) / GROUP; }

size_t ck_int8_activation_bytes_vnni(ptrdiff_t T, ptrdiff_t K) { return (size_t)T * step_count(K) * sizeof(step_x); }

// Tokens [t0, t1) of X quantized per block of 32 as the other kernels do (ck_quantize_block_q8: d = max|x| / 127 in
// float32) into steps [T][steps] for `type` (a last partial step zero-padded: d = 0 there).
void ck_quantize_activations_vnni(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ck_dtype type, ptrdiff_t t0,
                                  ptrdiff_t t1, void *A) {
    (void)T;
    const ptrdiff_t blocks = (K + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK, steps = step_count(K);
    step_x *out = A;
    for (ptrdiff_t t = t0; t < t1; t++) {
        step_x *s = out + t * steps;
        memset(s, 0, (size_t)steps * sizeof *s);
        for (ptrdiff_t b = 0; b < blocks; b++) {
            step_x *step = s + b / GROUP;
            const int g = (int)(b % GROUP);
            const ptrdiff_t count = K - b * CK_Q8_BLOCK < CK_Q8_BLOCK ? K - b * CK_Q8_BLOCK : CK_Q8_BLOCK;
            int8_t q[CK_Q8_BLOCK];
            const float d = ck_quantize_block_q8(X + t * ldx + b * CK_Q8_BLOCK, count, q);
            if (type == CK_Q8_0) {
                int8_t *half = g < 2 ? step->a : step->b;
                for (int i = 0; i < CK_Q8_BLOCK; i++) half[32 * (g % 2) + i] = (int8_t)(uint8_t)(q[i] + 128);
                for (int lane = 0; lane < 8; lane++) (g < 2 ? step->s.f : step->d)[8 * (g % 2) + lane] = d;
                continue;
            }
            memcpy(step->a + 16 * g, q, 16);
            memcpy(step->b + 16 * g, q + 16, 16);
            for (int lane = 0; lane < 4; lane++) {
                int32_t sum = 0;
                for (int i = 0; i < 4; i++) sum += q[4 * lane + i] + q[16 + 4 * lane + i];
                if (type == CK_Q4_0) step->s.i[4 * g + lane] = -8 * sum; else step->s.f[4 * g + lane] = (float)sum;
                step->d[4 * g + lane] = d;
            }
        }
    }
}

// Block g's `bytes` bytes at p into lanes [bytes / 4 * g, ...) of w (a masked load: nothing past the row is read).
INLINE __m512i load_block(__m512i w, const unsigned char *p, int g, int bytes) {
    const int lanes = bytes / 4, at = g * lanes % 16;
    return _mm512_mask_loadu_epi32(w, (__mmask16)(((1 << lanes) - 1) << at), p - 4 * at);
}

typedef struct { __m512i a, b, fix_a, fix_b; __m512 zero, scale, scale_b; } step_w;

// Word indices for vpermw picking each lane's scale (or zero point) out of a step's first bytes: 4-bit blocks of 18
// and 20 bytes have all 4 scales (and Q4_Z's zeros) within 64; 8-bit blocks take two loads 68 bytes apart.
static const uint16_t pick_q4_0[32] = {0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};
static const uint16_t pick_q4_z[32] = {0, 0, 0, 0, 10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30};
static const uint16_t pick_zero[32] = {1, 1, 1, 1, 11, 11, 11, 11, 21, 21, 21, 21, 31, 31, 31, 31};
static const uint16_t pick_q8_0[2][32] = {{0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17},
                                          {32, 32, 32, 32, 32, 32, 32, 32, 49, 49, 49, 49, 49, 49, 49, 49}};

INLINE __m512 f16_lanes(__m512i words) { return _mm512_cvtph_ps(_mm512_castsi512_si256(words)); }
INLINE __m512i pick(const uint16_t *index, __m512i from) {
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(index), from);
}

// A full step: unaligned loads and in-register shuffles, no scalar work.
INLINE step_w load_full_step(const unsigned char *block, const ck_dtype type, __m512i *raw) {
    const size_t bytes = ck_block_bytes(type);
    step_w s;
    if (type == CK_Q8_0) {
        raw[0] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(block + 2))),
                                    _mm256_loadu_si256((const __m256i *)(block + bytes + 2)), 1);
        raw[1] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(block + 2 * bytes + 2))),
                                    _mm256_loadu_si256((const __m256i *)(block + 3 * bytes + 2)), 1);
        const __m512i head = _mm512_loadu_si512(block), tail = _mm512_loadu_si512(block + 2 * bytes);
        s.scale = f16_lanes(_mm512_permutex2var_epi16(head, _mm512_loadu_si512(pick_q8_0[0]), tail));
        s.scale_b = f16_lanes(_mm512_permutex2var_epi16(head, _mm512_loadu_si512(pick_q8_0[1]), tail));
        return s;
    }
    const size_t skip = type == CK_Q4_Z ? 4 : 2;
    __m512i a = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(block + skip)));
    a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(block + bytes + skip)), 1);
    a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(block + 2 * bytes + skip)), 2);
    raw[0] = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(block + 3 * bytes + skip)), 3);
    const __m512i head = _mm512_loadu_si512(block);
    s.scale = f16_lanes(pick(type == CK_Q4_Z ? pick_q4_z : pick_q4_0, head));
    if (type == CK_Q4_Z) s.zero = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(pick(pick_zero, head))));
    return s;
}

// A row's last step of `count` < 4 blocks (missing blocks read as zeros; nothing past the row is read).
INLINE step_w load_partial_step(const unsigned char *block, const ck_dtype type, int count, __m512i *raw) {
    const size_t bytes = ck_block_bytes(type), skip = type == CK_Q4_Z ? 4 : 2;
    const int qbytes = type == CK_Q8_0 ? 32 : 16;
    uint16_t d[GROUP] = {0};
    int32_t z[GROUP] = {0};
    raw[0] = raw[1] = _mm512_setzero_si512();
    for (int g = 0; g < count; g++) {
        const unsigned char *p = block + g * bytes;
        raw[type == CK_Q8_0 && g >= 2] = load_block(raw[type == CK_Q8_0 && g >= 2], p + skip, g, qbytes);
        memcpy(&d[g], p, 2);
        if (type == CK_Q4_Z) z[g] = p[2];
    }
    const __m512 scales = _mm512_castps128_ps512(
        _mm_cvtph_ps(_mm_setr_epi16((short)d[0], (short)d[1], (short)d[2], (short)d[3], 0, 0, 0, 0)));
    // Each lane's block: lanes / 8 (8-bit, a; b takes blocks 2 and 3) or lanes / 4 (4-bit).
    const __m512i lane = _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           type == CK_Q8_0 ? 3 : 2);
    step_w s;
    s.scale = _mm512_permutexvar_ps(lane, scales);
    s.scale_b = _mm512_permutexvar_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(2)), scales);
    if (type == CK_Q4_Z) s.zero = _mm512_permutexvar_ps(lane, _mm512_castps128_ps512(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)z))));
    return s;
}

// One row's step, ready for every token. 4-bit: the nibbles as unsigned bytes (a, b), the scale and (Q4_Z) the
// zero point per lane. 8-bit: the q of b0 b1 (a) and b2 b3 (b), 128 times their sums per lane (fix_a, fix_b), the scales of a's
// and b's lanes.
INLINE step_w load_step(const unsigned char *block, const ck_dtype type, int count) {
    __m512i raw[2];
    step_w s = count == GROUP ? load_full_step(block, type, raw) : load_partial_step(block, type, count, raw);
    if (type == CK_Q8_0) {
        const __m512i ones = _mm512_set1_epi8(1);
        s.a = raw[0];
        s.b = raw[1];
        s.fix_a = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, s.a), 7);
        s.fix_b = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, s.b), 7);
        return s;
    }
    const __m512i mask = _mm512_set1_epi8(15);
    s.a = _mm512_and_si512(raw[0], mask);
    s.b = _mm512_and_si512(_mm512_srli_epi16(raw[0], 4), mask);
    return s;
}

// acc + one row's step times one token's: scale * (sum of q_w q_x - z * sum q_x), the integer part exact in
// float32 (|sum| < 2^24).
INLINE __m512 step_product(__m512 acc, const step_w *w, const step_x *x, const ck_dtype type) {
    const __m512i xa = _mm512_loadu_si512(x->a), xb = _mm512_loadu_si512(x->b);
    const __m512 d = _mm512_loadu_ps(x->d);
    if (type == CK_Q8_0) {
        const __m512i da = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xa, w->a), w->fix_a);
        const __m512i db = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xb, w->b), w->fix_b);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(da), _mm512_mul_ps(w->scale, _mm512_loadu_ps(x->s.f)), acc);
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(db), _mm512_mul_ps(w->scale_b, d), acc);
    }
    const __m512i start = type == CK_Q4_0 ? _mm512_loadu_si512(x->s.i) : _mm512_setzero_si512();
    const __m512i dots = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, w->a, xa), w->b, xb);
    const __m512 exact = type == CK_Q4_0 ? _mm512_cvtepi32_ps(dots)
                                         : _mm512_fnmadd_ps(w->zero, _mm512_loadu_ps(x->s.f), _mm512_cvtepi32_ps(dots));
    return _mm512_fmadd_ps(exact, _mm512_mul_ps(w->scale, d), acc);
}

// Rows [r0, r0 + NR) x NT tokens (constants in each copy). Each row's step is loaded once for all tokens.
INLINE void tile(const step_x *x, ptrdiff_t steps, ptrdiff_t full, const unsigned char *W, size_t row_bytes,
                 ptrdiff_t r0, const int NR, const int NT, const ck_dtype type, int last, float *Y, ptrdiff_t ldy) {
    __m512 acc[4][2];
    for (int r = 0; r < NR; r++) for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
    const size_t step_bytes = GROUP * ck_block_bytes(type);
    for (ptrdiff_t s = 0; s < steps; s++) {
        const int count = s < full ? GROUP : last;
#pragma clang loop unroll(full) // keeps acc in registers
        for (int r = 0; r < NR; r++) {
            const unsigned char *block = W + (size_t)(r0 + r) * row_bytes + (size_t)s * step_bytes;
            // Every cache line of the step PREFETCH bytes ahead (a step is 72-136 bytes, not a whole line).
            for (size_t line = 0; line < step_bytes + 63; line += 64) _mm_prefetch((const char *)block + PREFETCH + line, _MM_HINT_T0);
            const step_w w = count == GROUP ? load_step(block, type, GROUP) : load_step(block, type, count);
#pragma clang loop unroll(full)
            for (int t = 0; t < NT; t++) acc[r][t] = step_product(acc[r][t], &w, x + t * steps + s, type);
        }
    }
    for (int r = 0; r < NR; r++) for (int t = 0; t < NT; t++) Y[t * ldy + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
}

INLINE void tile_tokens(const step_x *x, ptrdiff_t steps, ptrdiff_t full, const unsigned char *W, size_t row_bytes,
                        ptrdiff_t r, int nr, int nt, const ck_dtype type, int last, float *Y, ptrdiff_t ldy) {
#define TILE(NR, NT) tile(x, steps, full, W, row_bytes, r, NR, NT, type, last, Y, ldy)
    if (nr == 4) {
        if (nt == 1) TILE(4, 1); else TILE(4, 2);
    } else {
        if (nt == 1) TILE(1, 1); else TILE(1, 2);
    }
#undef TILE
}

#define ROW_BLOCK 32 // rows whose weights stay in L2 while every pair of tokens passes over them

void ck_matmul_int8_rows_vnni(const void *A, ptrdiff_t T, const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    const ptrdiff_t blocks = (K + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK, steps = step_count(K), full = blocks / GROUP;
    const int last = (int)(blocks - full * GROUP);
    const step_x *x = A;
    const size_t row_bytes = ck_row_bytes(type, ldw);
    for (ptrdiff_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        const ptrdiff_t rend = rb + ROW_BLOCK < r1 ? rb + ROW_BLOCK : r1;
        for (ptrdiff_t t = 0; t < T; t += 2) {
            const int nt = T - t < 2 ? (int)(T - t) : 2;
            const step_x *xt = x + t * steps;
            for (ptrdiff_t r = rb; r < rend;) {
                const int nr = rend - r >= 4 ? 4 : 1;
                switch (type) {
                case CK_Q8_0: tile_tokens(xt, steps, full, W, row_bytes, r, nr, nt, CK_Q8_0, last, Y + t * ldy, ldy); break;
                case CK_Q4_0: tile_tokens(xt, steps, full, W, row_bytes, r, nr, nt, CK_Q4_0, last, Y + t * ldy, ldy); break;
                default: tile_tokens(xt, steps, full, W, row_bytes, r, nr, nt, CK_Q4_Z, last, Y + t * ldy, ldy); break;
                }
                r += nr;
            }
        }
    }
}
#pragma clang attribute pop
#endif
