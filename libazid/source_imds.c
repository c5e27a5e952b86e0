/* SPDX-License-Identifier: MIT
 * IMDS, the Azure VM's Instance Metadata Service at 169.254.169.254,
 * recognised by the Azure asset tag in the DMI data. */
#include "config.h"

#include "source.h"

#include <stdio.h>
#include <string.h>

static enum source_match imds_detect(const struct source_view *v, char *how, size_t size)
{
    char tag[128];
    if (v->read_file(v->ctx, SOURCE_DMI_ASSET_TAG_FILE, tag, sizeof tag) < 0) {
        snprintf(how, size, "no Azure asset tag in %s (unreadable)", SOURCE_DMI_ASSET_TAG_FILE);
        return SOURCE_NO_MATCH;
    }
    tag[strcspn(tag, "\r\n")] = '\0';
    size_t word = strcspn(tag, " \t");
    if (word == strlen(SOURCE_AZURE_ASSET_TAG) && strncmp(tag, SOURCE_AZURE_ASSET_TAG, word) == 0) {
        snprintf(how, size, "Azure VM (Azure's asset tag in %s)", SOURCE_DMI_ASSET_TAG_FILE);
        return SOURCE_BY_HARDWARE;
    }
    snprintf(how, size, "no Azure asset tag in %s ('%.40s')", SOURCE_DMI_ASSET_TAG_FILE, tag);
    return SOURCE_NO_MATCH;
}

static azid_status imds_configure(const struct source_view *v, const char *base,
                                  struct source_config *out, azid_error *err)
{
    (void)v;
    (void)err;
    out->token_url = source_join(base ? base : SOURCE_IMDS_BASE, SOURCE_TOKEN_PATH);
    return AZID_OK;
}

static const char *const imds_selectors[] = {
    [AZID_IDENTITY_CLIENT_ID] = "client_id",
    [AZID_IDENTITY_OBJECT_ID] = "object_id",
    [AZID_IDENTITY_MSI_RES_ID] = "msi_res_id",
};

static azid_status imds_build(const struct source_config *cfg, const char *resource,
                              azid_identity_kind kind, const char *id,
                              struct source_request *req, azid_error *err)
{
    (void)cfg;
    return source_build_get(req, "2018-02-01", resource, imds_selectors, kind, id, err);
}

const struct source source_imds = {
    .name = "imds",
    .label = "IMDS",
    .help = "IMDS, the Azure VM's metadata service (" SOURCE_IMDS_BASE ")",
    .identities = 1u << AZID_IDENTITY_CLIENT_ID | 1u << AZID_IDENTITY_OBJECT_ID |
                  1u << AZID_IDENTITY_MSI_RES_ID,
    .offers = "client_id=, object_id= and msi_res_id=",
    .detect = imds_detect,
    .configure = imds_configure,
    .build = imds_build,
};
