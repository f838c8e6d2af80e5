// Products of BF16 weights with activations rounded to bf16 on AMX tiles (Intel Sapphire Rapids and later, Linux):
// TDPBF16PS adds to a 16 x 16 float32 tile the products of 16 rows' 32 inputs (one 16 x 64-byte tile) with 16
// columns' same 32 inputs (a tile of 16 input pairs x 16 columns), 16K flops per instruction, ~4x the float32 FMA's
// rate per core. Same products as gemm_bf16.c (exact in float32, float32 sums), summed in another order.
//
// The activations are rounded once per call into 1 KiB tiles per 16 tokens and 32 inputs, contiguous, so that tile
// loads stream (read in place from rows 2.3 KB apart, the same kernel ran ~20% slower on 4,900 tokens). Two
// schedules, by token count (measured on one Emerald Rapids VM, 2 threads, in one run each):
// - Many tokens (over 128): tokens are the A operand. Per block of NC weight rows and KC inputs the weights are packed
//   once into the B operand's layout (groups of 16 rows, input pair-major, by 16 x 16 in-register transposes), then
//   each 32 tokens meet every 32 rows of the block on 2 x 2 accumulator tiles. ~0.8-1.2 TFLOP/s on the model's
//   shapes; accumulators leave through a small buffer and vector stores, which absorb misses in Y better.
// - Few tokens (up to 128, the perceiver's 64 latents, short prompts): the weights are the A operand, read in place
//   (no packing: at 64 tokens packing cost more than the products) and the activations are packed transposed as B;
//   the accumulators hold Y^T and are transposed back on the way out. 1.2-1.5x the first schedule at 64-128 tokens.
#include "amx.h"
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

int ck_amx_enable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned amx_bf16 = 1u << 22, amx_tile = 1u << 24;
    if ((d & (amx_bf16 | amx_tile)) != (amx_bf16 | amx_tile) || !__builtin_cpu_supports("avx512bf16")) return 0;
    // The kernel hands out the 8 KB of tile state only to processes that ask (Linux 5.16+); it refuses where it
    // cannot (an older kernel, a signal stack too small for the larger frames).
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

#pragma clang attribute push(__attribute__((target(CK_AMX_TARGET))), apply_to = function)

#define KC_MAX 768    // inputs per block: NC rows' are 384 KiB (L2 2 MiB); 512 ran ~5-10% slower, 640-1152 alike
#define NC 256        // weight rows per block
#define FEW_TOKENS 128 // up to this many, the weights are the A operand (measured crossover between 128 and 192)

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} tile_config;

// Tiles 0-3 accumulate, 4-5 hold one operand, 6-7 the other (the attention kernel uses them alike).
void ck_amx_configure_tiles(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int i = 0; i < 8; i++) config.bytes_per_row[i] = 64, config.rows[i] = 16;
    _tile_loadconfig(&config);
}

void ck_amx_pack_group(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r, ptrdiff_t rows, ptrdiff_t k0,
                       ptrdiff_t kc, uint32_t *P) {
    for (ptrdiff_t k = 0; k < kc; k += 32) {
        const ptrdiff_t left = K - (k0 + k);
        const __mmask32 mask = left >= 32 ? 0xffffffffu : left <= 0 ? 0 : (__mmask32)((1u << left) - 1);
        __m512i v[16];
        for (int i = 0; i < 16; i++) {
            if (i >= rows) {
                v[i] = _mm512_setzero_si512();
                continue;
            }
            const uint16_t *row = W + (r + i) * ldw + k0 + k;
            v[i] = _mm512_maskz_loadu_epi16(mask, row);
            _mm_prefetch((const char *)(row + 512), _MM_HINT_T0);
        }
        ck_transpose16(v);
        for (int p = 0; p < 16; p++) _mm512_storeu_si512(P + (k / 2 + p) * 16, v[p]);
    }
}

size_t ck_bf16_activation_bytes_amx(ptrdiff_t T, ptrdiff_t K) {
    return (size_t)((T + 31) / 32 * 32) * (size_t)((K + 31) / 32 * 32) * 2;
}

