/* SPDX-License-Identifier: MIT
 * Key Vault secret reads (libazid/keyvault.c) without a network: the URLs
 * refused before any request, the request URL and token audience, every
 * shape of a 200 body, the hints for final statuses, and that no message
 * ever quotes the secret. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "keyvault.h"

#define NOW 1700000000LL
#define TOKEN_EXPIRES (NOW + 3600)
#define VALUE "S3cr3t-Valu3"

static secret_url parts(const char *url)
{
    secret_url u;
    azid_error err;
    if (secret_url_parse(url, &u, &err) != AZID_OK)
        fail_msg("%s refused: %s", url, err.message);
    return u;
}

static azid_status parse(const char *body, azid_secret **out, azid_error *err)
{
    secret_url u = parts("https://myvault.vault.azure.net/secrets/db-password");
    err_clear(err);
    return keyvault_parse_secret(body, strlen(body), &u, TOKEN_EXPIRES, NOW, out, err);
}

static azid_secret *expect_parsed(const char *body)
{
    azid_secret *s = NULL;
    azid_error err;
    if (parse(body, &s, &err) != AZID_OK)
        fail_msg("refused: %s", err.message);
    assert_non_null(s);
    return s;
}

/* Expects body to be refused with a message containing want, never the
 * secret's value. */
static void expect_refused(const char *body, const char *want)
{
    azid_secret *s = (azid_secret *)1;
    azid_error err;
    assert_int_equal(parse(body, &s, &err), AZID_ERR_RESPONSE);
    assert_null(s);
    assert_int_equal(err.status, AZID_ERR_RESPONSE);
    if (!strstr(err.message, want))
        fail_msg("message '%s' lacks '%s'", err.message, want);
    if (strstr(err.message, VALUE))
        fail_msg("message '%s' quotes the secret", err.message);
}

/* ---- the 200 body ------------------------------------------------------- */

static void test_value_and_token_expiry(void **state)
{
    (void)state;
    azid_secret *s = expect_parsed(
        "{\"value\":\"" VALUE "\",\"id\":\"https://myvault.vault.azure.net/secrets/db-password/"
        "4387e9f3d6e14c459867679a90fd0f79\",\"attributes\":{\"enabled\":true,\"created\":"
        "1699990000,\"updated\":1699990000,\"recoveryLevel\":\"Recoverable+Purgeable\","
        "\"recoverableDays\":90},\"tags\":{}}");
    assert_string_equal(azid_secret_value(s), VALUE);
    assert_int_equal(azid_secret_length(s), strlen(VALUE));
    assert_string_equal(azid_secret_vault_host(s), "myvault.vault.azure.net");
    assert_string_equal(azid_secret_name(s), "db-password");
    assert_int_equal(azid_secret_expires_on(s), TOKEN_EXPIRES);
    azid_secret_free(s);
}

static void test_exp_earlier_than_token(void **state)
{
    (void)state;
    azid_secret *s = expect_parsed("{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":1700000600}}");
    assert_int_equal(azid_secret_expires_on(s), 1700000600);
    azid_secret_free(s);
    /* a later exp leaves the token's expiry */
    s = expect_parsed("{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":1800000000,"
                      "\"nbf\":1600000000}}");
    assert_int_equal(azid_secret_expires_on(s), TOKEN_EXPIRES);
    azid_secret_free(s);
}

static void test_absent_and_null_attributes(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"value\":\"" VALUE "\"}",
        "{\"value\":\"" VALUE "\",\"attributes\":null}",
        "{\"value\":\"" VALUE "\",\"attributes\":{}}",
        "{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":null,\"nbf\":null,\"enabled\":null}}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        azid_secret *s = expect_parsed(bodies[i]);
        assert_int_equal(azid_secret_expires_on(s), TOKEN_EXPIRES);
        azid_secret_free(s);
    }
}

static void test_value_bytes_kept(void **state)
{
    (void)state;
    /* escapes, UTF-8, an embedded NUL: exactly the bytes Key Vault holds */
    azid_secret *s = expect_parsed("{\"value\":\"a\\\"b\\\\c\\nd \\u00e9\\u0000z\"}");
    static const char want[] = "a\"b\\c\nd \xc3\xa9\0z";
    assert_int_equal(azid_secret_length(s), sizeof want - 1);
    assert_memory_equal(azid_secret_value(s), want, sizeof want);
    azid_secret_free(s);
}

