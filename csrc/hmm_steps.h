/* The inner step of every trellis, in C: the two "vector times transition matrix" products.
 *
 *   max-plus:  best[j] = max_i (delta[i] + log_a[i, j]),  arg[j] = first maximising i
 *   max only:  best[j] as above, without the argmax (the stored-delta Viterbi of
 *              _viterbi.pyx finds the maximising i for the path's states afterwards)
 *   sum-prod:  out[j]  = sum_i p[i] * a[i, j]
 *
 * Design note
 * -----------
 * The matrix comes with its rows padded to n_pad columns (a multiple of 4), the pad
 * holding the operation's identity (-inf for max-plus, 0 for sum-prod), and the outputs
 * have room for n_pad entries: so every load and store is a whole vector, with no masks
 * and no reads past the matrix (garbage lanes could be subnormal and cost microcode
 * assists). Entries n..n_pad-1 of the outputs are meaningless.
 *
 * Both are computed column-blocked: a block of up to 16 columns keeps its running
 * max/argmax (or sum) in vector registers while i runs over all predecessors, and is
 * stored once. Accumulating through memory instead (out[j] += ... for each i) puts a
 * store-to-load round trip on every link of the i chain, which is what made N = 5..10
 * slow; four independent vectors per block also hide the add/max latency.
 *
 * gcc will not if-convert the compare-and-select without fast-math (which we never
 * use), so the x86 paths are intrinsics: MAXPD(v, b) is exactly "v > b ? v : b" (a tie
 * keeps b, the lower i; so does NaN, which cannot occur), and the same "v > b" mask
 * blends the argmax, held as a double so that compare and select share one width (exact
 * for i < 2**53). AVX2 is chosen at run time when the CPU has it; SSE2 is the x86-64
 * baseline; other CPUs get plain C. Multiplies and adds are separate instructions in every path
 * (no FMA), in the same order, so every path gives bit-identical results.
 * A predecessor with delta[i] == -inf (max-plus) or p[i] == 0 (sum-prod) is skipped.
 */
#ifndef HMMFAST_HMM_STEPS_H
#define HMMFAST_HMM_STEPS_H

#include <math.h>
#include <stddef.h>

/* ------------------------------------------------------------------ portable C */

/* Column j of the max-plus step: returns max_i (delta[i] + log_a[i, j]) and sets *arg to
 * the first maximising i (0 when no predecessor is finite); -inf predecessors skipped.
 * The definition every vector path matches; the stored-delta Viterbi (_viterbi.pyx)
 * calls it for the path's state at each step of its backtrace. */
static inline double hmm_maxplus_column(const double *restrict delta,
                                        const double *restrict log_a, ptrdiff_t n,
                                        ptrdiff_t n_pad, ptrdiff_t j, ptrdiff_t *arg)
{
    double b = -INFINITY;
    ptrdiff_t a = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        if (delta[i] == -INFINITY)
            continue;
        const double v = delta[i] + log_a[i * n_pad + j];
        if (v > b) {
            b = v;
            a = i;
        }
    }
    *arg = a;
    return b;
}

static inline void hmm_maxplus_columns_c(const double *restrict delta,
                                         const double *restrict log_a, ptrdiff_t n,
                                         ptrdiff_t n_pad, double *restrict best,
                                         double *restrict arg)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        ptrdiff_t a;
        best[j] = hmm_maxplus_column(delta, log_a, n, n_pad, j, &a);
        arg[j] = (double)a;
    }
}

static inline void hmm_maxonly_columns_c(const double *restrict delta,
                                         const double *restrict log_a, ptrdiff_t n,
                                         ptrdiff_t n_pad, double *restrict best)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        ptrdiff_t a;
        best[j] = hmm_maxplus_column(delta, log_a, n, n_pad, j, &a);
    }
}

static inline void hmm_vecmat_columns_c(const double *restrict p, const double *restrict a,
                                        ptrdiff_t n, ptrdiff_t n_pad, double *restrict out)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) {
            if (p[i] == 0.0)
                continue;
            s = s + p[i] * a[i * n_pad + j];
        }
        out[j] = s;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* One column block of K vectors of WIDTH doubles, starting at column j.
 * INIT_B/INIT_A seed the accumulators; SKIP(x) skips predecessor i; UPDATE updates
 * accumulator k from the predecessor's scalar x and the loaded row vector r.
 * LOAD_K/STORE_K(ptr, k, K) load/store vector k of a block of K vectors. */
