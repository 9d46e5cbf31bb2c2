/* Viterbi forward pass for up to 8 states, the whole state vector in two AVX2 registers.
 *
 *   delta_0 = log pi + log b_0
 *   delta_t(j) = max_i (delta_{t-1}(i) + log a_ij) + log b_t(j),  bp_t(j) = first maximiser
 *
 * Design note
 * -----------
 * At N <= 8 a step of the general decoder (hmm_maxplus_step, then a loop that converts
 * the argmax, adds the emission and checks reachability) costs ~15 ns, most of it
 * latency: every step goes through memory. Here delta lives in registers (lanes 0..3 in
 * `lo`, 4..7 in `hi`), the N rows of the padded log transition matrix are loaded once,
 * and a step is
 *   candidates c_i = broadcast(delta_i) + row_i          (one permute + one add each)
 *   best       = pairwise max tree over the c_i            (log2 N levels of MAXPD)
 *   delta'     = best + log b_t                            (row loaded ahead, masked)
 * The argmax is off that chain: the first i with c_i == best (blends over i descending),
 * converted to bytes and stored as 8 bytes per step. MAXPD selects one of two equal
 * values, never a new number, so delta is bit-for-bit the general decoder's and the
 * first-maximiser rule gives the same backpointers for every state with a finite
 * score; the path, which only follows those, is identical, ties included.
 *
 * Pad lanes (j >= N) hold -inf: the padded matrix has -inf there and the masked load of
 * an emission row gives 0 in them. The kernel is specialised per N (always_inline body,
 * a switch on N) so every loop over states is unrolled at compile time. It returns the
 * number of steps done; a row index out of range or a step where every state is -inf
 * stops it early with a status (the codes of csrc/_common.pxd).
 */
#ifndef HMMFAST_HMM_VITERBI8_H
#define HMMFAST_HMM_VITERBI8_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#define HMM_V8_OK 0
#define HMM_V8_BAD_ROW 1
#define HMM_V8_IMPOSSIBLE 2

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define HMM_V8_INLINE static inline __attribute__((always_inline, target("avx2")))

/* broadcast lane i (0..7) of the pair (lo, hi); i is a compile-time constant after
 * inlining, so the switch folds to one permute */
HMM_V8_INLINE __m256d hmm_v8_lane(__m256d lo, __m256d hi, int i)
{
    switch (i) {
    case 0: return _mm256_permute4x64_pd(lo, 0x00);
    case 1: return _mm256_permute4x64_pd(lo, 0x55);
    case 2: return _mm256_permute4x64_pd(lo, 0xAA);
    case 3: return _mm256_permute4x64_pd(lo, 0xFF);
    case 4: return _mm256_permute4x64_pd(hi, 0x00);
    case 5: return _mm256_permute4x64_pd(hi, 0x55);
    case 6: return _mm256_permute4x64_pd(hi, 0xAA);
    default: return _mm256_permute4x64_pd(hi, 0xFF);
    }
}

