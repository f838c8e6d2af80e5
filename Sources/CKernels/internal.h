#pragma once
// Shared by the per-instruction-set kernel files and the dispatcher; not part of the public header.
#include "CKernels.h"
#include <math.h>
#include <string.h>

/// One instruction set's kernels; dispatch.c holds the active table.
typedef struct {
    void (*matmul_rows)(const float *, ptrdiff_t, ptrdiff_t, const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                        ptrdiff_t, float *, ptrdiff_t);
    int mr; // tokens per group of the packed GEMM
    void (*pack_activations)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    int (*matmul_packed_rows)(const float *, ptrdiff_t, const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                              float *, ptrdiff_t);
    void (*to_f32)(const void *, ck_dtype, ptrdiff_t, float *);
    void (*dequantize_row)(const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    void (*round_to_bf16)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint16_t *, ptrdiff_t);
    float (*dot)(const float *, const float *, ptrdiff_t);
    void (*axpy)(float, const float *, float *, ptrdiff_t);
    float (*softmax)(float *, ptrdiff_t);
    void (*silu_mul)(const float *, const float *, float *, ptrdiff_t);
    void (*gelu_tanh)(float *, ptrdiff_t);
    void (*rms_norm)(const float *, const float *, float, ptrdiff_t, ptrdiff_t, float *);
    void (*layer_norm)(const float *, const float *, const float *, float, ptrdiff_t, ptrdiff_t, float *);
    void (*add)(float *, const float *, ptrdiff_t);
    double (*fma_probe)(long);
    int (*attention)(const float *, ptrdiff_t, ptrdiff_t, const float *, const float *, ptrdiff_t, ptrdiff_t, float,
                     const int32_t *, const int32_t *, float *, ptrdiff_t);
    int (*attention_group)(const float *, ptrdiff_t, ptrdiff_t, const float *, const float *, ptrdiff_t, ptrdiff_t,
                           float, ptrdiff_t, ptrdiff_t, float *, ptrdiff_t);
} ck_table;

/// Tokens from which the packed GEMM runs: below it streaming the weights once beats packing them (measured
/// crossover on AVX2).
#define CK_PACK_MIN_TOKENS 20

/// Written by the probes so that their loops are not optimized away.
extern volatile float ck_probe_sink;

// The GEMMs' token blocks (both packed GEMMs): where K is in several blocks and there are more than 2 `most` tokens,
// even blocks of at most ~`most` tokens (whole groups of mr), whose Y tiles stay in L2 across K; else all T at once
// (Y's rows of a row block then fit beside the panel, and a second pass would read the panels from L3).
static inline ptrdiff_t ck_token_block(ptrdiff_t T, ptrdiff_t k_blocks, ptrdiff_t most, ptrdiff_t mr) {
    const ptrdiff_t blocks = k_blocks > 1 && T > 2 * most ? (T + most - 1) / most : 1;
    return ((T + blocks - 1) / blocks + mr - 1) / mr * mr;
}

static inline size_t ck_element_size(ck_dtype type) { return type == CK_F32 ? 4 : 2; } // float types only

