/* SPDX-License-Identifier: MIT
 * The token response parser (token_parse) and the error-body summary
 * (token_describe_error): the input is a response body.  An accepted
 * token is printable ASCII without spaces and not yet expired; a refusal
 * is one line that never quotes the access_token; the summary of an error
 * body is one printable line. */
#include "config.h"

#include "fuzz.h"

#include "token.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The clock of the run and of the request (expires_in counts from it). */
#define NOW 1700000000
#define SENT (NOW - 2)

/* The access_token as the body carries it, to check messages against;
 * NULL when there is none. */
static char *body_token(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    const char *value = json_string_value(json_object_get(root, "access_token"));
    char *copy = value ? strdup(value) : NULL;
    json_decref(root);
    return copy;
}

static void parse(const uint8_t *data, size_t size, const char *resource, const char *secret)
{
    azid_token *token = NULL;
    azid_error err;
    azid_status st = token_parse((const char *)data, size, resource, SENT, NOW, &token, &err);
    if (st == AZID_OK) {
        const char *value = azid_token_value(token);
        FUZZ_CHECK(value && value[0]);
        FUZZ_CHECK(azid_token_length(token) == strlen(value));
        FUZZ_CHECK(text_bad_char(value, strlen(value)) == -1);
        FUZZ_CHECK(azid_token_expires_on(token) > NOW);
        FUZZ_CHECK(azid_token_resource(token) != NULL);
        FUZZ_CHECK(!resource || strcmp(azid_token_resource(token), resource) == 0);
        azid_token_free(token);
        return;
    }
    FUZZ_CHECK(token == NULL);
    FUZZ_CHECK(st == AZID_ERR_RESPONSE || st == AZID_ERR_NOMEM);
    fuzz_check_message(&err);
    fuzz_check_not_quoted(&err, secret, secret ? strlen(secret) : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *secret = body_token(data, size);
    parse(data, size, "https://management.azure.com/", secret);
    parse(data, size, NULL, secret);
    free(secret);

    char summary[512];
    token_describe_error((const char *)data, size, summary, sizeof summary);
    for (const char *p = summary; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    return 0;
}
