/* SPDX-License-Identifier: MIT
 * Module arguments, /etc/azid.conf and the option table: what an admin sees
 * (effective settings, error messages naming file, line and key, the debug
 * dump) and the file-safety refusals on real files. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "azid.h"
#include "conf_parse.h"
#include "options.h"
#include "secret_url.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF "/etc/test.conf"
#define VAULT_SECRET "https://kv1.vault.azure.net/secrets/db-password"

/* ---- helpers --------------------------------------------------------------- */

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* The dump as "\nline\nline\n", so "\nX\n" finds whole lines. */
struct dump {
    char text[16384];
    size_t used;
};

static void collect(const char *line, void *ctx)
{
    struct dump *d = ctx;
    d->used += (size_t)snprintf(d->text + d->used, sizeof d->text - d->used, "%s\n", line);
    assert_true(d->used < sizeof d->text);
}

static void dump_of(const azid_config *cfg, struct dump *d)
{
    d->used = (size_t)snprintf(d->text, sizeof d->text, "\n");
    azid_config_dump(cfg, collect, d);
}

static void assert_dump_line(const azid_config *cfg, const char *line)
{
    struct dump d;
    char needle[1024];
    dump_of(cfg, &d);
    snprintf(needle, sizeof needle, "\n%s\n", line);
    if (!strstr(d.text, needle))
        fail_msg("dump has no line \"%s\":%s", line, d.text);
}

static void assert_list(size_t n, const char *const *got, const char *const *want)
{
    size_t expected = 0;
    while (want[expected])
        expected++;
    for (size_t i = 0; i < n && i < expected; i++)
        assert_string_equal(got[i], want[i]);
    assert_int_equal(n, expected);
    assert_null(got[n]);
}

static void assert_resources(const azid_config *cfg, const char *const *want)
{
    const char *const *list;
    size_t n = azid_config_resources(cfg, &list);
    assert_list(n, list, want);
}

static void assert_secrets(const azid_config *cfg, const char *const *want)
{
    const char *const *list;
    size_t n = azid_config_secrets(cfg, &list);
    assert_list(n, list, want);
}

static void assert_identity(const azid_config *cfg, azid_identity_kind kind, const char *value)
{
    const char *id = "unset";
    assert_int_equal(azid_config_identity(cfg, &id), kind);
    if (value)
        assert_string_equal(id, value);
    else
        assert_null(id);
}

/* target is granted, with this identity (value NULL: system-assigned). */
static void assert_grant(const azid_config *cfg, const char *target, azid_identity_kind kind,
                         const char *value)
{
    const azid_grant *g;
    size_t n = azid_config_grants(cfg, &g);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(g[i].target, target))
            continue;
        assert_int_equal(g[i].kind, strncmp(target, "https://", 8) || !strstr(target, "/secrets/")
                                        ? AZID_GRANT_TOKEN
                                        : AZID_GRANT_SECRET);
        assert_int_equal(g[i].identity, kind);
        if (value)
            assert_string_equal(g[i].identity_value, value);
        else
            assert_null(g[i].identity_value);
        return;
    }
    fail_msg("%s is not granted", target);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static azid_config *new_config(void)
{
    azid_config *cfg = azid_config_new();
    assert_non_null(cfg);
    return cfg;
}

static void apply_args(azid_config *cfg, const char *const *args)
{
    azid_error err;
    for (size_t i = 0; args[i]; i++)
        if (azid_config_apply_arg(cfg, args[i], &err) != AZID_OK)
            fail_msg("argument %s: %s", args[i], err.message);
}

static void apply_text_ok(azid_config *cfg, const char *text, const char *user,
                          const char *const *groups)
{
    azid_error err;
    size_t n = 0;
    while (groups && groups[n])
        n++;
    if (config_apply_text(cfg, text, strlen(text), CONF, user, groups, n, &err) != AZID_OK)
        fail_msg("config text refused: %s", err.message);
}

/* ---- the table and defaults -------------------------------------------------- */

static void test_table_is_consistent(void **state)
{
    (void)state;
    char expect[512];
    size_t i;
    const struct option *o;
    for (i = 0; (o = option_at(i)); i++) {
        assert_true(o->doc && *o->doc);
        assert_true(o->syntax && *o->syntax);
        /* Every default is a value the option itself accepts. */
        union option_value v;
        if (o->default_text && option_parse(o, o->default_text, &v, expect, sizeof expect))
            fail_msg("default of %s rejected: %s", o->name, expect);
        if (o->default_text)
            option_value_free(o, &v);
        else
            assert_non_null(o->unset_means);
        if (o->type == OPT_CHOICE || o->type == OPT_FLAG)
            assert_non_null(o->words);
        else if (o->type != OPT_SECONDS)
            assert_non_null(o->check);
        /* config= chooses the file; everything else may be in it. */
        assert_int_equal(!!(o->where & OPT_FILE), strcmp(o->name, "config") != 0);
        /* The broker's and lockdown's host-wide keys are the file's only. */
        assert_int_equal(!!(o->where & OPT_ARG),
                         strcmp(o->name, "negative_cache") && strcmp(o->name, "lockdown_allow"));
    }
    assert_int_equal(i, 16);
}

static void test_defaults(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    assert_resources(cfg, NONE); /* nothing is granted implicitly */
    assert_secrets(cfg, NONE);
    assert_int_equal(azid_config_timeout_ms(cfg), AZID_DEFAULT_TIMEOUT_MS);
    assert_dump_line(cfg, "timeout=5 (default)");
    assert_int_equal(azid_config_source(cfg), AZID_SOURCE_AUTO);
    assert_string_equal(azid_config_path(cfg), AZID_CONFIG_PATH);
    assert_dump_line(cfg, "debug=no (default)");
    assert_null(azid_config_endpoint(cfg));
    assert_null(azid_config_ca_file(cfg));
    /* A mistyped or list option is no accessor: a compile error, not "unset". */
    assert_identity(cfg, AZID_IDENTITY_SYSTEM, NULL);
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_SESSION);
    assert_false(azid_config_fail_closed(cfg));
    assert_false(azid_config_debug(cfg));
    assert_int_equal(azid_config_source(cfg), AZID_SOURCE_AUTO);
    const char *id = "x";
    assert_int_equal(azid_config_identity(cfg, &id), AZID_IDENTITY_SYSTEM);
    assert_null(id);

    assert_dump_line(cfg, "config file " AZID_CONFIG_PATH ": not read");
    assert_dump_line(cfg, "timeout=5 (default)");
    assert_dump_line(cfg, "resource: none granted (nothing is granted implicitly)");
    assert_dump_line(cfg, "secret: none");
    assert_dump_line(cfg, "identity: system-assigned identity (default)");
    assert_dump_line(cfg, "endpoint: not set, the detected source's endpoint");
    assert_dump_line(cfg, "ca_file: not set, the system trust store");
    assert_dump_line(cfg, "debug=no (default)");
    azid_config_free(cfg);
    azid_config_free(NULL);
}

/* ---- arguments ---------------------------------------------------------------- */

static void test_args_apply(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    apply_args(cfg, LIST("resource=https://vault.azure.net", "resource=api://app",
                         "resource=https://vault.azure.net", "secret=" VAULT_SECRET,
                         "client_id=11111111-2222-3333-4444-555555555555", "timeout=2.5",
                         "endpoint=http://127.0.0.1:8080", "source=imds", "keyring=persistent",
                         "fail=closed", "config=/tmp/azid-test.conf", "ca_file=/etc/ssl/ca.pem",
                         "debug"));
    assert_resources(cfg, LIST("https://vault.azure.net", "api://app"));
    assert_secrets(cfg, LIST(VAULT_SECRET));
    assert_int_equal(azid_config_timeout_ms(cfg), 2500);
    assert_dump_line(cfg, "timeout=2.5 (argument)");
    assert_string_equal(azid_config_endpoint(cfg), "http://127.0.0.1:8080");
    assert_int_equal(azid_config_source(cfg), AZID_SOURCE_IMDS);
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_PERSISTENT);
    assert_true(azid_config_fail_closed(cfg));
    assert_string_equal(azid_config_path(cfg), "/tmp/azid-test.conf");
    assert_string_equal(azid_config_ca_file(cfg), "/etc/ssl/ca.pem");
    assert_true(azid_config_debug(cfg));
    const char *id;
    assert_int_equal(azid_config_identity(cfg, &id), AZID_IDENTITY_CLIENT_ID);
    assert_string_equal(id, "11111111-2222-3333-4444-555555555555");
    assert_dump_line(cfg, "resource=api://app (argument)");
    assert_dump_line(cfg, "client_id=11111111-2222-3333-4444-555555555555 (argument)");
    assert_dump_line(cfg, "debug=yes (argument)");

    /* Scalars: the last argument wins; debug=no may undo debug. */
    apply_args(cfg, LIST("timeout=7", "debug=no", "source=workload", "client_id=other"));
    assert_int_equal(azid_config_timeout_ms(cfg), 7000);
    assert_false(azid_config_debug(cfg));
    assert_int_equal(azid_config_source(cfg), AZID_SOURCE_WORKLOAD);
    assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "other");
    azid_config_free(cfg);
}

