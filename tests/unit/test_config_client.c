/* SPDX-License-Identifier: MIT
 * azid_config_new_client: the effective settings reach the identity client.
 * Separate from test_config so that the parser's tests link without the
 * network code. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client.h"
#include "conf_parse.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static azid_config *config_from(const char *const *args)
{
    azid_config *cfg = azid_config_new();
    assert_non_null(cfg);
    for (size_t i = 0; args[i]; i++) {
        azid_error err;
        if (azid_config_apply_arg(cfg, args[i], &err) != AZID_OK)
            fail_msg("%s: %s", args[i], err.message);
    }
    return cfg;
}

static void test_defaults_reach_client(void **state)
{
    (void)state;
    azid_config *cfg = config_from((const char *const[]){NULL});
    azid_client *client = NULL;
    assert_int_equal(azid_config_new_client(cfg, &client, NULL), AZID_OK);
    assert_int_equal(client->source, AZID_SOURCE_AUTO);
    assert_null(client->endpoint_base);
    assert_int_equal(client->identity_kind, AZID_IDENTITY_SYSTEM);
    assert_null(client->identity_value);
    assert_int_equal(client->timeout_ms, AZID_DEFAULT_TIMEOUT_MS);
    assert_null(client->ca_file);
    azid_client_free(client);
    azid_config_free(cfg);
}

static void test_settings_reach_client(void **state)
{
    (void)state;
    const char *srcdir = getenv("top_srcdir");
    if (!srcdir)
        fail_msg("top_srcdir is not set; run through make check");
    char ca_arg[4096];
    snprintf(ca_arg, sizeof ca_arg, "ca_file=%s/doc/azid.conf.example", srcdir);
    azid_config *cfg = config_from((const char *const[]){
        "source=arc", "endpoint=http://127.0.0.1:40342", "timeout=2.5", ca_arg, NULL});
    static const char text[] = "object_id = global\nMatch group dba\nmsi_res_id = /dba\n"
                               "resource = https://dba\n";
    azid_error err;
    assert_int_equal(config_apply_text(cfg, text, sizeof text - 1, "/etc/azid.conf", "alice",
                                       (const char *const[]){"dba"}, 1, &err),
                     AZID_OK);
    azid_client *client = NULL;
    if (azid_config_new_client(cfg, &client, &err) != AZID_OK)
        fail_msg("%s", err.message);
    assert_int_equal(client->source, AZID_SOURCE_ARC);
    assert_string_equal(client->endpoint_base, "http://127.0.0.1:40342");
    /* The client starts with the identity outside Match; the block's
     * identity is its grant's (pam_azid switches to it for that grant). */
    assert_int_equal(client->identity_kind, AZID_IDENTITY_OBJECT_ID);
    assert_string_equal(client->identity_value, "global");
    const azid_grant *grants;
    assert_int_equal(azid_config_grants(cfg, &grants), 1);
    assert_int_equal(grants[0].identity, AZID_IDENTITY_MSI_RES_ID);
    assert_string_equal(grants[0].identity_value, "/dba");
    assert_int_equal(client->timeout_ms, 2500);
    assert_string_equal(client->ca_file, ca_arg + strlen("ca_file="));
    azid_client_free(client);
    azid_config_free(cfg);
}

/* The option table's source words are the library's source names. */
static void test_every_source_word(void **state)
{
    (void)state;
    const struct option *source = option_find("source", 6);
    assert_non_null(source);
    size_t n = 0;
    for (; source->words[n]; n++) {
        char arg[64];
        snprintf(arg, sizeof arg, "source=%s", source->words[n]);
        azid_config *cfg = config_from((const char *const[]){arg, NULL});
        azid_client *client = NULL;
        assert_int_equal(azid_config_new_client(cfg, &client, NULL), AZID_OK);
        assert_int_equal(client->source, (azid_source)n);
        assert_string_equal(azid_source_name(client->source), source->words[n]);
        azid_client_free(client);
        azid_config_free(cfg);
    }
    assert_int_equal(n, AZID_SOURCE_WORKLOAD + 1);
}

/* What the client refuses is reported and no client is returned. */
static void test_client_refusal(void **state)
{
    (void)state;
    azid_config *cfg = config_from(
        (const char *const[]){"client_id=abc", "ca_file=/nonexistent-azid/ca.pem", NULL});
    azid_client *client = (azid_client *)&client;
    azid_error err;
    assert_int_equal(azid_config_new_client(cfg, &client, &err), AZID_ERR_ARGUMENT);
    assert_null(client);
    assert_true(strstr(err.message, "/nonexistent-azid/ca.pem") != NULL);
    azid_config_free(cfg);
}

static void test_null_arguments(void **state)
{
    (void)state;
    azid_client *client = (azid_client *)&client;
    azid_error err;
    assert_int_equal(azid_config_new_client(NULL, &client, &err), AZID_ERR_ARGUMENT);
    assert_null(client);
    assert_non_null(strstr(err.message, "no configuration given (NULL)"));
    azid_config *cfg = azid_config_new();
    assert_non_null(cfg);
    assert_int_equal(azid_config_new_client(cfg, NULL, &err), AZID_ERR_ARGUMENT);
    azid_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_reach_client),
        cmocka_unit_test(test_settings_reach_client),
        cmocka_unit_test(test_every_source_word),
        cmocka_unit_test(test_client_refusal),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
