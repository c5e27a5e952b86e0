/* SPDX-License-Identifier: MIT
 * libFuzzer harness for the config-file and argument parsers.  Build and
 * run it with tests/fuzz/run-config-fuzz.sh.  Besides "no crash, no leak,
 * no hang" it checks what the rest of azid relies on: every granted secret
 * is a valid Key Vault URL, every resource one printable word, the timeout
 * within its bounds. */
#include "config.h"

#include "azid.h"
#include "conf_parse.h"
#include "secret_url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_line(const char *line, void *ctx)
{
    size_t *total = ctx;
    *total += strlen(line);
}

static void check_invariants(const azid_config *cfg)
{
    const char *const *list;
    size_t n = azid_config_secrets(cfg, &list);
    for (size_t i = 0; i < n; i++) {
        secret_url url;
        if (secret_url_parse(list[i], &url, NULL) != AZID_OK || !url.vault_host[0] || !url.name[0])
            __builtin_trap();
    }
    n = azid_config_resources(cfg, &list);
    for (size_t i = 0; i < n; i++) {
        if (!list[i][0])
            __builtin_trap();
        for (const char *p = list[i]; *p; p++)
            if (*p <= ' ' || *p >= 0x7f)
                __builtin_trap();
    }
    if (list[n])
        __builtin_trap();
    long ms = azid_config_timeout_ms(cfg);
    if (ms <= 0 || ms > AZID_TIMEOUT_MAX_MS)
        __builtin_trap();

    /* Every grant has its identity: an ID exactly when user-assigned. */
    const azid_grant *grants;
    n = azid_config_grants(cfg, &grants);
    for (size_t i = 0; i < n; i++)
        if ((grants[i].identity == AZID_IDENTITY_SYSTEM) != !grants[i].identity_value)
            __builtin_trap();
    const char *id;
    (void)azid_config_identity(cfg, &id);
    (void)azid_config_source(cfg);
    (void)azid_config_endpoint(cfg);
    (void)azid_config_ca_file(cfg);
    (void)azid_config_broker(cfg, &id);
    (void)azid_config_negative_cache_ms(cfg);
    (void)azid_config_keyring(cfg);
    (void)azid_config_fail_closed(cfg);
    (void)azid_config_debug(cfg);
    size_t total = 0;
    azid_config_dump(cfg, count_line, &total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const groups[] = {"alice", "dba", "wheel"};
    const char *text = (const char *)data;
    azid_config *cfg = azid_config_new();
    if (!cfg)
        return 0;

    /* The first line doubles as a module argument and a secret URL. */
    const uint8_t *nl = memchr(data, '\n', size);
    char *first = strndup(text, nl ? (size_t)(nl - data) : size);
    if (first) {
        secret_url url;
        (void)secret_url_parse(first, &url, NULL);
        (void)azid_config_apply_arg(cfg, first, NULL);
        free(first);
    }

    azid_error err;
    if (config_apply_text(cfg, text, size, "/fuzz/azid.conf", "alice", groups, 3, &err) !=
            AZID_OK &&
        (!err.message[0] || strchr(err.message, '\n')))
        __builtin_trap();
    check_invariants(cfg);
    (void)config_apply_text(cfg, text, size, "/fuzz/azid.conf", NULL, NULL, 0, NULL);
    check_invariants(cfg);
    azid_config_free(cfg);
    return 0;
}