static void test_timeout_values(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        long ms;
    } cases[] = {
        {"timeout=5", 5000},       {"timeout=2.5", 2500},     {"timeout=0.001", 1},
        {"timeout=0.0001", 1},     {"timeout=300", 300000},   {"timeout=300.000", 300000},
        {"timeout=007", 7000},     {"timeout=1.23456", 1235}, {"timeout=299.9999", 300000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        azid_config *cfg = new_config();
        apply_args(cfg, LIST(cases[i].arg));
        if (azid_config_timeout_ms(cfg) != cases[i].ms)
            fail_msg("%s: %ld ms, expected %ld", cases[i].arg, azid_config_timeout_ms(cfg),
                     cases[i].ms);
        azid_config_free(cfg);
    }
}

static const struct bad_arg {
    const char *arg;
    const char *message; /* expected in the message, which names the argument */
} bad_args[] = {
    {"resorce=https://x", "unknown argument 'resorce=https://x'; known: resource, secret, "
                          "client_id, object_id, msi_res_id, timeout, endpoint, source, "
                          "keyring, fail, config, ca_file, debug"},
    {"", "unknown argument ''"},
    {"=x", "unknown argument '=x'"},
    {"Resource=https://x", "unknown argument 'Resource=https://x'"},
    {"timeout=abc", "timeout=abc: expected seconds, e.g. 5 or 2.5 (more than 0, at most 300)"},
    {"timeout=0", "timeout=0: expected seconds"},
    {"timeout=0.0", "timeout=0.0: expected seconds"},
    {"timeout=301", "timeout=301: expected seconds"},
    {"timeout=300.0001", "timeout=300.0001: expected seconds"},
    {"timeout=99999999999999999999", "timeout=99999999999999999999: expected seconds"},
    {"timeout=-1", "timeout=-1: expected seconds"},
    {"timeout=1e3", "timeout=1e3: expected seconds"},
    {"timeout=.5", "timeout=.5: expected seconds"},
    {"timeout=5.", "timeout=5.: expected seconds"},
    {"timeout=5s", "timeout=5s: expected seconds"},
    {"timeout=", "timeout=: expected seconds"},
    {"timeout", "argument 'timeout' needs a value: timeout=SECONDS"},
    {"resource", "argument 'resource' needs a value: resource=URI"},
    {"resource=", "resource=: expected a resource URI or application ID with no spaces"},
    {"resource=a b", "resource=a b: expected a resource URI"},
    {"resource=a\tb", "resource=a\tb: expected a resource URI"},
    {"endpoint=ftp://x", "endpoint=ftp://x: expected scheme://host[:port] with scheme http or "
                         "https and no path"},
    {"endpoint=http://x/y/", "endpoint=http://x/y/: expected scheme://host[:port]"},
    {"endpoint=http://x%0d", "endpoint=http://x%0d: expected"},
    {"endpoint=http://x/path", "endpoint=http://x/path: expected"},
    {"endpoint=http://x:0", "endpoint=http://x:0: expected"},
    {"endpoint=http://x:65536", "endpoint=http://x:65536: expected"},
    {"endpoint=http://x:123456", "endpoint=http://x:123456: expected"},
    {"endpoint=http://x:", "endpoint=http://x:: expected"},
    {"endpoint=http://", "endpoint=http://: expected"},
    {"endpoint=http://[::1", "endpoint=http://[::1: expected"},
    {"endpoint=http://[]", "endpoint=http://[]: expected"},
    {"endpoint=http://user@host", "endpoint=http://user@host: expected"},
    {"endpoint=http://h?x=1", "endpoint=http://h?x=1: expected"},
    {"source=azure", "source=azure: expected one of auto, imds, arc, appservice, cloudshell, "
                     "workload"},
    {"source=IMDS", "source=IMDS: expected one of auto"},
    {"keyring=thread", "keyring=thread: expected one of session, user, persistent"},
    {"fail=maybe", "fail=maybe: expected one of open, closed"},
    {"debug=maybe", "debug=maybe: expected one of no, yes"},
    {"config=azid.conf", "config=azid.conf: expected an absolute path"},
    {"ca_file=", "ca_file=: expected an absolute path"},
    {"ca_file=/a\nb", "ca_file=/a b: expected an absolute path"},
    {"client_id=", "client_id=: expected the identity's client ID with no spaces"},
    {"msi_res_id=/sub scriptions", "msi_res_id=/sub scriptions: expected the identity's Azure "
                                   "resource ID"},
    {"secret=https://evil.example.com/secrets/x",
     "secret=https://evil.example.com/secrets/x: expected https://<vault>.vault.azure.net/"
     "secrets/<name>[/<version>] (the host must be <vault>.<suffix>"},
    {"secret=http://kv1.vault.azure.net/secrets/x", "(it must start with https://)"},
};

