/* The scaled E-step of four sequences at once, one per SIMD lane (small state spaces).
 *
 * Design note
 * -----------
 * At small N a trellis step is latency-bound: each step's vector-matrix product, sum
 * and division wait on the previous step, and the CPU's vector units sit mostly idle
 * (~40 ns per step for forward + backward + statistics at N = 5). Four independent
 * sequences advanced together, lane l of every 4-wide vector belonging to sequence l,
 * overlap their latency chains at the price of one: alpha_t(j) is one vector (four
 * sequences' values), A_ij a broadcast scalar, so a step is N^2 vector multiply-adds,
 * and the normaliser, the division and every check act on four sequences at once.
 *
 * Layout: lane-interleaved, alpha[(t * n + j) * 4 + l]; scales[t * 4 + l]. Lanes of a
 * group may have different lengths: a lane past its end keeps computing on its last
 * frame but its results are masked out (blends on bit patterns, so no value leaks).
 *
 * Per lane the arithmetic is that of _estep.pyx's scalar E-step (Rabiner scaling with
 * per-frame max-shifted emissions, the xi sum A * sum_t alphahat_t v_t^T, gamma with the
 * deficit check); the precision guards of _passes.pxd are applied per lane, and a lane
 * that trips one (or reads an out-of-range row) is reported, not fixed: the caller
 * redoes that sequence with the scalar kernel, which has the exact fallbacks.
 *
 * One body, compiled for each N <= HMM_LANES_MAX_STATES (so the per-state vectors stay
 * in registers) and for AVX2 (picked at run time) and the x86-64 baseline, with GCC
 * vector extensions; multiplies and adds stay separate (no FMA).
 */
#ifndef HMMFAST_HMM_LANES_H
#define HMMFAST_HMM_LANES_H

#include <math.h>
#include <stddef.h>
#include <string.h>
#include "hmm_steps.h"

#define HMM_LANES 4
#define HMM_LANES_MAX_STATES 8

typedef double hmm_lv __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long hmm_lm __attribute__((vector_size(32), aligned(8), may_alias));

typedef struct {
    ptrdiff_t n;                    /* states */
    const double *startprob;        /* (n,) */
    const double *transmat;         /* (n, n) */
    double mass_floor;              /* 0: well mixed (see _passes.pxd) */
    const double *scaled_table;     /* (n_rows, n) */
    const double *row_log_scale;    /* (n_rows,) */
    const double *log_table;        /* (n_rows, n) */
    const ptrdiff_t *rows;          /* frame -> table row, or NULL: frame t uses row t */
    ptrdiff_t n_rows;
    double sum_floor, small_scale, small_product, posterior_deficit;
} hmm_lanes_model;

enum { HMM_LANE_OK = 0, HMM_LANE_BAD_ROW = 1, HMM_LANE_REDO = 4 };

/* Doubles of work memory for a group whose longest sequence has t_max frames. */
static inline size_t hmm_lanes_work(ptrdiff_t n, ptrdiff_t t_max)
{
    return (size_t)HMM_LANES * (2 * (size_t)t_max * (size_t)n + (size_t)t_max
                                + (size_t)n * (size_t)n);
}

#define HMM_BLEND(mask, a, b) ((hmm_lv)(((hmm_lm)(a) & (mask)) | ((hmm_lm)(b) & ~(mask))))
#define HMM_ANY(mask) ((mask)[0] | (mask)[1] | (mask)[2] | (mask)[3])

/* Body of hmm_lanes_estep_{avx2,base}; see hmm_lanes_estep below for the contract.
 * log P = sum_t log c_t + sum_t shift_t: the product of the c_t is kept as a mantissa in
 * [0.5, 1) and an integer exponent (bit operations on the vectors, no per-step log and no
 * per-lane branch); gamma_t overwrites alphahat_t in place, lane-interleaved, and is
 * copied out per lane at the end. The forward pass keeps each frame's gathered emission
 * vector, so the backward sweep reads it back in one load instead of finding and
 * gathering the four rows again. */
