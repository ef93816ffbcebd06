#include "ibp_acme_wire.h"

#include <stdio.h>
#include <string.h>

#define MAGIC_LEN (sizeof IBP_ACME_MAGIC - 1)
#define TXT_STRING_MAX 255

void ibp_acme_default_socket(const char *table_path, char *out, size_t cap)
{
    const char *slash = strrchr(table_path, '/');
    snprintf(out, cap, "%.*s/acme.sock", slash ? (int)(slash - table_path) : 1,
             slash ? table_path : ".");
}

size_t ibp_acme_request_encode(const char *name, size_t len, char *out, size_t cap)
{
    if (len > IBP_NAME_MAX || cap < MAGIC_LEN + len + 1)
        return 0;
    memcpy(out, IBP_ACME_MAGIC, MAGIC_LEN);
    memcpy(out + MAGIC_LEN, name, len);
    out[MAGIC_LEN + len] = '\0';
    return MAGIC_LEN + len;
}

bool ibp_acme_request_parse(const char *msg, size_t len, char name[IBP_NAME_MAX + 1],
                            ibp_err_t *err)
{
    if (len < MAGIC_LEN || memcmp(msg, IBP_ACME_MAGIC, MAGIC_LEN))
        return ibp_err_set(err, "not an ACME1 request");
    size_t n = len - MAGIC_LEN;
    if (n > 0 && msg[MAGIC_LEN + n - 1] == '.')
        n--;
    if (n == 0 || n > IBP_NAME_MAX)
        return ibp_err_set(err, "name of %zu bytes", n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)msg[MAGIC_LEN + i];
        if (ch <= 0x20 || ch >= 0x7f)
            return ibp_err_set(err, "byte 0x%02x in the name", ch);
        name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    name[n] = '\0';
    return true;
}

size_t ibp_acme_value_from_body(const char *body, size_t len, char *out, size_t cap)
{
    if (len == 0 || len > IBP_ACME_BODY_MAX || cap < IBP_ACME_VALUE_MAX + 1)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (i % TXT_STRING_MAX == 0) {
            if (i)
                out[o++] = '"', out[o++] = ' ';
            out[o++] = '"';
        }
        unsigned char ch = (unsigned char)body[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\%03u", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

/* One quoted string starting at v[*i]; advances past its closing quote. */
static bool quoted_ok(const char *v, size_t len, size_t *i)
{
    size_t bytes = 0;
    if (*i >= len || v[(*i)++] != '"')
        return false;
    while (*i < len && v[*i] != '"') {
        if (v[*i] == '\\') {
            bool digits = *i + 3 < len;
            unsigned code = 0;
            for (size_t k = 1; digits && k <= 3; k++) {
                digits = v[*i + k] >= '0' && v[*i + k] <= '9';
                code = code * 10 + (unsigned)(v[*i + k] - '0');
            }
            digits = digits && code <= 255;
            if (digits)
                *i += 4;
            else if (*i + 1 < len && (v[*i + 1] == '"' || v[*i + 1] == '\\'))
                *i += 2;
            else
                return false;
        } else {
            (*i)++;
        }
        if (++bytes > TXT_STRING_MAX)
            return false;
    }
    return *i < len && v[(*i)++] == '"';
}

bool ibp_acme_value_ok(const char *v, size_t len)
{
    if (len < 2 || len > IBP_ACME_VALUE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    size_t i = 0;
    while (quoted_ok(v, len, &i)) {
        if (i == len)
            return true;
        if (v[i++] != ' ')
            return false;
    }
    return false;
}

bool ibp_acme_reply_parse(const char *msg, size_t len, const char *val[IBP_ACME_PER_NAME_MAX],
                          size_t val_len[IBP_ACME_PER_NAME_MAX], size_t *n, ibp_err_t *err)
{
    static const char none[] = IBP_ACME_MAGIC "NONE", ok[] = IBP_ACME_MAGIC "OK";
    *n = 0;
    if (len == sizeof none - 1 && !memcmp(msg, none, len))
        return true;
    if (len < sizeof ok - 1 || memcmp(msg, ok, sizeof ok - 1))
        return ibp_err_set(err, "not an ACME1 reply");
    size_t i = sizeof ok - 1;
    while (i < len) {
        if (msg[i++] != '\n' || *n == IBP_ACME_PER_NAME_MAX)
            return ibp_err_set(err, "malformed or more than %d values", IBP_ACME_PER_NAME_MAX);
        const char *end = memchr(msg + i, '\n', len - i);
        size_t vlen = end ? (size_t)(end - (msg + i)) : len - i;
        if (!ibp_acme_value_ok(msg + i, vlen))
            return ibp_err_set(err, "value %zu is not a TXT value", *n + 1);
        val[*n] = msg + i;
        val_len[(*n)++] = vlen;
        i += vlen;
    }
    return true;
}