static void test_args_refused(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    struct dump before, after;
    dump_of(cfg, &before);
    for (size_t i = 0; i < sizeof bad_args / sizeof bad_args[0]; i++) {
        azid_error err;
        azid_status st = azid_config_apply_arg(cfg, bad_args[i].arg, &err);
        if (st != AZID_ERR_ARGUMENT)
            fail_msg("argument '%s' accepted", bad_args[i].arg);
        assert_int_equal(err.status, AZID_ERR_ARGUMENT);
        assert_contains(err.message, bad_args[i].message);
        assert_null(strchr(err.message, '\n'));
    }
    /* Nothing of a refused argument applies. */
    dump_of(cfg, &after);
    assert_string_equal(before.text, after.text);

    char long_arg[CONFIG_LINE_MAX + 20];
    memset(long_arg, 'a', sizeof long_arg - 1);
    memcpy(long_arg, "resource=", 9);
    long_arg[sizeof long_arg - 1] = '\0';
    azid_error err;
    assert_int_equal(azid_config_apply_arg(cfg, long_arg, &err), AZID_ERR_ARGUMENT);
    assert_contains(err.message, "is longer than 4096 characters");
    assert_int_equal(azid_config_apply_arg(cfg, NULL, &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_config_apply_arg(cfg, "debug", NULL), AZID_OK);
    assert_int_equal(azid_config_apply_arg(cfg, "debug=on", NULL), AZID_ERR_ARGUMENT);
    azid_config_free(cfg);
}

static void test_args_identity_conflict(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    azid_error err;
    apply_args(cfg, LIST("client_id=aaa"));
    assert_int_equal(azid_config_apply_arg(cfg, "object_id=bbb", &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message, "object_id=bbb: conflicts with client_id=aaa given earlier; "
                                     "give at most one of client_id, object_id, msi_res_id");
    assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "aaa");
    azid_config_free(cfg);
}

/* ---- broker, negative_cache, lockdown_allow ------------------------------------- */

static void test_broker_options(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    const char *path = "x";
    assert_int_equal(azid_config_broker(cfg, &path), AZID_BROKER_AUTO);
    assert_string_equal(path, "/run/azid/azidd.sock");
    assert_int_equal(azid_config_negative_cache_ms(cfg), 60000);
    const char *const *allow;
    assert_int_equal(azid_config_lockdown_allow(cfg, &allow), 0);
    assert_null(allow[0]);
    assert_dump_line(cfg, "broker=auto (default)");
    assert_dump_line(cfg, "negative_cache=60 (default)");
    assert_dump_line(cfg, "lockdown_allow: only root and the broker's user");

    apply_args(cfg, LIST("broker=off"));
    assert_int_equal(azid_config_broker(cfg, &path), AZID_BROKER_OFF);
    assert_null(path);
    apply_args(cfg, LIST("broker=/run/test/b.sock"));
    assert_int_equal(azid_config_broker(cfg, NULL), AZID_BROKER_PATH);
    azid_config_broker(cfg, &path);
    assert_string_equal(path, "/run/test/b.sock");
    assert_dump_line(cfg, "broker=/run/test/b.sock (argument)");

    /* negative_cache and lockdown_allow belong to the host: file only. */
    azid_error err;
    assert_int_equal(azid_config_apply_arg(cfg, "negative_cache=5", &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message, "argument 'negative_cache=5': negative_cache can be set only "
                                     "in the config file (negative_cache = SECONDS)");
    assert_int_equal(azid_config_apply_arg(cfg, "lockdown_allow=bob", &err), AZID_ERR_ARGUMENT);
    assert_contains(err.message, "lockdown_allow can be set only in the config file");
    assert_int_equal(azid_config_apply_arg(cfg, "broker=sock", &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message, "broker=sock: expected auto, off or the absolute path of the "
                                     "broker's socket");
    azid_config_free(cfg);

    cfg = new_config();
    apply_text_ok(cfg,
                  "broker = off\n"
                  "negative_cache = 2.5\n"
                  "lockdown_allow = alice,@ops\n"
                  "lockdown_allow = svc-backup$,alice,@db_admins\n"
                  "lockdown_allow = 172.17.0.0/16,10.1.2.3\n"
                  "Match all\n"
                  "lockdown_allow = carol\n",
                  "alice", NULL);
    assert_int_equal(azid_config_broker(cfg, NULL), AZID_BROKER_OFF);
    assert_int_equal(azid_config_negative_cache_ms(cfg), 2500);
    size_t nallow = azid_config_lockdown_allow(cfg, &allow);
    assert_list(nallow, allow, LIST("alice", "@ops", "svc-backup$", "@db_admins", "172.17.0.0/16",
                                      "10.1.2.3", "carol"));
    assert_dump_line(cfg, "lockdown_allow=@ops (" CONF ":3)");
    assert_dump_line(cfg, "negative_cache=2.5 (" CONF ":2)");
    apply_text_ok(cfg, "negative_cache = 0\n", "alice", NULL);
    assert_int_equal(azid_config_negative_cache_ms(cfg), 0);
    azid_config_free(cfg);

    static const struct {
        const char *text, *message;
    } bad[] = {
        {"negative_cache = -1\n", CONF ":1: negative_cache = -1: expected seconds, e.g. 60 or 2.5 "
                                  "(0 turns it off, at most 3600)"},
        {"negative_cache = 3601\n", CONF ":1: negative_cache = 3601: expected seconds"},
        {"broker = yes\n", CONF ":1: broker = yes: expected auto, off or the absolute path"},
        {"lockdown_allow = alice bob\n", CONF ":1: lockdown_allow = alice bob: expected user "
                                         "names and @group names separated by commas"},
        {"lockdown_allow = alice,\n", CONF ":1: lockdown_allow = alice,: expected"},
        {"lockdown_allow = @\n", CONF ":1: lockdown_allow = @: expected"},
        {"lockdown_allow = -rf\n", CONF ":1: lockdown_allow = -rf: expected"},
        {"lockdown_allow = 10.0.0.0/33\n", CONF ":1: lockdown_allow = 10.0.0.0/33: expected"},
        {"lockdown_allow = 10.0.0.0/\n", CONF ":1: lockdown_allow = 10.0.0.0/: expected"},
        {"lockdown_allow = 10.0.0/8\n", CONF ":1: lockdown_allow = 10.0.0/8: expected"},
        {"Match user alice\nlockdown_allow = alice\n",
         CONF ":2: lockdown_allow applies to the whole machine; move it before the first Match "
              "line or after 'Match all'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg = new_config();
        azid_error e;
        if (config_apply_text(cfg, bad[i].text, strlen(bad[i].text), CONF, "alice", NULL, 0,
                              &e) != AZID_ERR_CONFIG)
            fail_msg("accepted: %s", bad[i].text);
        assert_contains(e.message, bad[i].message);
        azid_config_free(cfg);
    }
}

/* ---- secret URLs ----------------------------------------------------------------- */

static void test_secret_url_parse(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host, *name, *version;
    } good[] = {
        {VAULT_SECRET, "kv1.vault.azure.net", "db-password", ""},
        {"https://kv1.vault.azure.net/secrets/x/0123abcDEF", "kv1.vault.azure.net", "x",
         "0123abcDEF"},
        {"HTTPS://My-Vault.Vault.Azure.NET/secrets/A-1", "my-vault.vault.azure.net", "A-1", ""},
        {"https://v.vault.azure.cn/secrets/n", "v.vault.azure.cn", "n", ""},
        {"https://v.vault.usgovcloudapi.net/secrets/n", "v.vault.usgovcloudapi.net", "n", ""},
        {"https://v.vault.microsoftazure.de/secrets/n", "v.vault.microsoftazure.de", "n", ""},
        {"https://v.managedhsm.azure.net/secrets/n", "v.managedhsm.azure.net", "n", ""},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        secret_url out;
        azid_error err;
        if (secret_url_parse(good[i].url, &out, &err) != AZID_OK)
            fail_msg("%s: %s", good[i].url, err.message);
        assert_string_equal(out.vault_host, good[i].host);
        assert_string_equal(out.name, good[i].name);
        assert_string_equal(out.version, good[i].version);
    }

    char long_name[200];
    snprintf(long_name, sizeof long_name, "https://v.vault.azure.net/secrets/%0128d", 0);
    static const char bad_host[] = "the host must be <vault>.<suffix>";
    const struct {
        const char *url, *why;
    } bad[] = {
        {"http://kv1.vault.azure.net/secrets/x", "it must start with https://"},
        {"kv1.vault.azure.net/secrets/x", "it must start with https://"},
        {"https://evil.example.com/secrets/x", bad_host},
        {"https://kv1.vault.azure.net.evil.com/secrets/x", bad_host},
        {"https://vault.azure.net/secrets/x", bad_host},
        {"https://.vault.azure.net/secrets/x", bad_host},
        {"https://a.b.vault.azure.net/secrets/x", bad_host},
        {"https://kv1.vault.azure.net:443/secrets/x", bad_host},
        {"https://user@kv1.vault.azure.net/secrets/x", bad_host},
        {"https://kv1.vault.azure.net", "the path must be /secrets/<name>[/<version>]"},
        {"https://kv1.vault.azure.net/keys/x", "the path must be /secrets/<name>[/<version>]"},
        {"https://kv1.vault.azure.net/secrets/", "the secret name must be 1 to 127"},
        {"https://kv1.vault.azure.net/secrets/a_b", "nothing may follow"},
        {long_name, "the secret name must be 1 to 127"},
        {"https://kv1.vault.azure.net/secrets/x/", "the version must be 1 to 64"},
        {"https://kv1.vault.azure.net/secrets/x/v-1", "nothing may follow"},
        {"https://kv1.vault.azure.net/secrets/x?api-version=7.4", "nothing may follow"},
        {"https://kv1.vault.azure.net/secrets/x/v/", "nothing may follow"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        secret_url out;
        azid_error err;
        if (secret_url_parse(bad[i].url, &out, &err) != AZID_ERR_ARGUMENT)
            fail_msg("%s accepted", bad[i].url);
        assert_contains(err.message, "is not a Key Vault secret URL");
        assert_contains(err.message, bad[i].why);
        assert_string_equal(out.vault_host, "");
    }
    secret_url out;
    assert_int_equal(secret_url_parse(NULL, &out, NULL), AZID_ERR_ARGUMENT);
}

/* ---- the file format -------------------------------------------------------------- */

static void test_file_syntax(void **state)
{
    (void)state;
    /* Both spellings, blanks, tabs, comments, CR LF, no final newline. */
    static const char text[] =
        "# azid policy\r\n"
        "\r\n"
        "   \t\n"
        "resource = https://a\n"
        "resource=https://b\r\n"
        "  resource\thttps://c  \n"
        "\tresource   =   https://d\t\n"
        "    # indented comment\n"
        "timeout 4\n"
        "match USER alice\n"
        "resource https://e\n"
        "MATCH All\n"
        "secret = " VAULT_SECRET;
    azid_config *cfg = new_config();
    apply_text_ok(cfg, text, "alice", NULL);
    assert_resources(cfg, LIST("https://a", "https://b", "https://c", "https://d", "https://e"));
    assert_secrets(cfg, LIST(VAULT_SECRET));
    assert_int_equal(azid_config_timeout_ms(cfg), 4000);

    /* A file of nothing but comments and blanks changes nothing. */
    static const char *const empty[] = {"", "\n", "\r\n", "\n\n\n", "# x", "#\n#\r\n  # y"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        apply_text_ok(cfg, empty[i], "alice", NULL);
        assert_resources(cfg, NONE);
        assert_int_equal(azid_config_timeout_ms(cfg), AZID_DEFAULT_TIMEOUT_MS);
    }
    azid_config_free(cfg);
}

struct bad_text {
    const char *text;
    size_t len; /* 0: strlen */
    const char *message;
};

static void check_refused(const struct bad_text *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        azid_config *cfg = new_config();
        azid_error err;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        /* What the arguments say still applies after the file is refused. */
        apply_args(cfg, LIST("resource=https://from-argument", "timeout=9"));
        azid_status st = config_apply_text(cfg, cases[i].text, len, CONF, "alice",
                                           LIST("dba"), 1, &err);
        if (st != AZID_ERR_CONFIG)
            fail_msg("accepted (%s): %s", azid_status_name(st), cases[i].text);
        assert_int_equal(err.status, AZID_ERR_CONFIG);
        assert_contains(err.message, cases[i].message);
        assert_null(strchr(err.message, '\n'));
        assert_resources(cfg, LIST("https://from-argument"));
        assert_secrets(cfg, NONE);
        assert_int_equal(azid_config_timeout_ms(cfg), 9000);
        assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_SESSION);
        assert_identity(cfg, AZID_IDENTITY_SYSTEM, NULL);
        struct dump d;
        dump_of(cfg, &d);
        assert_contains(d.text, "\nconfig file " CONF ": refused, nothing of it applies: ");
        assert_contains(d.text, cases[i].message);
        azid_config_free(cfg);
    }
}

static void test_file_refused(void **state)
{
    (void)state;
    static const char nul[] = "keyring = user\nresource = https://x\0y\n";
    static const struct bad_text cases[] = {
        /* Every line before the bad one would have applied. */
        {"keyring = user\nresource = https://x\nresorce = https://y\n", 0,
         CONF ":3: unknown key 'resorce'; known: resource, secret, client_id, object_id, "
              "msi_res_id, timeout, endpoint, source, keyring, fail, ca_file, debug, broker, negative_cache, lockdown_allow and Match"},
        {"keyring = user\n= https://x\n", 0,
         CONF ":2: expected 'key = value', 'Match ...' or a # comment, found '= https://x'"},
        {"keyring: user\n", 0, CONF ":1: expected 'key = value'"},
        {"keyring = user\nconfig = /etc/other.conf\n", 0,
         CONF ":2: config cannot be set in the config file; give it as a module or "
              "command-line argument (config=PATH)"},
        {"keyring = user\ntimeout = abc\n", 0,
         CONF ":2: timeout = abc: expected seconds, e.g. 5 or 2.5 (more than 0, at most 300)"},
        {"keyring = user\nresource =\n", 0,
         CONF ":2: resource has no value; expected resource = URI"},
        {"keyring = user\nresource\n", 0, CONF ":2: resource has no value"},
        {"keyring = user\ndebug\n", 0, CONF ":2: debug has no value; expected debug = yes|no"},
        {"keyring = user\nresource = https://x # the vault\n", 0,
         CONF ":2: resource = https://x # the vault: expected a resource URI"},
        {"keyring = sesion\n", 0,
         CONF ":1: keyring = sesion: expected one of session, user, persistent"},
        {"secret = https://kv.vault.azure.net/secret/x\n", 0,
         CONF ":1: secret = https://kv.vault.azure.net/secret/x: expected "
              "https://<vault>.vault.azure.net/secrets/<name>[/<version>] (the path must be"},
        /* One identity per level: global lines, even split by Match all. */
        {"client_id = a\nresource = https://x\nobject_id = b\n", 0,
         CONF ":3: object_id conflicts with client_id at line 1; give at most one of "
              "client_id, object_id, msi_res_id outside Match blocks"},
        {"client_id = a\nMatch user bob\nMatch all\nmsi_res_id = /x\n", 0,
         CONF ":4: msi_res_id conflicts with client_id at line 1"},
        /* ... and per Match block, whether it matches or not. */
        {"Match user nobody\nclient_id = a\nmsi_res_id = /x\n", 0,
         CONF ":3: msi_res_id conflicts with client_id at line 2; give at most one of "
              "client_id, object_id, msi_res_id per Match block"},
        /* A bad value is refused even where it would not apply. */
        {"Match user nobody\ntimeout = 0\n", 0, CONF ":2: timeout = 0: expected seconds"},
        {"Match\n", 0, CONF ":1: Match needs a criterion: Match user NAME[,NAME...], "
                           "Match group NAME[,NAME...] or Match all"},
        {"Match host web1\n", 0, CONF ":1: unknown Match criterion 'host'; expected Match user"},
        {"Match user\n", 0, CONF ":1: 'Match user' needs names: Match user NAME[,NAME...]"},
        {"Match group\t\n", 0, CONF ":1: 'Match group' needs names"},
        {"Match user alice, bob\n", 0,
         CONF ":1: 'Match user alice, bob': separate names with commas, no spaces"},
        {"Match user alice group dba\n", 0,
         CONF ":1: 'Match user alice group dba': separate names with commas, no spaces "
              "(one criterion per Match line)"},
        {"Match group dba,,ops\n", 0, CONF ":1: 'Match group dba,,ops': empty name in the list"},
        {"Match group ,dba\n", 0, CONF ":1: 'Match group ,dba': empty name"},
        {"Match user alice,\n", 0, CONF ":1: 'Match user alice,': empty name"},
        {"Match all users\n", 0, CONF ":1: nothing may follow 'Match all', found 'users'"},
        {"Match=user alice\n", 0, CONF ":1: unknown Match criterion '=user'"},
        {nul, sizeof nul - 1, CONF ":2: NUL byte in the line; the file must be text"},
        {"keyring = user\nresource = https://x\x01\n", 0,
         CONF ":2: control character 0x01 in the line"},
        {"keyring = user\rresource = https://x\n", 0, CONF ":1: control character 0x0d"},
        /* Line numbers count CR LF lines as lines. */
        {"# a\r\n\r\nkeyring = user\r\nbogus = 1\r\n", 0, CONF ":4: unknown key 'bogus'"},
    };
    check_refused(cases, sizeof cases / sizeof cases[0]);

    /* Over-long lines, with the limit itself accepted. */
    size_t size = CONFIG_LINE_MAX + 64;
    char *text = malloc(size);
    assert_non_null(text);
    int n = snprintf(text, size, "ca_file = /");
    memset(text + n, 'r', CONFIG_LINE_MAX - (size_t)n);
    strcpy(text + CONFIG_LINE_MAX, "\n");
    azid_config *cfg = new_config();
    apply_text_ok(cfg, text, NULL, NULL);
    assert_int_equal(strlen(azid_config_ca_file(cfg)), CONFIG_LINE_MAX - (size_t)n + 1);
    /* A resource must also fit its key description (4095 bytes). */
    n = snprintf(text, size, "resource = ");
    memset(text + n, 'r', AZID_RESOURCE_MAX);
    strcpy(text + n + AZID_RESOURCE_MAX, "\n");
    apply_text_ok(cfg, text, NULL, NULL);
    const char *const *list;
    assert_int_equal(azid_config_resources(cfg, &list), 1);
    assert_int_equal(strlen(list[0]), AZID_RESOURCE_MAX);
    strcpy(text + n + AZID_RESOURCE_MAX, "r\n");
    struct bad_text too_big = {text, 0, CONF ":1: resource = rrr"};
    check_refused(&too_big, 1);
    azid_error err;
    assert_int_equal(config_apply_text(cfg, text, strlen(text), CONF, NULL, NULL, 0, &err),
                     AZID_ERR_CONFIG);
    assert_contains(err.message, ": expected a resource of at most 4084 characters");
    azid_config_free(cfg);
    n = snprintf(text, size, "resource = ");
    memset(text + n, 'r', CONFIG_LINE_MAX - (size_t)n);
    strcpy(text + CONFIG_LINE_MAX, "r\n");
    struct bad_text too_long = {text, 0, CONF ":1: line longer than 4096 characters"};
    check_refused(&too_long, 1);
    free(text);
}

/* ---- Match semantics ------------------------------------------------------------ */

static const char policy[] =
    "# everyone\n"                                   /* 1 */
    "resource = https://global\n"                    /* 2 */
    "timeout = 3\n"                                  /* 3 */
    "client_id = global-id\n"                        /* 4 */
    "Match user alice,carol\n"                       /* 5 */
    "resource = https://alice\n"                     /* 6 */
    "timeout = 4\n"                                  /* 7 */
    "Match group dba\n"                              /* 8 */
    "resource = https://dba\n"                       /* 9 */
    "secret = " VAULT_SECRET "\n"                    /* 10 */
    "timeout = 6\n"                                  /* 11 */
    "object_id = dba-id\n"                           /* 12 */
    "Match user bob\n"                               /* 13 */
    "keyring = user\n"                               /* 14 */
    "resource = https://bob\n"                       /* 15 */
    "Match all\n"                                    /* 16 */
    "fail = closed\n"                                /* 17 */
    "resource = https://global\n"                    /* 18 */
    "resource = https://late\n";                     /* 19 */

static void test_match_user_and_group(void **state)
{
    (void)state;
    azid_config *cfg = new_config();

    /* alice: her own block and, through a supplementary group, dba's. */
    apply_text_ok(cfg, policy, "alice", LIST("users", "dba"));
    assert_resources(cfg, LIST("https://global", "https://alice", "https://dba", "https://late"));
    assert_secrets(cfg, LIST(VAULT_SECRET));
    assert_int_equal(azid_config_timeout_ms(cfg), 6000); /* the last matching block */
    assert_true(azid_config_fail_closed(cfg));           /* after Match all: everyone */
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_SESSION);
    /* Each grant with its block's identity, else the one outside Match. */
    assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "global-id");
    assert_grant(cfg, "https://global", AZID_IDENTITY_CLIENT_ID, "global-id");
    assert_grant(cfg, "https://alice", AZID_IDENTITY_CLIENT_ID, "global-id");
    assert_grant(cfg, "https://dba", AZID_IDENTITY_OBJECT_ID, "dba-id");
    assert_grant(cfg, VAULT_SECRET, AZID_IDENTITY_OBJECT_ID, "dba-id");
    assert_grant(cfg, "https://late", AZID_IDENTITY_CLIENT_ID, "global-id");

    /* carol: named in the user list, not in dba. */
    apply_text_ok(cfg, policy, "carol", LIST("carol"));
    assert_resources(cfg, LIST("https://global", "https://alice", "https://late"));
    assert_secrets(cfg, NONE);
    assert_int_equal(azid_config_timeout_ms(cfg), 4000);
    assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "global-id");
    assert_grant(cfg, "https://alice", AZID_IDENTITY_CLIENT_ID, "global-id");

    /* bob: his block only. */
    apply_text_ok(cfg, policy, "bob", LIST("bob"));
    assert_resources(cfg, LIST("https://global", "https://bob", "https://late"));
    assert_int_equal(azid_config_timeout_ms(cfg), 3000);
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_USER);

    /* A user called dba is not the group dba; a group called bob is not bob. */
    apply_text_ok(cfg, policy, "dba", LIST("bob"));
    assert_resources(cfg, LIST("https://global", "https://late"));

    /* No user: only what is outside Match blocks. */
    apply_text_ok(cfg, policy, NULL, NULL);
    assert_resources(cfg, LIST("https://global", "https://late"));
    assert_int_equal(azid_config_timeout_ms(cfg), 3000);
    assert_true(azid_config_fail_closed(cfg));
    azid_config_free(cfg);
}

