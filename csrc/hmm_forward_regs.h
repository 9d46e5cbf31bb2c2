/* Scaled forward pass, score only, for up to 12 states with the state vector in registers.
 *
 * Design note
 * -----------
 * The general scaled forward (_passes.pxd ``scaled_forward_pass`` with its vector-matrix
 * step in hmm_steps.h) goes through memory at every step: alpha is stored, re-read as
 * scalars, the product written to a buffer and read back for the emission product and
 * the sum. At small N those round trips are the step's latency. Here alpha_t lives in
 * NV = ceil(N / 4) vectors and a step is
 *   acc  = sum_i broadcast(alpha_i) * A[i, :]      (i ascending, from 0.0)
 *   nxt  = acc * b'_t,   c = sum_j nxt_j            (j ascending)
 * with every operation, and its order, that of the general kernel (hmm_vecmat_step adds
 * p_i A_ij for i ascending, skipping p_i == 0, which adds nothing: the same bits), so the
 * score is bit-for-bit the general pass's; only the memory traffic is gone. The checks
 * and the lazy renormalisation are the general pass's too (see _passes.pxd): c below
 * ``sum_floor`` or a lost entry (mass_floor) ends the pass with HMM_FR_UNDERFLOW and the
 * exact vector of the previous frame, for the caller's log-space continuation.
 *
 * One body per N (always_inline, constant N: loops unrolled, vectors in registers), for
 * AVX2 (picked at run time) and the x86-64 baseline, GCC vector extensions, no FMA.
 * Pad lanes (j >= N) hold 0 (A's pad columns are 0, loads of partial rows give 0).
 */
#ifndef HMMFAST_HMM_FORWARD_REGS_H
#define HMMFAST_HMM_FORWARD_REGS_H

#include <math.h>
#include <stddef.h>
#include "hmm_steps.h"

#define HMM_FR_MAX_STATES 12
#define HMM_FR_OK 0
#define HMM_FR_BAD_ROW 1
#define HMM_FR_UNDERFLOW 4

typedef double hmm_fv __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long hmm_fm __attribute__((vector_size(32), aligned(8), may_alias));

typedef struct {
    const double *startprob;      /* (n,) */
    const double *transmat_pad;   /* (n, n_pad), pad columns 0 */
    double mass_floor;
    const double *scaled_table;   /* (n_rows, n) */
    const double *row_log_scale;  /* (n_rows,) */
    const double *log_table;      /* (n_rows, n) */
    const ptrdiff_t *rows;        /* (T,) or NULL: frame t uses row t */
    ptrdiff_t n_rows;
    double sum_floor, small_scale, small_product, lazy_renormalise;
} hmm_fr_model;

/* entries 4v .. 4v + 3 of a row of n (0 past its end; fill for the log rows) */
#define HMM_FR_LOAD(dst, row, v, N, fill)                                                    \
    if (4 * (v) + 4 <= (N)) {                                                                \
        dst = *(const hmm_fv *)((row) + 4 * (v));                                            \
    } else {                                                                                 \
        for (int k_ = 0; k_ < 4; k_++)                                                       \
            dst[k_] = 4 * (v) + k_ < (N) ? (row)[4 * (v) + k_] : (fill);                     \
    }

#define HMM_FR_INLINE static inline __attribute__((always_inline))

HMM_FR_INLINE int hmm_fr_lost(const hmm_fv *pred, const hmm_fv *alpha, const double *log_b,
                              const int N, double floor)
{
    const int nv = (N + 3) / 4;
    hmm_fm lost = {0, 0, 0, 0};
    for (int v = 0; v < nv; v++) {
        hmm_fv lb;
        HMM_FR_LOAD(lb, log_b, v, N, -INFINITY)
        lost |= (alpha[v] < floor) & (pred[v] > 0.0) & (lb > -INFINITY);
    }
    return (lost[0] | lost[1] | lost[2] | lost[3]) != 0;
}

HMM_FR_INLINE double hmm_fr_sum(const hmm_fv *x, const int N)
{
    double c = 0.0;
    for (int j = 0; j < N; j++)
        c = c + x[j >> 2][j & 3];
    return c;
}

