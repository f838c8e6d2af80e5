// Quantized matrices in their 16-row groups (CKernels.h gives the layout): quantizing rows into them, AWQ's packing
// repacked into them, rows read back as floats, activations quantized for the int8 products, the products' dispatch
// and their portable kernel.
#include "internal.h"
#include <string.h>

// Where chunk byte i of row L's block b lies in the group's q bytes.
static inline size_t q_offset(ck_row_group g, ck_dtype type, ptrdiff_t b, int L, int i) {
    return (size_t)b * (size_t)g.n * ck_q_bytes(type) + (size_t)(4 * (i / 4 * g.n + L) + i % 4);
}

void ck_row_to_f32(const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t r, float *dst) {
    if (ck_is_quantized(type)) ck_dequantize_row(W, type, ldw, rows, r, 0, K, dst);
    else ck_to_f32((const char *)W + (size_t)r * ck_row_bytes(type, ldw), type, K, dst);
}

// Block b's scale and q bytes (nibble pairs for the 4-bit formats) into row r's places.
static void store_block(void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t rows, ptrdiff_t r, ptrdiff_t b, _Float16 d,
                        const unsigned char *bytes) {
    const ck_row_group g = ck_group_of(W, type, K, r, rows);
    const int L = (int)(r % CK_ROW_GROUP);
    unsigned char *q = (unsigned char *)g.q;
    memcpy((unsigned char *)g.scales + 2 * (b * g.n + L), &d, 2);
    for (int i = 0; i < (int)ck_q_bytes(type); i++) q[q_offset(g, type, b, L, i)] = bytes[i];
}

void ck_quantize_row(const float *x, ck_dtype type, ptrdiff_t K, ptrdiff_t rows, ptrdiff_t r, void *W) {
    for (ptrdiff_t b = 0; b * CK_Q8_BLOCK < K; b++) {
        const float *block = x + b * CK_Q8_BLOCK;
        const ptrdiff_t count = K - b * CK_Q8_BLOCK < CK_Q8_BLOCK ? K - b * CK_Q8_BLOCK : CK_Q8_BLOCK;
        unsigned char bytes[CK_Q8_BLOCK];
        if (type == CK_Q8_0) {
            int8_t q[CK_Q8_BLOCK];
            const float d = ck_quantize_block_q8(block, count, q);
            for (int i = 0; i < CK_Q8_BLOCK; i++) bytes[i] = (unsigned char)q[i] ^ 0x80;
            store_block(W, type, K, rows, r, b, (_Float16)d, bytes);
            continue;
        }
        float amax = 0, extreme = 0;
        for (ptrdiff_t i = 0; i < count; i++) {
            if (fabsf(block[i]) > amax) amax = fabsf(block[i]), extreme = block[i];
        }
        const float d = extreme / -8, id = d != 0 ? 1 / d : 0;
        unsigned char q[CK_Q8_BLOCK];
        for (ptrdiff_t i = 0; i < CK_Q8_BLOCK; i++) {
            const int v = i < count ? (int)(block[i] * id + 8.5f) : 8;
            q[i] = (unsigned char)(v < 15 ? v : 15);
        }
        for (int j = 0; j < 16; j++) bytes[j] = (unsigned char)(q[j] | q[j + 16] << 4);
        store_block(W, type, K, rows, r, b, (_Float16)d, bytes);
    }
}

void ck_awq_to_q4_z(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales, ptrdiff_t in, ptrdiff_t out,
                    ptrdiff_t group, ptrdiff_t r0, ptrdiff_t r1, void *W) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const ptrdiff_t columns = out / 8, blocks = in / CK_Q8_BLOCK;
    // 16 int32 columns (one cache line of qweight: 128 rows, 8 whole groups) at a time, each line read once.
    for (ptrdiff_t c0 = r0 / 8; c0 < r1 / 8; c0 += 16) {
        const ptrdiff_t c1 = c0 + 16 < r1 / 8 ? c0 + 16 : r1 / 8;
        for (ptrdiff_t c = c0; c < c1; c++) {
            for (int i = 0; i < 8; i++) {
                const ptrdiff_t row = 8 * c + order[i];
                const ck_row_group g = ck_group_of(W, CK_Q4_Z, in, row, out);
                const int L = (int)(row % CK_ROW_GROUP);
                for (ptrdiff_t b = 0; b < blocks; b++) {
                    const ptrdiff_t k = b * CK_Q8_BLOCK, at = 2 * (b * g.n + L);
                    const uint16_t zero = (uint16_t)((uint32_t)qzeros[k / group * columns + c] >> (4 * i) & 15);
                    memcpy((unsigned char *)g.scales + at, scales + k / group * out + row, 2);
                    memcpy((unsigned char *)g.zeros + at, &zero, 2);
                }
            }
        }
        for (ptrdiff_t k = 0; k < in; k++) {
            const ptrdiff_t b = k / CK_Q8_BLOCK, j = k % CK_Q8_BLOCK;
            for (ptrdiff_t c = c0; c < c1; c++) {
                const uint32_t packed = (uint32_t)qweight[k * columns + c];
                for (int i = 0; i < 8; i++) {
                    const ptrdiff_t row = 8 * c + order[i];
                    const ck_row_group g = ck_group_of(W, CK_Q4_Z, in, row, out);
                    unsigned char *byte = (unsigned char *)g.q + q_offset(g, CK_Q4_Z, b, (int)(row % CK_ROW_GROUP), (int)(j % 16));
                    const unsigned char q = (unsigned char)(packed >> (4 * i) & 15);
                    *byte = j < 16 ? q : (unsigned char)(*byte | q << 4);
                }
            }
        }
    }
}