/* Nothing is granted implicitly: a user granted nothing gets nothing,
 * whether or not the file grants anything to others. */
static void test_nothing_granted_implicitly(void **state)
{
    (void)state;
    static const char dba_only[] = "Match group dba\nresource = https://X\n";
    azid_config *cfg = new_config();

    apply_text_ok(cfg, dba_only, "alice", LIST("alice", "dba"));
    assert_resources(cfg, LIST("https://X"));

    /* bob is granted nothing by a file that grants others something. */
    apply_text_ok(cfg, dba_only, "bob", LIST("bob"));
    assert_int_equal(azid_config_resources(cfg, NULL), 0);
    assert_resources(cfg, NONE);
    assert_dump_line(cfg, "resource: none granted (nothing is granted implicitly)");
    assert_dump_line(cfg, "Match group dba (line 1): does not apply");
    assert_true(azid_config_grants_anyone(cfg));

    /* A file naming no resource grants none: there is no default. */
    apply_text_ok(cfg, "timeout = 2\nMatch group dba\nkeyring = user\n", "bob", LIST("bob"));
    assert_resources(cfg, NONE);
    assert_secrets(cfg, NONE);
    assert_false(azid_config_grants_anyone(cfg));
    apply_text_ok(cfg, "Match user carol\nsecret = " VAULT_SECRET "\n", "bob", LIST("bob"));
    assert_true(azid_config_grants_anyone(cfg));
    apply_text_ok(cfg, "", "bob", LIST("bob"));
    assert_false(azid_config_grants_anyone(cfg));
    assert_false(azid_config_grants_anyone(NULL));

    /* Arguments grant what they name, and only that. */
    apply_args(cfg, LIST("resource=https://arg"));
    assert_resources(cfg, LIST("https://arg"));
    assert_true(azid_config_grants_anyone(cfg));
    apply_text_ok(cfg, dba_only, "bob", LIST("bob"));
    assert_resources(cfg, LIST("https://arg"));
    azid_config_free(cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    static const char text[] =
        "timeout = 3\n"
        "source = imds\n"
        "endpoint = http://127.0.0.1:1\n"
        "msi_res_id = /global\n"
        "resource = https://file\n"
        "Match group dba\n"
        "timeout = 6\n"
        "endpoint = http://127.0.0.1:2\n"
        "resource = https://arg\n";

    /* Arguments win whether they come before or after the file. */
    for (int order = 0; order < 2; order++) {
        azid_config *cfg = new_config();
        if (order)
            apply_text_ok(cfg, text, "alice", LIST("dba"));
        apply_args(cfg, LIST("timeout=1.5", "client_id=arg-id", "resource=https://arg",
                             "resource=https://only-arg"));
        if (!order)
            apply_text_ok(cfg, text, "alice", LIST("dba"));
        assert_int_equal(azid_config_timeout_ms(cfg), 1500);               /* argument */
        assert_string_equal(azid_config_endpoint(cfg), "http://127.0.0.1:2"); /* Match */
        assert_int_equal(azid_config_source(cfg), AZID_SOURCE_IMDS);           /* global */
        assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_SESSION); /* default */
        /* An argument's identity replaces the file's, whatever its spelling. */
        assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "arg-id");
        /* Lists: arguments first, then the file in order, each once. */
        assert_resources(cfg, LIST("https://arg", "https://only-arg", "https://file"));
        assert_dump_line(cfg, "resource=https://arg (argument)");
        assert_dump_line(cfg, "resource=https://file (" CONF ":5)");
        assert_dump_line(cfg, "timeout=1.5 (argument)");
        assert_dump_line(cfg, "endpoint=http://127.0.0.1:2 (" CONF ":8, Match group dba)");
        assert_dump_line(cfg, "source=imds (" CONF ":2)");
        assert_dump_line(cfg, "client_id=arg-id (argument)");
        azid_config_free(cfg);
    }

    /* A Match block's identity binds what that block grants, and only that:
     * the identity outside stays, for the grants outside. */
    static const char blocks[] = "msi_res_id = /global\n"
                                 "resource = https://g\n"
                                 "Match group dba\n"
                                 "client_id = c\n"
                                 "resource = https://d\n";
    azid_config *cfg = new_config();
    apply_text_ok(cfg, blocks, "a", LIST("dba"));
    assert_identity(cfg, AZID_IDENTITY_MSI_RES_ID, "/global");
    assert_grant(cfg, "https://g", AZID_IDENTITY_MSI_RES_ID, "/global");
    assert_grant(cfg, "https://d", AZID_IDENTITY_CLIENT_ID, "c");
    assert_dump_line(cfg, "msi_res_id=/global (" CONF ":1)");
    assert_dump_line(cfg, "resource=https://g (" CONF ":2)");
    assert_dump_line(cfg, "resource=https://d (" CONF ":5, Match group dba) with client_id=c "
                          "(line 4)");
    apply_text_ok(cfg, blocks, "a", LIST("x"));
    assert_resources(cfg, LIST("https://g"));
    assert_identity(cfg, AZID_IDENTITY_MSI_RES_ID, "/global");
    /* An argument's identity replaces the one outside, not a block's. */
    apply_args(cfg, LIST("object_id=arg"));
    apply_text_ok(cfg, blocks, "a", LIST("dba"));
    assert_grant(cfg, "https://g", AZID_IDENTITY_OBJECT_ID, "arg");
    assert_grant(cfg, "https://d", AZID_IDENTITY_CLIENT_ID, "c");
    azid_config_free(cfg);

    /* Two blocks both matching: each its own identity, wherever in the
     * block the selector stands. */
    cfg = new_config();
    apply_text_ok(cfg, "Match user a\nresource = https://u\nclient_id = c\n"
                       "Match group dba\nobject_id = o\nresource = https://g\n", "a",
                  LIST("dba"));
    assert_grant(cfg, "https://u", AZID_IDENTITY_CLIENT_ID, "c");
    assert_grant(cfg, "https://g", AZID_IDENTITY_OBJECT_ID, "o");
    assert_identity(cfg, AZID_IDENTITY_SYSTEM, NULL);
    /* Same selector twice at one level: the last one. */
    apply_text_ok(cfg, "client_id = one\nclient_id = two\nresource = https://x\n", NULL, NULL);
    assert_identity(cfg, AZID_IDENTITY_CLIENT_ID, "two");
    assert_grant(cfg, "https://x", AZID_IDENTITY_CLIENT_ID, "two");
    azid_config_free(cfg);
}

