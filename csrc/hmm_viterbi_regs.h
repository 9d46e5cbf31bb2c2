/* Viterbi forward pass for up to 12 states, the whole state vector in AVX2 registers.
 *
 *   delta_0 = log pi + log b_0
 *   delta_t(j) = max_i (delta_{t-1}(i) + log a_ij) + log b_t(j),  bp_t(j) = first maximiser
 *
 * Design note
 * -----------
 * At small N a step of the general decoder (hmm_maxplus_step, then a loop that converts
 * the argmax, adds the emission and checks reachability) is mostly latency: every step
 * goes through memory. Here delta lives in V = ceil(N / 4) registers of 4 lanes, and a
 * step is, for each output register v,
 *   candidates c_i = broadcast(delta_i) + row_i[v]        (one permute, one add each)
 *   best       = pairwise max tree over the c_i            (log2 N levels of MAXPD)
 *   delta'[v]  = best + log b_t[v]                         (row loaded ahead, masked)
 * The argmax is off that chain: the first i with c_i == best (blends over i descending),
 * converted to bytes and stored as ROW bytes per step (8 up to 8 states, 16 above).
 * MAXPD selects one of two equal values, never a new number, so delta is bit-for-bit the
 * general decoder's, and the first-maximiser rule gives the same backpointers for every
 * state with a finite score; the path, which only follows those, is identical, ties
 * included. Pad lanes (j >= N) hold -inf: the padded matrix has -inf there and masked
 * loads of an emission row give 0.
 *
 * The body is specialised per N (always_inline, a switch on N, every loop over states
 * or registers fully unrolled with constant bounds), so the state vector stays in
 * registers; from 13 states the candidates no longer fit and the general decoder is as
 * fast (measured: 2x faster than it at N = 9..12, slower at 16). It returns the number of
 * steps done; a row index out of range or a step where every state is -inf stops it early
 * with a status (the codes of csrc/_common.pxd).
 */
#ifndef HMMFAST_HMM_VITERBI_REGS_H
#define HMMFAST_HMM_VITERBI_REGS_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#define HMM_VR_OK 0
#define HMM_VR_BAD_ROW 1
#define HMM_VR_IMPOSSIBLE 2
#define HMM_VR_MAX_STATES 12

/* backpointer bytes per step for n states */
static inline ptrdiff_t hmm_viterbi_regs_row(ptrdiff_t n) { return n <= 8 ? 8 : 16; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define HMM_VR_INLINE static inline __attribute__((always_inline, target("avx2")))

/* broadcast lane i of the state vector d (i constant after inlining: one permute) */
HMM_VR_INLINE __m256d hmm_vr_lane(const __m256d *d, int i)
{
    switch (i & 3) {
    case 0: return _mm256_permute4x64_pd(d[i >> 2], 0x00);
    case 1: return _mm256_permute4x64_pd(d[i >> 2], 0x55);
    case 2: return _mm256_permute4x64_pd(d[i >> 2], 0xAA);
    default: return _mm256_permute4x64_pd(d[i >> 2], 0xFF);
    }
}

HMM_VR_INLINE int hmm_vr_any_finite(const __m256d *d, int nv)
{
    const __m256d neg = _mm256_set1_pd(-INFINITY);
    int any = 0;
#pragma GCC unroll 3
    for (int v = 0; v < 3; v++)
        if (v < nv)
            any |= _mm256_movemask_pd(_mm256_cmp_pd(d[v], neg, _CMP_GT_OQ));
    return any;
}

HMM_VR_INLINE ptrdiff_t hmm_vr_body(const int n, const double *log_start,
                                    const double *log_a_pad, const double *table,
                                    const ptrdiff_t *rows, ptrdiff_t n_rows, ptrdiff_t T,
                                    uint8_t *bp, double *delta_out, int *code)
{
    const int nv = (n + 3) / 4;            /* registers in use */
    const ptrdiff_t n_pad = 4 * nv;        /* row stride of the padded matrix */
    const ptrdiff_t row = n <= 8 ? 8 : 16; /* backpointer bytes per step */
    const __m256d neg = _mm256_set1_pd(-INFINITY);
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i mask[3];
    __m256d d[3], e[3];
    ptrdiff_t t, r;

#pragma GCC unroll 3
    for (int v = 0; v < 3; v++) {
        mask[v] = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - 4 * v), lane);
        d[v] = e[v] = neg;
    }
    *code = HMM_VR_OK;
    if (T <= 0)
        return 0;
    r = rows ? rows[0] : 0;
    if ((size_t)r >= (size_t)n_rows) {
        *code = HMM_VR_BAD_ROW;
        return 0;
    }