HMM_V8_INLINE ptrdiff_t hmm_v8_body(const int n, const double *log_start,
                                    const double *log_a_pad, const double *table,
                                    const ptrdiff_t *rows, ptrdiff_t n_rows, ptrdiff_t T,
                                    uint8_t *bp, double *delta_out, int *code)
{
    const int two = n > 4;                /* the hi half is in use */
    const ptrdiff_t n_pad = two ? 8 : 4;  /* row stride of the padded matrix */
    const __m256d neg = _mm256_set1_pd(-INFINITY);
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i m_lo = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane);
    const __m256i m_hi = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - 4), lane);
    __m256d a_lo[8], a_hi[8];
    __m256d d_lo, d_hi = neg, e_lo, e_hi = neg;
    ptrdiff_t t, r;
    int i;

    for (i = 0; i < n; i++) {
        a_lo[i] = _mm256_loadu_pd(log_a_pad + i * n_pad);
        a_hi[i] = two ? _mm256_loadu_pd(log_a_pad + i * n_pad + 4) : neg;
    }
    *code = HMM_V8_OK;
    if (T <= 0)
        return 0;
    r = rows ? rows[0] : 0;
    if ((size_t)r >= (size_t)n_rows) {
        *code = HMM_V8_BAD_ROW;
        return 0;
    }
    d_lo = _mm256_add_pd(_mm256_maskload_pd(log_start, m_lo),
                         _mm256_maskload_pd(table + r * n, m_lo));
    d_lo = _mm256_blendv_pd(neg, d_lo, _mm256_castsi256_pd(m_lo));
    if (two) {
        d_hi = _mm256_add_pd(_mm256_maskload_pd(log_start + 4, m_hi),
                             _mm256_maskload_pd(table + r * n + 4, m_hi));
        d_hi = _mm256_blendv_pd(neg, d_hi, _mm256_castsi256_pd(m_hi));
    }
    if (!(_mm256_movemask_pd(_mm256_cmp_pd(d_lo, neg, _CMP_GT_OQ)) |
          _mm256_movemask_pd(_mm256_cmp_pd(d_hi, neg, _CMP_GT_OQ)))) {
        *code = HMM_V8_IMPOSSIBLE;
        return 0;
    }
    for (t = 1; t < T; t++) {
        r = rows ? rows[t] : t;
        if ((size_t)r >= (size_t)n_rows) {
            *code = HMM_V8_BAD_ROW;
            break;
        }
        e_lo = _mm256_maskload_pd(table + r * n, m_lo);
        if (two)
            e_hi = _mm256_maskload_pd(table + r * n + 4, m_hi);
        /* candidates, max tree and first-maximiser argmax, unrolled for this n */
#define HMM_V8_CAND(I)                                                                 \
        __m256d c_lo##I = neg, c_hi##I = neg;                                            \
        if (I < n) {                                                                     \
            const __m256d x = hmm_v8_lane(d_lo, d_hi, I);                                \
            c_lo##I = _mm256_add_pd(x, a_lo[I]);                                         \
            if (two)                                                                     \
                c_hi##I = _mm256_add_pd(x, a_hi[I]);                                     \
        }
        HMM_V8_CAND(0) HMM_V8_CAND(1) HMM_V8_CAND(2) HMM_V8_CAND(3)
        HMM_V8_CAND(4) HMM_V8_CAND(5) HMM_V8_CAND(6) HMM_V8_CAND(7)
#undef HMM_V8_CAND
        /* MAXPD(x, y) = x > y ? x : y; missing candidates are -inf, which never wins */
#define HMM_V8_MAX(H, A, B) _mm256_max_pd(c_##H##B, c_##H##A)
#define HMM_V8_TREE(H, OUT)                                                             \
        const __m256d OUT##01 = n > 1 ? HMM_V8_MAX(H, 0, 1) : c_##H##0;                 \
        const __m256d OUT##23 = n > 3 ? HMM_V8_MAX(H, 2, 3) : c_##H##2;                 \
        const __m256d OUT##45 = n > 5 ? HMM_V8_MAX(H, 4, 5) : c_##H##4;                 \
        const __m256d OUT##67 = n > 7 ? HMM_V8_MAX(H, 6, 7) : c_##H##6;                 \
        const __m256d OUT##03 = n > 2 ? _mm256_max_pd(OUT##23, OUT##01) : OUT##01;      \
        const __m256d OUT##47 = n > 6 ? _mm256_max_pd(OUT##67, OUT##45) : OUT##45;      \
        const __m256d OUT = n > 4 ? _mm256_max_pd(OUT##47, OUT##03) : OUT##03;
        HMM_V8_TREE(lo, best_lo)
        HMM_V8_TREE(hi, best_hi)
#undef HMM_V8_TREE
#undef HMM_V8_MAX
        /* first maximiser: blend in i descending, so the lowest equal i wins; i = 0 is
         * also the fall-back of an all -inf column */
        __m256d arg_lo = _mm256_setzero_pd(), arg_hi = _mm256_setzero_pd();
#define HMM_V8_ARG(I)                                                                  \
        if (I < n) {                                                                     \
            const __m256d idx = _mm256_set1_pd((double)I);                               \
            arg_lo = _mm256_blendv_pd(arg_lo, idx,                                       \
                                      _mm256_cmp_pd(c_lo##I, best_lo, _CMP_EQ_OQ));      \
            if (two)                                                                     \
                arg_hi = _mm256_blendv_pd(arg_hi, idx,                                   \
                                          _mm256_cmp_pd(c_hi##I, best_hi, _CMP_EQ_OQ));  \
        }
        HMM_V8_ARG(7) HMM_V8_ARG(6) HMM_V8_ARG(5) HMM_V8_ARG(4)
        HMM_V8_ARG(3) HMM_V8_ARG(2) HMM_V8_ARG(1) HMM_V8_ARG(0)
#undef HMM_V8_ARG
        {
            const __m128i q_lo = _mm256_cvttpd_epi32(arg_lo);
            const __m128i q_hi = two ? _mm256_cvttpd_epi32(arg_hi) : _mm_setzero_si128();
            const __m128i w16 = _mm_packs_epi32(q_lo, q_hi);
            _mm_storel_epi64((__m128i *)(bp + t * 8), _mm_packus_epi16(w16, w16));
        }
        d_lo = _mm256_add_pd(best_lo, e_lo);
        if (two)
            d_hi = _mm256_add_pd(best_hi, e_hi);
        if (!(_mm256_movemask_pd(_mm256_cmp_pd(d_lo, neg, _CMP_GT_OQ)) |
              _mm256_movemask_pd(_mm256_cmp_pd(d_hi, neg, _CMP_GT_OQ)))) {
            *code = HMM_V8_IMPOSSIBLE;
            break;
        }
    }
    _mm256_storeu_pd(delta_out, d_lo);
    _mm256_storeu_pd(delta_out + 4, d_hi);
    return t;
}

#define HMM_V8_CASE(N) \
    case N: return hmm_v8_body(N, log_start, log_a_pad, table, rows, n_rows, T, bp, delta_out, code);

/* The forward pass for 1 <= n <= 8 on an AVX2 CPU (the caller checks both).
 * log_a_pad: (n, n_pad) with n_pad = 4 (n <= 4) or 8, pad columns -inf.
 * table: (n_rows, n) log emissions; rows: (T,) row per step, or NULL for row t.
 * bp: (T, 8) backpointers (row 0 unused); delta_out: 8 doubles, the last delta.
 * Returns the steps completed: T with *code = OK, else the failing step's index. */
__attribute__((target("avx2")))
static ptrdiff_t hmm_viterbi8_avx2(int n, const double *log_start, const double *log_a_pad,
                                   const double *table, const ptrdiff_t *rows,
                                   ptrdiff_t n_rows, ptrdiff_t T, uint8_t *bp,
                                   double *delta_out, int *code)
{
    switch (n) {
    HMM_V8_CASE(1) HMM_V8_CASE(2) HMM_V8_CASE(3) HMM_V8_CASE(4)
    HMM_V8_CASE(5) HMM_V8_CASE(6) HMM_V8_CASE(7) HMM_V8_CASE(8)
    default:
        *code = HMM_V8_IMPOSSIBLE;
        return 0;
    }
}

#define HMM_HAVE_VITERBI8 1
#else
#define HMM_HAVE_VITERBI8 0
static ptrdiff_t hmm_viterbi8_avx2(int n, const double *log_start, const double *log_a_pad,
                                   const double *table, const ptrdiff_t *rows,
                                   ptrdiff_t n_rows, ptrdiff_t T, uint8_t *bp,
                                   double *delta_out, int *code)
{
    (void)n; (void)log_start; (void)log_a_pad; (void)table; (void)rows; (void)n_rows;
    (void)T; (void)bp; (void)delta_out;
    *code = HMM_V8_IMPOSSIBLE;
    return 0;
}
#endif

#endif
