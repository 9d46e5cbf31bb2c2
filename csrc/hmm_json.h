/* Request bodies of hmmfast serve: a streaming JSON validator that counts before anything
 * is built, and converters that write the observations straight into arrays.
 *
 * Design note
 * -----------
 * A body is read in two passes over its bytes, neither of which makes a Python object:
 *
 * 1. hj_feed, chunk by chunk as the body arrives (a state machine over single bytes, so
 *    a token may straddle chunks), validates the bytes as one strict RFC 8259 JSON value:
 *    UTF-8 only (a leading BOM is skipped), no NaN or Infinity, no control character in
 *    a string, nesting at most HJ_MAX_DEPTH. On the way it follows one path of the
 *    request's schema: the root object's member named `list_key` ("sessions", or
 *    "inputs" for the Open Inference Protocol) is the list; each of its items is an
 *    object whose member `payload_key` ("obs", "data") is the item's payload, or (when
 *    `array_items`) an array that is its own payload. It counts the items and the
 *    payload's elements and records byte spans: the root's members (key, value, kind),
 *    each item, its payload and its "id". A count beyond its limit stops the scan at
 *    that byte (HJ_LIMIT_ITEMS, HJ_LIMIT_PAYLOAD): an over-limit body is refused after
 *    reading only as much as it takes to count past the limit, and the records never
 *    exceed max_items + 1 items of HJ_NF int64 each. Keys are matched after decoding
 *    their escapes ("sess\u0069ons" is "sessions").
 * 2. hj_fill_symbols / hj_fill_frames / hj_fill_numbers (hmm_json_fill.h) run on the
 *    complete body once pass 1 has accepted it (so they may trust its structure) and
 *    write each payload's numbers into arrays the caller sized from pass 1's counts.
 *    They check each observation's type and shape and stop at the first bad one,
 *    reporting its item, position and byte span (struct hj_fill).
 *
 * Cost: pass 1 is one switch per byte (~2-4 ns/byte here: a 16 MiB body in ~50 ms, a
 * 64 KiB chunk in ~0.2 ms); pass 2 reads each number once.
 */
#ifndef HMMFAST_HMM_JSON_H
#define HMMFAST_HMM_JSON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HJ_MAX_DEPTH 64
#define HJ_MAX_ROOT 16   /* root members recorded (the endpoints take at most 5) */
#define HJ_KEY_MAX 16    /* decoded key bytes kept for matching */

/* value kinds */
enum { HJ_NONE = 0, HJ_OBJECT, HJ_ARRAY, HJ_STRING, HJ_NUMBER, HJ_TRUE, HJ_FALSE, HJ_NULL };

/* scan status: running, done, or why it stopped */
enum {
    HJ_RUNNING = 0, HJ_DONE = 1,
    HJ_SYNTAX = -1, HJ_LIMIT_ITEMS = -2, HJ_LIMIT_PAYLOAD = -3, HJ_NO_MEMORY = -4
};

/* syntax error details (hj_detail_text) */
enum {
    HJ_E_NONE = 0, HJ_E_VALUE, HJ_E_AFTER_ARRAY, HJ_E_AFTER_MEMBER, HJ_E_KEY, HJ_E_COLON,
    HJ_E_CONTROL, HJ_E_ESCAPE, HJ_E_UNICODE, HJ_E_UTF8, HJ_E_NUMBER, HJ_E_LITERAL,
    HJ_E_NAN, HJ_E_DEPTH, HJ_E_TRAILING, HJ_E_END, HJ_E_EMPTY, HJ_E_NOT_UTF8
};

/* an item's record: HJ_NF int64 fields */
enum {
    HJ_KIND = 0, HJ_FLAGS, HJ_START, HJ_END, HJ_P_START, HJ_P_END, HJ_P_KIND, HJ_P_COUNT,
    HJ_P_LEAVES, HJ_ID_START, HJ_ID_END, HJ_ID_KIND, HJ_SEG_START, HJ_SEG_END, HJ_SEG_KIND,
    HJ_NF
};
/* item flags */
enum { HJ_HAS_PAYLOAD = 1, HJ_HAS_ID = 2, HJ_UNKNOWN_KEY = 4, HJ_DUP_PAYLOAD = 8,
       HJ_DUP_ID = 16, HJ_HAS_SEGMENT = 32, HJ_DUP_SEGMENT = 64 };

