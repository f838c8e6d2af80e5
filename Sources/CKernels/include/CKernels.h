#pragma once
// Hot loops of swift-idefics in C. Each is compiled for several instruction sets (AVX-512, AVX2 + FMA, portable)
// without any compiler flag; the widest set the CPU has is chosen at the first call (dispatch.c), or the one
// IDEFICS_KERNELS names. Every function is single-threaded; Swift splits work across threads.
#include <stddef.h>
#include <stdint.h>

/// Formats of weight matrices: float types as stored in checkpoints, and block formats after llama.cpp's, where each
/// run of 32 weights of a row (a block; a row of K inputs has ceil(K / 32), the last one zero-padded) shares an f16
/// scale d: Q8_0 holds 32 int8 q (w = d * q, 34 bytes a block), Q4_0 32 4-bit q (w = d * (q - 8), 18 bytes), their
/// 16 bytes holding weights j in their low and j + 16 in their high nibbles. Q4_Z holds AWQ's 4-bit weights with a
/// 4-bit zero point z per block (w = d * (q - z), 20 bytes).
///
/// Quantized matrices are laid out in groups of CK_ROW_GROUP consecutive rows (the last group of a matrix holds the
/// n < 16 rows left), so that one 16-lane vector holds 4 weights of each of 16 rows and a group streams as one run
/// of memory. A group of n rows, B blocks per row: the scales as f16 [B][n]; for Q4_Z the zero points as u16 [B][n];
/// then the q bytes [B][chunk][n][4], chunk c of a row's block being its bytes 4c..4c+3 (8 chunks of Q8_0's q, each
/// stored as q + 128 (q ^ 0x80; q = -128, which no quantizer writes, is read as -127 by the AVX2 kernel), 4 chunks
/// of the 4-bit formats' 16 bytes of nibbles). A group takes n times a row's
/// bytes (ck_row_bytes), so that a matrix of R rows takes R rows' bytes and row group g starts at row 16 g's offset.
typedef enum { CK_F32 = 0, CK_F16 = 1, CK_BF16 = 2, CK_Q8_0 = 3, CK_Q4_0 = 4, CK_Q4_Z = 5 } ck_dtype;
#define CK_Q8_BLOCK 32
#define CK_ROW_GROUP 16
static inline int ck_is_quantized(ck_dtype type) { return type >= CK_Q8_0; }
static inline size_t ck_block_bytes(ck_dtype type) { return type == CK_Q8_0 ? 34 : type == CK_Q4_0 ? 18 : 20; }
/// Bytes of one row of `columns` weights in `type`.
static inline size_t ck_row_bytes(ck_dtype type, ptrdiff_t columns) {
    return ck_is_quantized(type) ? (size_t)((columns + CK_Q8_BLOCK - 1) / CK_Q8_BLOCK) * ck_block_bytes(type)
                                 : (size_t)columns * (type == CK_F32 ? 4 : 2);
}

/// The kernel sets, narrowest first. amx is avx512 with the bf16 products on AMX tiles.
typedef enum { CK_PATH_PORTABLE = 0, CK_PATH_AVX2 = 1, CK_PATH_AVX512 = 2, CK_PATH_AMX = 3 } ck_kernel_path;

ck_kernel_path ck_kernel_path_active(void);
int ck_kernel_path_supported(ck_kernel_path path);
const char *ck_kernel_path_name(ck_kernel_path path);
/// Why IDEFICS_KERNELS was not followed, or NULL.
const char *ck_kernel_request_problem(void);

/// Y[t, r] = sum_k X[t, k] * W[r, k] for t < T and r in [row_begin, row_end).
/// X is float32 [T, K] with row stride ldx; W is [rows, K] of `wtype` with row stride ldw (in elements: rows are
/// ck_row_bytes(wtype, ldw) bytes apart); Y is float32 with row stride ldy. A quantized W's row ranges start at a
/// multiple of CK_ROW_GROUP and end at one or at the matrix's last row (which tells a last group's size). Fewer than 20 tokens stream W once
/// (quantized formats: against int8-quantized activations); more use a packed, register-tiled GEMM.
void ck_matmul_rows(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype wtype, ptrdiff_t K,
                    ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy);

/// The packed GEMM with the activations prepared once per call, not once per thread: from ck_gemm_min_tokens()
/// tokens, ck_pack_activations lays X [T, K] (row stride ldx) out as ck_activation_groups(T) groups of the active
/// kernels' register tile (groups [g0, g1) per call, so that threads can share the work) in A, of
/// ck_packed_activation_floats(T, K) floats; ck_matmul_packed_rows then gives ck_matmul_rows's Y for rows
/// [row_begin, row_end) from A (0 if its scratch could not be allocated; a quantized W's ranges as ck_matmul_rows').
/// Below that many tokens ck_matmul_rows streams the weights instead.
ptrdiff_t ck_gemm_min_tokens(void);
ptrdiff_t ck_activation_groups(ptrdiff_t T);
size_t ck_packed_activation_floats(ptrdiff_t T, ptrdiff_t K);
void ck_pack_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1, float *A);
int ck_matmul_packed_rows(const float *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                          ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy);

