#include "CKernels.h"
#include <stdlib.h>
#include <string.h>

// 16 float lanes: one zmm register with AVX-512, two ymm with AVX2. Lane-wise code only, so clang maps it well.
typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef uint16_t v16h __attribute__((vector_size(32), aligned(2)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef _Float16 v16f16 __attribute__((vector_size(32), aligned(2)));

#define ROWS 4       // weight rows per register tile
#define ROW_BLOCK 32 // weight rows kept hot in L2 while every token passes over them
#define PREFETCH_BYTES 512 // distance ahead of each weight stream (measured +10-25% on one thread)

static inline __attribute__((always_inline)) v16f load16(const void *w, ck_dtype type, ptrdiff_t i) {
    switch (type) {
    case CK_F32: {
        v16f v;
        memcpy(&v, (const float *)w + i, sizeof v);
        return v;
    }
    case CK_BF16: {
        v16h h;
        memcpy(&h, (const uint16_t *)w + i, sizeof h);
        v16u u = __builtin_convertvector(h, v16u) << 16; // bf16 is the top half of a float32
        v16f f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: {
        v16f16 h;
        memcpy(&h, (const _Float16 *)w + i, sizeof h);
        return __builtin_convertvector(h, v16f);
    }
    }
}

static inline __attribute__((always_inline)) float load1(const void *w, ck_dtype type, ptrdiff_t i) {
    switch (type) {
    case CK_F32: return ((const float *)w)[i];
    case CK_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: return (float)((const _Float16 *)w)[i];
    }
}

static inline float hsum(v16f v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

static inline size_t esize(ck_dtype type) { return type == CK_F32 ? 4 : 2; }

// A ROWS x NT tile: ROWS weight rows against NT tokens, 16 lanes at a time; NT is a constant at each call site.
static inline __attribute__((always_inline)) void tile(const float *X, ptrdiff_t ldx, const void *W, ck_dtype type,
                                                       ptrdiff_t K, ptrdiff_t ldw, ptrdiff_t r0, int nr, const int NT,
                                                       float *Y, ptrdiff_t ldy) {
    v16f acc[ROWS][4] = {{{0}}};
    const char *wbase = (const char *)W + (size_t)r0 * ldw * esize(type);
    ptrdiff_t k = 0;
    for (; k + 16 <= K; k += 16) {
        v16f x[4];
        for (int t = 0; t < NT; t++) memcpy(&x[t], X + t * ldx + k, sizeof(v16f));
        for (int r = 0; r < ROWS; r++) {
            if (r >= nr) break;
            __builtin_prefetch(wbase + (r * ldw + k) * (ptrdiff_t)esize(type) + PREFETCH_BYTES);
            v16f w = load16(wbase, type, r * ldw + k);
            for (int t = 0; t < NT; t++) acc[r][t] += w * x[t];
        }
    }
    for (int r = 0; r < nr; r++) {
        for (int t = 0; t < NT; t++) {
            float s = hsum(acc[r][t]);
            for (ptrdiff_t j = k; j < K; j++) s += load1(wbase, type, r * ldw + j) * X[t * ldx + j];
            Y[t * ldy + r0 + r] = s;
        }
    }
}

static void tiles(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype type, ptrdiff_t K,
                  ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    for (ptrdiff_t t = 0; t < T; t += 4) {
        ptrdiff_t nt = T - t < 4 ? T - t : 4;
        for (ptrdiff_t r = r0; r < r1; r += ROWS) {
            int nr = r1 - r < ROWS ? (int)(r1 - r) : ROWS;
            const float *x = X + t * ldx;
            float *y = Y + t * ldy;
            switch (nt) {
            case 1: tile(x, ldx, W, type, K, ldw, r, nr, 1, y, ldy); break;
            case 2: tile(x, ldx, W, type, K, ldw, r, nr, 2, y, ldy); break;
            case 3: tile(x, ldx, W, type, K, ldw, r, nr, 3, y, ldy); break;
            default: tile(x, ldx, W, type, K, ldw, r, nr, 4, y, ldy); break;
            }
        }
    }
}

// Many tokens: a block of weight rows is converted once to float32 (row-major, cache-resident), then every group of
// up to PANEL_TOKENS tokens runs over it with PANEL_ROWS x PANEL_TOKENS accumulators: per 16 k, 8 weight and 3 token
// loads feed 24 FMAs, and each weight element is converted once instead of once per token group (2x on prefill).
#define PANEL_ROWS 8
#define PANEL_TOKENS 3

static inline __attribute__((always_inline)) void panel_tile(const float *X, ptrdiff_t ldx, const float *P,
                                                             ptrdiff_t K, int nr, const int NT, float *Y, ptrdiff_t ldy) {
    v16f acc[PANEL_ROWS][PANEL_TOKENS] = {{{0}}};
    ptrdiff_t k = 0;
    for (; k + 16 <= K; k += 16) {
        v16f x[PANEL_TOKENS];
        for (int t = 0; t < NT; t++) memcpy(&x[t], X + t * ldx + k, sizeof(v16f));
        for (int r = 0; r < PANEL_ROWS; r++) {
            v16f w;
            memcpy(&w, P + r * K + k, sizeof w);
            for (int t = 0; t < NT; t++) acc[r][t] += w * x[t];
        }
    }
    for (int r = 0; r < nr; r++) {
        for (int t = 0; t < NT; t++) {
            float sum = hsum(acc[r][t]);
            for (ptrdiff_t j = k; j < K; j++) sum += P[r * K + j] * X[t * ldx + j];
            Y[t * ldy + r] = sum;
        }
    }
}

static void panel_rows(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype type, ptrdiff_t K,
                       ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy, float *P, ptrdiff_t block) {
    for (ptrdiff_t rb = r0; rb < r1; rb += block) {
        ptrdiff_t rows = r1 - rb < block ? r1 - rb : block;
        for (ptrdiff_t r = 0; r < block; r++) {
            if (r < rows) {
                ck_to_f32((const char *)W + (size_t)(rb + r) * ldw * esize(type), type, K, P + r * K);
            } else {
                memset(P + r * K, 0, (size_t)K * sizeof(float));
            }
        }
        for (ptrdiff_t t = 0; t < T; t += PANEL_TOKENS) {
            ptrdiff_t nt = T - t < PANEL_TOKENS ? T - t : PANEL_TOKENS;
            for (ptrdiff_t r = 0; r < rows; r += PANEL_ROWS) {
                int nr = rows - r < PANEL_ROWS ? (int)(rows - r) : PANEL_ROWS;
                const float *x = X + t * ldx;
                float *y = Y + t * ldy + rb + r;
                switch (nt) {
                case 1: panel_tile(x, ldx, P + r * K, K, nr, 1, y, ldy); break;
                case 2: panel_tile(x, ldx, P + r * K, K, nr, 2, y, ldy); break;
                default: panel_tile(x, ldx, P + r * K, K, nr, 3, y, ldy); break;
                }
            }
        }
    }
}

void ck_matmul_rows(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype wtype, ptrdiff_t K,
                    ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy) {
    if (T >= 4) {
        // Keep the float32 block within about 512 KiB of L2, in whole register tiles.
        ptrdiff_t block = (512 * 1024 / ((ptrdiff_t)sizeof(float) * K)) / PANEL_ROWS * PANEL_ROWS;
        if (block < PANEL_ROWS) block = PANEL_ROWS;
        float *P = aligned_alloc(64, ((size_t)block * K * sizeof(float) + 63) / 64 * 64);
        if (P) {
            panel_rows(X, T, ldx, W, wtype, K, ldw, row_begin, row_end, Y, ldy, P, block);
            free(P);
            return;
        }
    }
    for (ptrdiff_t r = row_begin; r < row_end; r += ROW_BLOCK) {
        ptrdiff_t end = r + ROW_BLOCK < row_end ? r + ROW_BLOCK : row_end;
        tiles(X, T, ldx, W, wtype, K, ldw, r, end, Y, ldy);
    }
}

void ck_to_f32(const void *src, ck_dtype type, ptrdiff_t n, float *dst) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v = load16(src, type, i);
        memcpy(dst + i, &v, sizeof v);
    }
    for (; i < n; i++) dst[i] = load1(src, type, i);
}

float ck_dot(const float *a, const float *b, ptrdiff_t n) {
    v16f acc = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f x, y;
        memcpy(&x, a + i, sizeof x);
        memcpy(&y, b + i, sizeof y);
        acc += x * y;
    }
    float s = hsum(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void ck_axpy(float a, const float *x, float *y, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] += a * x[i];
}
