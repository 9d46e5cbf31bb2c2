/* Emission log-densities of continuous and count models, for every frame and state.
 *
 *   diag      out[t, j] = norm[j] - 0.5 * sum_d (x[t, d] - mu[d, j])^2 * prec[d, j]
 *             and, optionally, the row's scaled form (exp(row - max), max): see below
 *   cholesky  out[t, j] = norm[j] - 0.5 * |L_j^-1 (x_t - mu_j)|^2
 *   poisson   out[t, j] = sum_d xlogy(x[t, d], lam[d, j]) - lamsum[j] - lgam[t]
 *   scatter, moments: the Gaussian M-step's weighted sums (below)
 *
 * Design note
 * -----------
 * Differences x - mu are formed directly, never by expanding |x - mu|^2 into
 * |x|^2 - 2 x.mu + |mu|^2: the expansion cancels catastrophically for data far from the
 * origin (frames near 1e6 with unit variance would lose 12 digits), the direct form keeps
 * every log-density within ~1e-10 of scipy.stats.
 *
 * diag (and spherical, as diag with equal precisions): register-blocked, four frames by
 * eight states (see HMM_DIAG_BODY); the state vectors' sums stay in registers over the
 * features, no transpose, no reduction to reassociate. Parameters are feature-major,
 * (D, n_pad), padded with zeros to whole vectors of states (measured 2.4x fewer
 * instructions than the former column layout, same bits).
 *
 * cholesky (full and tied covariances): a block of B frames is transposed once into
 * z (D, B); per state, eight frames at a time, forward substitution
 * z_d = (x_d - mu_d - sum_k<d L_dk z_k) / L_dd keeps z_d in registers (see
 * HMM_CHOL_BODY), then |z|^2. No explicit inverse; 1 / L_dd is precomputed. Scratch:
 * z (D, HMM_DENS_BLOCK) and s (8 D).
 *
 * poisson: x log(lambda) is taken as 0 when x == 0 (so lambda == 0 emits only zeros),
 * lgam[t] = sum_d lgamma(x[t, d] + 1) is computed once per frame by the caller.
 *
 * X is float64 or float32 (the _f32 variants); sums are float64. Each kernel is compiled
 * for AVX2 (picked at run time) and the x86-64 baseline from one body.
 */
#ifndef HMMFAST_HMM_DENS_H
#define HMMFAST_HMM_DENS_H

#include <math.h>
#include <stddef.h>
#include "hmm_exp.h"
#include "hmm_steps.h"

#define HMM_DENS_BLOCK 64
#define HMM_DENS_SCALED_MAX_STATES 8  /* diag kernels fuse the scaled rows up to this N */

typedef double hmm_dv __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long hmm_dm __attribute__((vector_size(32), aligned(8), may_alias));

/* states j .. j + 3 of a row of n (a whole vector when it fits) */
static inline __attribute__((always_inline)) void hmm_dens_store(double *row, ptrdiff_t j,
                                                                 ptrdiff_t n, hmm_dv v)
{
    if (j + 4 <= n) {
        *(hmm_dv *)(row + j) = v;
        return;
    }
    for (ptrdiff_t k = 0; j + k < n; k++)
        row[j + k] = v[k];
}

/* The scaled form of one log-density row of n <= 8 states held in r0 (states 0-3) and
 * r1 (4-7): exp(row - max(row)) and the max, exactly as _emissions.scaled_rows makes it
 * (the same max, the same subtraction, the same exp of hmm_exp.h), while the row is
 * still in registers: the exp fused into the density kernel. */
static inline __attribute__((always_inline)) void hmm_dens_scaled_row(
    hmm_dv r0, hmm_dv r1, ptrdiff_t n, double *scaled, double *scale)
{
    const hmm_dm lane = {0, 1, 2, 3};
    const hmm_dv ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const hmm_dm in0 = lane < n, in1 = lane + 4 < n;                     /* pad: -inf */
    hmm_dv v0 = (hmm_dv)(((hmm_dm)r0 & in0) | ((hmm_dm)ninf & ~in0));
    hmm_dv v1 = (hmm_dv)(((hmm_dm)r1 & in1) | ((hmm_dm)ninf & ~in1));
    const hmm_dm gt = v0 > v1;
    const hmm_dv m2 = (hmm_dv)(((hmm_dm)v0 & gt) | ((hmm_dm)v1 & ~gt));
    double m = m2[0];
    for (int k = 1; k < 4; k++)
        m = m2[k] > m ? m2[k] : m;
    *scale = m;
    if (m != -INFINITY) {  /* else every entry is -inf, and exp gives 0 */
        v0 = v0 - m;
        v1 = v1 - m;
    }
    HMM_EXP4(v0)
    HMM_EXP4(v1)
    hmm_dens_store(scaled, 0, n, v0);
    if (n > 4)
        hmm_dens_store(scaled, 4, n, v1);
}

