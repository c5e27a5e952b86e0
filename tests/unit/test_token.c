/* SPDX-License-Identifier: MIT
 * Token response parsing and validation (libazid/token.c): every field
 * shape IMDS and the other sources send, and every defect, each with its
 * own message. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "token.h"

#define NOW 1700000000LL
#define TOKEN "eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl"
/* A response with TOKEN as access_token and the given JSON fields. */
#define TOKEN_WITH(fields) "{\"access_token\":\"" TOKEN "\"," fields "}"

static azid_status parse(const char *body, azid_token **out, azid_error *err)
{
    err_clear(err);
    return token_parse(body, strlen(body), "https://vault.azure.net", NOW - 1, NOW, out, err);
}

/* Expects body to be refused with a message containing want. */
static void expect_refused(const char *body, const char *want)
{
    azid_token *t = (azid_token *)1;
    azid_error err;
    assert_int_equal(parse(body, &t, &err), AZID_ERR_RESPONSE);
    assert_null(t);
    assert_int_equal(err.status, AZID_ERR_RESPONSE);
    if (!strstr(err.message, want))
        fail_msg("message '%s' lacks '%s'", err.message, want);
    /* never quote a token back */
    assert_null(strstr(err.message, "eyJ"));
}

static void test_imds_all_strings(void **state)
{
    (void)state;
    azid_token *t;
    azid_error err;
    const char *body = "{\"access_token\":\"" TOKEN "\",\"refresh_token\":\"\","
                       "\"expires_in\":\"3599\",\"expires_on\":\"1700003599\","
                       "\"ext_expires_in\":\"3599\",\"not_before\":\"1699999999\","
                       "\"resource\":\"https://vault.azure.net/\",\"token_type\":\"Bearer\"}";
    assert_int_equal(parse(body, &t, &err), AZID_OK);
    assert_string_equal(azid_token_value(t), TOKEN);
    assert_int_equal(azid_token_length(t), strlen(TOKEN));
    assert_int_equal(azid_token_expires_on(t), 1700003599);
    /* the resource asked for, not the one echoed */
    assert_string_equal(azid_token_resource(t), "https://vault.azure.net");
    assert_string_equal(azid_token_type(t), "Bearer");
    azid_token_free(t);
}

/* Expects body to be accepted with that expiry. */
static void expect_expiry(const char *body, int64_t want)
{
    azid_token *t;
    azid_error err;
    if (parse(body, &t, &err) != AZID_OK)
        fail_msg("%s refused: %s", body, err.message);
    assert_int_equal(azid_token_expires_on(t), want);
    assert_string_equal(azid_token_value(t), TOKEN);
    assert_string_equal(azid_token_type(t), "Bearer");
    azid_token_free(t);
}

static void test_numbers_accepted(void **state)
{
    (void)state;
    /* absent token_type means Bearer */
    expect_expiry(TOKEN_WITH("\"expires_on\":1700003599"), 1700003599);
    expect_expiry(TOKEN_WITH("\"expires_on\":1700003599.0"), 1700003599);
}

static void test_expires_in_only(void **state)
{
    (void)state;
    /* Entra v2 (workload identity): numeric expires_in, request time + it */
    expect_expiry(TOKEN_WITH("\"expires_in\":3599,\"token_type\":\"Bearer\""), NOW - 1 + 3599);
    expect_expiry(TOKEN_WITH("\"expires_in\":\"60\""), NOW - 1 + 60);
}

static void test_expires_on_wins_over_expires_in(void **state)
{
    (void)state;
    expect_expiry("{\"access_token\":\"" TOKEN "\",\"expires_in\":\"10\","
                  "\"expires_on\":\"1700000500\"}", 1700000500);
}

static void test_resource_from_response_when_none_asked(void **state)
{
    (void)state;
    azid_token *t;
    azid_error err;
    const char *body = TOKEN_WITH("\"expires_in\":60,\"resource\":\"r\"");
    assert_int_equal(token_parse(body, strlen(body), NULL, NOW, NOW, &t, &err), AZID_OK);
    assert_string_equal(azid_token_resource(t), "r");
    azid_token_free(t);
}