#define HMM_LANES_BODY                                                                       \
    {                                                                                        \
        ptrdiff_t t_max = 0, row[HMM_LANES], l, i, j, t;                                     \
        for (l = 0; l < HMM_LANES; l++) {                                                    \
            code[l] = l < n_lanes ? HMM_LANE_OK : HMM_LANE_REDO;                             \
            if (l < n_lanes && len[l] > t_max)                                               \
                t_max = len[l];                                                              \
        }                                                                                    \
        hmm_lv *alpha = (hmm_lv *)work;                       /* (t_max, n) */               \
        hmm_lv *scales = alpha + t_max * n;                   /* (t_max,) */                 \
        hmm_lv *xi = scales + t_max;                          /* (n, n) */                   \
        hmm_lv *bstore = xi + n * n;    /* (t_max, n): b'_t, kept for the backward sweep */  \
        hmm_lm lenv;                                                                         \
        for (l = 0; l < HMM_LANES; l++)                                                      \
            lenv[l] = l < n_lanes ? len[l] : 0;                                              \
        hmm_lv acc[n], b[n], lb[n], beta[n], nb[n], v[n];                                    \
        hmm_lv mant, shift, c, inv, one = {1.0, 1.0, 1.0, 1.0}, zero = {0, 0, 0, 0};         \
        hmm_lm expo = {0, 0, 0, 0}, bad = {0, 0, 0, 0}, live;                                \
        const hmm_lm mant_bits = {0x000fffffffffffffLL, 0x000fffffffffffffLL,                \
                                  0x000fffffffffffffLL, 0x000fffffffffffffLL};               \
        const hmm_lm half_bits = {1022LL << 52, 1022LL << 52, 1022LL << 52, 1022LL << 52};   \
        const hmm_lv floor_v = {m->mass_floor, m->mass_floor, m->mass_floor, m->mass_floor}; \
        const hmm_lv ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};                    \
        HMM_LANES_ROWS(0)                                                                    \
        c = zero;                                                                            \
        for (j = 0; j < n; j++) {                                                            \
            HMM_LANES_GATHER(b[j], m->scaled_table, j)                                       \
            bstore[j] = b[j];                                                                \
            alpha[j] = m->startprob[j] * b[j];                                               \
            c += alpha[j];                                                                   \
        }                                                                                    \
        bad |= ~(c > m->sum_floor);                                                          \
        if (m->mass_floor > 0.0) {                                                           \
            for (j = 0; j < n; j++) {                                                        \
                const long long positive = m->startprob[j] > 0.0 ? -1LL : 0LL;               \
                HMM_LANES_GATHER(lb[j], m->log_table, j)                                     \
                bad |= (alpha[j] < floor_v) & (lb[j] > ninf) & positive;                     \
            }                                                                                \
        }                                                                                    \
        c = HMM_BLEND(bad, one, c);                                                          \
        inv = one / c;                                                                       \
        for (j = 0; j < n; j++)                                                              \
            alpha[j] *= inv;                                                                 \
        scales[0] = c;                                                                       \
        mant = c;                                                                            \
        HMM_LANES_GATHER1(shift, m->row_log_scale)                                           \
        for (t = 1; t < t_max; t++) {                                                        \
            const hmm_lv *prev = alpha + (t - 1) * n;                                        \
            hmm_lv *cur = alpha + t * n;                                                     \
            hmm_lv sc;                                                                       \
            HMM_LANES_ROWS(t)                                                                \
            {                                                                                \
                const hmm_lm tv = {t, t, t, t};                                              \
                live = tv < lenv;                                                            \
            }                                                                                \
            for (j = 0; j < n; j++)                                                          \
                acc[j] = zero;                                                               \
            for (i = 0; i < n; i++) {                                                        \
                const hmm_lv p = prev[i];                                                    \
                const double *arow = m->transmat + i * n;                                    \
                for (j = 0; j < n; j++)                                                      \
                    acc[j] += p * arow[j];                                                   \
            }                                                                                \
            c = zero;                                                                        \
            for (j = 0; j < n; j++) {                                                        \
                HMM_LANES_GATHER(b[j], m->scaled_table, j)                                   \
                bstore[t * n + j] = b[j];                                                    \
                cur[j] = acc[j] * b[j];                                                      \
                c += cur[j];                                                                 \
            }                                                                                \
            bad |= live & ~(c > m->sum_floor);                                               \
            if (m->mass_floor > 0.0) {                                                       \
                for (j = 0; j < n; j++) {                                                    \
                    HMM_LANES_GATHER(lb[j], m->log_table, j)                                 \
                    bad |= live & (cur[j] < floor_v) & (acc[j] > zero) & (lb[j] > ninf);     \
                }                                                                            \
            }                                                                                \
            /* lanes past their end (or failed) repeat their last alpha with c = 1 */        \
            const hmm_lm keep = ~live | bad;                                                 \
            c = HMM_BLEND(keep, one, c);                                                     \
            inv = one / c;                                                                   \
            for (j = 0; j < n; j++)                                                          \
                cur[j] = HMM_BLEND(keep, prev[j], cur[j] * inv);                             \
            scales[t] = c;                                                                   \
            HMM_LANES_GATHER1(sc, m->row_log_scale)                                          \
            shift += HMM_BLEND(keep, zero, sc);                                              \
            /* c > SUM_FLOOR, so mant * c never underflows: fold its exponent out */         \
            mant *= c;                                                                       \
            expo += ((hmm_lm)mant >> 52) - 1022;                                             \
            mant = (hmm_lv)(((hmm_lm)mant & mant_bits) | half_bits);                         \
        }                                                                                    \
        for (l = 0; l < n_lanes; l++) {                                                      \
            if (bad[l] && code[l] == HMM_LANE_OK)                                            \
                code[l] = HMM_LANE_REDO;                                                     \
            loglik[l] = (double)expo[l] * 0.6931471805599453 + log(mant[l]) + shift[l];      \
        }                                                                                    \
        /* backward sweep with the statistics; gamma_t overwrites alphahat_t */              \
        for (i = 0; i < n * n; i++)                                                          \
            xi[i] = zero;                                                                    \
        for (j = 0; j < n; j++)                                                              \
            beta[j] = one;                                                                   \
        hmm_lm deficit = {0, 0, 0, 0};                                                       \
        hmm_lm ok;                                                                           \
        for (l = 0; l < HMM_LANES; l++)                                                      \
            ok[l] = (l < n_lanes && code[l] == HMM_LANE_OK) ? -1 : 0;                        \
        for (t = t_max - 2; t >= 0; t--) {                                                   \
            {                                                                                \
                const hmm_lm tv = {t + 1, t + 1, t + 1, t + 1};                              \
                live = (tv < lenv) & ok;                                                     \
            }                                                                                \
            inv = one / scales[t + 1];                                                       \
            for (j = 0; j < n; j++) /* the forward pass's gathered (and checked) rows */     \
                v[j] = HMM_BLEND(live, bstore[(t + 1) * n + j] * beta[j] * inv, zero);       \
            hmm_lv *a = alpha + t * n;                                                       \
            for (i = 0; i < n; i++) {                                                        \
                const hmm_lv ai = a[i];                                                      \
                hmm_lv *xrow = xi + i * n;                                                   \
                for (j = 0; j < n; j++)                                                      \
                    xrow[j] += ai * v[j];                                                    \
            }                                                                                \
            for (i = 0; i < n; i++) {                                                        \
                const double *arow = m->transmat + i * n;                                    \
                hmm_lv s = zero;                                                             \
                for (j = 0; j < n; j++)                                                      \
                    s += v[j] * arow[j];                                                     \
                nb[i] = HMM_BLEND(live, s, beta[i]);                                         \
            }                                                                                \
            c = zero;                                                                        \
            for (j = 0; j < n; j++) {                                                        \
                beta[j] = nb[j];                                                             \
                acc[j] = a[j] * beta[j];                                                     \
                c += acc[j];                                                                 \
            }                                                                                \
            deficit |= live & ~(c > 1.0 - m->posterior_deficit);                             \
            inv = one / HMM_BLEND(live, c, one);                                             \
            for (j = 0; j < n; j++)                                                          \
                a[j] = HMM_BLEND(live, acc[j] * inv, a[j]);                                  \
        }                                                                                    \
        for (l = 0; l < n_lanes; l++) {                                                      \
            if (code[l] != HMM_LANE_OK)                                                      \
                continue;                                                                    \
            if (deficit[l]) {                                                                \
                code[l] = HMM_LANE_REDO;                                                     \
                continue;                                                                    \
            }                                                                                \
            for (i = 0; i < n * n; i++)                                                      \
                xi_out[l * n * n + i] = xi[i][l] * m->transmat[i];                           \
            double *g_ = gamma[l];                                                           \
            const double *a_ = (const double *)alpha + l;                                    \
            for (i = 0; i < len[l] * n; i++)                                                 \
                g_[i] = a_[i * HMM_LANES];                                                   \
        }                                                                                    \
    }

