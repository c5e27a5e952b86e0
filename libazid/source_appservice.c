/* SPDX-License-Identifier: MIT
 * App Service (and Functions): the platform sets IDENTITY_ENDPOINT and a
 * shared secret, IDENTITY_HEADER, sent back as X-IDENTITY-HEADER. */
#include "config.h"

#include "source.h"

#include <stdio.h>
#include <string.h>

static enum source_match appservice_detect(const struct source_view *v, char *how, size_t size)
{
    if (!source_env(v, "IDENTITY_ENDPOINT") || !source_env(v, "IDENTITY_HEADER"))
        return SOURCE_NO_MATCH;
    snprintf(how, size, "App Service ($IDENTITY_ENDPOINT and $IDENTITY_HEADER)");
    return SOURCE_BY_ENVIRONMENT;
}

static azid_status appservice_configure(const struct source_view *v, const char *base,
                                        struct source_config *out, azid_error *err)
{
    const char *header = source_env(v, "IDENTITY_HEADER");
    if (!header)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "source appservice needs IDENTITY_HEADER in the environment (set by "
                       "App Service); it is not set");
    /* It is sent as a header: a CR or LF would add headers of its own. */
    if (!text_is_word(header))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "IDENTITY_HEADER holds a space or control character; it cannot be "
                       "sent as a header");
    if (source_url_from_env(v, base, "IDENTITY_ENDPOINT", out, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    if (source_dup(&out->identity_header, header) != 0)
        return err_nomem(err, "configuring the source");
    return AZID_OK;
}

static const char *const appservice_selectors[] = {
    [AZID_IDENTITY_CLIENT_ID] = "client_id",
    [AZID_IDENTITY_OBJECT_ID] = "principal_id",
    [AZID_IDENTITY_MSI_RES_ID] = "mi_res_id",
};

static azid_status appservice_build(const struct source_config *cfg, const char *resource,
                                    azid_identity_kind kind, const char *id,
                                    struct source_request *req, azid_error *err)
{
    azid_status st = source_build_get(req, "2019-08-01", resource, appservice_selectors, kind, id,
                                      err);
    if (st == AZID_OK && !(req->header = source_header("X-IDENTITY-HEADER", cfg->identity_header)))
        st = err_nomem(err, "building the token request");
    return st;
}

const struct source source_appservice = {
    .name = "appservice",
    .label = "App Service",
    .help = "App Service and Functions ($IDENTITY_ENDPOINT, $IDENTITY_HEADER)",
    .identities = 1u << AZID_IDENTITY_CLIENT_ID | 1u << AZID_IDENTITY_OBJECT_ID |
                  1u << AZID_IDENTITY_MSI_RES_ID,
    .offers = "client_id=, object_id= and msi_res_id=",
    .detect = appservice_detect,
    .configure = appservice_configure,
    .build = appservice_build,
};