static void test_malformed_bodies(void **state)
{
    (void)state;
    expect_refused("", "response body is empty");
    expect_refused("<html><body>proxy error</body></html>", "response is not JSON");
    expect_refused("{\"access_token\":\"" TOKEN "\",\"expires_on\":\"17000", "truncated");
    expect_refused("{\"access_token\":", "truncated");
    expect_refused("[1,2]", "response is an array, not a JSON object");
    expect_refused("\"just a string\"", "not a JSON object");
    expect_refused("null", "not a JSON object");
    expect_refused("{\"access_token\":\"a\",\"access_token\":\"b\",\"expires_in\":1}",
                   "repeats a JSON field");
}

static void test_oversized(void **state)
{
    (void)state;
    size_t n = TOKEN_MAX_RESPONSE + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    char want[64];
    snprintf(want, sizeof want, "response larger than %d bytes", TOKEN_MAX_RESPONSE);
    expect_refused(big, want);
    free(big);
}

static void test_access_token_defects(void **state)
{
    (void)state;
    expect_refused("{\"expires_on\":\"1700003599\"}", "response has no access_token field");
    expect_refused("{\"access_token\":\"\",\"expires_on\":\"1700003599\"}",
                   "response has an empty access_token");
    expect_refused("{\"access_token\":null,\"expires_on\":\"1700003599\"}",
                   "response field access_token is null, not a string");
    expect_refused("{\"access_token\":42,\"expires_on\":\"1700003599\"}",
                   "access_token is an integer, not a string");
    expect_refused("{\"access_token\":[\"x\"],\"expires_on\":\"1700003599\"}",
                   "access_token is an array");
    expect_refused("{\"access_token\":\"ab cd\",\"expires_on\":\"1700003599\"}",
                   "character at offset 2");
    expect_refused("{\"access_token\":\"ab\\r\\nX-Injected: 1\",\"expires_on\":\"1700003599\"}",
                   "printable ASCII");
    expect_refused("{\"access_token\":\"ab\\u0000cd\",\"expires_on\":\"1700003599\"}",
                   "offset 2");
    expect_refused("{\"access_token\":\"caf\\u00e9\",\"expires_on\":\"1700003599\"}",
                   "non-ASCII");
}

static void test_expiry_defects(void **state)
{
    (void)state;
    expect_refused("{\"access_token\":\"" TOKEN "\"}", "neither expires_on nor expires_in");
    expect_refused(TOKEN_WITH("\"expires_on\":\"\""), "response field expires_on is empty");
    expect_refused(TOKEN_WITH("\"expires_on\":\"soon\""), "expires_on is not a decimal number");
    expect_refused(TOKEN_WITH("\"expires_on\":\"17e8\""), "expires_on is not a decimal number");
    expect_refused(TOKEN_WITH("\"expires_on\":\" 1700003599\""),
                   "expires_on is not a decimal number");
    expect_refused(TOKEN_WITH("\"expires_on\":\"99999999999999999999\""),
                   "expires_on is not a decimal number");
    expect_refused(TOKEN_WITH("\"expires_on\":true"),
                   "expires_on is a boolean, not a number or numeric string");
    expect_refused(TOKEN_WITH("\"expires_on\":null"), "expires_on is null");
    expect_refused(TOKEN_WITH("\"expires_on\":{}"), "expires_on is an object");
    expect_refused(TOKEN_WITH("\"expires_on\":1700003599.5"), "expires_on is not a whole number");
    expect_refused(TOKEN_WITH("\"expires_in\":false"), "expires_in is a boolean");
    expect_refused(TOKEN_WITH("\"expires_in\":\"x\""), "expires_in is not a decimal number");
    expect_refused(TOKEN_WITH("\"expires_in\":9223372036854775807"), "expires_in is out of range");
}

static void test_expired(void **state)
{
    (void)state;
    expect_refused(TOKEN_WITH("\"expires_on\":\"12\""),
                   "token already expired (expires_on 12 is 1699999988 s in the past)");
    expect_refused(TOKEN_WITH("\"expires_on\":1700000000"), "already expired");
    expect_refused(TOKEN_WITH("\"expires_on\":\"-5\""), "already expired");
    expect_refused(TOKEN_WITH("\"expires_in\":\"0\""), "already expired");
    expect_refused(TOKEN_WITH("\"expires_in\":-100"), "already expired");
}

/* Numbers a server may send to overflow what is computed from them
 * (now - expires_on, request time + expires_in): refused before any
 * arithmetic, which the ASan+UBSan stage of scripts/check would catch. */
