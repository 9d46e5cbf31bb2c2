/* One trellis step's inner loops, in C for `restrict` (the rows, the running vector and
 * the outputs never alias), which lets gcc vectorise them without runtime alias checks.
 * Loop order i-outer, j-inner: each transition row is read contiguously.
 * Plain IEEE arithmetic only: no -ffast-math, -inf propagates as it should. */
#ifndef HMMFAST_HMM_STEPS_H
#define HMMFAST_HMM_STEPS_H

#include <math.h>
#include <stddef.h>

/* best[j] = max_i (delta[i] + log_a[i, j]), arg[j] = the first (lowest) maximising i,
 * as a double so compare and select share one width (exact for i < 2**53).
 * All -inf in column j: best[j] = -inf, arg[j] = 0.
 *
 * Register-blocked: a block of columns keeps its running max and argmax in vector
 * registers while i runs over all predecessors (4 independent vectors per block, so the
 * max latency chain of one does not stall the others), then stores once. gcc will not
 * if-convert the compare-and-select without -ffast-math, so the x86 versions use
 * intrinsics: MAXPD(v, b) is exactly "v > b ? v : b" (ties keep b: the lower i), and the
 * same "v > b" mask blends the argmax. AVX2 is chosen at run time when the CPU has it;
 * SSE2 is the x86-64 baseline; other CPUs get the scalar loop. */
static inline void hmm_maxplus_columns_scalar(const double *restrict delta,
                                              const double *restrict log_a, ptrdiff_t n,
                                              ptrdiff_t j0, double *restrict best,
                                              double *restrict arg)
{
    for (ptrdiff_t j = j0; j < n; j++) {
        double b = -INFINITY, a = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) {
            const double v = delta[i] + log_a[i * n + j];
            if (v > b) {
                b = v;
                a = (double)i;
            }
        }
        best[j] = b;
        arg[j] = a;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define HMM_MAXPLUS_BLOCK(VEC, WIDTH, SET1, LOAD, STORE, ADD, MAX, GT, BLEND, K)            \
    for (; j + (K) * (WIDTH) <= n; j += (K) * (WIDTH)) {                                   \
        VEC b[K], a[K];                                                                  \
        for (int k = 0; k < (K); k++) {                                                  \
            b[k] = SET1(-INFINITY);                                                      \
            a[k] = SET1(0.0);                                                            \
        }                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            const double di = delta[i];                                                  \
            if (di == -INFINITY)                                                         \
                continue;                                                                \
            const VEC vdi = SET1(di), vfi = SET1((double)i);                             \
            const double *restrict row = log_a + i * n + j;                              \
            for (int k = 0; k < (K); k++) {                                              \
                const VEC v = ADD(vdi, LOAD(row + k * (WIDTH)));                         \
                const VEC gt = GT(v, b[k]);                                              \
                b[k] = MAX(v, b[k]);                                                     \
                a[k] = BLEND(a[k], vfi, gt);                                             \
            }                                                                            \
        }                                                                                \
        for (int k = 0; k < (K); k++) {                                                  \
            STORE(best + j + k * (WIDTH), b[k]);                                         \
            STORE(arg + j + k * (WIDTH), a[k]);                                          \
        }                                                                                \
    }

/* the last 1-3 columns: one 2-wide block, then one column in the low lane */
#define HMM_MAXPLUS_TAIL                                                                  \
    HMM_MAXPLUS_BLOCK(__m128d, 2, _mm_set1_pd, _mm_loadu_pd, _mm_storeu_pd, _mm_add_pd,    \
                      _mm_max_pd, _mm_cmpgt_pd, HMM_BLEND128, 1)                          \
    HMM_MAXPLUS_BLOCK(__m128d, 1, _mm_set1_pd, _mm_load_sd, _mm_store_sd, _mm_add_pd,      \
                      _mm_max_pd, _mm_cmpgt_pd, HMM_BLEND128, 1)

#define HMM_GT256(x, y) _mm256_cmp_pd((x), (y), _CMP_GT_OQ)
#define HMM_BLEND128(x, y, m) _mm_or_pd(_mm_and_pd((m), (y)), _mm_andnot_pd((m), (x)))

__attribute__((target("avx2")))
static void hmm_maxplus_avx2(const double *restrict delta, const double *restrict log_a,
                             ptrdiff_t n, double *restrict best, double *restrict arg)
{
    ptrdiff_t j = 0;
    HMM_MAXPLUS_BLOCK(__m256d, 4, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd,
                      _mm256_add_pd, _mm256_max_pd, HMM_GT256, _mm256_blendv_pd, 4)
    HMM_MAXPLUS_BLOCK(__m256d, 4, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd,
                      _mm256_add_pd, _mm256_max_pd, HMM_GT256, _mm256_blendv_pd, 1)
    HMM_MAXPLUS_TAIL
}

static void hmm_maxplus_sse2(const double *restrict delta, const double *restrict log_a,
                             ptrdiff_t n, double *restrict best, double *restrict arg)
{
    ptrdiff_t j = 0;
    HMM_MAXPLUS_BLOCK(__m128d, 2, _mm_set1_pd, _mm_loadu_pd, _mm_storeu_pd, _mm_add_pd,
                      _mm_max_pd, _mm_cmpgt_pd, HMM_BLEND128, 4)
    HMM_MAXPLUS_TAIL
}

static int hmm_has_avx2 = -1;

static inline void hmm_maxplus_step(const double *restrict delta, const double *restrict log_a,
                                    ptrdiff_t n, double *restrict best, double *restrict arg)
{
    if (hmm_has_avx2 < 0)
        hmm_has_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (hmm_has_avx2 && n >= 4)
        hmm_maxplus_avx2(delta, log_a, n, best, arg);
    else
        hmm_maxplus_sse2(delta, log_a, n, best, arg);
}
#else
static inline void hmm_maxplus_step(const double *restrict delta, const double *restrict log_a,
                                    ptrdiff_t n, double *restrict best, double *restrict arg)
{
    hmm_maxplus_columns_scalar(delta, log_a, n, 0, best, arg);
}
#endif

/* out[j] = sum_i p[i] * a[i, j]  (p >= 0; zero entries skipped). */
static inline void hmm_vecmat_step(const double *restrict p, const double *restrict a,
                                   ptrdiff_t n, double *restrict out)
{
    for (ptrdiff_t j = 0; j < n; j++)
        out[j] = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const double pi = p[i];
        if (pi == 0.0)
            continue;
        const double *restrict row = a + i * n;
        for (ptrdiff_t j = 0; j < n; j++)
            out[j] += pi * row[j];
    }
}

/* out[i] = sum_j a[i, j] * v[j]  (one dot product per row; used by the backward sweeps). */
static inline void hmm_matvec_step(const double *restrict a, const double *restrict v,
                                   ptrdiff_t n, double *restrict out)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const double *restrict row = a + i * n;
        double s = 0.0;
        for (ptrdiff_t j = 0; j < n; j++)
            s += row[j] * v[j];
        out[i] = s;
    }
}

#endif
