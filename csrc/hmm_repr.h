/* Python's repr of a double, without the GIL: the shortest decimal that reads back.
 *
 * Design note
 * -----------
 * The command line writes one score or log-probability per sequence, millions per
 * second, exactly as Python's repr writes them. CPython's dtoa needs the GIL and costs
 * ~150 ns a value; this covers the range results live in, 2^-10 <= |x| < 2^53, without
 * it, so csrc/_textio.pyx formats on several threads. Returns the length written, or 0
 * (the caller then uses CPython's PyOS_double_to_string) for everything else: zero,
 * subnormals, infinities, NaN, |x| outside the range, powers of two (their rounding
 * interval is lopsided) and an exact tie between two nearest candidates.
 *
 * x = M 2^E (M the 53-bit significand). Every decimal in the rounding interval
 * [(2M - 1) 2^(E-1), (2M + 1) 2^(E-1)] (closed when M is even: round-half-even) reads
 * back as x. The largest unit 10^k with a multiple m 10^k inside the interval gives the
 * shortest digits (found by bisection: when a unit has one, every smaller unit has one
 * too); among those multiples the one nearest x is taken, as repr does. With
 * B = 1 - E <= 63 and 10^-k <= 10^22 every quantity is exact in 128-bit integers.
 * Without __int128 the function always returns 0 (CPython's dtoa for every value).
 * Checked against repr on millions of values (tests/test_cli.py).
 */
#ifndef HMMFAST_HMM_REPR_H
#define HMMFAST_HMM_REPR_H

#include <math.h>
#include <string.h>
#include <stdint.h>
#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 hmm_u128;
static const uint64_t HMM_POW10[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull,
    10000000000000000ull, 100000000000000000ull, 1000000000000000000ull,
    10000000000000000000ull};

/* The multiples m 10^k inside the interval: m_lo <= m <= m_hi (none when m_lo > m_hi);
   also q = floor(x / 10^k) and the remainder's comparison with half a unit. */
static int hmm_level(int k, uint64_t M, int B, uint64_t* m_lo, uint64_t* m_hi,
                     uint64_t* q, int* above_half) {
    uint64_t LO = 2 * M - 1, HI = 2 * M + 1, X2 = 2 * M;
    hmm_u128 p, lo, hi, xv, mask = (((hmm_u128) 1) << B) - 1, r, half;
    if (k >= 0) {  /* LO and HI are odd: never a multiple of 2^B 10^k */
        if (k > 19) { *m_lo = 1; *m_hi = 0; return 0; }
        *m_hi = (HI >> B) / HMM_POW10[k];
        *m_lo = (LO >> B) / HMM_POW10[k] + 1;
        *q = (X2 >> B) / HMM_POW10[k];
        r = (hmm_u128) X2 - (((hmm_u128) *q * HMM_POW10[k]) << B);
        half = ((hmm_u128) HMM_POW10[k]) << (B - 1);
    } else {
        p = -k <= 19 ? (hmm_u128) HMM_POW10[-k]
                     : (hmm_u128) HMM_POW10[19] * HMM_POW10[-k - 19];
        hi = (hmm_u128) HI * p;
        lo = (hmm_u128) LO * p;
        *m_hi = (uint64_t) (hi >> B);
        if ((M & 1) && (hi & mask) == 0) {  /* open interval: HI itself is out */
            if (*m_hi == 0) { *m_lo = 1; return 0; }
            *m_hi -= 1;
        }
        *m_lo = (uint64_t) (lo >> B);
        if ((M & 1) || (lo & mask) != 0) *m_lo += 1;
        xv = (hmm_u128) X2 * p;
        *q = (uint64_t) (xv >> B);
        r = xv & mask;
        half = ((hmm_u128) 1) << (B - 1);
    }
    *above_half = r > half ? 1 : (r == half ? 2 : 0);
    return *m_lo <= *m_hi;
}

static int hmm_repr_double(double x, char* out) {
    uint64_t bits, M, m_lo, m_hi, m, q, n;
    int be, E, B, k, k_fail, mid, above, ndig, decpt, i, e10, len = 0;
    char digits[24];
    memcpy(&bits, &x, 8);
    be = (int) ((bits >> 52) & 0x7ff);
    if ((bits & ((1ull << 52) - 1)) == 0 || be == 0 || be == 0x7ff) return 0;
    E = be - 1075;
    if (E > 0 || E < -62) return 0;
    M = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    B = 1 - E;
    /* binary search for the largest unit 10^k with a multiple in the interval: 17
       significant digits always fit one in (k = e10 - 16), a unit above x never */
    e10 = (int) floor(log10(fabs(x)));
    k = e10 - 18;
    k_fail = e10 + 2;
    while (k_fail - k > 1) {
        mid = k + (k_fail - k) / 2;
        if (hmm_level(mid, M, B, &m_lo, &m_hi, &q, &above)) k = mid;
        else k_fail = mid;
    }
    if (!hmm_level(k, M, B, &m_lo, &m_hi, &q, &above) || above == 2) return 0;
    m = above ? q + 1 : q;  /* the multiple nearest x, kept inside the interval */
    if (m < m_lo) m = m_lo;
    if (m > m_hi) m = m_hi;
    ndig = 0;
    for (n = m; n; n /= 10) digits[ndig++] = (char) ('0' + n % 10);
    decpt = ndig + k;  /* x ~ 0.d1d2... 10^decpt */
    if (ndig == 0 || decpt <= -4 || decpt > 16) return 0;  /* repr's exponent form */
    if (bits >> 63) out[len++] = '-';
    if (decpt <= 0) {
        out[len++] = '0'; out[len++] = '.';
        for (i = 0; i < -decpt; i++) out[len++] = '0';
        for (i = ndig - 1; i >= 0; i--) out[len++] = digits[i];
    } else if (decpt >= ndig) {
        for (i = ndig - 1; i >= 0; i--) out[len++] = digits[i];
        for (i = 0; i < decpt - ndig; i++) out[len++] = '0';
        out[len++] = '.'; out[len++] = '0';
    } else {
        for (i = 0; i < ndig; i++) {
            if (i == decpt) out[len++] = '.';
            out[len++] = digits[ndig - 1 - i];
        }
    }
    return len;
}
#else
static int hmm_repr_double(double x, char* out) { (void) x; (void) out; return 0; }
#endif

#endif  /* HMMFAST_HMM_REPR_H */
