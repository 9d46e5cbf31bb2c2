/* Sums of outer products over time, for the E-step's expected transitions:
 *
 *   M[i, j] += sum_{t < k} a[t * lda + i] * v[t * ldv + j]      i < n, j < n_pad
 *
 * Design note
 * -----------
 * Expected transition counts are A * (sum_t alphahat_t v_t^T) (see _estep.pyx): a
 * rank-k update of an N x N matrix. Done one step at a time it is memory-bound (M is
 * read and written at every step: 64 KB per step at N = 64); done after the backward
 * sweep over all steps at once, a register tile of M (4 rows x 8 columns: 8 vector
 * accumulators) stays in registers while t runs, as in a BLAS micro-kernel, and the
 * arithmetic is the bound. v rows have n_pad columns (a multiple of 4, pad 0), so every
 * load is a whole vector; M is (n, n_pad).
 *
 * Written with GCC vector extensions: one body, compiled for AVX2 (picked at run time by
 * hmm_use_avx2 from hmm_steps.h) and for the x86-64 baseline (gcc splits each 4-wide
 * operation into two SSE2 ones). Multiplies and adds stay separate (no FMA: the avx2
 * target does not enable it) and every element sums its terms in the order of t, so
 * both paths give bit-identical results.
 */
#ifndef HMMFAST_HMM_OUTER_H
#define HMMFAST_HMM_OUTER_H

#include <stddef.h>
#include "hmm_steps.h"

typedef double hmm_v4d __attribute__((vector_size(32), aligned(8), may_alias));

#define HMM_LOAD4(p) (*(const hmm_v4d *)(p))
#define HMM_STORE4(p, x) (*(hmm_v4d *)(p) = (x))

#define HMM_OUTER_BODY                                                                   \
    {                                                                                    \
        ptrdiff_t j = 0;                                                                 \
        for (; j + 8 <= n_pad; j += 8) {                                                 \
            ptrdiff_t i = 0;                                                             \
            for (; i + 4 <= n; i += 4) {                                                 \
                double *restrict m = M + i * n_pad + j;                                  \
                hmm_v4d c00 = HMM_LOAD4(m), c01 = HMM_LOAD4(m + 4);                      \
                hmm_v4d c10 = HMM_LOAD4(m + n_pad), c11 = HMM_LOAD4(m + n_pad + 4);      \
                hmm_v4d c20 = HMM_LOAD4(m + 2 * n_pad), c21 = HMM_LOAD4(m + 2 * n_pad + 4); \
                hmm_v4d c30 = HMM_LOAD4(m + 3 * n_pad), c31 = HMM_LOAD4(m + 3 * n_pad + 4); \
                for (ptrdiff_t t = 0; t < k; t++) {                                      \
                    const double *at = a + t * lda + i;                                  \
                    const hmm_v4d v0 = HMM_LOAD4(v + t * ldv + j);                       \
                    const hmm_v4d v1 = HMM_LOAD4(v + t * ldv + j + 4);                   \
                    c00 += at[0] * v0; c01 += at[0] * v1;                                \
                    c10 += at[1] * v0; c11 += at[1] * v1;                                \
                    c20 += at[2] * v0; c21 += at[2] * v1;                                \
                    c30 += at[3] * v0; c31 += at[3] * v1;                                \
                }                                                                        \
                HMM_STORE4(m, c00); HMM_STORE4(m + 4, c01);                              \
                HMM_STORE4(m + n_pad, c10); HMM_STORE4(m + n_pad + 4, c11);              \
                HMM_STORE4(m + 2 * n_pad, c20); HMM_STORE4(m + 2 * n_pad + 4, c21);      \
                HMM_STORE4(m + 3 * n_pad, c30); HMM_STORE4(m + 3 * n_pad + 4, c31);      \
            }                                                                            \
            for (; i < n; i++) {                                                         \
                double *restrict m = M + i * n_pad + j;                                  \
                hmm_v4d c0 = HMM_LOAD4(m), c1 = HMM_LOAD4(m + 4);                        \
                for (ptrdiff_t t = 0; t < k; t++) {                                      \
                    const double ai = a[t * lda + i];                                    \
                    c0 += ai * HMM_LOAD4(v + t * ldv + j);                               \
                    c1 += ai * HMM_LOAD4(v + t * ldv + j + 4);                           \
                }                                                                        \
                HMM_STORE4(m, c0); HMM_STORE4(m + 4, c1);                                \
            }                                                                            \
        }                                                                                \
        if (j < n_pad) { /* one 4-wide column block left */                              \
            for (ptrdiff_t i = 0; i < n; i++) {                                          \
                double *restrict m = M + i * n_pad + j;                                  \
                hmm_v4d c0 = HMM_LOAD4(m);                                               \
                for (ptrdiff_t t = 0; t < k; t++)                                        \
                    c0 += a[t * lda + i] * HMM_LOAD4(v + t * ldv + j);                   \
                HMM_STORE4(m, c0);                                                       \
            }                                                                            \
        }                                                                                \
    }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2")))
static void hmm_outer_sum_avx2(const double *restrict a, ptrdiff_t lda,
                               const double *restrict v, ptrdiff_t ldv, ptrdiff_t k,
                               ptrdiff_t n, ptrdiff_t n_pad, double *restrict M)
    HMM_OUTER_BODY
#endif

static void hmm_outer_sum_base(const double *restrict a, ptrdiff_t lda,
                               const double *restrict v, ptrdiff_t ldv, ptrdiff_t k,
                               ptrdiff_t n, ptrdiff_t n_pad, double *restrict M)
    HMM_OUTER_BODY

static inline void hmm_outer_sum(const double *restrict a, ptrdiff_t lda,
                                 const double *restrict v, ptrdiff_t ldv, ptrdiff_t k,
                                 ptrdiff_t n, ptrdiff_t n_pad, double *restrict M)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hmm_use_avx2()) {
        hmm_outer_sum_avx2(a, lda, v, ldv, k, n, n_pad, M);
        return;
    }
#endif
    hmm_outer_sum_base(a, lda, v, ldv, k, n, n_pad, M);
}

#endif