/* The table row of frame t in every lane (its last frame once past its end); an
 * out-of-range row marks the lane (code BAD_ROW, frame) and reads row 0 instead. */
#define HMM_LANES_ROWS(T)                                                                    \
    for (l = 0; l < HMM_LANES; l++) {                                                        \
        ptrdiff_t f_, r_;                                                                    \
        if (l >= n_lanes) {                                                                  \
            row[l] = 0;                                                                      \
            continue;                                                                        \
        }                                                                                    \
        f_ = start[l] + ((T) < len[l] ? (T) : len[l] - 1);                                   \
        r_ = m->rows ? m->rows[f_] : f_;                                                     \
        if ((size_t)r_ >= (size_t)m->n_rows) {                                               \
            if (code[l] == HMM_LANE_OK) {                                                    \
                code[l] = HMM_LANE_BAD_ROW;                                                  \
                frame[l] = f_;                                                               \
            }                                                                                \
            r_ = 0;                                                                          \
        }                                                                                    \
        row[l] = r_;                                                                         \
    }
#define HMM_LANES_GATHER(dst, table, J)                                                      \
    {                                                                                        \
        hmm_lv g_ = {(table)[row[0] * n + (J)], (table)[row[1] * n + (J)],                   \
                     (table)[row[2] * n + (J)], (table)[row[3] * n + (J)]};                  \
        dst = g_;                                                                            \
    }
