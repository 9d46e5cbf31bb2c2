/* exp of many arguments <= 0 at once: the max-shifted emission rows of dense frames.
 *
 * Design note
 * -----------
 * Every dense-frame call (continuous emissions, the functional API) turns a (T, N)
 * log-emission matrix into exp(row - row max): T * N exponentials, which glibc's scalar
 * exp made the largest single cost of scoring a Gaussian model (4.5 ns each). This one
 * is vectorised: k = round(x / ln 2), r = x - k ln 2 (Cody-Waite, two-part ln 2, exact
 * for |k| < 2^20), exp(r) by its Taylor polynomial to degree 12 on |r| <= ln 2 / 2
 * (truncation below 2e-16 relative; Estrin's scheme, so the four lanes' chains are
 * short), then the scale 2^k built in the exponent bits, in
 * two factors when the result is subnormal, so gradual underflow is kept. Accuracy: within
 * 2 ulp of the correctly rounded exp (tested against numpy's). Arguments below -746 give
 * exactly 0, -inf gives 0; arguments must not be NaN or positive (the callers' rows are
 * shifted by their maximum).
 *
 * One body, GCC vector extensions, compiled for AVX2 (picked at run time) and the
 * x86-64 baseline; no FMA, so both give the same bits.
 */
#ifndef HMMFAST_HMM_EXP_H
#define HMMFAST_HMM_EXP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "hmm_steps.h"

/* may_alias: vectors are loaded from and stored to plain double arrays */
typedef double hmm_xv __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long hmm_xi __attribute__((vector_size(32), aligned(8), may_alias));

/* Four arguments in X (an hmm_xv lvalue) -> their exponentials, in place. */
#define HMM_EXP4(X)                                                                          \
    {                                                                                        \
        const double log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01,        \
                     ln2_lo = 1.90821492927058770002e-10, shifter = 6755399441055744.0;      \
        const hmm_xi under = (X) < -746.0;                                                   \
        const hmm_xv x_ = (hmm_xv)((hmm_xi)(X) & ~under);   /* -> +0.0 where under */        \
        hmm_xv kf = x_ * log2e + shifter;                   /* round to nearest integer */   \
        const hmm_xi ki = (hmm_xi)kf - (hmm_xi)(kf - kf + shifter);                          \
        kf = kf - shifter;                                                                   \
        const hmm_xv r = (x_ - kf * ln2_hi) - kf * ln2_lo;                                   \
        /* Taylor polynomial of degree 12, Estrin's scheme (short dependency chains) */       \
        const hmm_xv r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;                                 \
        const hmm_xv q0 = r + 1.0, q1 = r * (1.0 / 6.0) + 0.5;                               \
        const hmm_xv q2 = r * (1.0 / 120.0) + 1.0 / 24.0;                                    \
        const hmm_xv q3 = r * (1.0 / 5040.0) + 1.0 / 720.0;                                  \
        const hmm_xv q4 = r * (1.0 / 362880.0) + 1.0 / 40320.0;                              \
        const hmm_xv q5 = r * (1.0 / 39916800.0) + 1.0 / 3628800.0;                          \
        const hmm_xv s0 = q1 * r2 + q0, s1 = q3 * r2 + q2, s2 = q5 * r2 + q4;                \
        const hmm_xv t0 = s1 * r4 + s0, t1 = r4 * (1.0 / 479001600.0) + s2;                  \
        const hmm_xv p = t1 * r8 + t0;                                                       \
        /* 2^k as 2^k1 * 2^k2 with k1 = floor(k / 2): both normal for k >= -1077 */         \
        const hmm_xi k1 = ki >> 1, k2 = ki - k1;                                             \
        const hmm_xv y_ = p * (hmm_xv)((k1 + 1023) << 52) * (hmm_xv)((k2 + 1023) << 52);     \
        (X) = (hmm_xv)((hmm_xi)y_ & ~under);                                                 \
    }

#define HMM_EXP_BODY                                                                         \
    {                                                                                        \
        ptrdiff_t i = 0;                                                                     \
        hmm_xv x;                                                                            \
        for (; i + 4 <= n; i += 4) {                                                         \
            x = *(const hmm_xv *)(in + i);                                                   \
            HMM_EXP4(x)                                                                      \
            *(hmm_xv *)(out + i) = x;                                                        \
        }                                                                                    \
        if (i < n) { /* the tail through the same arithmetic, padded with zeros */          \
            double pad[4] = {0.0, 0.0, 0.0, 0.0};                                            \
            memcpy(pad, in + i, (size_t)(n - i) * sizeof(double));                          \
            memcpy(&x, pad, sizeof x);                                                       \
            HMM_EXP4(x)                                                                      \
            memcpy(pad, &x, sizeof x);                                                       \
            memcpy(out + i, pad, (size_t)(n - i) * sizeof(double));                          \
        }                                                                                    \
    }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2")))
static void hmm_exp_nonpos_avx2(const double *in, ptrdiff_t n, double *out)
    HMM_EXP_BODY
#endif

static void hmm_exp_nonpos_base(const double *in, ptrdiff_t n, double *out)
    HMM_EXP_BODY

/* out[i] = exp(in[i]) for in[i] <= 0 (or -inf), n entries (in == out allowed). */
static inline void hmm_exp_nonpos(const double *in, ptrdiff_t n, double *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hmm_use_avx2()) {
        hmm_exp_nonpos_avx2(in, n, out);
        return;
    }
#endif
    hmm_exp_nonpos_base(in, n, out);
}

#endif
