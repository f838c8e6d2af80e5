// Picks the widest kernel set this CPU runs, once, at the first call: AMX (the AVX-512 kernels with bf16 products on
// AMX tiles, where Linux grants the tile state), else AVX-512, else AVX2 + FMA, else portable.
// IDEFICS_KERNELS=amx|avx512|avx2|portable asks for one (an unknown name, or one the CPU lacks, keeps the automatic
// choice and is reported by ck_kernel_request_problem).
#include "internal.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

static const ck_table *active;
static ck_kernel_path active_path;
static const char *request_problem;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int amx_granted;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void ask_for_amx(void) { amx_granted = ck_amx_enable(); }

static int supported(ck_kernel_path path) {
    switch (path) {
    case CK_PATH_PORTABLE: return 1;
#if defined(__x86_64__)
    case CK_PATH_AMX:
        pthread_once(&amx_once, ask_for_amx);
        return amx_granted && supported(CK_PATH_AVX512);
    case CK_PATH_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CK_PATH_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && supported(CK_PATH_AVX2);
#endif
    default: return 0;
    }
}

static const ck_table *table(ck_kernel_path path) {
    switch (path) {
#if defined(__x86_64__)
    case CK_PATH_AMX:
    case CK_PATH_AVX512: return &ck_kernels_avx512;
    case CK_PATH_AVX2: return &ck_kernels_avx2;
#endif
    default: return &ck_kernels_portable;
    }
}

const char *ck_kernel_path_name(ck_kernel_path path) {
    switch (path) {
    case CK_PATH_AMX: return "amx";
    case CK_PATH_AVX512: return "avx512";
    case CK_PATH_AVX2: return "avx2";
    default: return "portable";
    }
}

static void choose(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
#endif
    active_path = CK_PATH_PORTABLE;
    for (int p = CK_PATH_AMX; p > CK_PATH_PORTABLE; p--) {
        if (supported((ck_kernel_path)p)) {
            active_path = (ck_kernel_path)p;
            break;
        }
    }
    const char *request = getenv("IDEFICS_KERNELS");
    if (request && *request) {
        int found = 0;
        for (int p = CK_PATH_PORTABLE; p <= CK_PATH_AMX; p++) {
            if (strcmp(request, ck_kernel_path_name((ck_kernel_path)p)) != 0) continue;
            found = 1;
            if (supported((ck_kernel_path)p)) {
                active_path = (ck_kernel_path)p;
            } else {
                request_problem = "IDEFICS_KERNELS names kernels this CPU cannot run";
            }
        }
        if (!found) request_problem = "IDEFICS_KERNELS is not one of amx, avx512, avx2, portable";
    }
    active = table(active_path);
}

static inline const ck_table *kernels(void) {
    pthread_once(&once, choose);
    return active;
}

ck_kernel_path ck_kernel_path_active(void) {
    kernels();
    return active_path;
}

int ck_kernel_path_supported(ck_kernel_path path) { return supported(path); }

const char *ck_kernel_request_problem(void) {
    kernels();
    return request_problem;
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
typedef struct { float *data; size_t floats; } scratch_buffer;

static void free_scratch(void *p) {
    scratch_buffer *s = p;
    free(s->data);
    free(s);
}

static void make_scratch_key(void) { pthread_key_create(&scratch_key, free_scratch); }

float *ck_thread_scratch(size_t floats) {
    pthread_once(&scratch_once, make_scratch_key);
    scratch_buffer *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        pthread_setspecific(scratch_key, s);
    }
    if (s->floats < floats) {
        free(s->data);
        s->data = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        s->floats = s->data ? floats : 0;
    }
    return s->data;
}

void ck_matmul_rows(const float *X, ptrdiff_t T, ptrdiff_t ldx, const void *W, ck_dtype wtype, ptrdiff_t K,
                    ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy) {
    kernels()->matmul_rows(X, T, ldx, W, wtype, K, ldw, row_begin, row_end, Y, ldy);
}
ptrdiff_t ck_gemm_min_tokens(void) { return CK_PACK_MIN_TOKENS; }
ptrdiff_t ck_activation_groups(ptrdiff_t T) { return (T + kernels()->mr - 1) / kernels()->mr; }
size_t ck_packed_activation_floats(ptrdiff_t T, ptrdiff_t K) {
    return (size_t)ck_activation_groups(T) * (size_t)kernels()->mr * (size_t)K;
}
void ck_pack_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1, float *A) {
    kernels()->pack_activations(X, T, ldx, K, g0, g1, A);
}
int ck_matmul_packed_rows(const float *A, ptrdiff_t T, const void *W, ck_dtype wtype, ptrdiff_t K, ptrdiff_t ldw,
                          ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy) {
    return kernels()->matmul_packed_rows(A, T, W, wtype, K, ldw, row_begin, row_end, Y, ldy);
}
void ck_to_f32(const void *src, ck_dtype type, ptrdiff_t n, float *dst) { kernels()->to_f32(src, type, n, dst); }
void ck_dequantize_row(const void *W, ck_dtype type, ptrdiff_t ldw, ptrdiff_t end, ptrdiff_t r, ptrdiff_t k0, ptrdiff_t n,
                       float *dst) {
    kernels()->dequantize_row(W, type, ldw, end, r, k0, n, dst);
}

