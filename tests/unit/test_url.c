/* SPDX-License-Identifier: MIT
 * Request shapes and source selection: percent-encoding, endpoint
 * validation, detection over a fake environment, the Arc key-file checks,
 * and the hints in error messages. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "http.h"
#include "source.h"

/* ---- encoding ------------------------------------------------------------ */

static void expect_query(const char *api, const char *resource, const char *sel,
                         const char *value, const char *want)
{
    char *q = source_token_query(api, resource, sel, value);
    assert_non_null(q);
    assert_string_equal(q, want);
    free(q);
}

static void expect_escaped(const char *raw, const char *want)
{
    char *e = http_escape(raw);
    assert_string_equal(e, want);
    free(e);
}

static void test_escape(void **state)
{
    (void)state;
    expect_escaped("AZaz09-._~ /?#&=+%\xc3\xa9", "AZaz09-._~%20%2F%3F%23%26%3D%2B%25%C3%A9");
    expect_escaped("", "");
}

static void test_imds_query(void **state)
{
    (void)state;
    expect_query("2018-02-01", "https://management.azure.com/", NULL, NULL,
                 "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F");
    expect_query("2018-02-01", "https://vault.azure.net", "client_id",
                 "11111111-2222-3333-4444-555555555555",
                 "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
                 "&client_id=11111111-2222-3333-4444-555555555555");
    expect_query("2018-02-01", "r", "msi_res_id",
                 "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
                 "userAssignedIdentities/u",
                 "?api-version=2018-02-01&resource=r&msi_res_id=%2Fsubscriptions%2Fs%2F"
                 "resourceGroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2F"
                 "userAssignedIdentities%2Fu");
}

static void test_resource_cannot_inject(void **state)
{
    (void)state;
    /* &, #, = and spaces stay inside the resource value */
    expect_query("2018-02-01", "https://x/a b&client_id=evil#frag", NULL, NULL,
                 "?api-version=2018-02-01&resource=https%3A%2F%2Fx%2Fa%20b%26client_id%3Devil"
                 "%23frag");
    expect_query(NULL, "r&x=1", NULL, NULL, "?resource=r%26x%3D1");
}

static void test_workload_form(void **state)
{
    (void)state;
    char *f = source_workload_form("cid", "a.b.c", "https://vault.azure.net");
    assert_string_equal(f, "client_id=cid&scope=https%3A%2F%2Fvault.azure.net%2F.default"
                           "&grant_type=client_credentials&client_assertion_type=urn%3Aietf%3A"
                           "params%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                           "&client_assertion=a.b.c");
    free(f);
    f = source_workload_form("cid", "x", "api://app/.default");
    assert_non_null(strstr(f, "scope=api%3A%2F%2Fapp%2F.default&"));
    free(f);
}

/* ---- endpoint validation ------------------------------------------------- */

static void test_endpoint_validation(void **state)
{
    (void)state;
    static const char *const good[] = {
        "http://169.254.169.254", "http://127.0.0.1:8080", "https://example.com/",
        "http://[::1]:40342", "http://localhost:40342", "http://imds_proxy.example:80/",
    };
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"169.254.169.254", "must start with http:// or https://"},
        {"ftp://host", "must start with http:// or https://"},
        {"file:///etc/passwd", "must start with http"},
        {"http://", "has no host"},
        {"http://:80", "has no host"},
        {"http://user:pw@host", "must not contain user information"},
        {"http://host:0", "invalid port"},
        {"http://host:70000", "invalid port"},
        {"http://host:8x", "invalid port"},
        {"http://host/metadata", "no path, query or fragment"},
        {"http://host?a=b", "no path, query or fragment"},
        {"http://host#f", "no path, query or fragment"},
        {"http://[::1", "unterminated"},
        {"http://[]", "invalid [IPv6] host"},
        {"http://[::1]x", "not allowed in a host name"},
        {"http://ho st", "not allowed in a host name"},
        {"http://host\r\nX-Injected: 1", "not allowed in a host name"},
        {"http://ho%0d%0ast", "not allowed in a host name"},
        {"http://h\xc3\xa9", "not allowed in a host name"},
        {"http://host:", "invalid port"},
        {"http://host:123456", "invalid port"},
    };
    azid_error err;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(source_check_base_url(good[i], &err), AZID_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        assert_int_equal(source_check_base_url(bad[i].url, &err), AZID_ERR_ARGUMENT);
        /* The message names the URL (one line: CR and LF become spaces). */
        char named[64];
        snprintf(named, sizeof named, "%s", bad[i].url);
        for (char *c = named; *c; c++)
            *c = *c == '\r' || *c == '\n' ? ' ' : *c;
        if (!strstr(err.message, bad[i].why) || !strstr(err.message, named))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].url, err.message, bad[i].why);
        assert_null(strpbrk(err.message, "\r\n"));
    }
}