// Tokens [16 g0, 16 g1) as tiles of 16 tokens x 32 inputs, tile (g, s) at A + (g * steps + s) * 512 bf16: rows of
// tokens (the A operand) or, for few tokens, input pairs x 16 tokens (the B operand); zeros past T and K.
void ck_pack_bf16_activations_amx(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1,
                                  uint16_t *A) {
    const ptrdiff_t steps = (K + 31) / 32;
    for (ptrdiff_t g = g0; g < g1; g++) {
        for (ptrdiff_t s = 0; s < steps; s++) {
            const ptrdiff_t left = K - s * 32;
            const __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512i v[16];
            for (int j = 0; j < 16; j++) {
                const float *x = X + (g * 16 + j) * ldx + s * 32;
                v[j] = g * 16 + j >= T ? _mm512_setzero_si512()
                                       : (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + 16),
                                                                      _mm512_maskz_loadu_ps(m0, x));
            }
            if (T <= FEW_TOKENS) ck_transpose16(v);
            uint16_t *tile = A + (g * steps + s) * 512;
            for (int j = 0; j < 16; j++) _mm512_storeu_si512(tile + j * 32, v[j]);
        }
    }
}

// Rows [0, mt) x columns [0, columns) of Y (row stride ldy) = those of C (row stride 32), added to Y's if `add`.
static inline void store_block(const float *C, ptrdiff_t mt, ptrdiff_t columns, int add, float *Y, ptrdiff_t ldy) {
    const __mmask16 m0 = columns >= 16 ? 0xffff : (__mmask16)((1u << columns) - 1);
    const __mmask16 m1 = columns >= 32 ? 0xffff : columns <= 16 ? 0 : (__mmask16)((1u << (columns - 16)) - 1);
    for (ptrdiff_t i = 0; i < mt; i++) {
        float *y = Y + i * ldy;
        __m512 c0 = _mm512_load_ps(C + i * 32), c1 = _mm512_load_ps(C + i * 32 + 16);
        if (add) {
            c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, y));
            c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, y + 16));
        }
        _mm512_mask_storeu_ps(y, m0, c0);
        _mm512_mask_storeu_ps(y + 16, m1, c1);
    }
}