/// Products with BF16 weights at bf16 precision (activations rounded to bf16, products exact, float32 sums), as
/// torch computes a bf16 model. ck_bf16_products says whether the active kernels have a bf16 GEMM: AMX tiles
/// (TDPBF16PS) on the amx path, else AVX512_BF16's vdpbf16ps. Its activations are rounded once per call, not once
/// per thread: ck_pack_bf16_activations writes groups [g0, g1) of 16 tokens of X [T, K] (row stride ldx) into A, of
/// ck_bf16_activation_bytes(T, K) bytes (a layout of the active GEMM's, which may depend on T), so that threads can
/// share the work; ck_matmul_bf16_rows then gives Y[t, r] = sum_k X[t, k] * W[r, k] for rows [row_begin, row_end),
/// plus bias[r] where bias is not NULL (added to the finished sum, the value a separate pass would give).
/// It returns 0 (and does nothing) without such a GEMM or if its scratch could not be allocated. Elsewhere the same
/// products are the float32 kernels' on activations rounded in place by ck_round_floats_to_bf16 (exact products:
/// the sums differ only in their float32 rounding).
int ck_bf16_products(void);
size_t ck_bf16_activation_bytes(ptrdiff_t T, ptrdiff_t K);
void ck_pack_bf16_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1,
                              void *A);
int ck_matmul_bf16_rows(const void *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw, ptrdiff_t row_begin,
                        ptrdiff_t row_end, float *Y, ptrdiff_t ldy, const float *bias);
/// The same products for fewer than ck_gemm_min_tokens() tokens (decoding), on CPUs with a bf16 GEMM: X [T, K]
/// (row stride ldx, float32) rounded to bf16 once per call, W's rows [row_begin, row_end) streamed once.
/// Returns 0 (and does nothing) without vdpbf16ps or if its scratch could not be allocated.
int ck_matmul_bf16_few(const float *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                       ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy);
/// x[i] = the float32 value of bf16(x[i]), rounded to nearest even.
void ck_round_floats_to_bf16(float *x, ptrdiff_t n);

/// Products with quantized weights below ck_gemm_min_tokens() tokens, and at any count where ck_int8_prompts(), with
/// the activations quantized to int8 blocks once per call (as llama.cpp's Q8_0 x Q8_0 and Q4_0 x Q8_0: per block of
/// 32 d = max|x| / 127, q = round(x / d)), not once per thread: ck_quantize_activations writes tokens [t0, t1) of
/// X [T, K] (row stride ldx) for weights of `wtype` into A, of ck_int8_activation_bytes(T, K) bytes;
/// ck_matmul_int8_rows then gives ck_matmul_rows's Y for rows [row_begin, row_end) (a range of whole 16-row groups but
/// for the matrix's last one, as ck_matmul_rows').
size_t ck_int8_activation_bytes(ptrdiff_t T, ptrdiff_t K);
void ck_quantize_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ck_dtype wtype, ptrdiff_t t0,
                             ptrdiff_t t1, void *A);
void ck_matmul_int8_rows(const void *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                         ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy);
/// Whether the active kernels multiply quantized weights with AVX512_VNNI's int8 dot products (vpdpbusd) when
/// streaming (else AVX2's vpmaddubsw, else portable C).
int ck_int8_vnni(void);
/// Whether quantized weights multiply int8-quantized activations at any token count: with VNNI, and on the AVX2
/// kernel set (its int8 kernel ran 1.3-1.8x its float32 GEMM on dequantized rows at 200 tokens of the q4 twin; on
/// AVX-512 without VNNI the float32 GEMM was as fast). Elsewhere, from ck_gemm_min_tokens() tokens, the weights are
/// dequantized into the float32 GEMM.
int ck_int8_prompts(void);

/// Converts n floats of type `type` (a float format) to float32.
void ck_to_f32(const void *src, ck_dtype type, ptrdiff_t n, float *dst);
/// Converts n floats of type `type` (F32, F16 or BF16; any other traps) to bf16 bits, finite values rounded to nearest
/// even as torch's .to(torch.bfloat16) (a NaN stays a quiet NaN with its sign; F16 values all fit bf16's range).
void ck_to_bf16(const void *src, ck_dtype type, ptrdiff_t n, uint16_t *dst);
/// Row r of the matrix W [rows, K] (any format; row stride ldw) as K float32 values.
void ck_row_to_f32(const void *W, ck_dtype type, ptrdiff_t K, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t r, float *dst);
/// Writes row r of the quantized matrix W [rows, K] of `type` (Q8_0 or Q4_0) from K floats, as llama.cpp
/// quantizes: Q8_0 d = max|x| / 127, q = round(x / d); Q4_0 d = m / -8 for the value m of largest magnitude,
/// q = min(15, trunc(x / d + 8.5)); d stored as f16. Rows of one group may be written by different threads.
void ck_quantize_row(const float *x, ck_dtype type, ptrdiff_t K, ptrdiff_t rows, ptrdiff_t r, void *W);
/// Output rows [r0, r1) (r0 a multiple of 16, r1 one or `out`) of an AutoAWQ GEMM-packed matrix written into the
/// Q4_Z matrix W [out, in]. qweight is int32 [in, out / 8], qzeros int32 [in / group, out / 8], scales f16 bits
/// [in / group, out]; nibble i (bits 4i..4i+3) of an int32 in column c holds output 8c + {0, 2, 4, 6, 1, 3, 5, 7}[i].
/// `group` is a multiple of 32 dividing `in`.
void ck_awq_to_q4_z(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales, ptrdiff_t in, ptrdiff_t out,
                    ptrdiff_t group, ptrdiff_t r0, ptrdiff_t r1, void *W);

