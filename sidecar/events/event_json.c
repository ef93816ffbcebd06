/* member_events as IBP's node answers them: see event_json.h. */
#include "event_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_time.h"

/* strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json calls it:
 * the shortest digits that read back as f. */
void sc_go_float(sc_buf_t *b, double f)
{
    if (!isfinite(f)) {   /* json.Marshal refuses them; no decoded value is one */
        sc_buf_puts(b, "null");
        return;
    }
    if (f == 0) {
        sc_buf_puts(b, signbit(f) ? "-0" : "0");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, f);
        if (strtod(e, NULL) == f)
            break;
    }
    /* e: [-]d[.ddd]e(+|-)XX */
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    char digits[24];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp = *s == 'e' ? atoi(s + 1) : 0;
    double a = fabs(f);
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (a < 1e-6 || a >= 1e21) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        /* Go writes at least two exponent digits, then cuts e-09 to e-9. */
        int x = exp < 0 ? -exp : exp;
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%s%d", exp < 0 ? '-' : '+',
                              x < 10 && exp >= 0 ? "0" : "", x);
    } else if (exp >= 0) {
        for (int i = 0; i <= exp || (size_t)i < nd; i++) {
            if (i == exp + 1)
                out[o++] = '.';
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > exp; i--)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    }
    sc_buf_add(b, out, o);
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void sc_go_value(sc_buf_t *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), k = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys) {
            b->oom = true;
            return;
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
            keys[k++] = key;
        qsort(keys, k, sizeof *keys, by_key);   /* Go marshals a map sorted by key */
        sc_buf_puts(b, "{");
        for (size_t i = 0; i < k; i++) {
            if (i)
                sc_buf_puts(b, ",");
            sc_go_string(b, keys[i]);
            sc_buf_puts(b, ":");
            sc_go_value(b, json_object_get(v, keys[i]));
        }
        sc_buf_puts(b, "}");
        free(keys);
        break;
    }
    case JSON_ARRAY:
        sc_buf_puts(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                sc_buf_puts(b, ",");
            sc_go_value(b, json_array_get(v, i));
        }
        sc_buf_puts(b, "]");
        break;
    case JSON_STRING:
        sc_go_string(b, json_string_value(v));
        break;
    case JSON_INTEGER:
        sc_go_float(b, (double)json_integer_value(v));
        break;
    case JSON_REAL:
        sc_go_float(b, json_real_value(v));
        break;
    case JSON_TRUE:
        sc_buf_puts(b, "true");
        break;
    case JSON_FALSE:
        sc_buf_puts(b, "false");
        break;
    default:
        sc_buf_puts(b, "null");
    }
}

void sc_event_data_json(sc_buf_t *b, const char *data)
{
    /* Numbers as float64, as Go decodes them into interface{}; duplicate
     * keys: the last one, as Go. */
    json_t *v = data ? json_loads(data, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL) : NULL;
    if (json_is_object(v))
        sc_go_value(b, v);
    else
        sc_buf_puts(b, "null");
    json_decref(v);
}

static void key(sc_buf_t *b, const char *k, bool first)
{
    sc_buf_printf(b, "%s\"%s\":", first ? "" : ",", k);
}

void sc_event_json(sc_buf_t *b, const sc_event_row_t *r)
{
    char start[48], end[48], sdate[16], edate[16] = "";
    sc_ts_go_json(r->start, start);
    sc_ts_date(r->start, sdate);
    if (r->has_end) {
        sc_ts_go_json(r->end, end);
        sc_ts_date(r->end, edate);
    } else {
        sc_ts_go_json((sc_ts_t){.sec = SC_TS_ZERO_SEC}, end);
    }
    sc_buf_puts(b, "{");
    key(b, "CheckType", true);
    sc_go_string(b, r->key.check_type);
    key(b, "CheckName", false);
    sc_go_string(b, r->key.check_name);
    key(b, "MemberName", false);
    sc_go_string(b, r->key.member);
    if (r->key.domain[0]) {
        key(b, "DomainName", false);
        sc_go_string(b, r->key.domain);
    }
    if (r->key.endpoint[0]) {
        key(b, "Endpoint", false);
        sc_go_string(b, r->key.endpoint);
    }
    key(b, "Status", false);
    sc_buf_puts(b, r->status ? "true" : "false");
    key(b, "ErrorText", false);
    sc_go_string(b, r->error);
    key(b, "Data", false);
    sc_event_data_json(b, r->data);
    key(b, "IsIPv6", false);
    sc_buf_puts(b, r->key.is_ipv6 ? "true" : "false");
    key(b, "StartTime", false);
    sc_buf_printf(b, "\"%s\"", start);
    key(b, "EndTime", false);
    sc_buf_printf(b, "\"%s\"", end);
    key(b, "StartDate", false);
    sc_buf_printf(b, "\"%s\"", sdate);
    key(b, "EndDate", false);
    sc_buf_printf(b, "\"%s\"}", edate);
}

void sc_event_result_json(sc_buf_t *b, const char *msg)
{
    sc_buf_puts(b, "{\"result\":");
    sc_go_string(b, msg);
    sc_buf_puts(b, "}");
}