static void test_empty_value_is_a_value(void **state)
{
    (void)state;
    azid_secret *s = expect_parsed("{\"value\":\"\"}");
    assert_int_equal(azid_secret_length(s), 0);
    assert_string_equal(azid_secret_value(s), "");
    azid_secret_free(s);
}

static void test_refused_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"id\":\"x\"}", "response has no value field"},
        {"{\"value\":42}", "response field value is not a string"},
        {"{\"value\":null}", "response field value is not a string"},
        {"{\"value\":{\"v\":\"" VALUE "\"}}", "response field value is not a string"},
        {"{\"value\":\"" VALUE "\",\"attributes\":[]}",
         "response field attributes is not an object"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":\"1700000600\"}}",
         "response field attributes.exp is not a whole number of seconds"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"nbf\":1.5}}",
         "response field attributes.nbf is not a whole number of seconds"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"enabled\":\"yes\"}}",
         "response field attributes.enabled is not a boolean"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"enabled\":false}}",
         "the secret is disabled (attributes.enabled is false); enable it in the vault"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":1699999990}}",
         "the secret expired at 1699999990 (attributes.exp, 10 s ago)"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":1700000000}}",
         "the secret expired at 1700000000"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"nbf\":1700000100}}",
         "the secret is not valid before 1700000100 (attributes.nbf, 100 s from now)"},
        {"<html>" VALUE "</html>", "response is not a JSON object (invalid at byte"},
        {"[\"" VALUE "\"]", "response is JSON but not an object"},
        {"\"" VALUE "\"", "response is not a JSON object (invalid at byte"},
        {"{\"value\":\"" VALUE, "response is truncated"},
        {"{\"value\":\"" VALUE "\",\"value\":\"x\"}", "response repeats a JSON field"},
        {"", "response body is empty"},
        /* refused before now - exp or nbf - now could overflow */
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":-9223372036854775808}}",
         "response field attributes.exp is out of range"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"exp\":9223372036854775807}}",
         "response field attributes.exp is out of range"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"nbf\":9223372036854775807}}",
         "response field attributes.nbf is out of range"},
        {"{\"value\":\"" VALUE "\",\"attributes\":{\"nbf\":-9223372036854775808}}",
         "response field attributes.nbf is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(cases[i].body, cases[i].want);
}

static void test_oversize_refused(void **state)
{
    (void)state;
    size_t n = KEYVAULT_MAX_RESPONSE + 1;
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, ' ', n);
    body[n] = '\0';
    expect_refused(body, "response larger than 262144 bytes");
    free(body);
}

/* ---- URLs ------------------------------------------------------------------- */