/* roles of a container */
enum { R_OTHER = 0, R_ROOT, R_LIST, R_ITEM, R_PAYLOAD, R_INSIDE };
/* what a member's key names */
enum { K_OTHER = 0, K_LIST, K_PAYLOAD, K_ID, K_SEGMENT };
/* what finishing a value updates (bit mask) */
enum { E_ROOT = 1, E_ENTRY = 2, E_LIST = 4, E_ITEM = 8, E_PAYLOAD = 16, E_ID = 32,
       E_SEGMENT = 64 };

/* lexer states */
enum {
    S_BOM = 0, S_VALUE, S_ELEM_OR_END, S_AFTER, S_KEY_OR_END, S_KEY, S_COLON,
    S_STRING, S_ESC, S_UHEX, S_UTF8, S_NUM_MINUS, S_NUM_ZERO, S_NUM_INT, S_NUM_DOT,
    S_NUM_FRAC, S_NUM_E, S_NUM_ESIGN, S_NUM_EXP, S_LITERAL, S_STOPPED
};

typedef struct {
    uint8_t type;    /* '{' or '[' */
    uint8_t role;
    uint8_t mask;    /* E_* to apply when it closes */
    int64_t count;   /* elements (arrays) or members (objects) so far */
} hj_frame;

typedef struct {
    /* configuration */
    char list_key[HJ_KEY_MAX + 1], payload_key[HJ_KEY_MAX + 1];
    int list_key_len, payload_key_len, id_key, strict_items, array_items;
    int64_t max_items, max_payload;
    /* lexer */
    int state, depth, bom, is_key, key_len, key_ascii, u_left, utf8_left, lit_i, member;
    uint32_t u_val;
    uint8_t utf8_lo, utf8_hi;
    const char *lit;
    int64_t pos, value_start, key_start, key_end;
    uint8_t scalar_mask;
    char key[HJ_KEY_MAX];
    hj_frame stack[HJ_MAX_DEPTH];
    /* results */
    int status, detail;
    int64_t err_pos, err_item, err_count;
    int root_kind;
    int64_t root_start, root_end;
    int n_root, n_root_seen;
    int64_t root_rec[HJ_MAX_ROOT][5];  /* key start, key end, value start, value end, kind */
    int list_kind, list_seen;
    int64_t list_start, list_end;
    int64_t *items, n_items, cap_items;
    int64_t n_not_arrays, min_count, total_count;  /* items that are not arrays; payload
                                                      element counts: least, sum */
    int64_t unknown_item, unknown_start, unknown_end;
} hj_scanner;

static const char *hj_detail_text(int detail)
{
    switch (detail) {
    case HJ_E_VALUE: return "expected a value";
    case HJ_E_AFTER_ARRAY: return "expected ',' or ']' after an array element";
    case HJ_E_AFTER_MEMBER: return "expected ',' or '}' after an object member";
    case HJ_E_KEY: return "expected a string key in double quotes";
    case HJ_E_COLON: return "expected ':' after an object key";
    case HJ_E_CONTROL: return "a control character in a string (escape it)";
    case HJ_E_ESCAPE: return "an invalid escape in a string";
    case HJ_E_UNICODE: return "an invalid \\u escape (4 hex digits expected)";
    case HJ_E_UTF8: return "bytes that are not UTF-8";
    case HJ_E_NUMBER: return "an invalid number";
    case HJ_E_LITERAL: return "an invalid literal (true, false and null are)";
    case HJ_E_NAN: return "NaN or Infinity, which are not JSON numbers";
    case HJ_E_DEPTH: return "nesting deeper than 64 levels";
    case HJ_E_TRAILING: return "more data after the JSON value";
    case HJ_E_END: return "the body ends inside a value";
    case HJ_E_EMPTY: return "no JSON value";
    case HJ_E_NOT_UTF8: return "a body that is not UTF-8 (JSON must be UTF-8, RFC 8259)";
    default: return "an error";
    }
}