/* Many arguments after the file: the array of arguments grows (and may
 * move) while plain settings set their own slots; every setting, grant and
 * origin stays right. */
static void test_many_args_after_file(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    apply_text_ok(cfg, "timeout = 3\nresource = https://file\nendpoint = http://127.0.0.1:1\n",
                  "alice", NULL);
    apply_args(cfg, LIST("timeout=1", "source=imds", "timeout=2", "debug", "keyring=session",
                         "fail=open", "timeout=4", "debug=no", "timeout=5", "keyring=user",
                         "resource=https://arg", "timeout=6"));
    assert_int_equal(azid_config_timeout_ms(cfg), 6000);
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_USER);
    assert_false(azid_config_debug(cfg));
    assert_string_equal(azid_config_endpoint(cfg), "http://127.0.0.1:1");
    assert_resources(cfg, LIST("https://arg", "https://file"));
    assert_dump_line(cfg, "timeout=6 (argument)");
    assert_dump_line(cfg, "keyring=user (argument)");
    assert_dump_line(cfg, "source=imds (argument)");
    assert_dump_line(cfg, "endpoint=http://127.0.0.1:1 (" CONF ":3)");
    assert_dump_line(cfg, "resource=https://arg (argument)");
    assert_dump_line(cfg, "resource=https://file (" CONF ":2)");
    azid_config_free(cfg);
}

