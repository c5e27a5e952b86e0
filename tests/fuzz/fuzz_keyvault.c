/* SPDX-License-Identifier: MIT
 * The Key Vault response parser (keyvault_parse_secret): the input is the
 * body of a secret read.  An accepted secret keeps its value byte for byte
 * (NULs included) and expires no later than the token it was read with,
 * and not before now; a refusal is one line that never quotes the value. */
#include "config.h"

#include "fuzz.h"

#include "keyvault.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000
#define TOKEN_EXPIRES (NOW + 3600)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    secret_url url;
    FUZZ_CHECK(secret_url_parse("https://fuzz-kv.vault.azure.net/secrets/db-pw", &url, NULL) ==
               AZID_OK);
    /* The value as the body carries it, to compare against. */
    json_t *root = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    const json_t *value = json_object_get(root, "value");
    const char *expect = json_string_value(value);
    size_t expect_len = json_string_length(value);

    azid_secret *secret = NULL;
    azid_error err;
    azid_status st = keyvault_parse_secret((const char *)data, size, &url, TOKEN_EXPIRES, NOW,
                                           &secret, &err);
    if (st == AZID_OK) {
        FUZZ_CHECK(expect != NULL);
        size_t len = azid_secret_length(secret);
        const char *got = azid_secret_value(secret);
        FUZZ_CHECK(len == expect_len && memcmp(got, expect, len) == 0 && got[len] == '\0');
        FUZZ_CHECK(azid_secret_expires_on(secret) <= TOKEN_EXPIRES);
        FUZZ_CHECK(azid_secret_expires_on(secret) > NOW);
        azid_secret_free(secret);
    } else {
        FUZZ_CHECK(secret == NULL);
        FUZZ_CHECK(st == AZID_ERR_RESPONSE || st == AZID_ERR_NOMEM);
        fuzz_check_message(&err);
        fuzz_check_not_quoted(&err, expect, expect_len);
    }
    json_decref(root);
    return 0;
}