int ck_int8_vnni(void) {
#if defined(__x86_64__)
    return ck_kernel_path_active() >= CK_PATH_AVX512 && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int ck_int8_prompts(void) { return ck_int8_vnni() || ck_kernel_path_active() == CK_PATH_AVX2; }

int ck_bf16_products(void) {
#if defined(__x86_64__)
    return ck_kernel_path_active() == CK_PATH_AMX ||
           (ck_kernel_path_active() == CK_PATH_AVX512 && __builtin_cpu_supports("avx512bf16"));
#else
    return 0;
#endif
}

size_t ck_bf16_activation_bytes(ptrdiff_t T, ptrdiff_t K) {
#if defined(__x86_64__)
#if defined(__linux__)
    if (ck_kernel_path_active() == CK_PATH_AMX) return ck_bf16_activation_bytes_amx(T, K);
#endif
    if (ck_bf16_products()) return ck_bf16_activation_bytes_avx512bf16(T, K);
#endif
    return 0;
}

void ck_pack_bf16_activations(const float *X, ptrdiff_t T, ptrdiff_t ldx, ptrdiff_t K, ptrdiff_t g0, ptrdiff_t g1,
                              void *A) {
#if defined(__x86_64__)
#if defined(__linux__)
    if (ck_kernel_path_active() == CK_PATH_AMX) {
        ck_pack_bf16_activations_amx(X, T, ldx, K, g0, g1, A);
        return;
    }
#endif
    if (ck_bf16_products()) ck_pack_bf16_activations_avx512bf16(X, T, ldx, K, g0, g1, A);
#endif
}

int ck_matmul_bf16_few(const float *X, ptrdiff_t T, ptrdiff_t ldx, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw,
                       ptrdiff_t row_begin, ptrdiff_t row_end, float *Y, ptrdiff_t ldy) {
#if defined(__x86_64__)
    if (ck_bf16_products()) { // AMX CPUs have AVX512_BF16 too
        return ck_matmul_bf16_few_avx512bf16(X, T, ldx, W, K, ldw, row_begin, row_end, Y, ldy);
    }
#endif
    return 0;
}

int ck_matmul_bf16_rows(const void *A, ptrdiff_t T, const uint16_t *W, ptrdiff_t K, ptrdiff_t ldw, ptrdiff_t row_begin,
                        ptrdiff_t row_end, float *Y, ptrdiff_t ldy, const float *bias) {
#if defined(__x86_64__)
#if defined(__linux__)
    if (ck_kernel_path_active() == CK_PATH_AMX) {
        if (!ck_matmul_bf16_rows_amx(A, T, W, K, ldw, row_begin, row_end, Y, ldy)) return 0;
        for (ptrdiff_t t = 0; bias && t < T; t++) ck_add(Y + t * ldy + row_begin, bias + row_begin, row_end - row_begin);
        return 1;
    }
#endif
    if (ck_bf16_products()) return ck_matmul_bf16_rows_avx512bf16(A, T, W, K, ldw, row_begin, row_end, Y, ldy, bias);
#endif
    return 0;
}

void ck_round_to_bf16(const float *X, ptrdiff_t T, ptrdiff_t K, ptrdiff_t ldx, uint16_t *out, ptrdiff_t ldo) {
    kernels()->round_to_bf16(X, T, K, ldx, out, ldo);
}

void ck_to_bf16(const void *src, ck_dtype type, ptrdiff_t n, uint16_t *dst) {
    if (type == CK_F32) {
        ck_round_to_bf16(src, 1, n, n, dst, n);
        return;
    }
    if (type != CK_F16 && type != CK_BF16) __builtin_trap(); // a caller's bug: block formats are not floats
    float floats[256];
    for (ptrdiff_t i = 0; i < n; i += 256) {
        const ptrdiff_t count = n - i < 256 ? n - i : 256;
        ck_to_f32((const char *)src + i * 2, type, count, floats); // F16 or BF16: 2 bytes a value
        ck_round_to_bf16(floats, 1, count, count, dst + i, count);
    }
}

void ck_round_floats_to_bf16(float *x, ptrdiff_t n) {
    uint16_t bits[256];
    for (ptrdiff_t i = 0; i < n; i += 256) {
        const ptrdiff_t count = n - i < 256 ? n - i : 256;
        ck_round_to_bf16(x + i, 1, count, count, bits, count);
        for (ptrdiff_t j = 0; j < count; j++) {
            const uint32_t u = (uint32_t)bits[j] << 16;
            memcpy(x + i + j, &u, 4);
        }
    }
}

float ck_dot(const float *a, const float *b, ptrdiff_t n) { return kernels()->dot(a, b, n); }
void ck_axpy(float a, const float *x, float *y, ptrdiff_t n) { kernels()->axpy(a, x, y, n); }
float ck_softmax(float *x, ptrdiff_t n) { return kernels()->softmax(x, n); }
void ck_silu_mul(const float *gate, const float *up, float *out, ptrdiff_t n) { kernels()->silu_mul(gate, up, out, n); }
void ck_gelu_tanh(float *x, ptrdiff_t n) { kernels()->gelu_tanh(x, n); }
void ck_rms_norm(const float *x, const float *weight, float eps, ptrdiff_t rows, ptrdiff_t width, float *out) {
    kernels()->rms_norm(x, weight, eps, rows, width, out);
}
void ck_layer_norm(const float *x, const float *weight, const float *bias, float eps, ptrdiff_t rows, ptrdiff_t width,
                   float *out) {
    kernels()->layer_norm(x, weight, bias, eps, rows, width, out);
}
void ck_add(float *x, const float *y, ptrdiff_t n) { kernels()->add(x, y, n); }
int ck_attention(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv, ptrdiff_t d,
                 float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo) {
    return kernels()->attention(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo);
}

int ck_attention_group(const float *Q, ptrdiff_t g, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                       ptrdiff_t d, float scale, ptrdiff_t lo, ptrdiff_t hi, float *O, ptrdiff_t ldo) {
    return kernels()->attention_group(Q, g, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo);
}

int ck_attention_bf16(const float *Q, ptrdiff_t m, ptrdiff_t ldq, const float *K, const float *V, ptrdiff_t ldkv,
                      ptrdiff_t d, float scale, const int32_t *lo, const int32_t *hi, float *O, ptrdiff_t ldo) {
#if defined(__x86_64__)
#if defined(__linux__)
    if (ck_kernel_path_active() == CK_PATH_AMX) return ck_attention_bf16_amx(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo);
#endif
    if (ck_bf16_products()) return ck_attention_bf16_avx512bf16(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo);
#endif
    return ck_attention(Q, m, ldq, K, V, ldkv, d, scale, lo, hi, O, ldo);
}

void ck_advise_huge_pages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20, first = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    const uintptr_t last = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (last > first) madvise((void *)first, last - first, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

unsigned ck_touch_pages(const void *p, size_t bytes) {
    const volatile unsigned char *bytes_ = p;
    unsigned sum = 0;
    for (size_t offset = 0; offset < bytes; offset += 4096) sum += bytes_[offset];
    return sum;
}

volatile float ck_probe_sink;

double ck_fma_probe(long iterations) { return kernels()->fma_probe(iterations); }

double ck_bf16_probe(long iterations) {
#if defined(__x86_64__)
#if defined(__linux__)
    if (ck_kernel_path_active() == CK_PATH_AMX) return ck_bf16_probe_amx(iterations);
#endif
    if (ck_bf16_products()) return ck_bf16_probe_avx512bf16(iterations);
#endif
    (void)iterations;
    return 0;
}

double ck_read_probe(const float *data, ptrdiff_t n) {
    // What a kernel can stream, not what one naive loop does: 8 streams through the buffer's eighths, each line
    // fetched 512 bytes ahead, as the products read their rows. Integer sums (which the compiler may reorder and
    // vectorize) so that no chain of adds limits the rate. Measured on 2 vCPUs of an Emerald Rapids host: one stream
    // without prefetch 13-18 GB/s, these 8 streams 21-25 GB/s, BF16 decoding 19.5-25.6.
    enum { STREAMS = 8, WORDS = 8, AHEAD = 512 };
    const uint64_t *words = (const uint64_t *)data;
    const ptrdiff_t per = n * (ptrdiff_t)sizeof(float) / 8 / STREAMS / WORDS * WORDS;
    uint64_t s[WORDS] = {0};
    for (ptrdiff_t i = 0; i < per; i += WORDS) {
        for (int stream = 0; stream < STREAMS; stream++) {
            const uint64_t *line = words + stream * per + i;
            __builtin_prefetch((const char *)line + AHEAD);
            for (int j = 0; j < WORDS; j++) s[j] ^= line[j];
        }
    }
    uint64_t all = 0;
    for (int j = 0; j < WORDS; j++) all ^= s[j];
    ck_probe_sink = (float)(all & 0xff);
    return (double)(per * STREAMS * 8);
}