static void hj_init(hj_scanner *s, const char *list_key, const char *payload_key,
                    int id_key, int strict_items, int array_items, int64_t max_items,
                    int64_t max_payload)
{
    memset(s, 0, sizeof(*s));
    s->list_key_len = (int) strlen(list_key);
    if (s->list_key_len > HJ_KEY_MAX) s->list_key_len = HJ_KEY_MAX;
    memcpy(s->list_key, list_key, (size_t) s->list_key_len);
    s->payload_key_len = (int) strlen(payload_key);
    if (s->payload_key_len > HJ_KEY_MAX) s->payload_key_len = HJ_KEY_MAX;
    memcpy(s->payload_key, payload_key, (size_t) s->payload_key_len);
    s->id_key = id_key;
    s->strict_items = strict_items;
    s->array_items = array_items;
    s->max_items = max_items;
    s->max_payload = max_payload;
    s->state = S_BOM;
    s->unknown_item = -1;
    s->err_item = -1;
    s->root_kind = HJ_NONE;
    s->list_kind = HJ_NONE;
    s->min_count = INT64_MAX;
}

static void hj_free(hj_scanner *s)
{
    free(s->items);
    s->items = NULL;
    s->cap_items = 0;
}

static int hj_stop(hj_scanner *s, int status, int detail)
{
    s->status = status;
    s->detail = detail;
    s->err_pos = s->pos;
    s->state = S_STOPPED;
    return status;
}

/* A syntax error at byte c; a NUL byte says UTF-16 or -32 more clearly. */
static int hj_bad(hj_scanner *s, uint8_t c, int detail)
{
    return hj_stop(s, HJ_SYNTAX, c == 0 ? HJ_E_NOT_UTF8 : detail);
}

static int hj_key_is(const hj_scanner *s, const char *name, int len)
{
    return len > 0 && s->key_ascii && s->key_len == len &&
           memcmp(s->key, name, (size_t) len) == 0;
}

static int64_t *hj_item(hj_scanner *s) { return s->items + (s->n_items - 1) * HJ_NF; }

/* A new item in the list; 0, or a stop status. */
static int hj_new_item(hj_scanner *s, int kind)
{
    int64_t *it;
    if (s->n_items >= s->max_items) {
        s->err_count = s->n_items + 1;  /* the count that broke the limit */
        return hj_stop(s, HJ_LIMIT_ITEMS, HJ_E_NONE);
    }
    if (s->n_items == s->cap_items) {
        int64_t cap = s->cap_items ? 2 * s->cap_items : 64;
        int64_t *grown;
        if (cap > s->max_items) cap = s->max_items;
        grown = (int64_t *) realloc(s->items, (size_t) (cap * HJ_NF) * sizeof(int64_t));
        if (grown == NULL) return hj_stop(s, HJ_NO_MEMORY, HJ_E_NONE);
        s->items = grown;
        s->cap_items = cap;
    }
    s->n_items += 1;
    it = hj_item(s);
    memset(it, 0, HJ_NF * sizeof(int64_t));
    it[HJ_KIND] = kind;
    it[HJ_START] = s->pos;
    if (kind != HJ_ARRAY) s->n_not_arrays += 1;
    it[HJ_P_START] = it[HJ_ID_START] = it[HJ_SEG_START] = -1;
    return 0;
}

/* A value of `kind` starts at s->pos: route it, record it, count it. Returns the role a
 * container takes (0 for a scalar) and sets *mask to what its end updates; or a negative
 * stop status. */
