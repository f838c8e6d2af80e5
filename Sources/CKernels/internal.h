#pragma once
// Shared by the per-instruction-set kernel files and the dispatcher; not part of the public header.
#include "CKernels.h"
#include <math.h>

/// One instruction set's kernels; dispatch.c holds the active table.
typedef struct {
    void (*matmul_rows)(const float *, ptrdiff_t, ptrdiff_t, const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                        ptrdiff_t, float *, ptrdiff_t);
    int mr; // tokens per group of the packed GEMM
    void (*pack_activations)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    int (*matmul_packed_rows)(const float *, ptrdiff_t, const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                              float *, ptrdiff_t);
    size_t (*int8_activation_bytes)(ptrdiff_t, ptrdiff_t);
    void (*quantize_activations)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *);
    void (*matmul_int8_rows)(const void *, ptrdiff_t, const void *, ck_dtype, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                             float *, ptrdiff_t);
    void (*to_f32)(const void *, ck_dtype, ptrdiff_t, float *);
    void (*round_to_bf16)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, uint16_t *, ptrdiff_t);
    float (*dot)(const float *, const float *, ptrdiff_t);
    void (*axpy)(float, const float *, float *, ptrdiff_t);
    void (*exp)(const float *, float *, ptrdiff_t);
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

static inline size_t ck_element_size(ck_dtype type) { return type == CK_F32 ? 4 : 2; } // float types only

/// One block of `count` <= 32 floats as llama.cpp's Q8_0 quantizes it: d = max|x| / 127, q = round(x / d) (zeros
/// past count); returns d. Weights store d as f16, activations keep it in float32.
static inline float ck_quantize_block_q8(const float *x, ptrdiff_t count, int8_t *q) {
    float amax = 0;
    for (ptrdiff_t i = 0; i < count; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    const float d = amax / 127, inverse = d != 0 ? 1 / d : 0;
    for (ptrdiff_t i = 0; i < CK_Q8_BLOCK; i++) q[i] = (int8_t)(i < count ? roundf(x[i] * inverse) : 0);
    return d;
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
/// gemm_bf16.c, for CPUs with AVX512_BF16 (ck_bf16_products): X the rounded activations, bf16 [T][ldx] with ldx
/// even and zero past K; 0 if its scratch could not be allocated.
int ck_matmul_bf16_rows_avx512bf16(const uint16_t *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K,
                                   ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
double ck_bf16_probe_avx512bf16(long iterations);
#if defined(__linux__)
/// gemm_amx.c, for the amx path (Linux only: the OS must grant the tile state): the bf16 GEMM on AMX tiles, with
/// its own layout of the activations.
size_t ck_bf16_activation_bytes_amx(ptrdiff_t T, ptrdiff_t K);
void ck_pack_bf16_activations_amx(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1,
                                  uint16_t *A);
int ck_matmul_bf16_rows_amx(const uint16_t *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                            ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
double ck_bf16_probe_amx(long iterations);
/// attention_amx.c, for the amx path: ck_attention at bf16 precision (its header comment says what is rounded).
int ck_attention_bf16_amx(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                          ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo);
#endif
/// int8_vnni.c, for CPUs with AVX512_VNNI (ck_int8_vnni): the int8 products of ck_quantize_activations and
/// ck_matmul_int8_rows in that file's own layout of the activations.
size_t ck_int8_activation_bytes_vnni(ptrdiff_t T, ptrdiff_t K);
void ck_quantize_activations_vnni(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ck_dtype wtype, ptrdiff_t t0,
                                  ptrdiff_t t1, void *A);
void ck_matmul_int8_rows_vnni(const void *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                              ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy);
#endif
