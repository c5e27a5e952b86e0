/* SPDX-License-Identifier: MIT
 * Key Vault secret reads: the pure parts (request shape, response parsing,
 * hints), shared with the unit tests.  Not installed. */
#ifndef AZID_KEYVAULT_H
#define AZID_KEYVAULT_H

#include "internal.h"

#include "secret_url.h"

#include <stddef.h>
#include <stdint.h>

#define KEYVAULT_API_VERSION "7.4"
/* A secret value is at most 25 KB; JSON escapes (\uXXXX) can inflate it
 * six-fold, plus attributes and tags.  Anything larger is refused. */
#define KEYVAULT_MAX_RESPONSE (256 * 1024)
/* "https://" + host + "/secrets/" + name + "/" + version, with room. */
#define KEYVAULT_URL_MAX 512

struct azid_secret {
    char *value; /* NUL-terminated, may hold NULs; wiped on free */
    size_t length;
    char *vault_host;
    char *name;
    int64_t expires_on;
};

/* "https://<host>/secrets/<name>[/<version>]": what is requested (with the
 * query added) and what messages name. */
void keyvault_secret_url(const secret_url *url, char *buf, size_t size);

/* The token audience for a vault: "https://" + the vault's DNS suffix
 * ("https://vault.azure.net", "https://vault.azure.cn", ...), so a token is
 * only ever sent to hosts under the suffix it was issued for. */
void keyvault_resource(const secret_url *url, char *buf, size_t size);

/* Parses the 200 body of a secret read.  The secret expires at
 * token_expires_on, or at its "exp" attribute when that is earlier; a
 * secret that is disabled, already expired or not yet valid (nbf) at
 * now_epoch is refused.  AZID_ERR_RESPONSE naming the defect (never quoting
 * the body), AZID_ERR_NOMEM. */
azid_status keyvault_parse_secret(const char *body, size_t length, const secret_url *url,
                                  int64_t token_expires_on, int64_t now_epoch,
                                  azid_secret **out, azid_error *err);

/* What to do about a final Key Vault HTTP status, given its error text
 * ("code: message"); NULL for none.  A client_hint_fn (ctx unused). */
const char *keyvault_hint(long status, const char *error_text, void *ctx);

/* Which Key Vault statuses are transient: 429 and 5xx.  A 404 is a missing
 * secret, not an endpoint being updated as it is for IMDS. */
int keyvault_status_retryable(long status);

#endif
