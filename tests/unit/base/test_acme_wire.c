/* The ACME exchange between coprocess and sidecar (ibp_acme_wire.h): what a
 * body becomes as TXT content, and which replies a coprocess accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ibp_acme_wire.h"

static size_t value(const char *body, char *out)
{
    return ibp_acme_value_from_body(body, strlen(body), out, IBP_ACME_VALUE_MAX + 1);
}

static void bodies_become_quoted_escaped_strings(void **state)
{
    (void)state;
    char out[IBP_ACME_VALUE_MAX + 1];
    assert_int_equal(value("tok-AbC_123", out), 13);
    assert_string_equal(out, "\"tok-AbC_123\"");
    value("a\"b\\c\td\x01\xff", out);
    assert_string_equal(out, "\"a\\\"b\\\\c\\009d\\001\\255\"");
    assert_true(ibp_acme_value_ok(out, strlen(out)));
    assert_int_equal(value("", out), 0);
    char big[IBP_ACME_BODY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(value(big, out), 0);   /* 513 bytes: refused */
    big[IBP_ACME_BODY_MAX] = '\0';
    size_t n = value(big, out);             /* 512: strings of 255, 255, 2 */
    assert_int_equal(n, 512 + 6 + 2);
    assert_memory_equal(out + 256, "\" \"", 3);
    assert_true(ibp_acme_value_ok(out, n));
    memset(big, 0x80, IBP_ACME_BODY_MAX);   /* the longest value there is */
    n = value(big, out);
    assert_int_equal(n, IBP_ACME_VALUE_MAX);
    assert_true(ibp_acme_value_ok(out, n));
}

static void values_that_could_break_a_data_line_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", "\"", "abc", "\"a\tb\"", "\"a\nb\"", "\"a\" b", "\"a\"\"b\"",
                         "\"\\x\"", "\"\\256\"", "\"\\12\"", "\"a\" ", " \"a\"", "\"a\\\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ibp_acme_value_ok(bad[i], strlen(bad[i])));
    char longs[300] = "\"";
    memset(longs + 1, 'y', 256);
    memcpy(longs + 257, "\"", 2);
    assert_false(ibp_acme_value_ok(longs, strlen(longs)));   /* a string over 255 bytes */
    assert_true(ibp_acme_value_ok("\"a\" \"b\"", 7));
}

static void replies_parse_or_are_refused_whole(void **state)
{
    (void)state;
    const char *val[IBP_ACME_PER_NAME_MAX];
    size_t len[IBP_ACME_PER_NAME_MAX], n = 99;
    const char *ok = "ACME1 OK\n\"one\"\n\"two\"";
    assert_true(ibp_acme_reply_parse(ok, strlen(ok), val, len, &n, NULL));
    assert_int_equal(n, 2);
    assert_memory_equal(val[1], "\"two\"", len[1]);
    assert_true(ibp_acme_reply_parse("ACME1 NONE", 10, val, len, &n, NULL));
    assert_int_equal(n, 0);
    const char *bad[] = {"", "ACME1", "ACME1 OK\n", "ACME1 OK\n\"a\"\n", "ACME1 OK\"a\"",
                         "ACME1 NONE\n", "ACME2 OK\n\"a\"", "ACME1 OK\n\"a\tb\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ibp_acme_reply_parse(bad[i], strlen(bad[i]), val, len, &n, NULL));
    char many[256] = "ACME1 OK";
    for (int i = 0; i <= IBP_ACME_PER_NAME_MAX; i++)
        strcat(many, "\n\"v\"");
    assert_false(ibp_acme_reply_parse(many, strlen(many), val, len, &n, NULL));
}

static void requests_carry_one_checked_name(void **state)
{
    (void)state;
    char msg[IBP_ACME_REQUEST_MAX], name[IBP_NAME_MAX + 1];
    size_t n = ibp_acme_request_encode("_ACME-challenge.X.org", 21, msg, sizeof msg);
    assert_int_equal(n, 27);
    assert_true(ibp_acme_request_parse(msg, n, name, NULL));
    assert_string_equal(name, "_acme-challenge.x.org");
    assert_true(ibp_acme_request_parse("ACME1 a.org.", 12, name, NULL));
    assert_string_equal(name, "a.org");
    const char *bad[] = {"", "ACME1 ", "ACME1 a b", "ACME1 a\tb", "ACME0 a", "ACME1 ."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ibp_acme_request_parse(bad[i], strlen(bad[i]), name, NULL));
    char huge[IBP_NAME_MAX + 2];
    memset(huge, 'a', sizeof huge);
    assert_int_equal(ibp_acme_request_encode(huge, sizeof huge, msg, sizeof msg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bodies_become_quoted_escaped_strings),
        cmocka_unit_test(values_that_could_break_a_data_line_are_refused),
        cmocka_unit_test(replies_parse_or_are_refused_whole),
        cmocka_unit_test(requests_carry_one_checked_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
