#include "gojson.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
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
        s->bad = p == P_ARRAY ? '[' : '{';
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
    if (!ok && s.why) {   /* Go says "invalid character '[' exceeded max depth" too */
        char q[16];
        quote_char(s.bad, q);
        snprintf(msg, cap, "invalid character %s %s", q, s.why);
    } else if (!ok) {
        snprintf(msg, cap, "unexpected end of JSON input");
    }
    free(s.stack);
    return ok;
}

/* ---- decoding valid JSON as Go's Unmarshal ------------------------------------------- */

/* The input passed sc_go_syntax_ok: the cursor only needs its bounds. */
typedef struct cur {
    const unsigned char *p, *end;
} cur_t;

static void skip_ws(cur_t *c)
{
    while (c->p < c->end && is_space(*c->p))
        c->p++;
}

static int hex_val(unsigned char h)
{
    return h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10;
}

static uint32_t read_u4(cur_t *c)
{
    uint32_t v = 0;
    for (int i = 0; i < 4 && c->p < c->end; i++)
        v = v << 4 | (uint32_t)hex_val(*c->p++);
    return v;
}

static void put_utf8(sc_buf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    sc_buf_add(b, u, n);
}

/* A \u escape (after the u), joined with a following low surrogate. */
static uint32_t escape_u(cur_t *c)
{
    uint32_t cp = read_u4(c);
    if (cp < 0xd800 || cp > 0xdfff)
        return cp;
    if (cp < 0xdc00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
        cur_t look = {c->p + 2, c->end};
        uint32_t lo = read_u4(&look);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            c->p = look.p;
            return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
    }
    return 0xfffd;
}

/* The string at the cursor (on its quote), decoded into b. */
static void read_string(cur_t *c, sc_buf_t *b)
{
    static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = *c->p;
        if (ch == '\\' && c->end - c->p >= 2) {
            unsigned char e = c->p[1];
            c->p += 2;
            const char *k = e ? strchr(from, e) : NULL;
            if (e == 'u')
                put_utf8(b, escape_u(c));
            else
                sc_buf_add(b, k ? &to[k - from] : (const char *)&e, 1);
            continue;
        }
        uint32_t cp;
        size_t n = ch < 0x80 ? 1 : utf8_seq(c->p, (size_t)(c->end - c->p), &cp);
        if (n)
            sc_buf_add(b, (const char *)c->p, n);
        else
            put_utf8(b, 0xfffd);
        c->p += n ? n : 1;
    }
    c->p++;   /* the closing quote */
}

/* Past the value at the cursor, nested ones included, without recursion. */
static void skip_value(cur_t *c)
{
    size_t depth = 0;
    do {
        skip_ws(c);
        if (c->p >= c->end)
            return;
        unsigned char ch = *c->p;
        if (ch == '"') {
            sc_buf_t ignored = {.oom = true};   /* decodes nothing */
            read_string(c, &ignored);
        } else if (ch == '{' || ch == '[') {
            depth++, c->p++;
        } else if (ch == '}' || ch == ']') {
            depth--, c->p++;
        } else if (ch == ',' || ch == ':') {
            c->p++;
        } else {   /* a number or a literal */
            while (c->p < c->end && !strchr(",:]} \t\r\n", *c->p))
                c->p++;
        }
        skip_ws(c);
        while (depth && c->p < c->end && (*c->p == ',' || *c->p == ':'))
            c->p++;
    } while (depth && c->p < c->end);
}

static const char *value_kind(unsigned char ch)
{
    return ch == '{' ? "object" : ch == '[' ? "array" : ch == '"' ? "string"
         : ch == 't' || ch == 'f' ? "bool" : "number";
}

/* Go's EqualFold for an ASCII tag: K (U+212A) folds to k, long s (U+017F) to s. */
static bool key_matches(const char *key, size_t n, const char *tag)
{
    size_t i = 0;
    for (; *tag; tag++) {
        if (i >= n)
            return false;
        char want = (char)tolower((unsigned char)*tag);
        if (n - i >= 3 && !memcmp(key + i, "\xe2\x84\xaa", 3) && want == 'k')
            i += 3;
        else if (n - i >= 2 && !memcmp(key + i, "\xc5\xbf", 2) && want == 's')
            i += 2;
        else if (tolower((unsigned char)key[i++]) != want)
            return false;
    }
    return i == n;
}

