#pragma once
// Hot loops of swift-idefics, written in C so that clang vectorizes them for the building CPU (-march=native):
// AVX-512 where present, AVX2 otherwise. Every function is single-threaded; Swift splits work across threads.
#include <stddef.h>
#include <stdint.h>

/// Element types of weight matrices, as stored in the checkpoint.
typedef enum { CK_F32 = 0, CK_F16 = 1, CK_BF16 = 2 } ck_dtype;

/// Y[t, r] = sum_k X[t, k] * W[r, k] for t < T and r in [row_begin, row_end).
/// X is float32 [T, K] with row stride ldx; W is [rows, K] of `wtype` with row stride ldw; Y is float32 with
/// row stride ldy.
void ck_matmul_rows(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype wtype, ptrdiff_t K,
                    ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy);

/// Converts n stored elements to float32.
void ck_to_f32(const void *src, ck_dtype type, ptrdiff_t n, float *dst);

float ck_dot(const float *a, const float *b, ptrdiff_t n);
/// y += a * x
void ck_axpy(float a, const float *x, float *y, ptrdiff_t n);

/// Tells the CPU that this thread is spinning (less power, and the sibling hyper-thread runs faster).
static inline void ck_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
