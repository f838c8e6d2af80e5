#pragma once
// Shared by the AMX kernels (gemm_amx.c, attention_amx.c): tile configuration and the packing of bf16 rows into the
// pair-major layout of a TDPBF16PS B operand.
#include "internal.h"

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#define CK_AMX_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16"

#pragma clang attribute push(__attribute__((target(CK_AMX_TARGET))), apply_to = function)
/// 16 x 16 transpose of 32-bit lanes (row i of the input in r[i]; column i of it out in r[i]).
static inline void ck_transpose16(__m512i r[16]) {
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
#pragma clang attribute pop

/// Loads the configuration every AMX kernel here uses: 8 tiles of 16 rows x 64 bytes.
void ck_amx_configure_tiles(void);
/// Rows [r, r + rows) of bf16 W (row stride ldw, K inputs; rows <= 16, none left gives zeros) x inputs
/// [k0, k0 + kc) (kc a multiple of 32) as one B operand group: P[kc / 2][16] pairs of inputs, zero past K.
void ck_amx_pack_group(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r, ptrdiff_t rows, ptrdiff_t k0,
                       ptrdiff_t kc, uint32_t *P);
#endif
