/* Pass 2 over a request body (pass 1: hmm_json.h): the observations of a body the
 * scanner accepted, converted straight into arrays.
 *
 * Design note
 * -----------
 * The fills walk each payload from the offset pass 1 recorded, trusting its structure
 * (the body was validated), and write every number into an array the caller sized from
 * pass 1's counts (elements, or leaves at any depth). Each observation's type and shape
 * is checked as it is read; the first bad one stops the walk with its item, position and
 * byte span (struct hj_fill), from which the service writes its 422.
 *
 * Numbers. Integers are read exactly into int64 (overflow detected). Doubles are
 * correctly rounded: with at most 15 significant digits and a decimal exponent of at
 * most 22 in size, one multiplication or division of two exact doubles (Clinger's fast
 * path); otherwise strtod in the "C" locale (strtod_l: correctly rounded in glibc, musl
 * and macOS; never the process's locale, which may use a decimal comma). So a client's
 * floats arrive bit for bit as Python's float() reads them. An integer token converts as
 * Python converts a JSON integer to float: "-0" is +0.0.
 */
#ifndef HMMFAST_HMM_JSON_FILL_H
#define HMMFAST_HMM_JSON_FILL_H

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__APPLE__) || defined(__FreeBSD__)
#include <xlocale.h>
#endif

#include "hmm_json.h"

/* ------------------------------------------------------------------ pass 2: numbers */

enum { HJ_NUM_OK = 0, HJ_NUM_FLOAT = 1, HJ_NUM_RANGE = 2 };

static const double HJ_POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* End of the number token starting at p (validated by pass 1); *is_int when it has no
 * fraction or exponent. */
static int64_t hj_number_end(const uint8_t *b, int64_t p, int64_t n, int *is_int)
{
    *is_int = 1;
    if (p < n && b[p] == '-') p++;
    while (p < n && b[p] >= '0' && b[p] <= '9') p++;
    if (p < n && b[p] == '.') {
        *is_int = 0;
        p++;
        while (p < n && b[p] >= '0' && b[p] <= '9') p++;
    }
    if (p < n && (b[p] == 'e' || b[p] == 'E')) {
        *is_int = 0;
        p++;
        if (p < n && (b[p] == '+' || b[p] == '-')) p++;
        while (p < n && b[p] >= '0' && b[p] <= '9') p++;
    }
    return p;
}

/* An integer token [p, q) as int64: HJ_NUM_OK, or HJ_NUM_RANGE beyond int64. */
static int hj_to_int64(const uint8_t *b, int64_t p, int64_t q, int64_t *out)
{
    int neg = b[p] == '-';
    uint64_t v = 0, limit;
    if (neg) p++;
    if (q - p <= 18) {  /* below 10^18: no overflow */
        for (; p < q; p++) v = v * 10 + (uint64_t) (b[p] - '0');
        *out = neg ? (int64_t) (0 - v) : (int64_t) v;
        return HJ_NUM_OK;
    }
    limit = neg ? (uint64_t) INT64_MAX + 1u : (uint64_t) INT64_MAX;
    for (; p < q; p++) {
        uint64_t d = (uint64_t) (b[p] - '0');
        if (v > (limit - d) / 10) return HJ_NUM_RANGE;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t) (0 - v) : (int64_t) v;
    return HJ_NUM_OK;
}

#if defined(_WIN32)
static _locale_t hj_c_locale(void)
{
    static _locale_t loc = NULL;
    if (loc == NULL) loc = _create_locale(LC_NUMERIC, "C");
    return loc;
}
#define HJ_STRTOD(s, e) _strtod_l((s), (e), hj_c_locale())
#elif defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__)
static locale_t hj_c_locale(void)
{
    static locale_t loc = (locale_t) 0;
    if (loc == (locale_t) 0) loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
    return loc;
}
#define HJ_STRTOD(s, e) strtod_l((s), (e), hj_c_locale())
#else
#define HJ_STRTOD(s, e) strtod((s), (e))  /* the C library's; "C" locale assumed */
#endif

/* Call once (with the GIL) before converting numbers on other threads. */
static void hj_prepare(void)
{
#if defined(_WIN32) || defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__)
    (void) hj_c_locale();
#endif
}

/* The number token [p, q) as a double, correctly rounded; 0 when it is finite,
 * HJ_NUM_RANGE when it overflows to infinity. */