#pragma GCC unroll 3
    for (int v = 0; v < 3; v++)
        if (v < nv) {
            const __m256d x = _mm256_add_pd(_mm256_maskload_pd(log_start + 4 * v, mask[v]),
                                            _mm256_maskload_pd(table + r * n + 4 * v, mask[v]));
            d[v] = _mm256_blendv_pd(neg, x, _mm256_castsi256_pd(mask[v]));
        }
    if (!hmm_vr_any_finite(d, nv)) {
        *code = HMM_VR_IMPOSSIBLE;
        return 0;
    }
    for (t = 1; t < T; t++) {
        r = rows ? rows[t] : t;
        if ((size_t)r >= (size_t)n_rows) {
            *code = HMM_VR_BAD_ROW;
            break;
        }
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            if (v < nv)
                e[v] = _mm256_maskload_pd(table + r * n + 4 * v, mask[v]);
        __m256d x[HMM_VR_MAX_STATES], best[3], arg[3];
#pragma GCC unroll 12
        for (int i = 0; i < HMM_VR_MAX_STATES; i++)
            if (i < n)
                x[i] = hmm_vr_lane(d, i);
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) {
            if (v >= nv)
                continue;
            __m256d c[HMM_VR_MAX_STATES], b[HMM_VR_MAX_STATES];
#pragma GCC unroll 12
            for (int i = 0; i < HMM_VR_MAX_STATES; i++)
                if (i < n) {
                    c[i] = _mm256_add_pd(x[i], _mm256_loadu_pd(log_a_pad + i * n_pad + 4 * v));
                    b[i] = c[i];
                }
            /* pairwise tree; MAXPD(x, y) = x > y ? x : y */
#pragma GCC unroll 12
            for (int i = 0; i < HMM_VR_MAX_STATES; i += 2)
                if (i + 1 < n)
                    b[i] = _mm256_max_pd(b[i + 1], b[i]);
#pragma GCC unroll 12
            for (int i = 0; i < HMM_VR_MAX_STATES; i += 4)
                if (i + 2 < n)
                    b[i] = _mm256_max_pd(b[i + 2], b[i]);
#pragma GCC unroll 12
            for (int i = 0; i < HMM_VR_MAX_STATES; i += 8)
                if (i + 4 < n)
                    b[i] = _mm256_max_pd(b[i + 4], b[i]);
            if (8 < n)
                b[0] = _mm256_max_pd(b[8], b[0]);
            best[v] = b[0];
            /* first maximiser: blend in i descending, so the lowest equal i wins; i = 0
             * is also the fall-back of an all -inf column */
            __m256d a = _mm256_setzero_pd();
#pragma GCC unroll 12
            for (int i = HMM_VR_MAX_STATES - 1; i >= 0; i--)
                if (i < n)
                    a = _mm256_blendv_pd(a, _mm256_set1_pd((double)i),
                                         _mm256_cmp_pd(c[i], b[0], _CMP_EQ_OQ));
            arg[v] = a;
        }
        {
            const __m128i q0 = _mm256_cvttpd_epi32(arg[0]);
            const __m128i q1 = nv > 1 ? _mm256_cvttpd_epi32(arg[1]) : _mm_setzero_si128();
            const __m128i q2 = nv > 2 ? _mm256_cvttpd_epi32(arg[2]) : _mm_setzero_si128();
            const __m128i lo = _mm_packs_epi32(q0, q1);
            const __m128i bytes = _mm_packus_epi16(lo, _mm_packs_epi32(q2, _mm_setzero_si128()));
            if (row == 8)
                _mm_storel_epi64((__m128i *)(bp + t * 8), bytes);
            else
                _mm_storeu_si128((__m128i *)(bp + t * 16), bytes);
        }
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            if (v < nv)
                d[v] = _mm256_add_pd(best[v], e[v]);
        if (!hmm_vr_any_finite(d, nv)) {
            *code = HMM_VR_IMPOSSIBLE;
            break;
        }
    }
#pragma GCC unroll 3
    for (int v = 0; v < 3; v++)
        if (v < nv)
            _mm256_storeu_pd(delta_out + 4 * v, d[v]);
    return t;
}

#define HMM_VR_CASE(N) \
    case N: return hmm_vr_body(N, log_start, log_a_pad, table, rows, n_rows, T, bp, delta_out, code);

/* The forward pass for 1 <= n <= 12 on an AVX2 CPU (the caller checks both).
 * log_a_pad: (n, n_pad), n_pad = 4 ceil(n / 4), pad columns -inf.
 * table: (n_rows, n) log emissions; rows: (T,) row per step, or NULL for row t.
 * bp: (T, hmm_viterbi_regs_row(n)) backpointers (row 0 unused); delta_out: 4 ceil(n / 4)
 * doubles, the last delta. Returns the steps completed: T with *code = OK, else the
 * failing step's index. */
__attribute__((target("avx2")))
static ptrdiff_t hmm_viterbi_regs_avx2(int n, const double *log_start, const double *log_a_pad,
                                       const double *table, const ptrdiff_t *rows,
                                       ptrdiff_t n_rows, ptrdiff_t T, uint8_t *bp,
                                       double *delta_out, int *code)
{
    switch (n) {
    HMM_VR_CASE(1) HMM_VR_CASE(2) HMM_VR_CASE(3) HMM_VR_CASE(4)
    HMM_VR_CASE(5) HMM_VR_CASE(6) HMM_VR_CASE(7) HMM_VR_CASE(8)
    HMM_VR_CASE(9) HMM_VR_CASE(10) HMM_VR_CASE(11) HMM_VR_CASE(12)
    default:
        *code = HMM_VR_IMPOSSIBLE;
        return 0;
    }
}

#define HMM_HAVE_VITERBI_REGS 1
#else
#define HMM_HAVE_VITERBI_REGS 0
static ptrdiff_t hmm_viterbi_regs_avx2(int n, const double *log_start, const double *log_a_pad,
                                       const double *table, const ptrdiff_t *rows,
                                       ptrdiff_t n_rows, ptrdiff_t T, uint8_t *bp,
                                       double *delta_out, int *code)
{
    (void)n; (void)log_start; (void)log_a_pad; (void)table; (void)rows; (void)n_rows;
    (void)T; (void)bp; (void)delta_out;
    *code = HMM_VR_IMPOSSIBLE;
    return 0;
}
#endif

#endif
