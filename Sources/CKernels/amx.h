#pragma once
// Shared by the AMX kernels (gemm_amx.c, attention_amx.c): tile configuration and the packing of bf16 rows into the
// pair-major layout of a TDPBF16PS B operand.
#include "bf16_avx512.h"

#if defined(__x86_64__) && defined(__linux__)
#define CK_AMX_TARGET CK_BF16_TARGET ",amx-tile,amx-bf16"

/// Loads the configuration every AMX kernel here uses: 8 tiles of 16 rows x 64 bytes.
void ck_amx_configure_tiles(void);
/// Rows [r, r + rows) of bf16 W (row stride ldw, K inputs; rows <= 16, none left gives zeros) x inputs
/// [k0, k0 + kc) (kc a multiple of 32) as one B operand group: P[kc / 2][16] pairs of inputs, zero past K.
void ck_amx_pack_group(const uint16_t *W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t r, ptrdiff_t rows, ptrdiff_t k0,
                       ptrdiff_t kc, uint32_t *P);
#endif