static void test_expiry_out_of_range(void **state)
{
    (void)state;
    static const char *const expires_on[] = {
        "-9223372036854775808", "\"-9223372036854775808\"", "9223372036854775807",
        "\"9223372036854775807\"", "1e300", "-1e300", "9.3e18", "-9.3e18", "1e19",
        "253402300800", "\"-253402300800\"",
    };
    for (size_t i = 0; i < sizeof expires_on / sizeof expires_on[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, TOKEN_WITH("\"expires_on\":%s"), expires_on[i]);
        expect_refused(body, "response field expires_on is out of range");
    }
    static const char *const expires_in[] = {
        "-9223372036854775808", "\"9223372036854775807\"", "1e300", "-1e300",
        "253402300799", /* in range itself, but not added to the request time */
    };
    for (size_t i = 0; i < sizeof expires_in / sizeof expires_in[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, TOKEN_WITH("\"expires_in\":%s"), expires_in[i]);
        expect_refused(body, "response field expires_in is out of range");
    }
    /* The edges: the last second of year 9999 is a valid expiry; a long
     * past one is merely expired. */
    expect_expiry(TOKEN_WITH("\"expires_on\":253402300799"), AZID_EPOCH_MAX);
    expect_expiry(TOKEN_WITH("\"expires_on\":2.5e11"), 250000000000LL);
    expect_refused(TOKEN_WITH("\"expires_on\":-253402300799"),
                   "token already expired (expires_on -253402300799 is 255102300799 s in the past)");
    /* A caller's clock out of range is refused too. */
    azid_token *t = NULL;
    azid_error err;
    const char *body = TOKEN_WITH("\"expires_in\":60");
    assert_int_equal(token_parse(body, strlen(body), "r", INT64_MAX, NOW, &t, &err),
                     AZID_ERR_ARGUMENT);
    assert_int_equal(token_parse(body, strlen(body), "r", NOW, INT64_MIN, &t, &err),
                     AZID_ERR_ARGUMENT);
    assert_null(t);
}

static void test_token_type_defects(void **state)
{
    (void)state;
    expect_refused(TOKEN_WITH("\"expires_in\":60,\"token_type\":7"),
                   "token_type is an integer, not a string");
    expect_refused(TOKEN_WITH("\"expires_in\":60,\"token_type\":\"\""),
                   "token_type is empty or not printable");
}

static void describe(const char *body, const char *want)
{
    char buf[200];
    token_describe_error(body, body ? strlen(body) : 0, buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void test_error_bodies(void **state)
{
    (void)state;
    describe("{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}",
             "invalid_request: Identity not found");
    describe("{\"error\":\"bad_request_102\",\"error_description\":\"Required metadata header "
             "not specified\"}", "bad_request_102: Required metadata header not specified");
    describe("{\"error\":\"Bad request. api-version was not specified\",\"newest-versions\":[]}",
             "Bad request. api-version was not specified");
    describe("{\"error\":{\"code\":\"SecretNotFound\",\"message\":\"A secret with (name/id) x "
             "was not found\"}}", "SecretNotFound: A secret with (name/id) x was not found");
    describe("{\"statusCode\":500,\"message\":\"An unexpected error occured\"}",
             "An unexpected error occured");
    describe("{\"error_description\":\"line one\\nline two\"}", "line one line two");
    describe("not json", "");
    describe("[]", "");
    describe("{}", "");
    describe("", "");
    describe(NULL, "");
    /* long descriptions are cut, and the buffer is never overrun */
    char big[2000] = "{\"error_description\":\"";
    memset(big + strlen(big), 'x', 1500);
    strcpy(big + strlen(big), "\"}");
    char small[16];
    token_describe_error(big, strlen(big), small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_token_new_and_free(void **state)
{
    (void)state;
    azid_token *t = token_new("abc", 3, 42, NULL, NULL);
    assert_non_null(t);
    assert_string_equal(azid_token_value(t), "abc");
    assert_string_equal(azid_token_resource(t), "");
    assert_string_equal(azid_token_type(t), "Bearer");
    assert_int_equal(azid_token_expires_on(t), 42);
    azid_token_free(t);
    azid_token_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imds_all_strings),
        cmocka_unit_test(test_numbers_accepted),
        cmocka_unit_test(test_expires_in_only),
        cmocka_unit_test(test_expires_on_wins_over_expires_in),
        cmocka_unit_test(test_resource_from_response_when_none_asked),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_access_token_defects),
        cmocka_unit_test(test_expiry_defects),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_expiry_out_of_range),
        cmocka_unit_test(test_token_type_defects),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_token_new_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