#define HMM_COLUMN_BLOCK(VEC, WIDTH, K, SET1, INIT_B, INIT_A, SKIP, UPDATE, LOAD_K, STORE_K)  \
    {                                                                                      \
        VEC acc_b[K], acc_a[K];                                                            \
        for (int k = 0; k < (K); k++) {                                                    \
            acc_b[k] = SET1(INIT_B);                                                       \
            acc_a[k] = SET1(INIT_A);                                                       \
        }                                                                                  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            const double x = src[i];                                                       \
            if (SKIP(x))                                                                   \
                continue;                                                                  \
            const VEC vx = SET1(x), vi = SET1((double)i);                                  \
            const double *restrict row = mat + i * n_pad + j;                              \
            (void)vi;                                                                      \
            for (int k = 0; k < (K); k++) {                                                \
                const VEC r = LOAD_K(row + k * (WIDTH), k, K);                                \
                UPDATE(acc_b[k], acc_a[k], vx, vi, r);                                     \
            }                                                                              \
        }                                                                                  \
        for (int k = 0; k < (K); k++) {                                                    \
            STORE_K(out_b + j + k * (WIDTH), k, K, acc_b[k]);                                 \
            if (out_a)                                                                     \
                STORE_K(out_a + j + k * (WIDTH), k, K, acc_a[k]);                             \
        }                                                                                  \
    }

#define HMM_SKIP_NEG_INF(x) ((x) == -INFINITY)
#define HMM_SKIP_ZERO(x) ((x) == 0.0)

/* ---- SSE2 (x86-64 baseline) */
#define HMM_SSE_MAXPLUS(b, a, vx, vi, r)                                                   \
    {                                                                                      \
        const __m128d v = _mm_add_pd((vx), (r));                                           \
        const __m128d gt = _mm_cmpgt_pd(v, (b));                                           \
        (b) = _mm_max_pd(v, (b));                                                          \
        (a) = _mm_or_pd(_mm_and_pd(gt, (vi)), _mm_andnot_pd(gt, (a)));                     \
    }
#define HMM_SSE_MAXONLY(b, a, vx, vi, r) { (b) = _mm_max_pd(_mm_add_pd((vx), (r)), (b)); }
#define HMM_SSE_VECMAT(b, a, vx, vi, r) { (b) = _mm_add_pd((b), _mm_mul_pd((vx), (r))); }
#define HMM_SSE_LOAD2(ptr, k, K) _mm_loadu_pd(ptr)
#define HMM_SSE_STORE2(ptr, k, K, v) _mm_storeu_pd((ptr), (v))

#define HMM_SSE_COLUMNS(INIT_B, INIT_A, SKIP, UPDATE)                                      \
    ptrdiff_t j = 0;                                                                       \
    for (; j + 8 <= n_pad; j += 8)                                                         \
        HMM_COLUMN_BLOCK(__m128d, 2, 4, _mm_set1_pd, INIT_B, INIT_A, SKIP, UPDATE,         \
                         HMM_SSE_LOAD2, HMM_SSE_STORE2)                                    \
    if (j < n_pad)                                                                         \
        HMM_COLUMN_BLOCK(__m128d, 2, 2, _mm_set1_pd, INIT_B, INIT_A, SKIP, UPDATE,         \
                         HMM_SSE_LOAD2, HMM_SSE_STORE2)

static void hmm_maxplus_sse2(const double *restrict src, const double *restrict mat,
                             ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b,
                             double *restrict out_a)
{
    HMM_SSE_COLUMNS(-INFINITY, 0.0, HMM_SKIP_NEG_INF, HMM_SSE_MAXPLUS)
}

static void hmm_maxonly_sse2(const double *restrict src, const double *restrict mat,
                             ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b)
{
    double *restrict out_a = NULL;
    HMM_SSE_COLUMNS(-INFINITY, 0.0, HMM_SKIP_NEG_INF, HMM_SSE_MAXONLY)
}

static void hmm_vecmat_sse2(const double *restrict src, const double *restrict mat,
                            ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b)
{
    double *restrict out_a = NULL;
    HMM_SSE_COLUMNS(0.0, 0.0, HMM_SKIP_ZERO, HMM_SSE_VECMAT)
}

/* ---- AVX2 (run-time dispatch) */
#define HMM_AVX_MAXPLUS(b, a, vx, vi, r)                                                   \
    {                                                                                      \
        const __m256d v = _mm256_add_pd((vx), (r));                                        \
        const __m256d gt = _mm256_cmp_pd(v, (b), _CMP_GT_OQ);                              \
        (b) = _mm256_max_pd(v, (b));                                                       \
        (a) = _mm256_blendv_pd((a), (vi), gt);                                             \
    }
#define HMM_AVX_MAXONLY(b, a, vx, vi, r) { (b) = _mm256_max_pd(_mm256_add_pd((vx), (r)), (b)); }
#define HMM_AVX_VECMAT(b, a, vx, vi, r) { (b) = _mm256_add_pd((b), _mm256_mul_pd((vx), (r))); }
#define HMM_AVX_LOAD(ptr, k, K) _mm256_loadu_pd(ptr)
#define HMM_AVX_STORE(ptr, k, K, v) _mm256_storeu_pd((ptr), (v))
#define HMM_AVX_BLOCK(K, INIT_B, INIT_A, SKIP, UPDATE)                                     \
    HMM_COLUMN_BLOCK(__m256d, 4, K, _mm256_set1_pd, INIT_B, INIT_A, SKIP, UPDATE,          \
                     HMM_AVX_LOAD, HMM_AVX_STORE)