/* Two grants of one target to one user with different identities are an
 * error naming both lines; with one identity they are one grant. */
static void test_grant_identity_conflicts(void **state)
{
    (void)state;
    static const char two[] = "resource = https://v\n"                 /* 1 */
                              "Match group web\n"                      /* 2 */
                              "client_id = web\n"                      /* 3 */
                              "resource = https://v\n"                 /* 4 */
                              "secret = " VAULT_SECRET "\n"            /* 5 */
                              "Match group dba\n"                      /* 6 */
                              "secret = " VAULT_SECRET "\n"            /* 7 */
                              "client_id = dba\n";                     /* 8 */
    azid_config *cfg = new_config();
    azid_error err;
    assert_int_equal(config_apply_text(cfg, two, strlen(two), CONF, "carol", LIST("web"), 1, &err),
                     AZID_ERR_CONFIG);
    assert_string_equal(err.message, CONF ":4: resource https://v is granted to this user with "
                                     "client_id=web here and with the system-assigned identity by "
                                     "line 1; a resource gets one identity per user: give both the "
                                     "same identity or grant it once");
    assert_resources(cfg, NONE);
    assert_dump_line(cfg, "config file " CONF ": refused, nothing of it applies: " CONF ":4: "
                          "resource https://v is granted to this user with client_id=web here "
                          "and with the system-assigned identity by line 1; a resource gets one "
                          "identity per user: give both the same identity or grant it once");
    assert_int_equal(config_apply_text(cfg, two + 21, strlen(two + 21), CONF, "carol",
                                       LIST("web", "dba"), 2, &err),
                     AZID_ERR_CONFIG);
    assert_contains(err.message, CONF ":6: secret " VAULT_SECRET " is granted to this user with "
                                 "client_id=dba here and with client_id=web by line 4");
    /* Only the user both blocks apply to is refused. */
    apply_text_ok(cfg, two + 21, "dave", LIST("dba"));
    assert_grant(cfg, VAULT_SECRET, AZID_IDENTITY_CLIENT_ID, "dba");

    /* The same identity twice: one grant, from the first line. */
    apply_text_ok(cfg, "client_id = x\nresource = https://v\nMatch user carol\n"
                       "client_id = x\nresource = https://v\n", "carol", NULL);
    assert_int_equal(azid_config_grants(cfg, NULL), 1);
    assert_dump_line(cfg, "resource=https://v (" CONF ":2)");

    /* An argument's grant against a block's: refused whichever comes first. */
    static const char block[] = "Match user carol\nclient_id = c\nresource = https://v\n";
    apply_args(cfg, LIST("resource=https://v"));
    assert_int_equal(config_apply_text(cfg, block, strlen(block), CONF, "carol", NULL, 0, &err),
                     AZID_ERR_CONFIG);
    assert_string_equal(err.message, CONF ":3: resource https://v is granted to this user with "
                                     "client_id=c here and with the system-assigned identity by "
                                     "the argument resource=https://v; a resource gets one "
                                     "identity per user: give both the same identity or grant it "
                                     "once");
    azid_config_free(cfg);
    cfg = new_config();
    apply_text_ok(cfg, block, "carol", NULL);
    assert_int_equal(azid_config_apply_arg(cfg, "resource=https://v", &err), AZID_ERR_CONFIG);
    assert_contains(err.message, CONF ":3: resource https://v is granted to this user with "
                                 "client_id=c here and with the system-assigned identity by the "
                                 "argument resource=https://v");
    /* Nothing of the refused argument applies. */
    assert_grant(cfg, "https://v", AZID_IDENTITY_CLIENT_ID, "c");
    assert_int_equal(azid_config_grants(cfg, NULL), 1);
    /* With the block's identity given outside too, there is one identity. */
    apply_args(cfg, LIST("client_id=c", "resource=https://v"));
    assert_int_equal(azid_config_grants(cfg, NULL), 1);
    azid_config_free(cfg);
}

static void test_reload_replaces_file(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    apply_text_ok(cfg, "resource = https://first\ntimeout = 8\n", NULL, NULL);
    apply_text_ok(cfg, "secret = " VAULT_SECRET "\n", NULL, NULL);
    assert_resources(cfg, NONE);
    assert_secrets(cfg, LIST(VAULT_SECRET));
    assert_int_equal(azid_config_timeout_ms(cfg), AZID_DEFAULT_TIMEOUT_MS);
    azid_config_free(cfg);
}

static void test_dump(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    apply_args(cfg, LIST("resource=https://vault.azure.net", "debug"));
    apply_text_ok(cfg, policy, "alice", LIST("dba"));
    struct dump d;
    dump_of(cfg, &d);
    static const char *const lines[] = {
        "config file " CONF ": read for user alice",
        "Match user alice,carol (line 5): applies",
        "Match group dba (line 8): applies",
        "Match user bob (line 13): does not apply",
        "resource=https://vault.azure.net (argument)",
        "resource=https://global (" CONF ":2)",
        "resource=https://alice (" CONF ":6, Match user alice,carol)",
        "resource=https://dba (" CONF ":9, Match group dba) with object_id=dba-id (line 12)",
        "resource=https://late (" CONF ":19)",
        "secret=" VAULT_SECRET " (" CONF ":10, Match group dba) with object_id=dba-id (line 12)",
        "client_id=global-id (" CONF ":4)",
        "timeout=6 (" CONF ":11, Match group dba)",
        "endpoint: not set, the detected source's endpoint",
        "source=auto (default)",
        "keyring=session (default)",
        "fail=closed (" CONF ":17)",
        "config=" AZID_CONFIG_PATH " (default)",
        "ca_file: not set, the system trust store",
        "debug=yes (argument)",
        "broker=auto (default)",
        "negative_cache=60 (default)",
        "lockdown_allow: only root and the broker's user",
    };
    char expected[4096];
    size_t used = (size_t)snprintf(expected, sizeof expected, "\n");
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        used += (size_t)snprintf(expected + used, sizeof expected - used, "%s\n", lines[i]);
    /* Exactly these lines in this order: one per setting, each list item, each Match. */
    assert_string_equal(d.text, expected);

    apply_text_ok(cfg, policy, NULL, NULL);
    assert_dump_line(cfg, "config file " CONF ": read without a user, no Match block applies");
    azid_config_free(cfg);
}

/* ---- the real file -------------------------------------------------------------------- */

/* Each of these tests works in its own directory, which the teardown
 * removes even when the test fails. */