static int hj_begin(hj_scanner *s, int kind, uint8_t *mask)
{
    int role = R_OTHER, container = kind == HJ_OBJECT || kind == HJ_ARRAY;
    hj_frame *parent;
    int64_t *it;
    *mask = 0;
    if (s->depth == 0) {
        s->root_kind = kind;
        s->root_start = s->pos;
        *mask = E_ROOT;
        return kind == HJ_OBJECT ? R_ROOT : R_OTHER;
    }
    parent = &s->stack[s->depth - 1];
    if (parent->type == '[') parent->count += 1;
    switch (parent->role) {
    case R_ROOT:
        if (s->n_root < HJ_MAX_ROOT) {
            int64_t *r = s->root_rec[s->n_root++];
            r[0] = s->key_start; r[1] = s->key_end; r[2] = s->pos; r[3] = -1; r[4] = kind;
            *mask |= E_ENTRY;
        }
        s->n_root_seen += 1;
        if (s->member == K_LIST && !s->list_seen) {
            s->list_seen = 1;
            s->list_kind = kind;
            s->list_start = s->pos;
            *mask |= E_LIST;
            if (kind == HJ_ARRAY) role = R_LIST;
        }
        break;
    case R_LIST:
        if (hj_new_item(s, kind)) return s->status;
        *mask |= E_ITEM;
        if (kind == HJ_OBJECT) role = R_ITEM;
        else if (kind == HJ_ARRAY && s->array_items) {
            it = hj_item(s);
            it[HJ_FLAGS] |= HJ_HAS_PAYLOAD;
            it[HJ_P_START] = s->pos;
            it[HJ_P_KIND] = HJ_ARRAY;
            *mask |= E_PAYLOAD;
            role = R_PAYLOAD;
        }
        break;
    case R_ITEM:
        it = hj_item(s);
        if (s->member == K_PAYLOAD) {
            if (it[HJ_FLAGS] & HJ_HAS_PAYLOAD) { it[HJ_FLAGS] |= HJ_DUP_PAYLOAD; break; }
            it[HJ_FLAGS] |= HJ_HAS_PAYLOAD;
            it[HJ_P_START] = s->pos;
            it[HJ_P_KIND] = kind;
            *mask |= E_PAYLOAD;
            if (kind == HJ_ARRAY) role = R_PAYLOAD;
            else if (!container) it[HJ_P_LEAVES] = 1;
        } else if (s->member == K_ID) {
            if (it[HJ_FLAGS] & HJ_HAS_ID) { it[HJ_FLAGS] |= HJ_DUP_ID; break; }
            it[HJ_FLAGS] |= HJ_HAS_ID;
            it[HJ_ID_START] = s->pos;
            it[HJ_ID_KIND] = kind;
            *mask |= E_ID;
        } else if (s->member == K_SEGMENT) {
            if (it[HJ_FLAGS] & HJ_HAS_SEGMENT) { it[HJ_FLAGS] |= HJ_DUP_SEGMENT; break; }
            it[HJ_FLAGS] |= HJ_HAS_SEGMENT;
            it[HJ_SEG_START] = s->pos;
            it[HJ_SEG_KIND] = kind;
            *mask |= E_SEGMENT;
        }
        break;
    case R_PAYLOAD:
        if (parent->count > s->max_payload) {
            s->err_item = s->n_items - 1;
            s->err_count = parent->count;
            return hj_stop(s, HJ_LIMIT_PAYLOAD, HJ_E_NONE);
        }
        /* fall through */
    case R_INSIDE:
        if (container) role = R_INSIDE;
        else hj_item(s)[HJ_P_LEAVES] += 1;
        break;
    default:
        break;
    }
    return role;
}

/* The value whose end updates `mask` ended just before offset `end`. */
static void hj_end(hj_scanner *s, uint8_t mask, int64_t end, int64_t count)
{
    if (mask & E_ROOT) s->root_end = end;
    if (mask & E_ENTRY) s->root_rec[s->n_root - 1][3] = end;
    if (mask & E_LIST) s->list_end = end;
    if (mask & (E_ITEM | E_PAYLOAD | E_ID | E_SEGMENT)) {
        int64_t *it = hj_item(s);
        if (mask & E_ITEM) it[HJ_END] = end;
        if (mask & E_PAYLOAD) {
            it[HJ_P_END] = end;
            if (it[HJ_P_KIND] == HJ_ARRAY) {
                it[HJ_P_COUNT] = count;
                s->total_count += count;
                if (count < s->min_count) s->min_count = count;
            }
        }
        if (mask & E_ID) it[HJ_ID_END] = end;
        if (mask & E_SEGMENT) it[HJ_SEG_END] = end;
    }
}

