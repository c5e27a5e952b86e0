/* SPDX-License-Identifier: MIT
 * Token responses: parse and validate (pure: no I/O, no clock reads). */
#ifndef AZID_TOKEN_H
#define AZID_TOKEN_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* Token responses are about 1-3 KB; anything past this is refused. */
#define TOKEN_MAX_RESPONSE (64 * 1024)

struct azid_token {
    char *value; /* wiped on free */
    size_t length;
    int64_t expires_on;
    char *resource;
    char *type;
};

/* A token from its parts (copied).  NULL when out of memory. */
azid_token *token_new(const char *value, size_t length, int64_t expires_on,
                      const char *resource, const char *type);

/* Parses a 200 response body.  `resource` is what was asked for (kept as
 * the token's resource; the response's "resource" is used only when it is
 * NULL).  `request_epoch` is the wall-clock second the request was sent
 * (the base of expires_in); `now_epoch` is checked against the expiry.
 * AZID_ERR_RESPONSE with a message naming the defect (never quoting the
 * body: it may hold a token), AZID_ERR_NOMEM. */
azid_status token_parse(const char *body, size_t length, const char *resource,
                        int64_t request_epoch, int64_t now_epoch, azid_token **out,
                        azid_error *err);

/* Summarises an error body: IMDS/Entra {"error","error_description"},
 * Key Vault {"error":{"code","message"}}, App Service {"message"}.  Writes
 * "code: description" (or the part present) into buf, one line, control
 * characters replaced; "" when the body says nothing usable. */
void token_describe_error(const char *body, size_t length, char *buf, size_t size);

#endif
