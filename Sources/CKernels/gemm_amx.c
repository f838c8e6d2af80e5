// Products of BF16 weights with activations rounded to bf16 on AMX tiles (Intel Sapphire Rapids and later, Linux):
// TDPBF16PS adds to a 16 x 16 float32 tile the products of 16 tokens' 32 inputs (one 16 x 64-byte tile) with 16
// weight rows' same 32 inputs (a tile of 16 input pairs x 16 rows), 16K flops per instruction, ~4x the float32 FMA's
// rate per core. Same products as gemm_bf16.c (exact in float32, float32 sums), summed in another order.
//
// Schedule: per block of NC weight rows and KC inputs, the weights are packed once into tiles' layout (groups of 16
// rows, input pair-major: P[g][pair][16 rows] of 32-bit pairs, by 16 x 16 in-register transposes); then each block
// of 32 tokens is multiplied with every 32 rows of the block: 2 x 2 accumulator tiles, 2 token tiles read straight
// from the activations (row stride ldx) and 2 weight tiles per 32 inputs. The next token block is prefetched into L2
// meanwhile (tile loads that miss in L2 stall: without it the kernel ran at half speed on 4,900 tokens). Accumulators
// leave through a small buffer and vector stores, which absorb misses in Y better than tile stores.
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

#define KC_MAX 512 // inputs per block: 32 tokens' are 32 KiB (L1 48 KiB), NC rows' 256 KiB (L2 2 MiB; 1024: ~0.6x)
#define NC 256      // weight rows per block
#define PF 4        // lines of the next token block prefetched per 32 inputs

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} tile_config;

// Tiles 0-3 accumulate, 4-5 hold tokens, 6-7 weights (the attention kernel uses them alike).
void ck_amx_configure_tiles(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int i = 0; i < 8; i++) config.bytes_per_row[i] = 64, config.rows[i] = 16;
    _tile_loadconfig(&config);
}

// 16 x 16 transpose of 32-bit lanes (row i of the input in r[i]; column i of it out in r[i]).
static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
    }
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
        transpose16(v);
        for (int p = 0; p < 16; p++) _mm512_storeu_si512(P + (k / 2 + p) * 16, v[p]);
    }
}

int ck_matmul_bf16_rows_amx(const uint16_t *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K,
                            ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    uint32_t *P = (uint32_t *)ck_thread_scratch((size_t)NC * KC_MAX / 2 + (size_t)32 * KC_MAX / 2 + 32 * 32);
    if (!P) return 0;
    uint16_t *edge = (uint16_t *)(P + (size_t)NC * KC_MAX / 2); // a last token block of under 32, zero-padded
    float *C = (float *)(P + (size_t)NC * KC_MAX / 2 + (size_t)32 * KC_MAX / 2);
    const ptrdiff_t padded = (K + 31) / 32 * 32, chunks = (padded + KC_MAX - 1) / KC_MAX;
    const ptrdiff_t KC = ((padded + chunks - 1) / chunks + 31) / 32 * 32;
    ck_amx_configure_tiles();
    for (ptrdiff_t rb = r0; rb < r1; rb += NC) {
        const ptrdiff_t rows = r1 - rb < NC ? r1 - rb : NC;
        for (ptrdiff_t k0 = 0; k0 < padded; k0 += KC) {
            const ptrdiff_t kc = padded - k0 < KC ? padded - k0 : KC;
            for (ptrdiff_t g = 0; g < (rows + 31) / 32 * 32; g += 16) {
                ck_amx_pack_group(W, ldw, K, rb + g, rows - g, k0, kc, P + (g / 16) * (kc / 2) * 16);
            }
            for (ptrdiff_t t = 0; t < T; t += 32) {
                const ptrdiff_t mt = T - t < 32 ? T - t : 32, next_rows = T - t - 32 < 32 ? T - t - 32 : 32;
                const uint16_t *A = X + t * ldx + k0, *next = X + (t + 32) * ldx + k0;
                ptrdiff_t lda = ldx;
                if (mt < 32) {
                    for (ptrdiff_t i = 0; i < 32; i++) {
                        if (i < mt) memcpy(edge + i * kc, A + i * ldx, (size_t)kc * 2);
                        else memset(edge + i * kc, 0, (size_t)kc * 2);
                    }
                    A = edge, lda = kc;
                }
                for (ptrdiff_t n = 0; n < rows; n += 32) {
                    const uint32_t *B0 = P + (n / 16) * (kc / 2) * 16, *B1 = B0 + (kc / 2) * 16;
                    const ptrdiff_t line0 = (n / 32) * (kc / 32) * PF; // this panel's share of the next block's lines
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                    for (ptrdiff_t k = 0; k < kc; k += 32) {
                        for (int f = 0; f < PF; f++) {
                            const ptrdiff_t line = line0 + (k / 32) * PF + f; // token line % 32, inputs line / 32
                            if (line % 32 < next_rows) {
                                _mm_prefetch((const char *)(next + (line % 32) * ldx + (line / 32) * 32), _MM_HINT_T1);
                            }
                        }
                        _tile_loadd(4, A + k, lda * 2);
                        _tile_loadd(6, B0 + k / 2 * 16, 64);
                        _tile_loadd(7, B1 + k / 2 * 16, 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_loadd(5, A + 16 * lda + k, lda * 2);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                    _tile_stored(0, C, 128);
                    _tile_stored(1, C + 16, 128);
                    _tile_stored(2, C + 512, 128);
                    _tile_stored(3, C + 528, 128);
                    const ptrdiff_t columns = rows - n < 32 ? rows - n : 32;
                    const __mmask16 m0 = columns >= 16 ? 0xffff : (__mmask16)((1u << columns) - 1);
                    const __mmask16 m1 = columns >= 32 ? 0xffff : columns <= 16 ? 0 : (__mmask16)((1u << (columns - 16)) - 1);
                    for (ptrdiff_t i = 0; i < mt; i++) {
                        float *y = Y + (t + i) * ldy + rb + n;
                        __m512 c0 = _mm512_load_ps(C + i * 32), c1 = _mm512_load_ps(C + i * 32 + 16);
                        if (k0 > 0) {
                            c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, y));
                            c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, y + 16));
                        }
                        _mm512_mask_storeu_ps(y, m0, c0);
                        _mm512_mask_storeu_ps(y + 16, m1, c1);
                    }
                }
            }
        }
    }
    _tile_release();
    return 1;
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
