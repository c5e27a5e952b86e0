/* SPDX-License-Identifier: MIT
 * What a Key Vault secret URL and a Key Vault host may be: the one strict
 * parser, used by the option table, the client and the CLI alike.  Not
 * installed. */
#ifndef AZID_SECRET_URL_H
#define AZID_SECRET_URL_H

#include "azid.h"

#include <stddef.h>

#define SECRET_URL_FORM "https://<vault>.vault.azure.net/secrets/<name>[/<version>]"

/* A Key Vault secret URL taken apart (azid.h). */
typedef azid_secret_url secret_url;

/* Whether host[0..len) is <vault>.<suffix> with a Key Vault DNS suffix
 * (any case, no port): the only hosts a vault token is sent to. */
int keyvault_host_valid(const char *host, size_t len);

/* NULL when url is a secret URL (filling *out), else what is wrong. */
const char *secret_url_problem(const char *url, secret_url *out);
/* azid_secret_url_parse under the name libazid's files use. */
#define secret_url_parse azid_secret_url_parse

#endif
