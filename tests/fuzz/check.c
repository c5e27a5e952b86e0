/* SPDX-License-Identifier: MIT
 * The checks shared by the fuzz targets (fuzz.h). */
#include "config.h"

#include "fuzz.h"

#include "secret_url.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

void fuzz_check_message(const azid_error *err)
{
    FUZZ_CHECK(err->message[0] != '\0');
    for (const char *p = err->message; *p; p++)
        FUZZ_CHECK(*p != '\n' && *p != '\r');
}

void fuzz_check_not_quoted(const azid_error *err, const char *secret, size_t length)
{
    if (!secret || !length)
        return;
    if (length < 32 && !strpbrk(secret, "~^|`{}<>!&*$"))
        return;
    FUZZ_CHECK(!memmem(err->message, strlen(err->message), secret, length));
}

static void count_line(const char *line, void *ctx)
{
    size_t *total = ctx;
    *total += strlen(line);
}

void fuzz_check_config(const azid_config *cfg)
{
    const char *const *list;
    size_t n = azid_config_secrets(cfg, &list);
    for (size_t i = 0; i < n; i++) {
        secret_url url;
        FUZZ_CHECK(secret_url_parse(list[i], &url, NULL) == AZID_OK);
        FUZZ_CHECK(url.vault_host[0] && url.name[0]);
    }
    FUZZ_CHECK(list[n] == NULL);
    n = azid_config_resources(cfg, &list);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(text_is_word(list[i]));
    FUZZ_CHECK(list[n] == NULL);
    long ms = azid_config_timeout_ms(cfg);
    FUZZ_CHECK(ms > 0 && ms <= AZID_TIMEOUT_MAX_MS);

    /* Every grant has its identity: an ID exactly when user-assigned. */
    const azid_grant *grants;
    n = azid_config_grants(cfg, &grants);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((grants[i].identity == AZID_IDENTITY_SYSTEM) == !grants[i].identity_value);
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
    FUZZ_CHECK(total > 0);
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    return strndup((const char *)data, size);
}