float ck_dot(const float *a, const float *b, ptrdiff_t n);
/// y += a * x
void ck_axpy(float a, const float *x, float *y, ptrdiff_t n);
/// In-place softmax of x[0..<n] (max-subtracted); returns the maximum.
float ck_softmax(float *x, ptrdiff_t n);
/// out = silu(gate) * up; out may be gate (SwiGLU runs it in place).
void ck_silu_mul(const float *gate, const float *up, float *out, ptrdiff_t n);
/// In place: gelu with the tanh approximation (transformers' gelu_pytorch_tanh).
void ck_gelu_tanh(float *x, ptrdiff_t n);
/// RMSNorm of each of `rows` rows: x * rsqrt(mean(x^2) + eps) * weight.
void ck_rms_norm(const float *x, const float *weight, float eps, ptrdiff_t rows, ptrdiff_t width, float *out);
/// LayerNorm of each row with biased variance.
void ck_layer_norm(const float *x, const float *weight, const float *bias, float eps, ptrdiff_t rows, ptrdiff_t width,
                   float *out);
/// x += y
void ck_add(float *x, const float *y, ptrdiff_t n);

/// Attention of m queries of one head: O[i] = softmax_j(scale * Q[i] . K[j], j in [lo[i], hi[i])) . V, with Q [m, d]
/// (row stride ldq), K and V [slots, d] (row stride ldkv), O [m, d] (row stride ldo). Tiled with an online softmax:
/// no score matrix beyond one tile. A query with no slot gets zeros. Returns 0 if its scratch could not be allocated.
int ck_attention(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv, ptrdiff_t d,
                 float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo);
/// Attention of g query heads sharing one key/value head (a decoding token's grouped-query heads) over the slots
/// [lo, hi): O[i] = softmax_j(scale * Q[i] . K[j]) . V, Q and O [g, d] (row strides ldq, ldo), K and V [slots, d]
/// (stride ldkv). Each key and value row is read once for the g queries; the results equal the per-query dot,
/// softmax and axpy sequence bit for bit. No slot: zeros. Returns 0 if its scratch could not be allocated.
int ck_attention_group(const float *Q, ptrdiff_t g, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                       ptrdiff_t d, float scale, ptrdiff_t lo, ptrdiff_t hi, float *O, ptrdiff_t ldo);
/// ck_attention at bf16 precision, as torch's CPU flash attention runs a bf16 model: queries, keys, values and the
/// softmax's exponentials rounded to bf16, scores, softmax and sums in float32; on AMX tiles on the amx path, with
/// vdpbf16ps where ck_bf16_products() otherwise, elsewhere ck_attention itself (float32).
int ck_attention_bf16(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                      ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo);
/// Machine-limit probes for benchmarks (single-threaded; run one per thread for a machine figure): `iterations`
/// rounds of independent FMAs with the active kernels, returning the flops done; a read of n floats, returning bytes.
double ck_fma_probe(long iterations);
/// The same for the bf16 GEMM's instruction: TDPBF16PS on the amx path, else vdpbf16ps (a pair of bf16 products and
/// their sum: 4 flops per lane); 0 without ck_bf16_products.
double ck_bf16_probe(long iterations);
/// Reads the n floats at data as the products stream weights (8 streams, prefetched); returns the bytes read.
double ck_read_probe(const float *data, ptrdiff_t n);

/// Asks the OS to back the 2 MiB-aligned pages inside [p, p + bytes) with huge pages when first touched (Linux's
/// madvise(MADV_HUGEPAGE); nothing elsewhere): a fresh activation of hundreds of megabytes then costs hundreds of
/// page faults instead of ~100,000.
void ck_advise_huge_pages(void *p, size_t bytes);
// Reads one byte of every 4 KiB page of [p, p + bytes) (their sum, so that the reads are kept).
unsigned ck_touch_pages(const void *p, size_t bytes);

/// Tells the CPU that this thread is spinning (less power, and the sibling hyper-thread runs faster).
static inline void ck_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