/* ---- detection over a fake machine ----------------------------------------- */

struct fake {
    const char *env[16]; /* "NAME=value" */
    const char *files[4]; /* "path=contents" */
};

static const char *fake_env(void *ctx, const char *name)
{
    struct fake *f = ctx;
    size_t n = strlen(name);
    for (const char *const *e = f->env; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static const char *fake_file(struct fake *f, const char *path)
{
    size_t n = strlen(path);
    for (const char *const *e = f->files; *e; e++)
        if (strncmp(*e, path, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static int fake_exists(void *ctx, const char *path)
{
    return fake_file(ctx, path) != NULL;
}

static long fake_read(void *ctx, const char *path, char *buf, size_t size)
{
    const char *c = fake_file(ctx, path);
    if (!c)
        return -1;
    snprintf(buf, size, "%s", c);
    return (long)strlen(buf);
}

static azid_status resolve(struct fake *f, azid_source wanted, const char *base,
                           struct source_config *cfg, azid_error *err)
{
    struct source_view v = {fake_env, fake_exists, fake_read, f};
    err_clear(err);
    return source_resolve(&v, wanted, base, cfg, err);
}

static void expect_detected(struct fake *f, azid_source want, const char *url)
{
    struct source_config cfg = {0};
    azid_error err;
    if (resolve(f, AZID_SOURCE_AUTO, NULL, &cfg, &err) != AZID_OK)
        fail_msg("detection failed: %s", err.message);
    assert_int_equal(cfg.source, want);
    assert_string_equal(cfg.token_url, url);
    source_config_clear(&cfg);
}

#define AGENT SOURCE_ARC_AGENT "=binary"
#define AZURE_TAG SOURCE_DMI_ASSET_TAG_FILE "=" SOURCE_AZURE_ASSET_TAG "\n"

static void test_detect_nothing(void **state)
{
    (void)state;
    struct fake f = {{NULL}, {SOURCE_DMI_ASSET_TAG_FILE "=No Asset Tag\n", NULL}};
    struct source_config cfg = {0};
    azid_error err;
    assert_int_equal(resolve(&f, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_NO_SOURCE);
    assert_string_equal(err.message,
                        "not an Azure VM (no Azure asset tag in /sys/class/dmi/id/"
                        "chassis_asset_tag, no Arc agent) \xe2\x80\x94 set endpoint= to use "
                        "another token endpoint");
    assert_null(cfg.token_url);
    struct fake none = {{NULL}, {NULL}};
    assert_int_equal(resolve(&none, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_NO_SOURCE);
    /* IDENTITY_ENDPOINT alone names no source */
    struct fake lone = {{"IDENTITY_ENDPOINT=http://x", NULL}, {NULL}};
    assert_int_equal(resolve(&lone, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_NO_SOURCE);
}

static void test_detect_imds_by_asset_tag(void **state)
{
    (void)state;
    struct fake f = {{NULL}, {AZURE_TAG, NULL}};
    expect_detected(&f, AZID_SOURCE_IMDS, "http://169.254.169.254/metadata/identity/oauth2/token");
}

static void test_detect_arc_agent_before_imds(void **state)
{
    (void)state;
    struct fake f = {{NULL}, {AZURE_TAG, AGENT, NULL}};
    expect_detected(&f, AZID_SOURCE_ARC, "http://127.0.0.1:40342/metadata/identity/oauth2/token");
}

static void test_detect_environment_order(void **state)
{
    (void)state;
    struct fake app = {{"IDENTITY_ENDPOINT=http://127.0.0.1:41741/MSI/token/",
                        "IDENTITY_HEADER=h", "IMDS_ENDPOINT=http://x", "MSI_ENDPOINT=http://y",
                        NULL}, {AZURE_TAG, AGENT, NULL}};
    expect_detected(&app, AZID_SOURCE_APPSERVICE, "http://127.0.0.1:41741/MSI/token/");
    struct fake arc = {{"IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token",
                        "IMDS_ENDPOINT=http://localhost:40342", "MSI_ENDPOINT=http://y", NULL},
                       {AZURE_TAG, NULL}};
    expect_detected(&arc, AZID_SOURCE_ARC, "http://localhost:40342/metadata/identity/oauth2/token");
    struct fake shell = {{"MSI_ENDPOINT=http://localhost:50342/oauth2/token",
                          "AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c",
                          "AZURE_FEDERATED_TOKEN_FILE=/f", NULL}, {AZURE_TAG, NULL}};
    expect_detected(&shell, AZID_SOURCE_CLOUDSHELL, "http://localhost:50342/oauth2/token");
    struct fake wl = {{"AZURE_TENANT_ID=tenant-1", "AZURE_CLIENT_ID=c",
                       "AZURE_FEDERATED_TOKEN_FILE=/f", NULL}, {AZURE_TAG, AGENT, NULL}};
    expect_detected(&wl, AZID_SOURCE_WORKLOAD,
                    "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token");
    struct fake wl2 = {{"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c", "AZURE_FEDERATED_TOKEN_FILE=/f",
                        "AZURE_AUTHORITY_HOST=https://login.microsoftonline.us/", NULL},
                       {NULL}};
    expect_detected(&wl2, AZID_SOURCE_WORKLOAD,
                    "https://login.microsoftonline.us/t/oauth2/v2.0/token");
    /* two of the trio are not enough */
    struct fake partial = {{"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c", NULL}, {AZURE_TAG, NULL}};
    expect_detected(&partial, AZID_SOURCE_IMDS,
                    "http://169.254.169.254/metadata/identity/oauth2/token");
}

static void test_explicit_endpoint_and_source(void **state)
{
    (void)state;
    struct fake f = {{"IDENTITY_ENDPOINT=http://a", "IDENTITY_HEADER=h", NULL}, {NULL}};
    struct source_config cfg = {0};
    azid_error err;
    /* an endpoint skips detection and means IMDS */
    assert_int_equal(resolve(&f, AZID_SOURCE_AUTO, "http://127.0.0.1:9/", &cfg, &err), AZID_OK);
    assert_int_equal(cfg.source, AZID_SOURCE_IMDS);
    assert_string_equal(cfg.token_url, "http://127.0.0.1:9/metadata/identity/oauth2/token");
    /* a named source keeps its protocol at that endpoint */
    assert_int_equal(resolve(&f, AZID_SOURCE_ARC, "http://127.0.0.1:9", &cfg, &err), AZID_OK);
    assert_int_equal(cfg.source, AZID_SOURCE_ARC);
    assert_string_equal(cfg.token_url, "http://127.0.0.1:9/metadata/identity/oauth2/token");
    assert_int_equal(resolve(&f, AZID_SOURCE_APPSERVICE, "http://127.0.0.1:9", &cfg, &err),
                     AZID_OK);
    assert_string_equal(cfg.token_url, "http://127.0.0.1:9/msi/token");
    assert_string_equal(cfg.identity_header, "h");
    /* a named source without its endpoint on a bare machine */
    struct fake bare = {{NULL}, {NULL}};
    assert_int_equal(resolve(&bare, AZID_SOURCE_IMDS, NULL, &cfg, &err), AZID_OK);
    assert_string_equal(cfg.token_url, "http://169.254.169.254/metadata/identity/oauth2/token");
    assert_int_equal(resolve(&bare, AZID_SOURCE_APPSERVICE, NULL, &cfg, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "IDENTITY_HEADER"));
    assert_int_equal(resolve(&bare, AZID_SOURCE_WORKLOAD, NULL, &cfg, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "AZURE_FEDERATED_TOKEN_FILE"));
    assert_int_equal(resolve(&bare, AZID_SOURCE_AUTO, "http://h/path", &cfg, &err),
                     AZID_ERR_ARGUMENT);
    struct fake badauth = {{"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c",
                            "AZURE_FEDERATED_TOKEN_FILE=/f",
                            "AZURE_AUTHORITY_HOST=http://evil", NULL}, {NULL}};
    assert_int_equal(resolve(&badauth, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "must be an https:// URL"));
    /* IDENTITY_HEADER is sent as a header: no CR LF smuggling */
    struct fake badheader = {{"IDENTITY_ENDPOINT=http://127.0.0.1:41741/msi/token",
                              "IDENTITY_HEADER=h\r\nX-Injected: 1", NULL}, {NULL}};
    assert_int_equal(resolve(&badheader, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "IDENTITY_HEADER holds a space or control character"));
    assert_null(cfg.token_url);
    struct fake badtenant = {{"AZURE_TENANT_ID=t/../x", "AZURE_CLIENT_ID=c",
                              "AZURE_FEDERATED_TOKEN_FILE=/f", NULL}, {NULL}};
    assert_int_equal(resolve(&badtenant, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_ERR_ARGUMENT);
    source_config_clear(&cfg);
}

static void test_detection_reasons(void **state)
{
    (void)state;
    char reason[256];
    struct fake tagged = {{NULL}, {AZURE_TAG, NULL}};
    struct source_view v = {fake_env, fake_exists, fake_read, &tagged};
    assert_int_equal(source_detect(&v, reason, sizeof reason), AZID_SOURCE_IMDS);
    assert_string_equal(reason, "Azure VM (Azure's asset tag in "
                                "/sys/class/dmi/id/chassis_asset_tag)");
    struct fake plain = {{NULL}, {SOURCE_DMI_ASSET_TAG_FILE "=No Asset Tag\n", NULL}};
    v.ctx = &plain;
    assert_int_equal(source_detect(&v, reason, sizeof reason), AZID_SOURCE_AUTO);
    assert_string_equal(reason, "not an Azure machine: no Azure asset tag in "
                                "/sys/class/dmi/id/chassis_asset_tag ('No Asset Tag') and no Arc "
                                "agent (/opt/azcmagent/bin/himds)");
    struct fake agent = {{NULL}, {AGENT, NULL}};
    v.ctx = &agent;
    assert_int_equal(source_detect(&v, reason, sizeof reason), AZID_SOURCE_ARC);
    assert_string_equal(reason, "Azure Arc-enabled server (agent /opt/azcmagent/bin/himds)");
    struct fake shell = {{"MSI_ENDPOINT=http://y", NULL}, {AZURE_TAG, NULL}};
    v.ctx = &shell;
    assert_int_equal(source_detect(&v, reason, sizeof reason), AZID_SOURCE_CLOUDSHELL);
    assert_string_equal(reason, "Cloud Shell ($MSI_ENDPOINT)");
}

/* The workload assertion is a credential: https only, to a plain host. */
static void test_workload_endpoints(void **state)
{
    (void)state;
    struct source_config cfg = {0};
    azid_error err;
    struct fake f = {{"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c", "AZURE_FEDERATED_TOKEN_FILE=/f",
                      NULL}, {NULL}};
    assert_int_equal(resolve(&f, AZID_SOURCE_WORKLOAD, "http://127.0.0.1:9", &cfg, &err),
                     AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "must be an https:// URL, not 'http://127.0.0.1:9'"));
    assert_int_equal(resolve(&f, AZID_SOURCE_WORKLOAD, "https://127.0.0.1:9", &cfg, &err), AZID_OK);
    assert_string_equal(cfg.token_url, "https://127.0.0.1:9/t/oauth2/v2.0/token");
    static const char *const bad[] = {
        "AZURE_AUTHORITY_HOST=https://user@login.example", "AZURE_AUTHORITY_HOST=https://login.example?x",
        "AZURE_AUTHORITY_HOST=https://login.example/#f", "AZURE_AUTHORITY_HOST=https://login.example/tenant",
        "AZURE_AUTHORITY_HOST=https://login.example@evil.example/", NULL};
    for (const char *const *b = bad; *b; b++) {
        f.env[3] = *b;
        if (resolve(&f, AZID_SOURCE_AUTO, NULL, &cfg, &err) != AZID_ERR_ARGUMENT)
            fail_msg("%s was accepted", *b);
        assert_non_null(strstr(err.message, "AZURE_AUTHORITY_HOST '"));
    }
    f.env[3] = "AZURE_AUTHORITY_HOST=https://login.microsoftonline.us/";
    assert_int_equal(resolve(&f, AZID_SOURCE_AUTO, NULL, &cfg, &err), AZID_OK);
    source_config_clear(&cfg);
}

/* pam_azid's view: no variable at all, whatever the process carries. */
static void test_view_without_environment(void **state)
{
    (void)state;
    const struct source_view *v = source_view_system(0);
    assert_non_null(getenv("PATH"));
    assert_null(v->get_env(v->ctx, "PATH"));
    setenv("MSI_ENDPOINT", "http://127.0.0.1:9/msi/token", 1);
    struct source_config cfg = {0};
    azid_error err;
    /* a named source still reads its own variable */
    assert_int_equal(source_resolve(source_view_system(1), AZID_SOURCE_CLOUDSHELL, NULL, &cfg,
                                    &err), AZID_OK);
    assert_string_equal(cfg.token_url, "http://127.0.0.1:9/msi/token");
    assert_int_equal(source_resolve(v, AZID_SOURCE_CLOUDSHELL, NULL, &cfg, &err),
                     AZID_ERR_ARGUMENT);
    source_config_clear(&cfg);
    unsetenv("MSI_ENDPOINT");
}

static void test_source_names(void **state)
{
    (void)state;
    azid_source s;
    azid_error err;
    static const char *const names[] = {"auto", "imds", "arc", "appservice", "cloudshell",
                                        "workload"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_int_equal(azid_source_parse(names[i], &s, &err), AZID_OK);
        assert_int_equal(s, (azid_source)i);
        assert_string_equal(azid_source_name(s), names[i]);
    }
    assert_int_equal(azid_source_parse("IMDS", &s, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "unknown source 'IMDS'"));
}

/* ---- the Arc key file ------------------------------------------------------ */

static char key_dir[64];

static int make_key_dir(void **state)
{
    (void)state;
    snprintf(key_dir, sizeof key_dir, "/tmp/azid-test-arc.XXXXXX");
    return mkdtemp(key_dir) ? 0 : -1;
}

static int remove_key_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", key_dir);
    return system(cmd);
}

static void write_file(const char *name, const char *contents, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", key_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(contents, 1, n, f), n);
    fclose(f);
}

static void expect_key_refused(const char *challenge, const char *why)
{
    char *key = (char *)1;
    azid_error err;
    err_clear(&err);
    assert_int_not_equal(source_arc_read_key(challenge, key_dir, 0, &key, &err), AZID_OK);
    assert_null(key);
    if (!strstr(err.message, why))
        fail_msg("'%s': message '%s' lacks '%s'", challenge, err.message, why);
}

/* Expects "Basic realm=<key_dir>/<name>" to be refused with why. */
static void expect_key_file_refused(const char *name, const char *why)
{
    char challenge[320];
    snprintf(challenge, sizeof challenge, "Basic realm=%s/%s", key_dir, name);
    expect_key_refused(challenge, why);
}

static void test_arc_key_file(void **state)
{
    (void)state;
    char challenge[320], *key;
    azid_error err;
    write_file("good.key", "0123abcd", 8);
    snprintf(challenge, sizeof challenge, "Basic realm=%s/good.key", key_dir);
    assert_int_equal(source_arc_read_key(challenge, key_dir, 0, &key, &err), AZID_OK);
    assert_string_equal(key, "0123abcd");
    free(key);

    expect_key_refused(NULL, "without a 'WWW-Authenticate: Basic realm=<key file>'");
    expect_key_refused("Bearer realm=x", "without a 'WWW-Authenticate");
    expect_key_refused("Basic realm=/etc/shadow", "not a .key file directly in");
    expect_key_file_refused("../good.key", "not a .key file directly in");
    expect_key_file_refused("sub/x.key", "not a .key file directly in");
    expect_key_file_refused("good.txt", "not a .key file directly in");
    expect_key_file_refused("a=b.key", "not a .key file directly in");
    /* server text with control characters is neither followed nor echoed */
    expect_key_file_refused("\x1b[2Jx.key", "names a key file with spaces or control characters");
    expect_key_file_refused("missing.key", "cannot open the Arc key file");

    char big[SOURCE_ARC_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    write_file("big.key", big, sizeof big);
    expect_key_file_refused("big.key", "has 4097 bytes; expected 1 to 4096");
    write_file("empty.key", "", 0);
    expect_key_file_refused("empty.key", "has 0 bytes");
    write_file("nl.key", "abc\r\nX-Injected: 1", 18);
    expect_key_file_refused("nl.key", "cannot go in an HTTP header");

    char path[256];
    snprintf(path, sizeof path, "%s/dir.key", key_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_key_file_refused("dir.key", "is not a regular file");
    char target[256];
    snprintf(target, sizeof target, "%s/good.key", key_dir);
    snprintf(path, sizeof path, "%s/link.key", key_dir);
    assert_int_equal(symlink(target, path), 0);
    expect_key_file_refused("link.key", "cannot open the Arc key file"); /* O_NOFOLLOW */

    /* the agent (root or himds) writes the key for this very request */
    snprintf(challenge, sizeof challenge, "Basic realm=%s/good.key", key_dir);
    err_clear(&err);
    key = (char *)1;
    assert_int_equal(source_arc_read_key(challenge, key_dir, (int64_t)time(NULL) + 60, &key, &err),
                     AZID_ERR_RESPONSE);
    assert_null(key);
    assert_non_null(strstr(err.message, "good.key is older than the request it should answer"));
    write_file("nobody.key", "0123abcd", 8);
    snprintf(path, sizeof path, "%s/nobody.key", key_dir);
    assert_int_equal(chown(path, 65534, 65534), 0);
    expect_key_file_refused("nobody.key", "belongs to uid 65534, not root or himds; refusing");
}

/* ---- hints ------------------------------------------------------------------ */

static void test_hints(void **state)
{
    (void)state;
    assert_string_equal(client_imds_hint(400, "invalid_request: Identity not found", "client_id"),
                        "the VM has no managed identity with that id; assign one (az vm "
                        "identity assign) or fix client_id=");
    assert_non_null(strstr(client_imds_hint(400, "invalid_request: Identity not found", NULL),
                           "no system-assigned managed identity"));
    assert_non_null(strstr(client_imds_hint(400, "invalid_request: Multiple user assigned "
                                                 "identities exist", NULL),
                           "name one with client_id="));
    assert_non_null(strstr(client_imds_hint(400, "bad_request_102: Required metadata header",
                                            NULL), "Metadata header"));
    assert_non_null(strstr(client_imds_hint(429, "", NULL), "throttling"));
    assert_non_null(strstr(client_imds_hint(410, "", NULL), "being updated"));
    assert_non_null(strstr(client_imds_hint(503, "", NULL), "failed"));
    assert_null(client_imds_hint(302, "", NULL));
}

/* ---- NULL arguments ----------------------------------------------------------- */

static void expect_null_refused(azid_status st, const azid_error *err)
{
    assert_int_equal(st, AZID_ERR_ARGUMENT);
    assert_int_equal(err->status, AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err->message, "NULL"));
}

static void test_null_arguments(void **state)
{
    (void)state;
    azid_error err;
    azid_source source;
    azid_token *token = (azid_token *)1;
    azid_client *client = azid_client_new();
    assert_non_null(client);
    expect_null_refused(azid_client_set_source(NULL, AZID_SOURCE_IMDS, &err), &err);
    expect_null_refused(azid_client_set_endpoint(NULL, "http://127.0.0.1:9", &err), &err);
    expect_null_refused(azid_client_set_identity(NULL, AZID_IDENTITY_CLIENT_ID, "c", &err), &err);
    expect_null_refused(azid_client_set_timeout_ms(NULL, 1000, &err), &err);
    expect_null_refused(azid_client_set_ca_file(NULL, NULL, &err), &err);
    expect_null_refused(azid_client_resolve_source(NULL, &source, &err), &err);
    expect_null_refused(azid_client_get_token(NULL, "r", &token, &err), &err);
    assert_null(token);
    expect_null_refused(azid_client_get_token(client, "r", NULL, &err), &err);
    assert_int_equal(azid_client_get_token(client, NULL, &token, &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_client_set_identity(client, AZID_IDENTITY_CLIENT_ID, NULL, &err),
                     AZID_ERR_ARGUMENT);
    assert_int_equal(azid_source_parse("imds", NULL, &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_source_parse(NULL, &source, NULL), AZID_ERR_ARGUMENT);
    assert_null(azid_client_endpoint(NULL));
    assert_null(azid_token_value(NULL));
    assert_int_equal(azid_token_length(NULL), 0);
    assert_int_equal(azid_token_expires_on(NULL), 0);
    assert_null(azid_token_resource(NULL));
    assert_null(azid_token_type(NULL));
    azid_token_free(NULL);
    azid_client_free(client);
    azid_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_imds_query),
        cmocka_unit_test(test_resource_cannot_inject),
        cmocka_unit_test(test_workload_form),
        cmocka_unit_test(test_endpoint_validation),
        cmocka_unit_test(test_detect_nothing),
        cmocka_unit_test(test_detect_imds_by_asset_tag),
        cmocka_unit_test(test_detect_arc_agent_before_imds),
        cmocka_unit_test(test_detect_environment_order),
        cmocka_unit_test(test_explicit_endpoint_and_source),
        cmocka_unit_test(test_source_names),
        cmocka_unit_test(test_detection_reasons),
        cmocka_unit_test(test_workload_endpoints),
        cmocka_unit_test(test_view_without_environment),
        cmocka_unit_test_setup_teardown(test_arc_key_file, make_key_dir, remove_key_dir),
        cmocka_unit_test(test_hints),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