static int hj_to_double(const uint8_t *b, int64_t p, int64_t q, int is_int, double *out)
{
    int neg = 0, digits = 0, exp10 = 0, esign = 1, e = 0;
    uint64_t m = 0;
    int64_t i = p;
    char small[64], *buf;
    double v;
    if (b[i] == '-') { neg = 1; i++; }
    for (; i < q && b[i] >= '0' && b[i] <= '9'; i++) {
        if (m == 0 && b[i] == '0') continue;  /* leading zeros are not significant */
        if (digits < 19) m = m * 10 + (uint64_t) (b[i] - '0'); else exp10++;
        digits++;
    }
    if (i < q && b[i] == '.') {
        for (i++; i < q && b[i] >= '0' && b[i] <= '9'; i++) {
            if (m == 0 && b[i] == '0') { exp10--; continue; }
            if (digits < 19) { m = m * 10 + (uint64_t) (b[i] - '0'); exp10--; }
            digits++;
        }
    }
    if (i < q && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (b[i] == '+' || b[i] == '-') { esign = b[i] == '-' ? -1 : 1; i++; }
        for (; i < q; i++) { if (e < 100000) e = e * 10 + (b[i] - '0'); }
        exp10 += esign * e;
    }
    if (m == 0) {  /* zero: an integer zero is +0.0 as in Python's float(int) */
        *out = (neg && !is_int) ? -0.0 : 0.0;
        return HJ_NUM_OK;
    }
#if FLT_EVAL_METHOD == 0  /* doubles computed as doubles: no double rounding */
    if (digits <= 15 && exp10 >= -22 && exp10 <= 22) {  /* exact operands, one rounding */
        v = (double) m;
        v = exp10 >= 0 ? v * HJ_POW10[exp10] : v / HJ_POW10[-exp10];
        *out = neg ? -v : v;
        return HJ_NUM_OK;
    }
#endif
    if (q - p < (int64_t) sizeof(small)) buf = small;
    else if ((buf = (char *) malloc((size_t) (q - p + 1))) == NULL) return HJ_NUM_RANGE;
    memcpy(buf, b + p, (size_t) (q - p));
    buf[q - p] = '\0';
    v = HJ_STRTOD(buf, NULL);
    if (buf != small) free(buf);
    *out = v;
    return isinf(v) ? HJ_NUM_RANGE : HJ_NUM_OK;
}

/* ------------------------------------------------------------------ pass 2: payloads */

/* what went wrong with an observation */
enum {
    HJ_F_OK = 0, HJ_F_NOT_INT, HJ_F_INT_RANGE, HJ_F_NOT_NUMBER, HJ_F_RANGE,
    HJ_F_FRAME_LEN, HJ_F_NOT_FRAME, HJ_F_IN_FRAME, HJ_F_SYMBOL
};

typedef struct {
    int code;
    int64_t item, position;    /* the item and the observation's index in its payload */
    int64_t start, end;        /* the offending token's span (the observation's, or the
                                  value inside a frame for HJ_F_IN_FRAME) */
    int64_t count;             /* HJ_F_FRAME_LEN: the frame's length */
} hj_fill;

static int64_t hj_skip_ws(const uint8_t *b, int64_t p, int64_t n)
{
    while (p < n && hj_is_ws(b[p])) p++;
    return p;
}

/* End of the (validated) value starting at p. */
static int64_t hj_skip_value(const uint8_t *b, int64_t p, int64_t n)
{
    int depth = 0;
    do {
        uint8_t c = b[p];
        if (c == '"') {
            for (p++; p < n && b[p] != '"'; p++) if (b[p] == '\\') p++;
            p++;
        } else if (c == '[' || c == '{') { depth++; p++; }
        else if (c == ']' || c == '}') { depth--; p++; }
        else if (c == ',' || c == ':' || hj_is_ws(c)) p++;
        else {
            while (p < n && b[p] != ',' && b[p] != ']' && b[p] != '}' && b[p] != ':' &&
                   !hj_is_ws(b[p])) p++;
        }
    } while (depth > 0 && p < n);
    return p;
}

static int hj_fail(hj_fill *r, int code, int64_t item, int64_t position, int64_t start,
                   int64_t end)
{
    r->code = code;
    r->item = item;
    r->position = position;
    r->start = start;
    r->end = end;
    return code;
}

static int hj_is_number_start(uint8_t c) { return c == '-' || (c >= '0' && c <= '9'); }

/* Integer symbols: item s's payload array starts at p_start[s * stride] and holds
 * p_count[s * stride] integers; all go into out (int64, concatenated). With n_symbols > 0
 * a symbol outside [0, n_symbols) stops it too (HJ_F_SYMBOL, the symbol in r->count). */