typedef struct unmarshal {
    char *msg;
    size_t cap;
    bool failed;           /* the first error is Go's; decoding goes on */
    bool oom;
} unmarshal_t;

static void type_error(unmarshal_t *u, const char *kind, const char *where, const char *field,
                       const char *type)
{
    if (!u->failed)
        snprintf(u->msg, u->cap, "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                 kind, where, field, type);
    u->failed = true;
}

static void fill_object(cur_t *c, unmarshal_t *u, const char *where, const sc_go_field_t *f);

static void fill_field(cur_t *c, unmarshal_t *u, const char *where, const sc_go_field_t *x)
{
    unsigned char ch = *c->p;
    if (ch == 'n') {
        skip_value(c);
        return;
    }
    if (x->inner ? ch != '{' : ch != '"') {
        type_error(u, value_kind(ch), where, x->name, x->inner ? x->inner_type : "string");
        skip_value(c);
        return;
    }
    if (x->inner) {   /* the same struct again: Go merges into it */
        fill_object(c, u, x->inner_type, x->inner);
        return;
    }
    sc_buf_t b = {0};
    read_string(c, &b);
    sc_buf_add(&b, "", 0);   /* "" has a buffer too */
    if (b.oom) {
        sc_buf_free(&b);
        u->oom = true;
        return;
    }
    if (x->has_nul)
        *x->has_nul = strlen(b.p) != b.len;
    free(*x->str);
    *x->str = b.p;
}

static void fill_object(cur_t *c, unmarshal_t *u, const char *where, const sc_go_field_t *f)
{
    c->p++;   /* { */
    for (skip_ws(c); c->p < c->end && *c->p != '}';) {
        sc_buf_t key = {0};
        read_string(c, &key);
        skip_ws(c);
        c->p++;   /* : */
        skip_ws(c);
        const sc_go_field_t *x = f;
        while (x->name && !key_matches(key.p ? key.p : "", key.len, x->name))
            x++;
        u->oom |= key.oom;
        sc_buf_free(&key);
        if (x->name && c->p < c->end)
            fill_field(c, u, where, x);
        else
            skip_value(c);
        skip_ws(c);
        if (c->p < c->end && *c->p == ',')
            c->p++;
        skip_ws(c);
    }
    c->p++;   /* } */
}

bool sc_go_unmarshal(const char *buf, size_t len, const char *struct_name, const char *go_type,
                     const sc_go_field_t *fields, char *msg, size_t cap)
{
    if (!sc_go_syntax_ok(buf, len, msg, cap))
        return false;
    cur_t c = {(const unsigned char *)buf, (const unsigned char *)buf + len};
    skip_ws(&c);
    unmarshal_t u = {.msg = msg, .cap = cap};
    if (*c.p == '{')
        fill_object(&c, &u, struct_name, fields);
    else if (*c.p != 'n')
        return snprintf(msg, cap, "json: cannot unmarshal %s into Go value of type %s",
                        value_kind(*c.p), go_type), false;
    if (u.oom)
        snprintf(msg, cap, "out of memory");
    return !u.failed && !u.oom;
}

/* Go's unicode.IsSpace: ASCII's and U+0085, U+00A0, U+1680, U+2000-200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000. */
static bool go_space(uint32_t cp)
{
    return cp == ' ' || (cp >= 9 && cp <= 13) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

void sc_go_trim_space(char *s)
{
    size_t n = strlen(s), start = 0;
    for (;;) {   /* from the front */
        uint32_t cp = 0;
        size_t k = (unsigned char)s[start] < 0x80 ? 1
                 : utf8_seq((const unsigned char *)s + start, n - start, &cp);
        if (k == 1)
            cp = (unsigned char)s[start];
        bool space = k && go_space(cp);
        if (!s[start] || !space)
            break;
        start += k;
    }
    size_t end = n;
    while (end > start) {   /* from the back: find the start of the last rune */
        size_t at = end - 1;
        while (at > start && ((unsigned char)s[at] & 0xc0) == 0x80 && end - at < 4)
            at--;
        uint32_t cp = 0;
        size_t k = (unsigned char)s[at] < 0x80 ? 1
                 : utf8_seq((const unsigned char *)s + at, end - at, &cp);
        if (k == 1)
            cp = (unsigned char)s[at];
        bool space = k == end - at && go_space(cp);
        if (!space)
            break;
        end = at;
    }
    memmove(s, s + start, end - start);
    s[end - start] = '\0';
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
