/* SPDX-License-Identifier: MIT
 * Cloud Shell: MSI_ENDPOINT, asked with a form POST for the signed-in
 * user's identity only. */
#include "config.h"

#include "source.h"

#include <stdio.h>
#include <string.h>

static enum source_match cloudshell_detect(const struct source_view *v, char *how, size_t size)
{
    if (!source_env(v, "MSI_ENDPOINT"))
        return SOURCE_NO_MATCH;
    snprintf(how, size, "Cloud Shell ($MSI_ENDPOINT)");
    return SOURCE_BY_ENVIRONMENT;
}

static azid_status cloudshell_configure(const struct source_view *v, const char *base,
                                        struct source_config *out, azid_error *err)
{
    return source_url_from_env(v, base, "MSI_ENDPOINT", out, err);
}

static azid_status cloudshell_build(const struct source_config *cfg, const char *resource,
                                    azid_identity_kind kind, const char *id,
                                    struct source_request *req, azid_error *err)
{
    (void)cfg;
    (void)kind;
    (void)id;
    req->method = HTTP_POST;
    req->metadata = 1;
    struct source_params form = {NULL, 0, 0};
    if (source_params_add(&form, '&', "resource", resource) != 0)
        return err_nomem(err, "building the token request");
    memmove(form.text, form.text + 1, form.length); /* a form has no leading separator */
    req->body = form.text;
    return AZID_OK;
}

const struct source source_cloudshell = {
    .name = "cloudshell",
    .label = "Cloud Shell",
    .help = "Azure Cloud Shell ($MSI_ENDPOINT)",
    .identities = 0,
    .offers = "only the machine's own identity",
    .detect = cloudshell_detect,
    .configure = cloudshell_configure,
    .build = cloudshell_build,
};
