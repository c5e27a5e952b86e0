/* SPDX-License-Identifier: MIT
 * What a Key Vault secret URL and a Key Vault host may be: the one strict
 * parser, used by the option table, the client and the CLI alike.  Not
 * installed. */
#ifndef AZID_SECRET_URL_H
#define AZID_SECRET_URL_H

#include "azid.h"

#include <stddef.h>

#define SECRET_URL_FORM "https://<vault>.vault.azure.net/secrets/<name>[/<version>]"

/* A Key Vault secret URL taken apart:
 * https://<vault>.<suffix>/secrets/<name>[/<version>], <suffix> a Key
 * Vault DNS suffix (KEYVAULT_SUFFIXES). */
typedef struct secret_url {
    char vault_host[254]; /* lower-case, e.g. "myvault.vault.azure.net" */
    char name[128];       /* [0-9A-Za-z-]+ */
    char version[65];     /* [0-9A-Za-z]*, "" for the latest */
} secret_url;

/* Whether host[0..len) is <vault>.<suffix> with a Key Vault DNS suffix
 * (any case, no port): the only hosts a vault token is sent to. */
int keyvault_host_valid(const char *host, size_t len);

/* NULL when url is a secret URL (filling *out), else what is wrong. */
const char *secret_url_problem(const char *url, secret_url *out);
/* The same as an error: AZID_ERR_ARGUMENT naming the URL and the fault. */
azid_status secret_url_parse(const char *url, secret_url *out, azid_error *err);

#endif
