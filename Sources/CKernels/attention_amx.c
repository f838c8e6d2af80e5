// Attention at bf16 precision on AMX tiles: attention_bf16.h's schedule with its two products on tiles, S^T = K Q^T
// on 2 x 2 accumulator tiles per 32 slots (keys the A operand, the queries' pairs the B operand) and O^T += V^T P^T
// into the output's own tiles. ~3-5x the float32 kernel on one Emerald Rapids core (512 queries x 4,900 slots,
// d = 72).
#include "amx.h"
#include "attention_bf16.h"

#if defined(__x86_64__) && defined(__linux__)
#pragma clang attribute push(__attribute__((target(CK_AMX_TARGET))), apply_to = function)

enum { KB = CK_ATTENTION_KB };

static void pack_queries(const uint16_t *Qb, ptrdiff_t dq, uint32_t *Qt) {
    for (int g = 0; g < 2; g++) ck_amx_pack_group(Qb, dq, dq, 16 * g, 16, 0, dq, Qt + g * (dq / 2) * 16);
}

// S^T [KB][32] = K Q^T: 2 x 2 tiles (16 slots x 16 queries) per 32 slots.
static void scores(const uint16_t *Kb, ptrdiff_t dq, const uint32_t *Qt, ptrdiff_t bn, float *St) {
    (void)bn; // whole tiles: the slots past bn are zero keys, masked
    for (int half = 0; half < KB / 32; half++) {
        const uint16_t *A = Kb + 32 * half * dq;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (ptrdiff_t k = 0; k < dq; k += 32) {
            _tile_loadd(4, A + k, dq * 2);
            _tile_loadd(5, A + 16 * dq + k, dq * 2);
            _tile_loadd(6, Qt + k / 2 * 16, 64);
            _tile_loadd(7, Qt + (dq / 2) * 16 + k / 2 * 16, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        float *s = St + 32 * half * 32;
        _tile_stored(0, s, 128);
        _tile_stored(1, s + 16, 128);
        _tile_stored(2, s + 16 * 32, 128);
        _tile_stored(3, s + 16 * 32 + 16, 128);
    }
}

// O^T [dv][32] = O^T alpha + V^T P^T. The rescaling only where a query's maximum rose (after the first blocks,
// rarely); the product accumulates into the output's own tiles, per 16 value columns 2 tiles (the query halves)
// over 2 steps of 32 slots.
static void accumulate(const uint16_t *Vt, ptrdiff_t dv, const uint32_t *Pt, ptrdiff_t bn, __m512 a0, __m512 a1,
                       float *Ot) {
    (void)bn; // whole tiles: the weights past bn are zero
    const __mmask16 rose0 = _mm512_cmp_ps_mask(a0, _mm512_set1_ps(1), _CMP_NEQ_UQ);
    const __mmask16 rose1 = _mm512_cmp_ps_mask(a1, _mm512_set1_ps(1), _CMP_NEQ_UQ);
    if (rose0 | rose1) {
        for (ptrdiff_t c = 0; c < dv; c++) {
            float *o = Ot + c * 32;
            _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), a0));
            _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_loadu_ps(o + 16), a1));
        }
    }
    _tile_loadd(4, Pt, 64);
    _tile_loadd(5, Pt + 16 * 16, 64);
    _tile_loadd(6, Pt + KB * 8, 64);
    _tile_loadd(7, Pt + KB * 8 + 16 * 16, 64);
    for (ptrdiff_t c = 0; c < dv; c += 16) {
        _tile_loadd(0, Ot + c * 32, 128);
        _tile_loadd(1, Ot + c * 32 + 16, 128);
        _tile_loadd(2, Vt + c * KB, KB * 2);
        _tile_loadd(3, Vt + c * KB + 32, KB * 2);
        _tile_dpbf16ps(0, 2, 4);
        _tile_dpbf16ps(1, 2, 6);
        _tile_dpbf16ps(0, 3, 5);
        _tile_dpbf16ps(1, 3, 7);
        _tile_stored(0, Ot + c * 32, 128);
        _tile_stored(1, Ot + c * 32 + 16, 128);
    }
}

int ck_attention_bf16_amx(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                          ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo) {
    // Tiles take 32 inputs (keys' and queries' rows) and 16 value columns at a time.
    const ck_attention_products tiles = {(d + 31) / 32 * 32, (d + 15) / 16 * 16, pack_queries, scores, accumulate};
    ck_amx_configure_tiles();
    const int done = ck_attention_bf16_blocks(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo, tiles);
    _tile_release();
    return done;
}

#pragma clang attribute pop
#endif
