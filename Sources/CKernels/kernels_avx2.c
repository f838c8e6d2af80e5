// The kernels for x86-64 with AVX2 and FMA: 8-lane vectors, 5 x 16 register tiles (10 accumulators: at 12, of 16 ymm registers, clang spills one).
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define CK_ISA avx2
#define CK_VW 8
#define CK_MR 5
#include "kernels.inc"
#pragma clang attribute pop
#endif