// C [32][32] = the products of two A tiles (a0, a1: 16 rows each, rows a_stride bytes apart) with two B tiles (b0,
// b1), summed over `steps` steps of 32 inputs (each operand's next tiles a_step and b_step bytes on), on
// accumulator tiles 0-3 (rows of a0 and a1 x columns of b0 and b1).
static inline void block_2x2(const void *a0, const void *a1, ptrdiff_t a_stride, ptrdiff_t a_step, const void *b0,
                             const void *b1, ptrdiff_t b_step, ptrdiff_t steps, float *C) {
    const char *pa0 = a0, *pa1 = a1, *pb0 = b0, *pb1 = b1;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (ptrdiff_t s = 0; s < steps; s++) {
        _tile_loadd(4, pa0 + s * a_step, a_stride);
        _tile_loadd(6, pb0 + s * b_step, 64);
        _tile_loadd(7, pb1 + s * b_step, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, pa1 + s * a_step, a_stride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, C, 128);
    _tile_stored(1, C + 16, 128);
    _tile_stored(2, C + 512, 128);
    _tile_stored(3, C + 528, 128);
}

// The many-token schedule (tokens as A, packed weights as B).
static int tokens_by_weights(const uint16_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                             ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    uint32_t *P = (uint32_t *)ck_thread_scratch((size_t)NC * KC_MAX / 2 + 32 * 32);
    if (!P) return 0;
    float *C = (float *)(P + (size_t)NC * KC_MAX / 2);
    const ptrdiff_t padded = (K + 31) / 32 * 32, steps = padded / 32, chunks = (padded + KC_MAX - 1) / KC_MAX;
    const ptrdiff_t KC = ((padded + chunks - 1) / chunks + 31) / 32 * 32;
    for (ptrdiff_t rb = r0; rb < r1; rb += NC) {
        const ptrdiff_t rows = r1 - rb < NC ? r1 - rb : NC;
        for (ptrdiff_t k0 = 0; k0 < padded; k0 += KC) {
            const ptrdiff_t kc = padded - k0 < KC ? padded - k0 : KC;
            for (ptrdiff_t g = 0; g < (rows + 31) / 32 * 32; g += 16) {
                ck_amx_pack_group(W, ldw, K, rb + g, rows - g, k0, kc, P + (g / 16) * (kc / 2) * 16);
            }
            for (ptrdiff_t t = 0; t < T; t += 32) {
                const uint16_t *A0 = A + ((t / 16) * steps + k0 / 32) * 512, *A1 = A0 + steps * 512;
                for (ptrdiff_t n = 0; n < rows; n += 32) {
                    const uint32_t *B0 = P + (n / 16) * (kc / 2) * 16, *B1 = B0 + (kc / 2) * 16;
                    block_2x2(A0, A1, 64, 1024, B0, B1, 1024, kc / 32, C);
                    store_block(C, T - t < 32 ? T - t : 32, rows - n < 32 ? rows - n : 32, k0 > 0, Y + t * ldy + rb + n, ldy);
                }
            }
        }
    }
    return 1;
}

// The few-token schedule (weights as A, read in place; transposed activations as B; Y^T in the accumulators).
static int weights_by_tokens(const uint16_t *XT, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                             ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    const ptrdiff_t steps = (K + 31) / 32;
    float *C = ck_thread_scratch(32 * 32 + (size_t)16 * steps * 32);
    if (!C) return 0;
    uint16_t *edge = (uint16_t *)(C + 32 * 32);
    for (ptrdiff_t rb = r0; rb < r1; rb += 32) {
        const ptrdiff_t rows = r1 - rb < 32 ? r1 - rb : 32;
        const uint16_t *A = W + rb * ldw;
        ptrdiff_t lda = ldw;
        if (rows < 32 || K % 32) { // tiles would read past the rows asked for or past a row's K inputs: a padded copy
            for (ptrdiff_t i = 0; i < 32; i++) {
                memset(edge + i * steps * 32, 0, (size_t)steps * 64);
                if (i < rows) memcpy(edge + i * steps * 32, W + (rb + i) * ldw, (size_t)K * 2);
            }
            A = edge, lda = steps * 32;
        }
        for (ptrdiff_t t = 0; t < T; t += 32) {
            const uint16_t *B0 = XT + (t / 16) * steps * 512, *B1 = B0 + steps * 512;
            block_2x2(A, A + 16 * lda, lda * 2, 64, B0, B1, 1024, steps, C);
            for (int half = 0; half < 2; half++) { // C^T [32 rows][32 tokens], 16 tokens at a time, to Y [tokens][rows]
                __m512i v[16];
                for (int i = 0; i < 16; i++) v[i] = _mm512_loadu_si512(C + i * 32 + half * 16);
                ck_transpose16(v);
                __m512i w[16];
                for (int i = 0; i < 16; i++) w[i] = _mm512_loadu_si512(C + (16 + i) * 32 + half * 16);
                ck_transpose16(w);
                float block[16 * 32] __attribute__((aligned(64)));
                for (int j = 0; j < 16; j++) {
                    _mm512_store_si512(block + j * 32, v[j]);
                    _mm512_store_si512(block + j * 32 + 16, w[j]);
                }
                const ptrdiff_t first = t + 16 * half, mt = T - first < 16 ? T - first : 16;
                if (mt > 0) store_block(block, mt, rows, 0, Y + first * ldy + rb, ldy);
            }
        }
    }
    return 1;
}

int ck_matmul_bf16_rows_amx(const uint16_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                            ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    ck_amx_configure_tiles();
    const int done = T <= FEW_TOKENS ? weights_by_tokens(A, T, W, K, ldw, r0, r1, Y, ldy)
                                     : tokens_by_weights(A, T, W, K, ldw, r0, r1, Y, ldy);
    _tile_release();
    return done;
}

// TDPBF16PS throughput: the GEMM's four accumulators against operands held in tiles. Returns flops done.
double ck_bf16_probe_amx(long iterations) {
    static const uint16_t ones[16 * 32] __attribute__((aligned(64))) = {0};
    float out[16 * 16] __attribute__((aligned(64)));
    ck_amx_configure_tiles();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    for (long n = 0; n < iterations; n++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    ck_probe_sink = out[0];
    return 4.0 * 16 * 16 * 32 * 2 * (double)iterations;
}

#pragma clang attribute pop
#else
int ck_amx_enable(void) { return 0; }
#endif
