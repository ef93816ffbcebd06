/* Times of member events: see event_time.h. */
#include "event_time.h"

#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t sc_civil_to_sec(const sc_civil_t *c)
{
    return days_from_civil(c->year, c->month, c->day) * 86400 + c->hour * 3600 + c->min * 60 +
           c->sec;
}

void sc_sec_to_civil(int64_t sec, sc_civil_t *c)
{
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    int64_t rem = sec - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *c = (sc_civil_t){.year = (int)(yoe + era * 400 + (m <= 2)), .month = m,
                      .day = (int)(doy - (153 * mp + 2) / 5 + 1), .hour = (int)(rem / 3600),
                      .min = (int)(rem % 3600 / 60), .sec = (int)(rem % 60)};
}

static int days_in(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

static bool digit(const char *s, size_t n, size_t i)
{
    return i < n && s[i] >= '0' && s[i] <= '9';
}

/* A cursor over the text being parsed. */
typedef struct cur {
    const char *s;
    size_t n, i;
} cur_t;

/* Exactly k digits (Go's getnum(fixed) for k = 2). */
static bool fixed(cur_t *c, size_t k, int *out)
{
    int v = 0;
    for (size_t j = 0; j < k; j++) {
        if (!digit(c->s, c->n, c->i + j))
            return false;
        v = v * 10 + (c->s[c->i + j] - '0');
    }
    c->i += k;
    *out = v;
    return true;
}

/* One or two digits (Go's getnum(value, false): the layout's "15"). */
static bool loose2(cur_t *c, int *out)
{
    if (!digit(c->s, c->n, c->i))
        return false;
    *out = c->s[c->i++] - '0';
    if (digit(c->s, c->n, c->i))
        *out = *out * 10 + (c->s[c->i++] - '0');
    return true;
}

static bool lit(cur_t *c, char ch)
{
    if (c->i >= c->n || c->s[c->i] != ch)
        return false;
    c->i++;
    return true;
}

/* "2006": four bytes through Go's atoi, which takes a sign. */
static bool year4(cur_t *c, int *out)
{
    if (c->n - c->i < 4)
        return false;
    bool sign = c->s[c->i] == '+' || c->s[c->i] == '-';
    bool neg = c->s[c->i] == '-';
    if (sign)
        c->i++;
    if (!fixed(c, sign ? 3 : 4, out))
        return false;
    if (neg)
        *out = -*out;
    return true;
}

static bool date_part(cur_t *c, sc_civil_t *t)
{
    return year4(c, &t->year) && lit(c, '-') && fixed(c, 2, &t->month) && t->month >= 1 &&
           t->month <= 12 && lit(c, '-') && fixed(c, 2, &t->day) && t->day >= 1 &&
           t->day <= days_in(t->year, t->month);
}

static bool clock_part(cur_t *c, sc_civil_t *t)
{
    return lit(c, 'T') && loose2(c, &t->hour) && t->hour <= 23 && lit(c, ':') &&
           fixed(c, 2, &t->min) && t->min <= 59 && lit(c, ':') && fixed(c, 2, &t->sec) &&
           t->sec <= 59;
}

/* Go reads a fraction after the seconds even where the layout has none:
 * '.' or ',' and a digit, then every digit (the first nine count). */
static int32_t fraction(cur_t *c)
{
    if (!(c->i < c->n && (c->s[c->i] == '.' || c->s[c->i] == ',') && digit(c->s, c->n, c->i + 1)))
        return 0;
    int32_t nsec = 0;
    int k = 0;
    for (c->i++; digit(c->s, c->n, c->i); c->i++, k++)
        if (k < 9)
            nsec = nsec * 10 + (c->s[c->i] - '0');
    for (; k < 9; k++)
        nsec *= 10;
    return nsec;
}

/* "Z", or "+hh:mm"/"-hh:mm" with Go's lenient ranges; the seconds east. */
static bool zone(cur_t *c, int64_t *east)
{
    if (lit(c, 'Z')) {
        *east = 0;
        return true;
    }
    if (c->n - c->i < 6 || (c->s[c->i] != '+' && c->s[c->i] != '-') || c->s[c->i + 3] != ':')
        return false;
    bool neg = c->s[c->i] == '-';
    int hh, mm;
    c->i++;
    if (!fixed(c, 2, &hh) || !lit(c, ':') || !fixed(c, 2, &mm) || hh > 24 || mm > 60)
        return false;
    *east = (int64_t)(hh * 60 + mm) * 60 * (neg ? -1 : 1);
    return true;
}

bool sc_ts_parse_rfc3339(const char *s, size_t n, sc_ts_t *out)
{
    cur_t c = {.s = s, .n = n};
    sc_civil_t t;
    int64_t east;
    if (!s || !date_part(&c, &t) || !clock_part(&c, &t))
        return false;
    int32_t nsec = fraction(&c);
    if (!zone(&c, &east) || c.i != n)
        return false;
    *out = (sc_ts_t){.sec = sc_civil_to_sec(&t) - east, .nsec = nsec};
    return true;
}

void sc_ts_go_json(sc_ts_t t, char out[48])
{
    sc_civil_t c;
    sc_sec_to_civil(t.sec, &c);
    int n = snprintf(out, 48, "%s%04d-%02d-%02dT%02d:%02d:%02d", c.year < 0 ? "-" : "",
                     c.year < 0 ? -c.year : c.year, c.month, c.day, c.hour, c.min, c.sec);
    if (t.nsec > 0 && n > 0 && n < 34) {
        char frac[16];
        snprintf(frac, sizeof frac, ".%09d", (int)t.nsec);
        size_t f = strlen(frac);
        while (frac[f - 1] == '0')
            frac[--f] = '\0';
        memcpy(out + n, frac, f + 1);
        n += (int)f;
    }
    if (n > 0 && n < 47)
        memcpy(out + n, "Z", 2);
}

void sc_ts_date(sc_ts_t t, char out[16])
{
    sc_civil_t c;
    sc_sec_to_civil(t.sec, &c);
    unsigned y = (unsigned)(c.year < 0 ? -c.year : c.year) % 100000u;
    snprintf(out, 16, "%s%04u-%02u-%02u", c.year < 0 ? "-" : "", y, (unsigned)c.month % 100u,
             (unsigned)c.day % 100u);
}

void sc_ts_sql(sc_ts_t t, char out[32])
{
    sc_civil_t c;
    sc_sec_to_civil(t.sec, &c);
    if (c.year < 0) {
        snprintf(out, 32, "0000-01-01 00:00:00");
        return;
    }
    if (c.year > 9999) {
        snprintf(out, 32, "9999-12-31 23:59:59.999999");
        return;
    }
    int us = t.nsec / 1000;
    int n = snprintf(out, 32, "%04d-%02d-%02d %02d:%02d:%02d", c.year, c.month, c.day, c.hour,
                     c.min, c.sec);
    if (us && n > 0)
        snprintf(out + n, 32 - (size_t)n, ".%06d", us);
}

bool sc_ts_parse_sql(const char *s, sc_ts_t *out)
{
    size_t n = strlen(s);
    cur_t c = {.s = s, .n = n};
    sc_civil_t t;
    if (!fixed(&c, 4, &t.year) || !lit(&c, '-') || !fixed(&c, 2, &t.month) || t.month < 1 ||
        t.month > 12 || !lit(&c, '-') || !fixed(&c, 2, &t.day) || t.day < 1 ||
        t.day > days_in(t.year, t.month) || !(lit(&c, ' ') || lit(&c, 'T')) ||
        !fixed(&c, 2, &t.hour) || t.hour > 23 || !lit(&c, ':') || !fixed(&c, 2, &t.min) ||
        t.min > 59 || !lit(&c, ':') || !fixed(&c, 2, &t.sec) || t.sec > 59)
        return false;
    int32_t nsec = 0;
    if (c.i < n && s[c.i] == '.') {
        if (!digit(s, n, c.i + 1))
            return false;
        nsec = fraction(&c);
    }
    (void)lit(&c, 'Z');
    if (c.i != n)
        return false;
    *out = (sc_ts_t){.sec = sc_civil_to_sec(&t), .nsec = nsec};
    return true;
}

sc_events_window_rc_t sc_events_window(const char *start, size_t start_n, const char *end,
                                       size_t end_n, sc_ts_t now, sc_ts_t *from, sc_ts_t *to)
{
    *to = now;
    if (end_n > 0 && !sc_ts_parse_rfc3339(end, end_n, to))
        return SC_EVENTS_BAD_END;
    *from = (sc_ts_t){.sec = to->sec - 86400, .nsec = to->nsec};
    if (start_n > 0 && !sc_ts_parse_rfc3339(start, start_n, from))
        return SC_EVENTS_BAD_START;
    return SC_EVENTS_WINDOW_OK;
}