static int tmpdir_setup(void **state)
{
    char *dir = strdup("/tmp/azid-test-config.XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int tmpdir_teardown(void **state)
{
    char *dir = *state;
    int rc = nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return rc;
}

struct path {
    char s[256];
};

/* dir/name holding text, owned by uid:root with mode. */
static struct path tmp_file(const char *dir, const char *name, const char *text, size_t len,
                            uid_t uid, mode_t mode)
{
    struct path p;
    snprintf(p.s, sizeof p.s, "%s/%s", dir, name);
    unlink(p.s);
    int fd = open(p.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchown(fd, uid, 0), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return p;
}

/* Loads the file at path as config= names it. */
static azid_status load(azid_config *cfg, const char *path, const char *user, azid_error *err)
{
    char arg[300];
    snprintf(arg, sizeof arg, "config=%s", path);
    assert_int_equal(azid_config_apply_arg(cfg, arg, NULL), AZID_OK);
    return azid_config_load(cfg, user, err);
}

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("file-safety tests need root (chown); skipped\n");
        skip();
    }
}

static void test_load_real_file(void **state)
{
    const char *dir = *state;
    need_root();
    /* root's groups come from the real user database: root is in group root. */
    static const char text[] = "resource = https://all\n"
                               "Match group root\n"
                               "resource = https://root-group\n"
                               "Match user root\n"
                               "timeout = 2\n"
                               "Match group azid-no-such-group\n"
                               "resource = https://nobody\n";
    struct path conf = tmp_file(dir, "azid.conf", text, sizeof text - 1, 0, 0644);
    azid_config *cfg = new_config();
    azid_error err;
    assert_int_equal(load(cfg, conf.s, "root", &err), AZID_OK);
    assert_resources(cfg, LIST("https://all", "https://root-group"));
    assert_int_equal(azid_config_timeout_ms(cfg), 2000);
    char line[300];
    snprintf(line, sizeof line, "config file %s: read for user root", conf.s);
    assert_dump_line(cfg, line);

    /* A user the database does not know matches no group. */
    assert_int_equal(load(cfg, conf.s, "azid-no-such-user", &err), AZID_OK);
    assert_resources(cfg, LIST("https://all"));
    assert_dump_line(cfg, "user azid-no-such-user: not in the user database, so no Match group "
                          "block applies");

    /* 0400 is as good as 0644; exactly 64 KiB is allowed. */
    assert_int_equal(chmod(conf.s, 0400), 0);
    assert_int_equal(load(cfg, conf.s, NULL, &err), AZID_OK);
    assert_resources(cfg, LIST("https://all"));
    azid_config_free(cfg);

    char *big = malloc(CONFIG_FILE_MAX);
    assert_non_null(big);
    memset(big, '#', CONFIG_FILE_MAX);
    for (size_t i = 99; i < CONFIG_FILE_MAX; i += 100)
        big[i] = '\n';
    struct path limit = tmp_file(dir, "limit.conf", big, CONFIG_FILE_MAX, 0, 0600);
    free(big);
    cfg = new_config();
    assert_int_equal(load(cfg, limit.s, "root", &err), AZID_OK);
    azid_config_free(cfg);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    azid_config *cfg = new_config();
    azid_error err;
    apply_args(cfg, LIST("timeout=4"));
    assert_int_equal(load(cfg, "/nonexistent-azid-dir/azid.conf", "root", &err), AZID_OK);
    assert_resources(cfg, NONE);
    assert_int_equal(azid_config_timeout_ms(cfg), 4000);
    assert_dump_line(cfg, "config file /nonexistent-azid-dir/azid.conf: not present");
    azid_config_free(cfg);
}

/* Each unsafe file is refused naming the file and the fix, and whatever
 * an earlier good load brought is gone. */
static void expect_refused(const char *dir, const char *path, const char *message)
{
    azid_config *cfg = new_config();
    azid_error err;
    struct path good = tmp_file(dir, "good.conf", "resource = https://good\n", 24, 0, 0644);
    assert_int_equal(load(cfg, good.s, NULL, &err), AZID_OK);
    assert_resources(cfg, LIST("https://good"));

    assert_int_equal(load(cfg, path, "root", &err), AZID_ERR_CONFIG);
    assert_int_equal(err.status, AZID_ERR_CONFIG);
    assert_contains(err.message, path);
    assert_contains(err.message, message);
    assert_resources(cfg, NONE);
    struct dump d;
    dump_of(cfg, &d);
    assert_contains(d.text, ": refused, nothing of it applies: ");
    assert_contains(d.text, message);
    azid_config_free(cfg);
}

static void test_load_refuses_unsafe_files(void **state)
{
    const char *dir = *state;
    need_root();
    static const char text[] = "resource = https://bad\n";
    char message[600];

    struct path p = tmp_file(dir, "owner.conf", text, sizeof text - 1, 65534, 0644);
    snprintf(message, sizeof message, ": owned by uid 65534, not root; run: chown root %s", p.s);
    expect_refused(dir, p.s, message);

    p = tmp_file(dir, "group-writable.conf", text, sizeof text - 1, 0, 0664);
    snprintf(message, sizeof message,
             ": writable by group or others (mode 0664); run: chmod go-w %s", p.s);
    expect_refused(dir, p.s, message);

    p = tmp_file(dir, "other-writable.conf", text, sizeof text - 1, 0, 0602);
    expect_refused(dir, p.s, ": writable by group or others (mode 0602)");

    /* A symbolic link, even to a safe file. */
    p = tmp_file(dir, "safe.conf", text, sizeof text - 1, 0, 0644);
    struct path link;
    snprintf(link.s, sizeof link.s, "%s/link.conf", dir);
    assert_int_equal(symlink(p.s, link.s), 0);
    expect_refused(dir, link.s, ": refusing a symbolic link; point config= at the file itself");

    /* A FIFO with no writer must not block the login. */
    struct path fifo;
    snprintf(fifo.s, sizeof fifo.s, "%s/fifo.conf", dir);
    assert_int_equal(mkfifo(fifo.s, 0600), 0);
    expect_refused(dir, fifo.s, ": not a regular file");
    expect_refused(dir, dir, ": not a regular file");

    /* One byte over 64 KiB. */
    char *big = malloc(CONFIG_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, '\n', CONFIG_FILE_MAX + 1);
    p = tmp_file(dir, "big.conf", big, CONFIG_FILE_MAX + 1, 0, 0644);
    free(big);
    expect_refused(dir, p.s, ": larger than 64 KiB");

    /* A malformed file is refused the same way, with its line. */
    p = tmp_file(dir, "malformed.conf", "resource = https://x\nfail = sometimes\n", 38, 0, 0644);
    snprintf(message, sizeof message, "%s:2: fail = sometimes: expected one of open, closed",
             p.s);
    expect_refused(dir, p.s, message);
}

/* ---- keyring names ------------------------------------------------------------------ */

static void test_keyring_names(void **state)
{
    (void)state;
    static const azid_keyring all[] = {AZID_KEYRING_SESSION, AZID_KEYRING_USER,
                                       AZID_KEYRING_PERSISTENT};
    for (size_t i = 0; i < 3; i++) {
        azid_keyring k;
        assert_int_equal(azid_keyring_parse(azid_keyring_name(all[i]), &k, NULL), AZID_OK);
        assert_int_equal(k, all[i]);
    }
    assert_string_equal(azid_keyring_name(AZID_KEYRING_USER), "user");
    assert_string_equal(azid_keyring_name((azid_keyring)42), "unknown");
    azid_keyring k = AZID_KEYRING_USER;
    azid_error err;
    assert_int_equal(azid_keyring_parse("Session", &k, &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message, "keyring 'Session': expected one of session, user, persistent");
    assert_int_equal(k, AZID_KEYRING_USER);
    assert_int_equal(azid_keyring_parse(NULL, &k, NULL), AZID_ERR_ARGUMENT);
}

/* ---- NULL arguments ----------------------------------------------------------------- */

/* A NULL configuration reads as the defaults; no status function crashes. */
static void test_null_arguments(void **state)
{
    (void)state;
    const char *const *list = NULL;
    azid_error err;
    assert_int_equal(azid_config_resources(NULL, &list), 0);
    assert_null(list[0]);
    assert_int_equal(azid_config_secrets(NULL, NULL), 0);
    assert_int_equal(azid_config_timeout_ms(NULL), AZID_DEFAULT_TIMEOUT_MS);
    assert_int_equal(azid_config_keyring(NULL), AZID_KEYRING_SESSION);
    assert_false(azid_config_fail_closed(NULL));
    assert_false(azid_config_debug(NULL));
    assert_null(azid_config_endpoint(NULL));
    assert_null(azid_config_ca_file(NULL));
    assert_string_equal(azid_config_path(NULL), AZID_CONFIG_PATH);
    assert_int_equal(azid_config_grants(NULL, NULL), 0);
    assert_int_equal(azid_config_source(NULL), AZID_SOURCE_AUTO);
    const char *id = "x";
    assert_int_equal(azid_config_identity(NULL, &id), AZID_IDENTITY_SYSTEM);
    assert_null(id);
    assert_int_equal(azid_config_apply_arg(NULL, "debug", &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_config_load(NULL, "root", &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_keyring_parse("user", NULL, &err), AZID_ERR_ARGUMENT);
    azid_config_dump(NULL, NULL, NULL);
}

/* ---- the man pages list exactly the table ------------------------------------------ */

/* doc/NAME from the source tree; NULL when it is missing and optional. */
static char *read_doc(const char *name, int required)
{
    const char *srcdir = getenv("top_srcdir");
    if (!srcdir)
        fail_msg("top_srcdir is not set; run through make check");
    char path[4096];
    snprintf(path, sizeof path, "%s/doc/%s", srcdir, name);
    FILE *f = fopen(path, "r");
    if (!f && required)
        fail_msg("doc/%s is missing", name);
    if (!f)
        return NULL;
    char *text = calloc(1, 256 * 1024);
    assert_non_null(text);
    size_t n = fread(text, 1, 256 * 1024 - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

static void test_man_page_lists_every_option(void **state)
{
    (void)state;
    char *page = read_doc("azid.conf.5", 1);
    /* The KEYS section: one ".TP" then ".B name" or ".BI name ..." per option. */
    char *keys = strstr(page, "\n.SH KEYS\n");
    assert_non_null(keys);
    char *end = strstr(keys + 1, "\n.SH ");
    if (end)
        *end = '\0';
    size_t documented = 0;
    for (char *p = strstr(keys, "\n.TP\n"); p; p = strstr(p + 1, "\n.TP\n")) {
        char name[64];
        if (sscanf(p + 5, ".B%*[I] %63[a-z_]", name) != 1 && sscanf(p + 5, ".B %63[a-z_]", name) != 1)
            fail_msg("item without a .B/.BI key: %.40s", p + 5);
        size_t i;
        for (i = 0; option_at(i) && strcmp(option_at(i)->name, name); i++)
            ;
        if (!option_at(i))
            fail_msg("azid.conf.5 documents '%s', which the option table does not know", name);
        documented++;
    }
    const struct option *o;
    for (size_t i = 0; (o = option_at(i)); i++) {
        char item[128];
        snprintf(item, sizeof item, "\n.TP\n.B %s", o->name);
        char item_bi[128];
        snprintf(item_bi, sizeof item_bi, "\n.TP\n.BI %s ", o->name);
        if (!strstr(keys, item) && !strstr(keys, item_bi))
            fail_msg("azid.conf.5 does not document %s", o->name);
    }
    assert_int_equal(documented, 16);
    free(page);
}

/* The shipped example grants nothing as is, and is valid once uncommented. */
static void test_example_file(void **state)
{
    (void)state;
    char *text = read_doc("azid.conf.example", 1);
    azid_config *cfg = new_config();
    apply_text_ok(cfg, text, "alice", LIST("dba"));
    struct dump as_shipped, defaults;
    dump_of(cfg, &as_shipped);
    azid_config *fresh = new_config();
    apply_text_ok(fresh, "", "alice", LIST("dba"));
    dump_of(fresh, &defaults);
    assert_string_equal(as_shipped.text, defaults.text);
    azid_config_free(fresh);

    /* "#key" lines are settings; "# " lines are prose. */
    char *out = text;
    for (const char *p = text; *p;) {
        if (p[0] == '#' && ((p[1] >= 'a' && p[1] <= 'z') || p[1] == 'M'))
            p++;
        while (*p && *p != '\n')
            *out++ = *p++;
        if (*p)
            *out++ = *p++;
    }
    *out = '\0';
    apply_text_ok(cfg, text, "alice", LIST("dba"));
    assert_resources(cfg, LIST("https://vault.azure.net", "https://database.windows.net/"));
    assert_secrets(cfg, LIST("https://contoso-kv.vault.azure.net/secrets/shared-config",
                             "https://contoso-kv.vault.azure.net/secrets/db-password"));
    assert_grant(cfg, "https://vault.azure.net", AZID_IDENTITY_CLIENT_ID,
                 "00000000-0000-0000-0000-000000000000");
    assert_grant(cfg, "https://database.windows.net/", AZID_IDENTITY_MSI_RES_ID,
                 "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                 "Microsoft.ManagedIdentity/userAssignedIdentities/dba");
    assert_grant(cfg, "https://contoso-kv.vault.azure.net/secrets/db-password",
                 AZID_IDENTITY_MSI_RES_ID,
                 "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                 "Microsoft.ManagedIdentity/userAssignedIdentities/dba");
    apply_text_ok(cfg, text, "backup", LIST("backup"));
    assert_int_equal(azid_config_keyring(cfg), AZID_KEYRING_USER);
    azid_config_free(cfg);
    free(text);
}

/* The EXAMPLES section of azid.conf.5 is a valid file that does what the
 * page says. */
static void test_man_page_example(void **state)
{
    (void)state;
    char *page = read_doc("azid.conf.5", 1);
    char *start = strstr(page, "\n.SH EXAMPLES\n.EX\n");
    assert_non_null(start);
    start += strlen("\n.SH EXAMPLES\n.EX\n");
    char *end = strstr(start, "\n.EE\n");
    assert_non_null(end);
    end[1] = '\0';
    /* Undo the roff escape of '-'. */
    char *out = start;
    for (const char *p = start; *p; p++)
        if (!(p[0] == '\\' && p[1] == '-'))
            *out++ = *p;
    *out = '\0';

    azid_config *cfg = new_config();
    apply_text_ok(cfg, start, "alice", LIST("alice", "dba"));
    assert_resources(cfg, LIST("https://vault.azure.net", "https://database.windows.net/"));
    assert_secrets(cfg, LIST("https://contoso-kv.vault.azure.net/secrets/db-password"));
    assert_grant(cfg, "https://vault.azure.net", AZID_IDENTITY_SYSTEM, NULL);
    assert_grant(cfg, "https://database.windows.net/", AZID_IDENTITY_CLIENT_ID,
                 "00000000-0000-0000-0000-000000000000");
    assert_grant(cfg, "https://contoso-kv.vault.azure.net/secrets/db-password",
                 AZID_IDENTITY_CLIENT_ID, "00000000-0000-0000-0000-000000000000");
    apply_text_ok(cfg, start, "bob", LIST("bob"));
    assert_resources(cfg, LIST("https://vault.azure.net"));
    assert_secrets(cfg, NONE);
    assert_grant(cfg, "https://vault.azure.net", AZID_IDENTITY_SYSTEM, NULL);
    azid_config_free(cfg);
    free(page);
}

/* pam_azid.8's OPTIONS section documents every module argument (OPT_ARG)
 * as an item of its own (".BI name= ...", ".BR name= ...", or ".B debug"
 * for a flag), and nothing the option table does not know. */
static void test_pam_page_lists_every_option(void **state)
{
    (void)state;
    char *page = read_doc("pam_azid.8", 1);
    char *section = strstr(page, "\n.SH OPTIONS\n");
    assert_non_null(section);
    char *end = strstr(section + 1, "\n.SH ");
    if (end)
        *end = '\0';
    /* Item heads: the line after each ".TP". */
    for (char *p = strstr(section, "\n.TP\n"); p; p = strstr(p + 1, "\n.TP\n")) {
        char name[64];
        if (sscanf(p + 5, ".B%*[IR] %63[a-z_]", name) != 1 && sscanf(p + 5, ".B %63[a-z_]", name) != 1)
            fail_msg("pam_azid.8: item without a .B/.BI/.BR argument: %.40s", p + 5);
        if (!option_find(name, strlen(name)))
            fail_msg("pam_azid.8 documents '%s', which the option table does not know", name);
    }
    const struct option *o;
    for (size_t i = 0; (o = option_at(i)); i++) {
        if (!(o->where & OPT_ARG))
            continue;
        char item[128];
        if (o->type == OPT_FLAG)
            snprintf(item, sizeof item, "\n.B %s\n", o->name);
        else
            snprintf(item, sizeof item, "%s=", o->name);
        /* On an item's head line; several selectors may share one item
         * (client_id=, object_id=). */
        const char *at = section;
        for (; (at = strstr(at, item)); at++) {
            const char *head = at;
            while (head > section && head[-1] != '\n')
                head--;
            if (o->type == OPT_FLAG || strncmp(head, ".B", 2) == 0)
                break;
        }
        if (!at)
            fail_msg("pam_azid.8 OPTIONS has no item for the argument %s", o->name);
    }
    free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_args_apply),
        cmocka_unit_test(test_timeout_values),
        cmocka_unit_test(test_args_refused),
        cmocka_unit_test(test_args_identity_conflict),
        cmocka_unit_test(test_broker_options),
        cmocka_unit_test(test_secret_url_parse),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_file_refused),
        cmocka_unit_test(test_match_user_and_group),
        cmocka_unit_test(test_nothing_granted_implicitly),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_many_args_after_file),
        cmocka_unit_test(test_grant_identity_conflicts),
        cmocka_unit_test(test_reload_replaces_file),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test_setup_teardown(test_load_real_file, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_unsafe_files, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test(test_keyring_names),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_man_page_lists_every_option),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_man_page_example),
        cmocka_unit_test(test_pam_page_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
