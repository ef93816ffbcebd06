#include "ibp_dname.h"

#include <ctype.h>
#include <string.h>

static bool label_check(const char *l, size_t len, bool first, bool allow_wildcard,
                        ibp_err_t *err)
{
    if (len == 0)
        return ibp_err_set(err, "empty label");
    if (len > 63)
        return ibp_err_set(err, "label longer than 63 characters");
    if (allow_wildcard && first && len == 1 && l[0] == '*')
        return true;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)l[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')
            continue;
        if (ch >= 0x20 && ch < 0x7f)
            return ibp_err_set(err, "invalid character '%c'", ch);
        return ibp_err_set(err, "invalid byte 0x%02x", ch);
    }
    return true;
}

bool ibp_name_check(const char *name, size_t len, bool allow_wildcard, ibp_err_t *err)
{
    if (len == 0)
        return ibp_err_set(err, "empty name");
    if (len > IBP_NAME_MAX)
        return ibp_err_set(err, "name longer than %d characters", IBP_NAME_MAX);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        if (!label_check(name + start, i - start, start == 0, allow_wildcard, err))
            return false;
        start = i + 1;
    }
    return true;
}

bool ibp_name_normalize_n(const char *in, size_t len, bool allow_wildcard,
                          char out[IBP_NAME_MAX + 1], ibp_err_t *err)
{
    out[0] = '\0';
    if (!in)
        return ibp_err_set(err, "empty name");
    while (len && isspace((unsigned char)in[0])) {
        in++;
        len--;
    }
    while (len && isspace((unsigned char)in[len - 1]))
        len--;
    if (len && in[len - 1] == '.')
        len--;
    if (len > IBP_NAME_MAX)
        return ibp_err_set(err, "name longer than %d characters", IBP_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[len] = '\0';
    if (!ibp_name_check(out, len, allow_wildcard, err)) {
        out[0] = '\0';
        return false;
    }
    return true;
}

bool ibp_name_normalize(const char *in, char out[IBP_NAME_MAX + 1], ibp_err_t *err)
{
    return ibp_name_normalize_n(in, in ? strlen(in) : 0, true, out, err);
}
