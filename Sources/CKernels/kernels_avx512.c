// The kernels for x86-64 with AVX-512 (F, BW, DQ, VL): 16-lane vectors, 12 x 32 register tiles (24 of 32 zmm).
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), apply_to = function)
#define CK_ISA avx512
#define CK_VW 16
#define CK_MR 12
#include "kernels.inc"
#pragma clang attribute pop
#endif