static void test_urls_refused_before_any_request(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"http://myvault.vault.azure.net/secrets/db", "it must start with https://"},
        {"https://vault.azure.net.evil.com/secrets/db", "the host must be <vault>.<suffix>"},
        {"https://myvault.vault.azure.net.evil.com/secrets/db", "the host must be"},
        {"https://evilvault.azure.net/secrets/db", "the host must be"},
        {"https://vault.azure.net/secrets/db", "the host must be"},
        {"https://a.b.vault.azure.net/secrets/db", "the host must be"},
        {"https://myvault.vault.azure.net./secrets/db", "the host must be"},
        {"https://myvault.vault.azure.net:8443/secrets/db", "with no port"},
        {"https://user@myvault.vault.azure.net/secrets/db", "the host must be"},
        {"https://myvault.vault.azure.net/secrets/", "the secret name must be"},
        {"https://myvault.vault.azure.net/secrets", "the path must be /secrets/<name>"},
        {"https://myvault.vault.azure.net/keys/db", "the path must be /secrets/<name>"},
        {"https://myvault.vault.azure.net/secrets/db?api-version=1", "nothing may follow"},
        {"https://myvault.vault.azure.net/secrets/db/", "the version must be"},
        {"https://myvault.vault.azure.net/secrets/db_pw", "nothing may follow"},
        {"", "it must start with https://"},
    };
    azid_client *client = azid_client_new();
    assert_non_null(client);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        azid_secret *s = (azid_secret *)1;
        azid_error err;
        assert_int_equal(azid_client_get_secret(client, cases[i].url, &s, &err),
                         AZID_ERR_ARGUMENT);
        assert_null(s);
        assert_int_equal(err.status, AZID_ERR_ARGUMENT);
        if (!strstr(err.message, "is not a Key Vault secret URL") ||
            !strstr(err.message, cases[i].want))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].url, err.message, cases[i].want);
    }
    /* the budget did not start: nothing was sent */
    assert_int_equal(client->deadline_ms, 0);
    azid_secret *s = NULL;
    azid_error err;
    assert_int_equal(azid_client_get_secret(client, NULL, &s, &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_client_get_secret(client, "https://v.vault.azure.net/secrets/a", NULL,
                                            &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message, "no place to return the secret");
    azid_client_free(client);
}

static void test_request_url_and_audience(void **state)
{
    (void)state;
    static const struct {
        const char *url, *request, *resource;
    } cases[] = {
        {"https://MyVault.Vault.Azure.Net/secrets/db-password",
         "https://myvault.vault.azure.net/secrets/db-password", "https://vault.azure.net"},
        {"https://v.vault.azure.net/secrets/db/4387e9f3d6e14c459867679a90fd0f79",
         "https://v.vault.azure.net/secrets/db/4387e9f3d6e14c459867679a90fd0f79",
         "https://vault.azure.net"},
        {"https://v.vault.azure.cn/secrets/db", "https://v.vault.azure.cn/secrets/db",
         "https://vault.azure.cn"},
        {"https://v.vault.usgovcloudapi.net/secrets/db",
         "https://v.vault.usgovcloudapi.net/secrets/db", "https://vault.usgovcloudapi.net"},
        {"https://h.managedhsm.azure.net/secrets/db", "https://h.managedhsm.azure.net/secrets/db",
         "https://managedhsm.azure.net"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        secret_url u = parts(cases[i].url);
        char buf[KEYVAULT_URL_MAX];
        keyvault_secret_url(&u, buf, sizeof buf);
        assert_string_equal(buf, cases[i].request);
        keyvault_resource(&u, buf, sizeof buf);
        assert_string_equal(buf, cases[i].resource);
    }
}

/* ---- final statuses --------------------------------------------------------- */

static void expect_hint(long status, const char *text, const char *want)
{
    const char *hint = keyvault_hint(status, text, NULL);
    if (!want) {
        if (hint)
            fail_msg("HTTP %ld: unexpected hint '%s'", status, hint);
        return;
    }
    if (!hint || !strstr(hint, want))
        fail_msg("HTTP %ld '%s': hint '%s' lacks '%s'", status, text, hint ? hint : "(none)",
                 want);
}

static void test_hints(void **state)
{
    (void)state;
    expect_hint(403, "Forbidden: The user, group or application 'appid=...' does not have "
                     "secrets get permission on key vault 'v'.",
                "grant the VM's identity 'get' on secrets (Key Vault Secrets User role or an "
                "access policy)");
    expect_hint(403, "Forbidden: Operation get is not allowed on a disabled secret.",
                "is disabled; enable it in the vault");
    expect_hint(403, "Forbidden: Client address is not authorized and caller is not a trusted "
                     "service.", "the vault's firewall blocks this machine");
    expect_hint(404, "SecretNotFound: A secret with (name/version) = (x/) was not found in this "
                     "key vault.", "no secret of that name (or version)");
    expect_hint(401, "Unauthorized: AKV10022: Invalid audience.", "vault's audience");
    expect_hint(429, "Throttled: Rate limit exceeded", "throttling");
    expect_hint(503, "", "Key Vault failed; try again later");
    expect_hint(400, "BadParameter: bad", NULL);
}

static void test_retryable_statuses(void **state)
{
    (void)state;
    static const long retried[] = {429, 500, 502, 503, 504};
    static const long final[] = {400, 401, 403, 404, 409, 410, 301, 302};
    for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++)
        assert_true(keyvault_status_retryable(retried[i]));
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        assert_false(keyvault_status_retryable(final[i]));
}

static void test_null_secret(void **state)
{
    (void)state;
    azid_secret_free(NULL);
    assert_null(azid_secret_value(NULL));
    assert_int_equal(azid_secret_length(NULL), 0);
    assert_null(azid_secret_vault_host(NULL));
    assert_null(azid_secret_name(NULL));
    assert_int_equal(azid_secret_expires_on(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_and_token_expiry),
        cmocka_unit_test(test_exp_earlier_than_token),
        cmocka_unit_test(test_absent_and_null_attributes),
        cmocka_unit_test(test_value_bytes_kept),
        cmocka_unit_test(test_empty_value_is_a_value),
        cmocka_unit_test(test_refused_bodies),
        cmocka_unit_test(test_oversize_refused),
        cmocka_unit_test(test_urls_refused_before_any_request),
        cmocka_unit_test(test_request_url_and_audience),
        cmocka_unit_test(test_hints),
        cmocka_unit_test(test_retryable_statuses),
        cmocka_unit_test(test_null_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