#define HMM_AVX_COLUMNS(INIT_B, INIT_A, SKIP, UPDATE)                                      \
    ptrdiff_t j = 0;                                                                       \
    for (; j + 16 <= n_pad; j += 16)                                                       \
        HMM_AVX_BLOCK(4, INIT_B, INIT_A, SKIP, UPDATE)                                     \
    switch ((n_pad - j) / 4) {                                                             \
    case 1:                                                                                \
        HMM_AVX_BLOCK(1, INIT_B, INIT_A, SKIP, UPDATE)                                     \
        break;                                                                             \
    case 2:                                                                                \
        HMM_AVX_BLOCK(2, INIT_B, INIT_A, SKIP, UPDATE)                                     \
        break;                                                                             \
    case 3:                                                                                \
        HMM_AVX_BLOCK(3, INIT_B, INIT_A, SKIP, UPDATE)                                     \
        break;                                                                             \
    default:                                                                               \
        break;                                                                             \
    }

__attribute__((target("avx2")))
static void hmm_maxplus_avx2(const double *restrict src, const double *restrict mat,
                             ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b,
                             double *restrict out_a)
{
    HMM_AVX_COLUMNS(-INFINITY, 0.0, HMM_SKIP_NEG_INF, HMM_AVX_MAXPLUS)
}

__attribute__((target("avx2")))
static void hmm_maxonly_avx2(const double *restrict src, const double *restrict mat,
                             ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b)
{
    double *restrict out_a = NULL;
    HMM_AVX_COLUMNS(-INFINITY, 0.0, HMM_SKIP_NEG_INF, HMM_AVX_MAXONLY)
}

__attribute__((target("avx2")))
static void hmm_vecmat_avx2(const double *restrict src, const double *restrict mat,
                            ptrdiff_t n, ptrdiff_t n_pad, double *restrict out_b)
{
    double *restrict out_a = NULL;
    HMM_AVX_COLUMNS(0.0, 0.0, HMM_SKIP_ZERO, HMM_AVX_VECMAT)
}

static int hmm_cpu_has_avx2 = -1;  /* -1: not probed yet; a benign race (same answer) */

static inline int hmm_probe_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

static inline int hmm_use_avx2(void)
{
    if (hmm_cpu_has_avx2 < 0)
        hmm_cpu_has_avx2 = hmm_probe_avx2();
    return hmm_cpu_has_avx2;
}

static inline void hmm_maxplus_step(const double *restrict delta, const double *restrict log_a,
                                    ptrdiff_t n, ptrdiff_t n_pad, double *restrict best,
                                    double *restrict arg)
{
    if (hmm_use_avx2())
        hmm_maxplus_avx2(delta, log_a, n, n_pad, best, arg);
    else
        hmm_maxplus_sse2(delta, log_a, n, n_pad, best, arg);
}

static inline void hmm_maxonly_step(const double *restrict delta,
                                    const double *restrict log_a, ptrdiff_t n,
                                    ptrdiff_t n_pad, double *restrict best)
{
    if (hmm_use_avx2())
        hmm_maxonly_avx2(delta, log_a, n, n_pad, best);
    else
        hmm_maxonly_sse2(delta, log_a, n, n_pad, best);
}

static inline void hmm_vecmat_step(const double *restrict p, const double *restrict a,
                                   ptrdiff_t n, ptrdiff_t n_pad, double *restrict out)
{
    if (hmm_use_avx2())
        hmm_vecmat_avx2(p, a, n, n_pad, out);
    else
        hmm_vecmat_sse2(p, a, n, n_pad, out);
}

/* for tests: force a path (1 = AVX2 if present, 0 = SSE2), or -1 to probe again */
static inline int hmm_force_avx2(int flag)
{
    if (flag < 0 || (flag == 1 && !hmm_probe_avx2()))
        hmm_cpu_has_avx2 = hmm_probe_avx2();
    else
        hmm_cpu_has_avx2 = flag;
    return hmm_cpu_has_avx2;
}

#else /* not x86-64 with GNU C: plain loops */

static inline void hmm_maxplus_step(const double *restrict delta, const double *restrict log_a,
                                    ptrdiff_t n, ptrdiff_t n_pad, double *restrict best,
                                    double *restrict arg)
{
    hmm_maxplus_columns_c(delta, log_a, n, n_pad, best, arg);
}

static inline void hmm_maxonly_step(const double *restrict delta,
                                    const double *restrict log_a, ptrdiff_t n,
                                    ptrdiff_t n_pad, double *restrict best)
{
    hmm_maxonly_columns_c(delta, log_a, n, n_pad, best);
}

static inline void hmm_vecmat_step(const double *restrict p, const double *restrict a,
                                   ptrdiff_t n, ptrdiff_t n_pad, double *restrict out)
{
    hmm_vecmat_columns_c(p, a, n, n_pad, out);
}

static inline int hmm_force_avx2(int flag)
{
    (void)flag;
    return 0;
}

#endif

#endif
