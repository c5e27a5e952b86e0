/* SPDX-License-Identifier: MIT
 * azid_config_new_client: kept apart from config.c so that programs which
 * only parse configuration do not link the network code. */
#include "config.h"

#include "internal.h"
#include "options.h"

azid_status azid_config_new_client(const azid_config *config, azid_client **out,
                                   azid_error *err)
{
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the client (NULL)");
    *out = NULL;
    if (!config)
        return err_set(err, AZID_ERR_ARGUMENT, "no configuration given (NULL)");
    azid_client *client = azid_client_new();
    if (!client)
        return err_set(err, AZID_ERR_NOMEM, "out of memory creating the identity client");

    const struct settings *s = config_settings(config);
    azid_status st = azid_client_set_source(client, s->source, err);
    if (st == AZID_OK && s->endpoint)
        st = azid_client_set_endpoint(client, s->endpoint, err);
    if (st == AZID_OK && s->identity.kind != AZID_IDENTITY_SYSTEM)
        st = azid_client_set_identity(client, s->identity.kind, s->identity.id, err);
    if (st == AZID_OK)
        st = azid_client_set_timeout_ms(client, s->timeout_ms, err);
    if (st == AZID_OK && s->ca_file)
        st = azid_client_set_ca_file(client, s->ca_file, err);
    if (st != AZID_OK) {
        azid_client_free(client);
        return st;
    }
    *out = client;
    return AZID_OK;
}