size_t ck_int8_activation_bytes(ptrdiff_t T, ptrdiff_t K) {
    return (size_t)T * (size_t)((K + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK) * (2 * sizeof(float) + CK_Q8_BLOCK);
}

void ck_quantize_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ck_dtype wtype, ptrdiff_t t0,
                             ptrdiff_t t1, void *A) {
    const ck_int8_tokens x = ck_int8_view(A, T, K);
    const int32_t zero = wtype == CK_Q8_0 ? (ck_int8_vnni() ? 128 : 0) : wtype == CK_Q4_0 ? 8 : -1;
    for (ptrdiff_t t = t0; t < t1; t++) {
        for (ptrdiff_t b = 0; b < x.blocks; b++) {
            const ptrdiff_t at = t * x.blocks + b;
            const ptrdiff_t count = K - b * CK_Q8_BLOCK < CK_Q8_BLOCK ? K - b * CK_Q8_BLOCK : CK_Q8_BLOCK;
            int8_t *q = (int8_t *)x.q + at * CK_Q8_BLOCK;
            ((float *)x.d)[at] = ck_quantize_block_q8(X + t * ldx + b * CK_Q8_BLOCK, count, q);
            int32_t sum = 0;
            for (int i = 0; i < CK_Q8_BLOCK; i++) sum += q[i];
            ((int32_t *)x.s)[at] = -zero * sum;
        }
    }
}

// The portable kernel: each row's blocks unpacked once for all tokens and multiplied in scalar int32 sums.
static void matmul_int8_rows_portable(const void *A, ptrdiff_t T, const void *W, ck_dtype type, ptrdiff_t K,
                                      ptrdiff_t ldw, ptrdiff_t r0, ptrdiff_t r1, float *Y, ptrdiff_t ldy) {
    const ck_int8_tokens x = ck_int8_view(A, T, K);
    int8_t q[CK_Q8_BLOCK];
    for (ptrdiff_t r = r0; r < r1; r++) {
        const ck_row_group g = ck_group_of(W, type, ldw, r, r1);
        for (ptrdiff_t t = 0; t < T; t++) Y[t * ldy + r] = 0;
        for (ptrdiff_t b = 0; b < x.blocks; b++) {
            const float d = ck_unpack_block(g, type, b, (int)(r % CK_ROW_GROUP), q);
            for (ptrdiff_t t = 0; t < T; t++) {
                const int8_t *xq = x.q + (t * x.blocks + b) * CK_Q8_BLOCK;
                int32_t dot = 0;
                for (int i = 0; i < CK_Q8_BLOCK; i++) dot += (int32_t)q[i] * xq[i];
                Y[t * ldy + r] += d * x.d[t * x.blocks + b] * (float)dot;
            }
        }
    }
}

void ck_matmul_int8_rows(const void *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                         ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy) {
#if defined(__x86_64__)
    if (ck_int8_vnni()) {
        ck_matmul_int8_rows_vnni(A, T, W, wtype, K, ldw, row_begin, row_end, Y, ldy);
        return;
    }
    if (ck_kernel_path_active() >= CK_PATH_AVX2) {
        ck_matmul_int8_rows_avx2(A, T, W, wtype, K, ldw, row_begin, row_end, Y, ldy);
        return;
    }
#endif
    matmul_int8_rows_portable(A, T, W, wtype, K, ldw, row_begin, row_end, Y, ldy);
}
