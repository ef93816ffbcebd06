#include "gojson.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- buffer ----------------------------------------------------------------- */

void sc_buf_add(sc_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sc_buf_puts(sc_buf_t *b, const char *s)
{
    sc_buf_add(b, s, strlen(s));
}

void sc_buf_printf(sc_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        b->oom = true;   /* callers format short, fixed-size things only */
    else
        sc_buf_add(b, tmp, (size_t)n);
}

void sc_buf_free(sc_buf_t *b)
{
    free(b->p);
    *b = (sc_buf_t){0};
}

/* ---- Go's string encoding ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (as Go's utf8.DecodeRune: no
 * overlongs, no surrogates, at most U+10FFFF), 0 if invalid; *cp the rune. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, *cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, *cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

void sc_go_string(sc_buf_t *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i = 0, start = 0;
    sc_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        const char *esc = NULL;
        char u[7];
        size_t skip = 1;
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                snprintf(u, sizeof u, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
                esc = u;
            }
        } else {
            uint32_t cp;
            size_t len = utf8_seq(s + i, n - i, &cp);
            if (len && cp != 0x2028 && cp != 0x2029) {
                i += len;
                continue;
            }
            esc = !len ? "\\ufffd" : cp == 0x2028 ? "\\u2028" : "\\u2029";
            skip = len ? len : 1;
        }
        sc_buf_add(b, str + start, i - start);
        sc_buf_puts(b, esc);
        i += skip;
        start = i;
    }
    sc_buf_add(b, str + start, n - start);
    sc_buf_add(b, "\"", 1);
}

/* ---- Go's syntax check ------------------------------------------------------------ */

/* Go's quoteChar: the byte as a rune, strconv.Quote'd, in single quotes. */
static void quote_char(unsigned char c, char out[16])
{
    if (c == '\'') {
        strcpy(out, "'\\''");
    } else if (c == '"') {
        strcpy(out, "'\"'");
    } else if (c == '\\') {
        strcpy(out, "'\\\\'");
    } else if (c >= 0x20 && c < 0x7f) {
        snprintf(out, 16, "'%c'", c);
    } else if (c < 0x20 || c == 0x7f) {
        static const char *const named[14] = {[7] = "\\a", [8] = "\\b", [9] = "\\t",
                                              [10] = "\\n", [11] = "\\v", [12] = "\\f",
                                              [13] = "\\r"};
        if (c < 14 && named[c])
            snprintf(out, 16, "'%s'", named[c]);
        else
            snprintf(out, 16, "'\\x%02x'", c);
    } else if (c < 0xa1 || c == 0xad) {   /* not printable as runes U+0080..U+00A0, U+00AD */
        snprintf(out, 16, "'\\u%04x'", c);
    } else {
        snprintf(out, 16, "'%c%c'", 0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    }
}

enum st {
    S_VALUE, S_VALUE_OR_EMPTY, S_STRING_OR_EMPTY, S_STRING, S_END_VALUE, S_END_TOP,
    S_IN_STR, S_IN_ESC, S_U1, S_U2, S_U3, S_U4, S_NEG, S_INT, S_ZERO, S_DOT, S_DOT0,
    S_E, S_ESIGN, S_E0, S_LIT
};
enum { P_OBJ_KEY, P_OBJ_VALUE, P_ARRAY };

#define GO_MAX_DEPTH 10000

typedef struct scan {
    enum st st;
    unsigned char *stack;  /* parse states */
    size_t depth;
    const char *lit;       /* literal being matched ("true"...) and position */
    size_t lit_at;
    const char *why;       /* set on error */
    unsigned char bad;
} scan_t;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool fail(scan_t *s, unsigned char c, const char *why)
{
    s->bad = c;
    s->why = why;
    return false;
}

static bool push(scan_t *s, unsigned char p)
{
    if (s->depth >= GO_MAX_DEPTH) {
        s->why = "exceeded max depth";
        return false;
    }
    s->stack[s->depth++] = p;
    return true;
}

static bool begin_value(scan_t *s, unsigned char c)
{
    static const char *const lits[] = {"true", "false", "null"};
    if (is_space(c))
        return true;
    switch (c) {
    case '{': s->st = S_STRING_OR_EMPTY; return push(s, P_OBJ_KEY);
    case '[': s->st = S_VALUE_OR_EMPTY; return push(s, P_ARRAY);
    case '"': s->st = S_IN_STR; return true;
    case '-': s->st = S_NEG; return true;
    case '0': s->st = S_ZERO; return true;
    case 't': case 'f': case 'n':
        s->lit = lits[c == 't' ? 0 : c == 'f' ? 1 : 2];
        s->lit_at = 1;
        s->st = S_LIT;
        return true;
    }
    if (c >= '1' && c <= '9') {
        s->st = S_INT;
        return true;
    }
    return fail(s, c, "looking for beginning of value");
}

static bool end_value(scan_t *s, unsigned char c)
{
    if (!s->depth) {
        s->st = S_END_TOP;
        return is_space(c) || fail(s, c, "after top-level value");
    }
    s->st = S_END_VALUE;
    if (is_space(c))
        return true;
    unsigned char *top = &s->stack[s->depth - 1];
    switch (*top) {
    case P_OBJ_KEY:
        if (c != ':')
            return fail(s, c, "after object key");
        *top = P_OBJ_VALUE;
        s->st = S_VALUE;
        return true;
    case P_OBJ_VALUE:
        if (c == ',') {
            *top = P_OBJ_KEY;
            s->st = S_STRING;
            return true;
        }
        if (c != '}')
            return fail(s, c, "after object key:value pair");
        break;
    default:
        if (c == ',') {
            s->st = S_VALUE;
            return true;
        }
        if (c != ']')
            return fail(s, c, "after array element");
    }
    s->depth--;
    if (!s->depth)
        s->st = S_END_TOP;
    return true;
}

static bool literal(scan_t *s, unsigned char c)
{
    static const char *const why[3][5] = {
        {NULL, "in literal true (expecting 'r')", "in literal true (expecting 'u')",
         "in literal true (expecting 'e')"},
        {NULL, "in literal false (expecting 'a')", "in literal false (expecting 'l')",
         "in literal false (expecting 's')", "in literal false (expecting 'e')"},
        {NULL, "in literal null (expecting 'u')", "in literal null (expecting 'l')",
         "in literal null (expecting 'l')"}};
    int which = s->lit[0] == 't' ? 0 : s->lit[0] == 'f' ? 1 : 2;
    if ((unsigned char)s->lit[s->lit_at] != c)
        return fail(s, c, why[which][s->lit_at]);
    if (!s->lit[++s->lit_at])
        s->st = S_END_VALUE;
    return true;
}

static bool number(scan_t *s, unsigned char c)
{
    bool digit = c >= '0' && c <= '9';
    switch (s->st) {
    case S_NEG:
        if (c == '0')
            s->st = S_ZERO;
        else if (digit)
            s->st = S_INT;
        else
            return fail(s, c, "in numeric literal");
        return true;
    case S_INT:
        if (digit)
            return true;
        __attribute__((fallthrough));   /* what may follow the integer part */
    case S_ZERO:
        if (c == '.')
            s->st = S_DOT;
        else if (c == 'e' || c == 'E')
            s->st = S_E;
        else
            return end_value(s, c);
        return true;
    case S_DOT:
        if (!digit)
            return fail(s, c, "after decimal point in numeric literal");
        s->st = S_DOT0;
        return true;
    case S_DOT0:
        if (digit)
            return true;
        if (c == 'e' || c == 'E') {
            s->st = S_E;
            return true;
        }
        return end_value(s, c);
    case S_E:
        if (c == '+' || c == '-') {
            s->st = S_ESIGN;
            return true;
        }
        __attribute__((fallthrough));
    case S_ESIGN:
        if (!digit)
            return fail(s, c, "in exponent of numeric literal");
        s->st = S_E0;
        return true;
    default:   /* S_E0 */
        return digit || end_value(s, c);
    }
}

static bool string_char(scan_t *s, unsigned char c)
{
    switch (s->st) {
    case S_IN_STR:
        if (c == '"')
            s->st = S_END_VALUE;
        else if (c == '\\')
            s->st = S_IN_ESC;
        else if (c < 0x20)
            return fail(s, c, "in string literal");
        return true;
    case S_IN_ESC:
        if (c == 'u') {
            s->st = S_U1;
            return true;
        }
        if (!strchr("bfnrt\\/\"", c) || !c)
            return fail(s, c, "in string escape code");
        s->st = S_IN_STR;
        return true;
    default:   /* S_U1..S_U4 */
        if (!is_hex(c))
            return fail(s, c, "in \\u hexadecimal character escape");
        s->st = s->st == S_U4 ? S_IN_STR : s->st + 1;
        return true;
    }
}

static bool step(scan_t *s, unsigned char c)
{
    switch (s->st) {
    case S_VALUE:
        return begin_value(s, c);
    case S_VALUE_OR_EMPTY:
        if (is_space(c))
            return true;
        if (c == ']')
            return end_value(s, c);
        return begin_value(s, c);
    case S_STRING_OR_EMPTY:
        if (is_space(c))
            return true;
        if (c == '}') {
            s->stack[s->depth - 1] = P_OBJ_VALUE;
            return end_value(s, c);
        }
        __attribute__((fallthrough));
    case S_STRING:
        if (is_space(c))
            return true;
        if (c != '"')
            return fail(s, c, "looking for beginning of object key string");
        s->st = S_IN_STR;
        return true;
    case S_END_VALUE:
        return end_value(s, c);
    case S_END_TOP:
        return is_space(c) || fail(s, c, "after top-level value");
    case S_LIT:
        return literal(s, c);
    case S_IN_STR: case S_IN_ESC: case S_U1: case S_U2: case S_U3: case S_U4:
        return string_char(s, c);
    default:
        return number(s, c);
    }
}

bool sc_go_syntax_ok(const char *buf, size_t len, char *msg, size_t cap)
{
    scan_t s = {.st = S_VALUE};
    size_t depth_cap = len < GO_MAX_DEPTH ? len + 1 : GO_MAX_DEPTH;
    s.stack = malloc(depth_cap);
    if (!s.stack) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < len; i++)
        ok = step(&s, (unsigned char)buf[i]);
    if (ok && s.st != S_END_TOP)
        ok = step(&s, ' ') && s.st == S_END_TOP;   /* a number ends at the end */
    if (!ok && s.why && strcmp(s.why, "exceeded max depth")) {
        char q[16];
        quote_char(s.bad, q);
        snprintf(msg, cap, "invalid character %s %s", q, s.why);
    } else if (!ok) {
        snprintf(msg, cap, "%s", s.why ? s.why : "unexpected end of JSON input");
    }
    free(s.stack);
    return ok;
}

/* ---- times and dates -------------------------------------------------------------- */

void sc_go_time(long long sec, long nsec, char out[40])
{
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nsec > 0) {
        char frac[24];
        snprintf(frac, sizeof frac, ".%09ld", nsec);
        size_t f = strlen(frac);
        while (frac[f - 1] == '0')
            frac[--f] = '\0';
        memcpy(out + n, frac, f);
        n += f;
    }
    memcpy(out + n, "Z", 2);
}

bool sc_go_date_ok(const char *s)
{
    static const char shape[] = "dddd-dd-dd";
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int i = 0; i < 10; i++)
        if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != '-')
            return false;
    if (s[10])
        return false;
    int year = atoi(s), month = atoi(s + 5), day = atoi(s + 8);
    if (month < 1 || month > 12 || day < 1 || day > days[month - 1])
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return !(month == 2 && day == 29 && !leap);
}
