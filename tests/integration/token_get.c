/* SPDX-License-Identifier: MIT
 *
 * Gets one token through the public API, for tests that must run it in a
 * process of their own making (set-user-id, for one):
 *
 *   token_get ENDPOINT RESOURCE TIMEOUT_MS [CA_FILE]
 *
 * Linked with libazid statically, so a set-user-id copy needs no library
 * path.  Prints "ok" or "STATUS-NAME: message" (never the token) on stdout;
 * exit 0 when a token came, 1 otherwise, 2 for usage.
 */
#include "azid.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fputs("usage: token_get ENDPOINT RESOURCE TIMEOUT_MS [CA_FILE]\n", stderr);
        return 2;
    }
    azid_error err;
    azid_token *token = NULL;
    azid_client *client = azid_client_new();
    if (!client) {
        puts("nomem: out of memory");
        return 1;
    }
    if (azid_client_set_endpoint(client, argv[1], &err) == AZID_OK &&
        azid_client_set_timeout_ms(client, strtol(argv[3], NULL, 10), &err) == AZID_OK &&
        (argc < 5 || azid_client_set_ca_file(client, argv[4], &err) == AZID_OK) &&
        azid_client_get_token(client, argv[2], &token, &err) == AZID_OK)
        puts("ok");
    else
        printf("%s: %s\n", azid_status_name(err.status), err.message);
    azid_token_free(token);
    azid_client_free(client);
    return token ? 0 : 1;
}