static int hj_fill_symbols(const uint8_t *b, int64_t n, int64_t n_items,
                           const int64_t *p_start, const int64_t *p_count, int64_t stride,
                           int64_t n_symbols, int64_t *out, hj_fill *r)
{
    int64_t s, t, p, q, k = 0, v;
    int is_int;
    memset(r, 0, sizeof(*r));
    for (s = 0; s < n_items; s++) {
        if (p_start[s * stride] < 0) continue;  /* no payload array: nothing to read */
        p = p_start[s * stride] + 1;  /* after '[' */
        for (t = 0; t < p_count[s * stride]; t++) {
            p = hj_skip_ws(b, p, n);
            if (!hj_is_number_start(b[p]))
                return hj_fail(r, HJ_F_NOT_NUMBER, s, t, p, hj_skip_value(b, p, n));
            q = hj_number_end(b, p, n, &is_int);
            if (!is_int) return hj_fail(r, HJ_F_NOT_INT, s, t, p, q);
            if (hj_to_int64(b, p, q, &v)) return hj_fail(r, HJ_F_INT_RANGE, s, t, p, q);
            if (n_symbols > 0 && (v < 0 || v >= n_symbols)) {
                r->count = v;
                return hj_fail(r, HJ_F_SYMBOL, s, t, p, q);
            }
            out[k++] = v;
            p = hj_skip_ws(b, q, n) + 1;  /* past ',' or ']' */
        }
    }
    return HJ_F_OK;
}

/* Frames of d numbers: each observation is an array of d numbers, or (bare) a number
 * when bare is set; written row after row into out (float64, leaves in order). The
 * payloads are given as for hj_fill_symbols. */
static int hj_fill_frames(const uint8_t *b, int64_t n, int64_t n_items,
                          const int64_t *p_start, const int64_t *p_count, int64_t stride,
                          int64_t d, int bare, double *out, hj_fill *r)
{
    int64_t s, t, p, q, k = 0, j, first;
    int is_int;
    memset(r, 0, sizeof(*r));
    for (s = 0; s < n_items; s++) {
        if (p_start[s * stride] < 0) continue;
        p = p_start[s * stride] + 1;
        for (t = 0; t < p_count[s * stride]; t++) {
            p = hj_skip_ws(b, p, n);
            first = p;
            if (b[p] == '[') {
                p = hj_skip_ws(b, p + 1, n);
                for (j = 0; b[p] != ']'; j++) {
                    if (j == d) {  /* too long: count its elements for the message */
                        int64_t u = hj_skip_ws(b, first + 1, n), cnt = 0;
                        while (b[u] != ']') {
                            u = hj_skip_ws(b, hj_skip_value(b, u, n), n);
                            cnt++;
                            if (b[u] == ',') u = hj_skip_ws(b, u + 1, n);
                        }
                        r->count = cnt;
                        return hj_fail(r, HJ_F_FRAME_LEN, s, t, first, u + 1);
                    }
                    if (!hj_is_number_start(b[p]))
                        return hj_fail(r, HJ_F_IN_FRAME, s, t, p, hj_skip_value(b, p, n));
                    q = hj_number_end(b, p, n, &is_int);
                    if (hj_to_double(b, p, q, is_int, out + k + j))
                        return hj_fail(r, HJ_F_RANGE, s, t, p, q);
                    p = hj_skip_ws(b, q, n);
                    if (b[p] == ',') p = hj_skip_ws(b, p + 1, n);
                }
                if (j != d) {
                    r->count = j;
                    return hj_fail(r, HJ_F_FRAME_LEN, s, t, first, p + 1);
                }
                k += d;
                p = hj_skip_ws(b, p + 1, n) + 1;
            } else if (bare && hj_is_number_start(b[p])) {
                q = hj_number_end(b, p, n, &is_int);
                if (hj_to_double(b, p, q, is_int, out + k))
                    return hj_fail(r, HJ_F_RANGE, s, t, p, q);
                k += 1;
                p = hj_skip_ws(b, q, n) + 1;
            } else {
                return hj_fail(r, HJ_F_NOT_FRAME, s, t, p, hj_skip_value(b, p, n));
            }
        }
    }
    return HJ_F_OK;
}

/* Every scalar of the value [start, end) in order (nested arrays flattened, row-major):
 * count numbers into out (int64 when integer, else float64). */
static int hj_fill_numbers(const uint8_t *b, int64_t start, int64_t end, int64_t count,
                           int integer, void *out, hj_fill *r)
{
    int64_t p = start, q, k = 0;
    int is_int;
    memset(r, 0, sizeof(*r));
    while (p < end && k < count) {
        uint8_t c = b[p];
        if (c == '[' || c == ']' || c == ',' || hj_is_ws(c)) { p++; continue; }
        if (!hj_is_number_start(c))
            return hj_fail(r, HJ_F_NOT_NUMBER, 0, k, p, hj_skip_value(b, p, end));
        q = hj_number_end(b, p, end, &is_int);
        if (integer) {
            if (!is_int) return hj_fail(r, HJ_F_NOT_INT, 0, k, p, q);
            if (hj_to_int64(b, p, q, (int64_t *) out + k))
                return hj_fail(r, HJ_F_INT_RANGE, 0, k, p, q);
        } else if (hj_to_double(b, p, q, is_int, (double *) out + k)) {
            return hj_fail(r, HJ_F_RANGE, 0, k, p, q);
        }
        k++;
        p = q;
    }
    return HJ_F_OK;
}

#endif
