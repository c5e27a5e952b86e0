/* SPDX-License-Identifier: MIT
 * azid_config_new_client: kept apart from config.c so that programs which
 * only parse configuration do not link the network code. */
#include "config.h"

#include "internal.h"

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

    const char *id;
    azid_identity_kind kind = azid_config_identity(config, &id);
    const char *endpoint = azid_config_endpoint(config);
    const char *ca_file = azid_config_ca_file(config);
    azid_status st = azid_client_set_source(client, azid_config_source(config), err);
    if (st == AZID_OK && endpoint)
        st = azid_client_set_endpoint(client, endpoint, err);
    if (st == AZID_OK && kind != AZID_IDENTITY_SYSTEM)
        st = azid_client_set_identity(client, kind, id, err);
    if (st == AZID_OK)
        st = azid_client_set_timeout_ms(client, azid_config_timeout_ms(config), err);
    if (st == AZID_OK && ca_file)
        st = azid_client_set_ca_file(client, ca_file, err);
    if (st != AZID_OK) {
        azid_client_free(client);
        return st;
    }
    *out = client;
    return AZID_OK;
}