#define HMM_LANES_GATHER1(dst, table)                                                        \
    {                                                                                        \
        hmm_lv g_ = {(table)[row[0]], (table)[row[1]], (table)[row[2]], (table)[row[3]]};    \
        dst = g_;                                                                            \
    }

#define HMM_LANES_SIGNATURE(name)                                                            \
    static void name(const hmm_lanes_model *m, const ptrdiff_t *start, const ptrdiff_t *len, \
                     int n_lanes, double *work, double *const *gamma, double *xi_out,        \
                     double *loglik, int *code, ptrdiff_t *frame)

/* One function per state count: with n a compile-time constant the per-state vectors
 * live in registers and the loops over states unroll. */
#define HMM_LANES_FOR_N(PREFIX, ATTR, N)                                                     \
    ATTR HMM_LANES_SIGNATURE(PREFIX##N)                                                      \
    {                                                                                        \
        enum { n = N };                                                                      \
        HMM_LANES_BODY                                                                       \
    }
#define HMM_LANES_ALL_N(PREFIX, ATTR)                                                        \
    HMM_LANES_FOR_N(PREFIX, ATTR, 1) HMM_LANES_FOR_N(PREFIX, ATTR, 2)                        \
    HMM_LANES_FOR_N(PREFIX, ATTR, 3) HMM_LANES_FOR_N(PREFIX, ATTR, 4)                        \
    HMM_LANES_FOR_N(PREFIX, ATTR, 5) HMM_LANES_FOR_N(PREFIX, ATTR, 6)                        \
    HMM_LANES_FOR_N(PREFIX, ATTR, 7) HMM_LANES_FOR_N(PREFIX, ATTR, 8)
#define HMM_LANES_DISPATCH(PREFIX)                                                           \
    switch (m->n) {                                                                          \
    case 1: PREFIX##1(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 2: PREFIX##2(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 3: PREFIX##3(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 4: PREFIX##4(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 5: PREFIX##5(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 6: PREFIX##6(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 7: PREFIX##7(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    case 8: PREFIX##8(m, start, len, n_lanes, work, gamma, xi_out, loglik, code, frame); return;\
    default: break;                                                                          \
    }

#if defined(__x86_64__) && defined(__GNUC__)
HMM_LANES_ALL_N(hmm_lanes_estep_avx2_, __attribute__((target("avx2"))))
#endif
HMM_LANES_ALL_N(hmm_lanes_estep_base_, )

/* E-step of up to four sequences (lane l: frames start[l] .. start[l] + len[l] - 1).
 *
 * work    : hmm_lanes_work(n, max len) doubles
 * gamma   : per lane, (len[l], n) receiving the posteriors
 * xi_out  : (4, n, n) receiving each lane's sum_t xi_t
 * loglik  : (4,) each lane's log P(X)
 * code    : (4,) HMM_LANE_OK; BAD_ROW (frame[l] names the frame); REDO (a precision
 *           check fired: the results of that lane are not valid). Lanes >= n_lanes: REDO.
 */
static inline void hmm_lanes_estep(const hmm_lanes_model *m, const ptrdiff_t *start,
                                   const ptrdiff_t *len, int n_lanes, double *work,
                                   double *const *gamma, double *xi_out, double *loglik,
                                   int *code, ptrdiff_t *frame)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hmm_use_avx2()) {
        HMM_LANES_DISPATCH(hmm_lanes_estep_avx2_)
    }
#endif
    HMM_LANES_DISPATCH(hmm_lanes_estep_base_)
    for (int l = 0; l < HMM_LANES; l++)  /* n > HMM_LANES_MAX_STATES: the caller's bug */
        code[l] = HMM_LANE_REDO;
}

#endif
