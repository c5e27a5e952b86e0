/* SPDX-License-Identifier: MIT
 * The secret URL parser (secret_url_parse): a refused URL leaves a
 * one-line error naming it; an accepted one has a lower-case vault host,
 * a name of [0-9A-Za-z-], a version of [0-9A-Za-z], and reads back the
 * same from the URL Key Vault is asked for.  Its token audience is
 * https:// and a suffix of the vault host. */
#include "config.h"

#include "fuzz.h"

#include "keyvault.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int all_of(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!isascii((unsigned char)*s) || !(isalnum((unsigned char)*s) || strchr(extra, *s)))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_strndup(data, size);
    if (!url)
        return 0;
    secret_url parts;
    azid_error err;
    if (secret_url_parse(url, &parts, &err) != AZID_OK) {
        fuzz_check_message(&err);
        free(url);
        return 0;
    }
    FUZZ_CHECK(parts.vault_host[0] && parts.name[0]);
    for (const char *p = parts.vault_host; *p; p++)
        FUZZ_CHECK(!isupper((unsigned char)*p));
    FUZZ_CHECK(all_of(parts.vault_host, ".-"));
    FUZZ_CHECK(all_of(parts.name, "-"));
    FUZZ_CHECK(all_of(parts.version, ""));

    char request[KEYVAULT_URL_MAX];
    keyvault_secret_url(&parts, request, sizeof request);
    secret_url again;
    FUZZ_CHECK(secret_url_parse(request, &again, NULL) == AZID_OK);
    FUZZ_CHECK(memcmp(&parts, &again, sizeof parts) == 0);

    char audience[300];
    keyvault_resource(&parts, audience, sizeof audience);
    FUZZ_CHECK(strncmp(audience, "https://", 8) == 0);
    size_t suffix = strlen(audience + 8), host = strlen(parts.vault_host);
    FUZZ_CHECK(suffix < host && parts.vault_host[host - suffix - 1] == '.' &&
               strcmp(parts.vault_host + host - suffix, audience + 8) == 0);
    free(url);
    return 0;
}