/* diag: four frames by two vectors of four states at a time, the eight running sums in
 * registers while d runs over the features (the parameters' rows are loaded once for
 * the four frames, the frame values broadcast); per state the terms are added in d
 * order, ((diff * diff) * prec) each, so every path (and the former column layout) gives
 * the same bits. mu, prec: (D, n_pad) and norm: (n_pad,), padded with zeros to n_pad =
 * 4 ceil(N / 4) states. A short last group of frames repeats its last frame (results
 * not stored). With ``scaled`` (N <= HMM_DENS_SCALED_MAX_STATES) each finished row is
 * also written in the scaled form (hmm_dens_scaled_row), its max into ``scale``. */
#define HMM_DIAG_BODY(XT)                                                                    \
    {                                                                                        \
        const ptrdiff_t nv = (N + 3) / 4, n_pad = 4 * nv;                                    \
        for (ptrdiff_t t = 0; t < T; t += 4) {                                               \
            const ptrdiff_t nf = T - t < 4 ? T - t : 4;                                      \
            const XT *restrict xr[4];                                                        \
            for (int f = 0; f < 4; f++)                                                      \
                xr[f] = x + (t + (f < nf ? f : nf - 1)) * D;                                 \
            for (ptrdiff_t v = 0; v < nv; v += 2) {                                          \
                const ptrdiff_t j0 = 4 * v, j1 = v + 1 < nv ? j0 + 4 : j0;                   \
                const hmm_dv zero = {0.0, 0.0, 0.0, 0.0};                                    \
                hmm_dv a0[4] = {zero, zero, zero, zero}, a1[4] = {zero, zero, zero, zero};  \
                for (ptrdiff_t d = 0; d < D; d++) {                                          \
                    const hmm_dv m0 = *(const hmm_dv *)(mu + d * n_pad + j0);                \
                    const hmm_dv p0 = *(const hmm_dv *)(prec + d * n_pad + j0);              \
                    const hmm_dv m1 = *(const hmm_dv *)(mu + d * n_pad + j1);                \
                    const hmm_dv p1 = *(const hmm_dv *)(prec + d * n_pad + j1);              \
                    for (int f = 0; f < 4; f++) {                                            \
                        const double xv = (double)xr[f][d];                                  \
                        const hmm_dv e0 = xv - m0, e1 = xv - m1;                             \
                        a0[f] = a0[f] + (e0 * e0) * p0;                                      \
                        a1[f] = a1[f] + (e1 * e1) * p1;                                      \
                    }                                                                        \
                }                                                                            \
                const hmm_dv n0 = *(const hmm_dv *)(norm + j0);                              \
                const hmm_dv n1 = *(const hmm_dv *)(norm + j1);                              \
                for (ptrdiff_t f = 0; f < nf; f++) {                                         \
                    const hmm_dv r0 = n0 - 0.5 * a0[f], r1 = n1 - 0.5 * a1[f];               \
                    hmm_dens_store(out + (t + f) * N, j0, N, r0);                            \
                    if (j1 != j0)                                                            \
                        hmm_dens_store(out + (t + f) * N, j1, N, r1);                        \
                    if (scaled != NULL)                                                      \
                        hmm_dens_scaled_row(r0, r1, N, scaled + (t + f) * N,                 \
                                            scale + t + f);                                  \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* cholesky: a block of frames is transposed once into z (D, HMM_DENS_BLOCK), padded to
 * whole groups of 8 by repeating its last frame; then per state, eight frames at a time
 * (two vectors), the substitution z_d = (x_d - mu_d - sum_k<d L_dk z_k) / L_dd runs with
 * z_d in registers while the earlier z_k (kept in g: (D, 8)) stream past, and |z|^2 adds
 * up as each z_d is finished. Per element the operations and their order are the
 * former per-frame loops' (x - mu, then - L_dk z_k for k ascending, then * 1/L_dd; the
 * squares added for d ascending), so the bits are the same. */
#define HMM_CHOL_BODY(XT)                                                                    \
    {                                                                                        \
        double *restrict g = s;                                                              \
        for (ptrdiff_t t0 = 0; t0 < T; t0 += HMM_DENS_BLOCK) {                               \
            const ptrdiff_t nb = T - t0 < HMM_DENS_BLOCK ? T - t0 : HMM_DENS_BLOCK;          \
            const ptrdiff_t nbp = (nb + 7) & ~(ptrdiff_t)7;                                  \
            for (ptrdiff_t b = 0; b < nbp; b++) {                                            \
                const XT *restrict xb = x + (t0 + (b < nb ? b : nb - 1)) * D;                \
                for (ptrdiff_t d = 0; d < D; d++)                                            \
                    z[d * HMM_DENS_BLOCK + b] = (double)xb[d];                               \
            }                                                                                \
            for (ptrdiff_t j = 0; j < N; j++) {                                              \
                const double *restrict L = chol + j * D * D;                                 \
                const double *restrict m = mu + j * D, *restrict id = inv_diag + j * D;      \
                for (ptrdiff_t f0 = 0; f0 < nbp; f0 += 8) {                                  \
                    hmm_dv s0 = {0.0, 0.0, 0.0, 0.0}, s1 = s0;                               \
                    for (ptrdiff_t d = 0; d < D; d++) {                                      \
                        const double *restrict zd = z + d * HMM_DENS_BLOCK + f0;             \
                        hmm_dv a0 = *(const hmm_dv *)zd - m[d];                              \
                        hmm_dv a1 = *(const hmm_dv *)(zd + 4) - m[d];                        \
                        for (ptrdiff_t k = 0; k < d; k++) {                                  \
                            const double l = L[d * D + k];                                   \
                            a0 = a0 - l * *(const hmm_dv *)(g + 8 * k);                      \
                            a1 = a1 - l * *(const hmm_dv *)(g + 8 * k + 4);                  \
                        }                                                                    \
                        a0 = a0 * id[d];                                                     \
                        a1 = a1 * id[d];                                                     \
                        *(hmm_dv *)(g + 8 * d) = a0;                                         \
                        *(hmm_dv *)(g + 8 * d + 4) = a1;                                     \
                        s0 = s0 + a0 * a0;                                                   \
                        s1 = s1 + a1 * a1;                                                   \
                    }                                                                        \
                    for (ptrdiff_t f = 0; f < 8 && f0 + f < nb; f++) {                       \
                        const double sf = f < 4 ? s0[f] : s1[f - 4];                         \
                        out[(t0 + f0 + f) * N + j] = norm[j] - 0.5 * sf;                     \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

#define HMM_POISSON_BODY(XT)                                                                 \
    {                                                                                        \
        for (ptrdiff_t t = 0; t < T; t++) {                                                  \
            const XT *restrict xt = x + t * D;                                               \
            double *restrict o = out + t * N;                                                \
            for (ptrdiff_t j = 0; j < N; j++)                                                \
                o[j] = 0.0;                                                                  \
            for (ptrdiff_t d = 0; d < D; d++) {                                              \
                const double xd = (double)xt[d];                                             \
                if (xd == 0.0)                                                               \
                    continue;                                                                \
                const double *restrict ll = log_lam + d * N;                                 \
                for (ptrdiff_t j = 0; j < N; j++)                                            \
                    o[j] += xd * ll[j];                                                      \
            }                                                                                \
            for (ptrdiff_t j = 0; j < N; j++)                                                \
                o[j] = o[j] - lamsum[j] - lgam[t];                                           \
        }                                                                                    \
    }

/* scatter[d, j] += sum_t w[t, j] (x[t, d] - mu[d, j])^2 (the Gaussian M-step's scatter,
 * from the differences themselves; states innermost, contiguous (D, N) layout) */
#define HMM_SCATTER_BODY(XT)                                                                 \
    {                                                                                        \
        for (ptrdiff_t t = 0; t < T; t++) {                                                  \
            const double *restrict wt = w + t * N;                                           \
            for (ptrdiff_t d = 0; d < D; d++) {                                              \
                const double xd = (double)x[t * D + d];                                      \
                const double *restrict m = mu + d * N;                                       \
                double *restrict o = out + d * N;                                            \
                for (ptrdiff_t j = 0; j < N; j++) {                                          \
                    const double diff = xd - m[j];                                           \
                    o[j] += wt[j] * diff * diff;                                             \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* The Gaussian M-step's three sums in one pass, around reference means ref (D, N):
 *   s0[j] += sum_t w[t, j],  s1[d, j] += sum_t w[t, j] diff,  s2[d, j] += sum_t w[t, j] diff^2
 * with diff = x[t, d] - ref[d, j] formed directly (as the scatter); w diff^2 is taken as
 * (w diff) diff, the scatter's order, so that with ref equal to the means s2 is the
 * scatter bit for bit. */
#define HMM_MOMENTS_BODY(XT)                                                                 \
    {                                                                                        \
        for (ptrdiff_t t = 0; t < T; t++) {                                                  \
            const double *restrict wt = w + t * N;                                           \
            for (ptrdiff_t j = 0; j < N; j++)                                                \
                s0[j] += wt[j];                                                              \
            for (ptrdiff_t d = 0; d < D; d++) {                                              \
                const double xd = (double)x[t * D + d];                                      \
                const double *restrict m = ref + d * N;                                      \
                double *restrict o1 = s1 + d * N, *restrict o2 = s2 + d * N;                 \
                for (ptrdiff_t j = 0; j < N; j++) {                                          \
                    const double diff = xd - m[j];                                           \
                    const double wd = wt[j] * diff;                                          \
                    o1[j] += wd;                                                             \
                    o2[j] += wd * diff;                                                      \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

#define HMM_DIAG_ARGS(XT) const XT *restrict x, ptrdiff_t T, ptrdiff_t D, ptrdiff_t N,       \
    const double *restrict mu, const double *restrict prec, const double *restrict norm,     \
    double *restrict out, double *restrict scaled, double *restrict scale
#define HMM_CHOL_ARGS(XT) const XT *restrict x, ptrdiff_t T, ptrdiff_t D, ptrdiff_t N,       \
    const double *restrict mu, const double *restrict chol, const double *restrict inv_diag, \
    const double *restrict norm, double *restrict z, double *restrict s, double *restrict out
#define HMM_POISSON_ARGS(XT) const XT *restrict x, ptrdiff_t T, ptrdiff_t D, ptrdiff_t N,    \
    const double *restrict log_lam, const double *restrict lamsum,                           \
    const double *restrict lgam, double *restrict out

/* One kernel: an AVX2 and a baseline build of BODY, and a dispatcher NAME. */
#if defined(__x86_64__) && defined(__GNUC__)
#define HMM_DENS_KERNEL(NAME, ARGS, CALL, BODY, XT)                                          \
    __attribute__((target("avx2"))) static void NAME##_avx2(ARGS(XT)) BODY(XT)               \
    static void NAME##_base(ARGS(XT)) BODY(XT)                                               \
    static inline void NAME(ARGS(XT))                                                        \
    {                                                                                        \
        if (hmm_use_avx2())                                                                  \
            NAME##_avx2 CALL;                                                                \
        else                                                                                 \
            NAME##_base CALL;                                                                \
    }
#else
#define HMM_DENS_KERNEL(NAME, ARGS, CALL, BODY, XT)                                          \
    static inline void NAME(ARGS(XT)) BODY(XT)
#endif

#define HMM_SCATTER_ARGS(XT) const XT *restrict x, ptrdiff_t T, ptrdiff_t D, ptrdiff_t N,    \
    const double *restrict w, const double *restrict mu, double *restrict out
#define HMM_SCATTER_CALL (x, T, D, N, w, mu, out)
#define HMM_MOMENTS_ARGS(XT) const XT *restrict x, ptrdiff_t T, ptrdiff_t D, ptrdiff_t N,    \
    const double *restrict w, const double *restrict ref, double *restrict s0,               \
    double *restrict s1, double *restrict s2
#define HMM_MOMENTS_CALL (x, T, D, N, w, ref, s0, s1, s2)
#define HMM_DIAG_CALL (x, T, D, N, mu, prec, norm, out, scaled, scale)
#define HMM_CHOL_CALL (x, T, D, N, mu, chol, inv_diag, norm, z, s, out)
#define HMM_POISSON_CALL (x, T, D, N, log_lam, lamsum, lgam, out)

HMM_DENS_KERNEL(hmm_diag_f64, HMM_DIAG_ARGS, HMM_DIAG_CALL, HMM_DIAG_BODY, double)
HMM_DENS_KERNEL(hmm_diag_f32, HMM_DIAG_ARGS, HMM_DIAG_CALL, HMM_DIAG_BODY, float)
HMM_DENS_KERNEL(hmm_chol_f64, HMM_CHOL_ARGS, HMM_CHOL_CALL, HMM_CHOL_BODY, double)
HMM_DENS_KERNEL(hmm_chol_f32, HMM_CHOL_ARGS, HMM_CHOL_CALL, HMM_CHOL_BODY, float)
HMM_DENS_KERNEL(hmm_poisson_f64, HMM_POISSON_ARGS, HMM_POISSON_CALL, HMM_POISSON_BODY, double)
HMM_DENS_KERNEL(hmm_poisson_f32, HMM_POISSON_ARGS, HMM_POISSON_CALL, HMM_POISSON_BODY, float)
HMM_DENS_KERNEL(hmm_scatter_f64, HMM_SCATTER_ARGS, HMM_SCATTER_CALL, HMM_SCATTER_BODY, double)
HMM_DENS_KERNEL(hmm_scatter_f32, HMM_SCATTER_ARGS, HMM_SCATTER_CALL, HMM_SCATTER_BODY, float)
HMM_DENS_KERNEL(hmm_moments_f64, HMM_MOMENTS_ARGS, HMM_MOMENTS_CALL, HMM_MOMENTS_BODY, double)
HMM_DENS_KERNEL(hmm_moments_f32, HMM_MOMENTS_ARGS, HMM_MOMENTS_CALL, HMM_MOMENTS_BODY, float)

#endif