static int hj_open(hj_scanner *s, int kind)
{
    uint8_t mask;
    int role = hj_begin(s, kind, &mask);
    hj_frame *f;
    if (role < 0) return role;
    if (s->depth >= HJ_MAX_DEPTH) return hj_stop(s, HJ_SYNTAX, HJ_E_DEPTH);
    f = &s->stack[s->depth++];
    f->type = kind == HJ_OBJECT ? '{' : '[';
    f->role = (uint8_t) role;
    f->mask = mask;
    f->count = 0;
    s->state = kind == HJ_OBJECT ? S_KEY_OR_END : S_ELEM_OR_END;
    return 0;
}

static void hj_close(hj_scanner *s)
{
    hj_frame *f = &s->stack[--s->depth];
    hj_end(s, f->mask, s->pos + 1, f->count);
    s->state = S_AFTER;
}

static int hj_scalar(hj_scanner *s, int kind, int state)
{
    int role = hj_begin(s, kind, &s->scalar_mask);
    if (role < 0) return role;
    s->value_start = s->pos;
    s->state = state;
    return 0;
}

static void hj_scalar_end(hj_scanner *s, int64_t end)
{
    hj_end(s, s->scalar_mask, end, 0);
    s->state = S_AFTER;
}

static void hj_key_done(hj_scanner *s)
{
    hj_frame *f = &s->stack[s->depth - 1];
    s->key_end = s->pos + 1;
    s->member = K_OTHER;
    if (f->role == R_ROOT) {
        if (hj_key_is(s, s->list_key, s->list_key_len)) s->member = K_LIST;
    } else if (f->role == R_ITEM) {
        if (hj_key_is(s, s->payload_key, s->payload_key_len)) s->member = K_PAYLOAD;
        else if (s->id_key && hj_key_is(s, "id", 2)) s->member = K_ID;
        else if (s->id_key && hj_key_is(s, "segment", 7)) s->member = K_SEGMENT;
        else if (s->strict_items) {
            int64_t *it = hj_item(s);
            it[HJ_FLAGS] |= HJ_UNKNOWN_KEY;
            if (s->unknown_item < 0) {
                s->unknown_item = s->n_items - 1;
                s->unknown_start = s->key_start;
                s->unknown_end = s->key_end;
            }
        }
    }
    f->count += 1;
    s->state = S_COLON;
}

static void hj_key_byte(hj_scanner *s, uint32_t c)
{
    if (!s->is_key) return;
    if (c >= 0x80 || s->key_len >= HJ_KEY_MAX) { s->key_ascii = 0; return; }
    s->key[s->key_len++] = (char) c;
}

static int hj_is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int hj_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* End of a valid number token at buf[i] whose terminator is in the buffer, or -1 (invalid
 * or cut by the buffer's end: the byte-at-a-time path then handles it). */
static int64_t hj_lex_number(const uint8_t *buf, int64_t i, int64_t n)
{
    if (buf[i] == '-') i++;
    if (i >= n) return -1;
    if (buf[i] == '0') i++;
    else if (buf[i] >= '1' && buf[i] <= '9') {
        while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
    } else return -1;
    if (i < n && buf[i] == '.') {
        int64_t d = ++i;
        while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
        if (i == d) return -1;
    }
    if (i < n && (buf[i] == 'e' || buf[i] == 'E')) {
        int64_t d;
        i++;
        if (i < n && (buf[i] == '+' || buf[i] == '-')) i++;
        d = i;
        while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
        if (i == d) return -1;
    }
    if (i >= n) return -1;
    if (buf[i] >= '0' && buf[i] <= '9') return -1;  /* "01" */
    return i;
}

/* Inside hj_feed: advance over the following bytes while `cond` (on buf[i + 1]) holds,
 * leaving i and pos on the last of them (the loop's own step moves past it). */
#define HJ_RUN(cond) do { int64_t i0_ = i; while (i + 1 < n && (cond)) i++; \
                          s->pos += i - i0_; } while (0)

