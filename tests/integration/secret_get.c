/* SPDX-License-Identifier: MIT
 *
 * Reads one Key Vault secret through the public API only (<azid.h>), for
 * tests/integration/test_secret.py:
 *
 *   secret_get ENDPOINT CA_FILE URL TIMEOUT_MS [global=FLAGS ...]
 *
 * ENDPOINT is the token endpoint base ("-": the detected source), CA_FILE
 * the extra CA bundle ("-": none).  Each global=FLAGS (a number) is an
 * azid_global_init(FLAGS) before anything else; one that fails prints
 * "global: STATUS-NAME: message" to stderr, and the rest goes on.  On
 * success the value goes to stdout, byte for byte, and one line
 * "vault_host=H name=N length=L expires_on=E" to stderr; exit 0.  On failure one line "STATUS-NAME: message" goes to
 * stderr; exit 1 (2 for usage).
 */
#include "azid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const azid_error *err)
{
    fprintf(stderr, "%s: %s\n", azid_status_name(err->status), err->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fputs("usage: secret_get ENDPOINT|- CA_FILE|- URL TIMEOUT_MS [global=FLAGS ...]\n", stderr);
        return 2;
    }
    azid_error err;
    for (int i = 5; i < argc; i++) {
        char *end = NULL;
        unsigned long flags =
            strncmp(argv[i], "global=", 7) == 0 ? strtoul(argv[i] + 7, &end, 0) : 0;
        if (!end || end == argv[i] + 7 || *end) {
            fprintf(stderr, "secret_get: %s is not global=FLAGS\n", argv[i]);
            return 2;
        }
        if (azid_global_init((unsigned)flags, &err) != AZID_OK)
            fprintf(stderr, "global: %s: %s\n", azid_status_name(err.status), err.message);
    }
    azid_client *client = azid_client_new();
    if (!client) {
        fputs("nomem: out of memory\n", stderr);
        return 1;
    }
    int rc = 1;
    azid_secret *secret = NULL;
    if (strcmp(argv[1], "-") != 0 && azid_client_set_endpoint(client, argv[1], &err) != AZID_OK)
        rc = fail(&err);
    else if (strcmp(argv[2], "-") != 0 && azid_client_set_ca_file(client, argv[2], &err) != AZID_OK)
        rc = fail(&err);
    else if (azid_client_set_timeout_ms(client, strtol(argv[4], NULL, 10), &err) != AZID_OK)
        rc = fail(&err);
    else if (azid_client_get_secret(client, argv[3], &secret, &err) != AZID_OK)
        rc = fail(&err);
    else {
        fwrite(azid_secret_value(secret), 1, azid_secret_length(secret), stdout);
        fprintf(stderr, "vault_host=%s name=%s length=%zu expires_on=%lld\n",
                azid_secret_vault_host(secret), azid_secret_name(secret),
                azid_secret_length(secret), (long long)azid_secret_expires_on(secret));
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    azid_secret_free(secret);
    azid_client_free(client);
    return rc;
}