HMM_FR_INLINE int hmm_fr_body(const int N, const hmm_fr_model *m, ptrdiff_t start,
                              ptrdiff_t stop, double *logprob, ptrdiff_t *frame,
                              double *last, int *has_last, double *log_scale_out)
{
    const int nv = (N + 3) / 4, n_pad = 4 * nv;
    hmm_fv cur[3], nxt[3], acc[3], b[3];
    double c, inv, shift, prod, log_c_sum = 0.0, pending = 1.0;
    ptrdiff_t t, r;
    *has_last = 0;
    *logprob = -INFINITY;
    r = m->rows ? m->rows[start] : start;
    if ((size_t)r >= (size_t)m->n_rows) {
        *frame = start;
        return HMM_FR_BAD_ROW;
    }
    for (int v = 0; v < nv; v++) {
        hmm_fv pi;
        HMM_FR_LOAD(pi, m->startprob, v, N, 0.0)
        HMM_FR_LOAD(b[v], m->scaled_table + r * N, v, N, 0.0)
        cur[v] = pi * b[v];
        acc[v] = pi;
    }
    c = hmm_fr_sum(cur, N);
    if (!(c > m->sum_floor)
        || (m->mass_floor > 0.0 && hmm_fr_lost(acc, cur, m->log_table + r * N, N,
                                                m->mass_floor))) {
        *frame = start;
        return HMM_FR_UNDERFLOW;
    }
    shift = m->row_log_scale[r];
    inv = 1.0 / c;
    for (int v = 0; v < nv; v++)
        cur[v] = cur[v] * inv;
    prod = c;
    for (t = start + 1; t < stop; t++) {
        r = m->rows ? m->rows[t] : t;
        if ((size_t)r >= (size_t)m->n_rows) {
            *frame = t;
            return HMM_FR_BAD_ROW;
        }
        const double *brow = m->scaled_table + r * N;
        for (int v = 0; v < nv; v++) {
            HMM_FR_LOAD(b[v], brow, v, N, 0.0)
            acc[v] = (hmm_fv){0.0, 0.0, 0.0, 0.0};
        }
        for (int i = 0; i < N; i++) {
            const double p = cur[i >> 2][i & 3];
            const hmm_fv pv = {p, p, p, p};
            const double *arow = m->transmat_pad + i * n_pad;
            for (int v = 0; v < nv; v++)
                acc[v] = acc[v] + pv * *(const hmm_fv *)(arow + 4 * v);
        }
        for (int v = 0; v < nv; v++)
            nxt[v] = acc[v] * b[v];
        c = hmm_fr_sum(nxt, N);
        if (!(c > m->sum_floor)
            || (m->mass_floor > 0.0 && hmm_fr_lost(acc, nxt, m->log_table + r * N, N,
                                                    m->mass_floor))) {
            for (int j = 0; j < N; j++)
                last[j] = cur[j >> 2][j & 3];
            *has_last = 1;
            *log_scale_out = log_c_sum + log(prod) + shift;
            *frame = t;
            return HMM_FR_UNDERFLOW;
        }
        shift += m->row_log_scale[r];
        if (c > m->lazy_renormalise) {  /* alpha left to shrink: no division on the chain */
            pending = c;
            for (int v = 0; v < nv; v++)
                cur[v] = nxt[v];
            continue;
        }
        if (c < m->small_scale) {
            log_c_sum += log(c);
        } else {
            prod *= c;
            if (prod < m->small_product) {
                log_c_sum += log(prod);
                prod = 1.0;
            }
        }
        inv = 1.0 / c;
        for (int v = 0; v < nv; v++)
            cur[v] = nxt[v] * inv;
        pending = 1.0;
    }
    *logprob = log_c_sum + log(prod) + log(pending) + shift;
    return HMM_FR_OK;
}

#define HMM_FR_CASE(N)                                                                       \
    case N: return hmm_fr_body(N, m, start, stop, logprob, frame, last, has_last, log_scale);
#define HMM_FR_SWITCH                                                                        \
    switch (n) {                                                                             \
    HMM_FR_CASE(1) HMM_FR_CASE(2) HMM_FR_CASE(3) HMM_FR_CASE(4)                              \
    HMM_FR_CASE(5) HMM_FR_CASE(6) HMM_FR_CASE(7) HMM_FR_CASE(8)                              \
    HMM_FR_CASE(9) HMM_FR_CASE(10) HMM_FR_CASE(11) HMM_FR_CASE(12)                           \
    default: *frame = start; return HMM_FR_UNDERFLOW;                                        \
    }
#define HMM_FR_ARGS int n, const hmm_fr_model *m, ptrdiff_t start, ptrdiff_t stop,           \
    double *logprob, ptrdiff_t *frame, double *last, int *has_last, double *log_scale

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static int hmm_forward_regs_avx2(HMM_FR_ARGS) { HMM_FR_SWITCH }
#endif
static int hmm_forward_regs_base(HMM_FR_ARGS) { HMM_FR_SWITCH }

/* Score-only scaled forward of frames start .. stop - 1 for a dense chain of
 * 1 <= n <= HMM_FR_MAX_STATES states (the general pass's results, bit for bit).
 * Returns HMM_FR_OK (*logprob), HMM_FR_BAD_ROW (*frame), or HMM_FR_UNDERFLOW at *frame:
 * then, when *has_last, last[0 .. n) holds the exact (unnormalised) alpha of frame
 * *frame - 1 with log alpha = log(last) + *log_scale; without it, start over in log
 * space. */
static inline int hmm_forward_regs(HMM_FR_ARGS)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hmm_use_avx2())
        return hmm_forward_regs_avx2(n, m, start, stop, logprob, frame, last, has_last,
                                     log_scale);
#endif
    return hmm_forward_regs_base(n, m, start, stop, logprob, frame, last, has_last, log_scale);
}

#endif