/// One block of `count` <= 32 floats as llama.cpp's Q8_0 quantizes it: d = max|x| / 127, q = round(x / d) (zeros
/// past count); returns d. Weights store d as f16, activations keep it in float32.
static inline float ck_quantize_block_q8(const float *x, ptrdiff_t count, int8_t *q) {
    float amax = 0;
    for (ptrdiff_t i = 0; i < count; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    const float d = amax / 127, inverse = d != 0 ? 1 / d : 0;
    // roundf's result (halves away from zero) from a truncation and its exact remainder, which the compiler
    // vectorizes (roundf is a call per value: 1-2% of a quantized decode, on one thread while the other waits).
    for (ptrdiff_t i = 0; i < CK_Q8_BLOCK; i++) {
        const float v = i < count ? x[i] * inverse : 0;
        const int t = (int)v;
        const float rest = v - (float)t;
        q[i] = (int8_t)(t + (rest >= 0.5f) - (rest <= -0.5f));
    }
    return d;
}

/// A group of quantized rows (CKernels.h gives the layout): n rows from row 16 g, the pointers at block 0's scales,
/// zero points (Q4_Z) and q bytes. Block b's q bytes start at q + b * n * ck_q_bytes(type); chunk c of row L's at
/// 4 (c n + L) from there.
typedef struct { const unsigned char *scales, *zeros, *q; int n; } ck_row_group;
static inline size_t ck_q_bytes(ck_dtype type) { return type == CK_Q8_0 ? 32 : 16; }
/// The group of row r in W (row stride ldw in weights), whose rows end at `end` (the matrix's last row, or any
/// multiple of 16 past r).
static inline ck_row_group ck_group_of(const void *W, ck_dtype type, ptrdiff_t ldw, ptrdiff_t r, ptrdiff_t end) {
    const ptrdiff_t first = r / CK_ROW_GROUP * CK_ROW_GROUP, blocks = (ldw + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK;
    const int n = end - first < CK_ROW_GROUP ? (int)(end - first) : CK_ROW_GROUP;
    const unsigned char *base = (const unsigned char *)W + (size_t)first * ck_row_bytes(type, ldw);
    const size_t scales = 2 * (size_t)n * (size_t)blocks, zeros = type == CK_Q4_Z ? scales : 0;
    return (ck_row_group){base, type == CK_Q4_Z ? base + scales : NULL, base + scales + zeros, n};
}
/// Row L's weights of block b of a group, as d and the 32 integers q - z (w = d (q - z)): its 4-byte chunks
/// gathered, then Q8_0's stored q + 128 or the nibbles (low halves first) less their zero point.
static inline float ck_unpack_block(ck_row_group g, ck_dtype type, ptrdiff_t b, int L, int8_t q[CK_Q8_BLOCK]) {
    const int chunks = (int)ck_q_bytes(type) / 4;
    const unsigned char *from = g.q + (size_t)b * (size_t)g.n * ck_q_bytes(type) + 4 * L;
    unsigned char bytes[CK_Q8_BLOCK];
    for (int c = 0; c < chunks; c++) memcpy(bytes + 4 * c, from + 4 * c * g.n, 4);
    _Float16 d;
    memcpy(&d, g.scales + 2 * (b * g.n + L), 2);
    if (type == CK_Q8_0) {
        for (int i = 0; i < CK_Q8_BLOCK; i++) q[i] = (int8_t)(bytes[i] ^ 0x80);
        return (float)d;
    }
    uint16_t zero = 8;
    if (type == CK_Q4_Z) memcpy(&zero, g.zeros + 2 * (b * g.n + L), 2);
    for (int i = 0; i < 16; i++) {
        q[i] = (int8_t)((bytes[i] & 15) - zero);
        q[i + 16] = (int8_t)((bytes[i] >> 4) - zero);
    }
    return (float)d;
}
/// Weights [k0, k0 + n) of row r (k0 a multiple of 32) of a quantized W (stride ldw, rows ending at `end`), by the
/// active kernels.
void ck_dequantize_row(const void *W, ck_dtype type, ptrdiff_t ldw, ptrdiff_t end, ptrdiff_t r, ptrdiff_t k0, ptrdiff_t n,
                       float *dst);

/// Activations quantized for ck_matmul_int8_rows (every kernel set's layout): per token and block of 32 inputs the
/// float32 scale d, an int32 s and 32 int8 q; s is -z sum(q) for the zero point z the kernel reads the weights'
/// q + z with (Q8_0: 128 on VNNI, which reads them as stored, else 0; Q4_0: 8), and sum(q) for Q4_Z.
typedef struct { const float *d; const int32_t *s; const int8_t *q; ptrdiff_t blocks; } ck_int8_tokens;
static inline ck_int8_tokens ck_int8_view(const void *A, ptrdiff_t T, ptrdiff_t K) {
    const ptrdiff_t blocks = (K + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK;
    const float *d = A;
    const int32_t *s = (const int32_t *)(d + T * blocks);
    return (ck_int8_tokens){d, s, (const int8_t *)(s + T * blocks), blocks};
}

/// The int8 products' loop over rows [r0, r1) a group at a time and the tokens `step` at a time: `tile` gives
/// Y[t .. t + nt) of the group's rows (Y at its first row).
typedef void (*ck_group_tile)(const ck_int8_tokens *x, ptrdiff_t t, int nt, ck_row_group g, ck_dtype type, float *Y,
                              ptrdiff_t ldy);
static inline void ck_int8_groups(const void *A, ptrdiff_t T, const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw,
                                  ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy, int step, ck_group_tile tile) {
    const ck_int8_tokens x = ck_int8_view(A, T, K);
    for (ptrdiff_t r = r0; r < r1; r += CK_ROW_GROUP) {
        const ck_row_group g = ck_group_of(W, type, ldw, r, r1);
        for (ptrdiff_t t = 0; t < T; t += step) tile(&x, t, T - t < step ? (int)(T - t) : step, g, type, Y + r, ldy);
    }
}

/// X [T, K] (row stride ldx) rounded to nearest even bf16 into out [T][ldo], zeros in columns [K, ldo).
void ck_round_to_bf16(const float *X, ptrdiff_t T, ptrdiff_t K, ptrdiff_t ldx, uint16_t *out, ptrdiff_t ldo);

/// A per-thread float buffer of at least `floats` elements, kept for the thread's life (allocated once, grown
/// when a larger one is asked for); NULL if memory is exhausted.
float *ck_thread_scratch(size_t floats);

/// Whether this CPU has AMX tiles with bf16 products and the OS granted this process their state (Linux x86-64).
int ck_amx_enable(void);

extern const ck_table ck_kernels_portable;
#if defined(__x86_64__)
extern const ck_table ck_kernels_avx2;
extern const ck_table ck_kernels_avx512;
/// gemm_bf16.c, for CPUs with AVX512_BF16 (ck_bf16_products): the bf16 GEMM with its own layout of the
/// activations (groups of its register tile's tokens); 0 if its scratch could not be allocated.
size_t ck_bf16_activation_bytes_avx512bf16(ptrdiff_t T, ptrdiff_t K);
void ck_pack_bf16_activations_avx512bf16(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0,
                                         ptrdiff_t g1, uint32_t *A);
int ck_matmul_bf16_rows_avx512bf16(const uint32_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                                   ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy, const float *bias);
/// Its few-token products (ck_matmul_bf16_few): float32 X rounded to bf16 once per call, W's rows streamed once.
int ck_matmul_bf16_few_avx512bf16(const float *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K,
                                   ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
double ck_bf16_probe_avx512bf16(long iterations);
/// attention_bf16.c, for CPUs with AVX512_BF16 without AMX: ck_attention at bf16 precision (attention_bf16.h).
int ck_attention_bf16_avx512bf16(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V,
                                 ptrdiff_t ldkv, ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi,
                                 float *O, ptrdiff_t ldo);
#if defined(__linux__)
/// gemm_amx.c, for the amx path (Linux only: the OS must grant the tile state): the bf16 GEMM on AMX tiles, with
/// its own layout of the activations.
size_t ck_bf16_activation_bytes_amx(ptrdiff_t T, ptrdiff_t K);
void ck_pack_bf16_activations_amx(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1,
                                  uint16_t *A);
int ck_matmul_bf16_rows_amx(const uint16_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                            ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
double ck_bf16_probe_amx(long iterations);
/// attention_amx.c, for the amx path: ck_attention at bf16 precision (attention_bf16.h says what is rounded).
int ck_attention_bf16_amx(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                          ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo);
#endif
/// int8_avx2.c (AVX2 + FMA, also the AVX-512 path's without VNNI) and int8_vnni.c (AVX512_VNNI): ck_matmul_int8_rows.
void ck_matmul_int8_rows_avx2(const void *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
void ck_matmul_int8_rows_vnni(const void *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
#endif