/* The fast path for what most of a body is: numbers in a payload's arrays. From a number
 * at buf[*i] (state S_VALUE), count and skip the run of numbers and commas that follows
 * inside the same array, as the byte-at-a-time path would, and leave *i on the first
 * byte it did not take (state S_VALUE after a comma, else S_AFTER). Returns 0 without
 * consuming anything when the run does not apply: another container, a limit about to be
 * reached, a token cut by the buffer's end or invalid (the slow path reports it). */
static int hj_numbers_run(hj_scanner *s, const uint8_t *buf, int64_t *ip, int64_t n)
{
    hj_frame *f;
    int64_t i = *ip, j, *it;
    if (s->depth == 0) return 0;
    f = &s->stack[s->depth - 1];
    if (f->type != '[' || (f->role != R_PAYLOAD && f->role != R_INSIDE)) return 0;
    it = hj_item(s);
    for (;;) {
        if (f->role == R_PAYLOAD && f->count >= s->max_payload) break;
        j = hj_lex_number(buf, i, n);
        if (j < 0) break;
        f->count += 1;
        it[HJ_P_LEAVES] += 1;
        while (j < n && hj_is_ws(buf[j])) j++;
        if (j < n && buf[j] == ',') {
            j++;
            while (j < n && hj_is_ws(buf[j])) j++;
            s->state = S_VALUE;
        } else {
            s->state = S_AFTER;
        }
        s->pos += j - i;
        i = j;
        if (s->state == S_AFTER || j >= n || !(buf[j] == '-' || (buf[j] >= '0' && buf[j] <= '9')))
            break;
    }
    if (i == *ip) return 0;
    *ip = i;
    return 1;
}

/* Consume one chunk of the body. Returns s->status (HJ_RUNNING while more may come). */
static int hj_feed(hj_scanner *s, const uint8_t *buf, int64_t n)
{
    int64_t i = 0;
    int h;
    while (i < n) {
        uint8_t c = buf[i];
        switch (s->state) {
        case S_STOPPED:
            return s->status;
        case S_BOM:  /* the first bytes: an optional UTF-8 BOM, or a telltale of UTF-16/32 */
            if (s->bom == 0 && (c == 0x00 || c == 0xFE || c == 0xFF))
                return hj_stop(s, HJ_SYNTAX, HJ_E_NOT_UTF8);
            if (c == (uint8_t) "\xEF\xBB\xBF"[s->bom]) {
                if (++s->bom == 3) s->state = S_VALUE;
                break;
            }
            if (s->bom) return hj_stop(s, HJ_SYNTAX, HJ_E_UTF8);
            s->state = S_VALUE;
            continue;
        case S_ELEM_OR_END:
            if (hj_is_ws(c)) break;
            if (c == ']') { hj_close(s); break; }
            s->state = S_VALUE;
            continue;
        case S_VALUE:
            if (hj_is_ws(c)) { HJ_RUN(hj_is_ws(buf[i + 1])); break; }
            switch (c) {
            case '{': if (hj_open(s, HJ_OBJECT)) return s->status; break;
            case '[': if (hj_open(s, HJ_ARRAY)) return s->status; break;
            case '"':
                if (hj_scalar(s, HJ_STRING, S_STRING)) return s->status;
                s->is_key = 0;
                break;
            case '-':
                if (hj_numbers_run(s, buf, &i, n)) continue;
                if (hj_scalar(s, HJ_NUMBER, S_NUM_MINUS)) return s->status;
                break;
            case '0':
                if (hj_numbers_run(s, buf, &i, n)) continue;
                if (hj_scalar(s, HJ_NUMBER, S_NUM_ZERO)) return s->status;
                break;
            case 't': case 'f': case 'n':
                if (hj_scalar(s, c == 't' ? HJ_TRUE : c == 'f' ? HJ_FALSE : HJ_NULL,
                              S_LITERAL)) return s->status;
                s->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                s->lit_i = 1;
                break;
            case 'N': case 'I':
                return hj_stop(s, HJ_SYNTAX, HJ_E_NAN);
            default:
                if (c >= '1' && c <= '9') {
                    if (hj_numbers_run(s, buf, &i, n)) continue;
                    if (hj_scalar(s, HJ_NUMBER, S_NUM_INT)) return s->status;
                    break;
                }
                return hj_bad(s, c, s->depth == 0 && s->pos == 0 && c >= 0x80 ?
                              HJ_E_NOT_UTF8 : HJ_E_VALUE);
            }
            break;
        case S_AFTER:
            if (hj_is_ws(c)) { HJ_RUN(hj_is_ws(buf[i + 1])); break; }
            if (s->depth == 0) return hj_stop(s, HJ_SYNTAX, HJ_E_TRAILING);
            if (s->stack[s->depth - 1].type == '[') {
                if (c == ',') s->state = S_VALUE;
                else if (c == ']') hj_close(s);
                else return hj_bad(s, c, HJ_E_AFTER_ARRAY);
            } else {
                if (c == ',') s->state = S_KEY;
                else if (c == '}') hj_close(s);
                else return hj_bad(s, c, HJ_E_AFTER_MEMBER);
            }
            break;
        case S_KEY_OR_END:
            if (hj_is_ws(c)) break;
            if (c == '}') { hj_close(s); break; }
            s->state = S_KEY;
            continue;
        case S_KEY:
            if (hj_is_ws(c)) break;
            if (c != '"') return hj_bad(s, c, HJ_E_KEY);
            s->is_key = 1;
            s->key_len = 0;
            s->key_ascii = 1;
            s->key_start = s->pos;
            s->state = S_STRING;
            break;
        case S_COLON:
            if (hj_is_ws(c)) break;
            if (c != ':') return hj_bad(s, c, HJ_E_COLON);
            s->state = S_VALUE;
            break;
        case S_STRING:
            if (c == '"') {
                if (s->is_key) hj_key_done(s);
                else hj_scalar_end(s, s->pos + 1);
            } else if (c == '\\') {
                s->state = S_ESC;
            } else if (c < 0x20) {
                return hj_bad(s, c, HJ_E_CONTROL);
            } else if (c < 0x80) {
                if (s->is_key) hj_key_byte(s, c);
                else HJ_RUN(buf[i + 1] >= 0x20 && buf[i + 1] < 0x80 && buf[i + 1] != '"' &&
                            buf[i + 1] != '\\');
            } else {
                s->key_ascii = 0;
                if (c >= 0xC2 && c <= 0xDF) { s->utf8_left = 1; s->utf8_lo = 0x80; s->utf8_hi = 0xBF; }
                else if (c == 0xE0) { s->utf8_left = 2; s->utf8_lo = 0xA0; s->utf8_hi = 0xBF; }
                else if (c == 0xED) { s->utf8_left = 2; s->utf8_lo = 0x80; s->utf8_hi = 0x9F; }
                else if (c >= 0xE1 && c <= 0xEF) { s->utf8_left = 2; s->utf8_lo = 0x80; s->utf8_hi = 0xBF; }
                else if (c == 0xF0) { s->utf8_left = 3; s->utf8_lo = 0x90; s->utf8_hi = 0xBF; }
                else if (c >= 0xF1 && c <= 0xF3) { s->utf8_left = 3; s->utf8_lo = 0x80; s->utf8_hi = 0xBF; }
                else if (c == 0xF4) { s->utf8_left = 3; s->utf8_lo = 0x80; s->utf8_hi = 0x8F; }
                else return hj_stop(s, HJ_SYNTAX, HJ_E_UTF8);
                s->state = S_UTF8;
            }
            break;
        case S_UTF8:
            if (c < s->utf8_lo || c > s->utf8_hi) return hj_stop(s, HJ_SYNTAX, HJ_E_UTF8);
            s->utf8_lo = 0x80;
            s->utf8_hi = 0xBF;
            if (--s->utf8_left == 0) s->state = S_STRING;
            break;
        case S_ESC:
            switch (c) {
            case '"': case '\\': case '/': hj_key_byte(s, c); s->state = S_STRING; break;
            case 'b': hj_key_byte(s, '\b'); s->state = S_STRING; break;
            case 'f': hj_key_byte(s, '\f'); s->state = S_STRING; break;
            case 'n': hj_key_byte(s, '\n'); s->state = S_STRING; break;
            case 'r': hj_key_byte(s, '\r'); s->state = S_STRING; break;
            case 't': hj_key_byte(s, '\t'); s->state = S_STRING; break;
            case 'u': s->u_left = 4; s->u_val = 0; s->state = S_UHEX; break;
            default: return hj_stop(s, HJ_SYNTAX, HJ_E_ESCAPE);
            }
            break;
        case S_UHEX:
            h = hj_hex(c);
            if (h < 0) return hj_stop(s, HJ_SYNTAX, HJ_E_UNICODE);
            s->u_val = (s->u_val << 4) | (uint32_t) h;
            if (--s->u_left == 0) {
                hj_key_byte(s, s->u_val);
                s->state = S_STRING;
            }
            break;
        case S_NUM_MINUS:
            if (c == '0') s->state = S_NUM_ZERO;
            else if (c >= '1' && c <= '9') s->state = S_NUM_INT;
            else if (c == 'I') {  /* -Infinity: name the token where it starts */
                hj_stop(s, HJ_SYNTAX, HJ_E_NAN);
                s->err_pos = s->value_start;
                return s->status;
            } else return hj_stop(s, HJ_SYNTAX, HJ_E_NUMBER);
            break;
        case S_NUM_ZERO:
        case S_NUM_INT:
            if (c >= '0' && c <= '9') {
                if (s->state == S_NUM_ZERO) return hj_stop(s, HJ_SYNTAX, HJ_E_NUMBER);
                HJ_RUN(buf[i + 1] >= '0' && buf[i + 1] <= '9');
            } else if (c == '.') s->state = S_NUM_DOT;
            else if (c == 'e' || c == 'E') s->state = S_NUM_E;
            else { hj_scalar_end(s, s->pos); continue; }
            break;
        case S_NUM_DOT:
            if (c >= '0' && c <= '9') s->state = S_NUM_FRAC;
            else return hj_stop(s, HJ_SYNTAX, HJ_E_NUMBER);
            break;
        case S_NUM_FRAC:
            if (c >= '0' && c <= '9') { HJ_RUN(buf[i + 1] >= '0' && buf[i + 1] <= '9'); break; }
            if (c == 'e' || c == 'E') { s->state = S_NUM_E; break; }
            hj_scalar_end(s, s->pos);
            continue;
        case S_NUM_E:
            if (c == '+' || c == '-') s->state = S_NUM_ESIGN;
            else if (c >= '0' && c <= '9') s->state = S_NUM_EXP;
            else return hj_stop(s, HJ_SYNTAX, HJ_E_NUMBER);
            break;
        case S_NUM_ESIGN:
            if (c >= '0' && c <= '9') s->state = S_NUM_EXP;
            else return hj_stop(s, HJ_SYNTAX, HJ_E_NUMBER);
            break;
        case S_NUM_EXP:
            if (c >= '0' && c <= '9') { HJ_RUN(buf[i + 1] >= '0' && buf[i + 1] <= '9'); break; }
            hj_scalar_end(s, s->pos);
            continue;
        case S_LITERAL:
            if (c != (uint8_t) s->lit[s->lit_i]) return hj_stop(s, HJ_SYNTAX, HJ_E_LITERAL);
            if (s->lit[++s->lit_i] == '\0') hj_scalar_end(s, s->pos + 1);
            break;
        }
        i += 1;
        s->pos += 1;
    }
    return s->status;
}

/* The body is complete: finish a number at the end of the body, check nothing is open. */
static int hj_finish(hj_scanner *s)
{
    if (s->state == S_STOPPED) return s->status;
    switch (s->state) {
    case S_NUM_ZERO: case S_NUM_INT: case S_NUM_FRAC: case S_NUM_EXP:
        hj_scalar_end(s, s->pos);
        break;
    default:
        break;
    }
    if (s->state == S_BOM || (s->state == S_VALUE && s->depth == 0 && s->root_kind == HJ_NONE))
        return hj_stop(s, HJ_SYNTAX, HJ_E_EMPTY);
    if (s->state != S_AFTER || s->depth != 0) return hj_stop(s, HJ_SYNTAX, HJ_E_END);
    s->status = HJ_DONE;
    return s->status;
}

#endif
