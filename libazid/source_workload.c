/* SPDX-License-Identifier: MIT
 * AKS workload identity: the webhook sets AZURE_TENANT_ID, AZURE_CLIENT_ID
 * and AZURE_FEDERATED_TOKEN_FILE; the kubelet's token in that file is
 * exchanged at Entra ID's token endpoint (client credentials with a JWT
 * assertion). */
#include "config.h"

#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKLOAD_MAX_ASSERTION (64 * 1024)

static enum source_match workload_detect(const struct source_view *v, char *how, size_t size)
{
    if (!source_env(v, "AZURE_TENANT_ID") || !source_env(v, "AZURE_CLIENT_ID") ||
        !source_env(v, "AZURE_FEDERATED_TOKEN_FILE"))
        return SOURCE_NO_MATCH;
    snprintf(how, size, "AKS workload identity ($AZURE_TENANT_ID, $AZURE_CLIENT_ID and "
             "$AZURE_FEDERATED_TOKEN_FILE)");
    return SOURCE_BY_ENVIRONMENT;
}

static azid_status workload_configure(const struct source_view *v, const char *base,
                                      struct source_config *out, azid_error *err)
{
    const char *tenant = source_env(v, "AZURE_TENANT_ID");
    const char *file = source_env(v, "AZURE_FEDERATED_TOKEN_FILE");
    const char *authority = source_env(v, "AZURE_AUTHORITY_HOST");
    if (!tenant || !file || !source_env(v, "AZURE_CLIENT_ID"))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "source workload needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                       "AZURE_FEDERATED_TOKEN_FILE in the environment (set by the AKS "
                       "workload identity webhook)");
    /* The assertion is a credential: never in cleartext, never to a URL
     * whose user information, query or fragment could redirect it. */
    if (base && strncmp(base, "https://", 8) != 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "source workload sends its assertion (a credential) to endpoint=, so it "
                       "must be an https:// URL, not '%s'", base);
    if (!base && authority && strncmp(authority, "https://", 8) != 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "AZURE_AUTHORITY_HOST '%s' must be an https:// URL", authority);
    if (!base && authority &&
        source_check_url("AZURE_AUTHORITY_HOST", authority, 0, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    if (strspn(tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
        strlen(tenant))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "AZURE_TENANT_ID '%s' is not a tenant id or domain", tenant);
    char *root = source_join(base ? base : authority ? authority : SOURCE_AUTHORITY_DEFAULT, "/");
    if (!root)
        return err_nomem(err, "configuring the source");
    size_t n = strlen(root) + strlen(tenant) + sizeof "/oauth2/v2.0/token";
    if ((out->token_url = malloc(n)))
        snprintf(out->token_url, n, "%s%s/oauth2/v2.0/token", root, tenant);
    free(root);
    if (source_dup(&out->client_id, source_env(v, "AZURE_CLIENT_ID")) != 0 ||
        source_dup(&out->token_file, file) != 0)
        return err_nomem(err, "configuring the source");
    return AZID_OK;
}

/* Reads the federated token, re-read on every request since it rotates.
 * Kubernetes projects it through symbolic links, so the link is followed. */
static azid_status read_assertion(const char *path, char **out, azid_error *err)
{
    char *buf;
    size_t n;
    azid_status st = file_read_small(path, "AZURE_FEDERATED_TOKEN_FILE", WORKLOAD_MAX_ASSERTION,
                                     FILE_FOLLOW, &buf, &n, NULL, err);
    if (st == AZID_ERR_NOMEM)
        return st;
    if (st == AZID_ERR_SYSTEM)
        return err_set(err, st, "cannot read AZURE_FEDERATED_TOKEN_FILE %s: %s", path,
                       strerror(errno));
    while (st == AZID_OK && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (st != AZID_OK || text_bad_char(buf, n) >= 0) {
        wipe_free(buf, WORKLOAD_MAX_ASSERTION + 1);
        return err_set(err, AZID_ERR_SYSTEM,
                       "AZURE_FEDERATED_TOKEN_FILE %s is empty, too large or not a token", path);
    }
    *out = buf;
    return AZID_OK;
}

char *source_workload_form(const char *client_id, const char *assertion, const char *resource)
{
    static const char suffix[] = "/.default";
    size_t rlen = strlen(resource);
    int has_suffix = rlen >= sizeof suffix - 1 && strcmp(resource + rlen - (sizeof suffix - 1), suffix) == 0;
    char *scope = malloc(rlen + sizeof suffix);
    if (!scope)
        return NULL;
    strcpy(scope, resource);
    if (!has_suffix)
        strcat(scope, suffix);
    struct source_params form = {NULL, 0, 0};
    int fail = source_params_add(&form, '&', "client_id", client_id) != 0 ||
               source_params_add(&form, '&', "scope", scope) != 0 ||
               source_params_add(&form, '&', "grant_type", "client_credentials") != 0 ||
               source_params_add(&form, '&', "client_assertion_type",
                                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0 ||
               source_params_add(&form, '&', "client_assertion", assertion) != 0;
    free(scope);
    if (fail) {
        wipe_free(form.text, form.capacity);
        return NULL;
    }
    memmove(form.text, form.text + 1, form.length); /* drop the leading '&' */
    return form.text;
}

static azid_status workload_build(const struct source_config *cfg, const char *resource,
                                  azid_identity_kind kind, const char *id,
                                  struct source_request *req, azid_error *err)
{
    char *assertion = NULL;
    azid_status st = read_assertion(cfg->token_file, &assertion, err);
    if (st != AZID_OK)
        return st;
    req->method = HTTP_POST;
    req->body = source_workload_form(kind == AZID_IDENTITY_CLIENT_ID ? id : cfg->client_id,
                                     assertion, resource);
    wipe_free_str(assertion);
    return req->body ? AZID_OK : err_nomem(err, "building the token request");
}

const struct source source_workload = {
    .name = "workload",
    .label = "workload identity",
    .help = "AKS workload identity ($AZURE_FEDERATED_TOKEN_FILE and siblings)",
    .identities = 1u << AZID_IDENTITY_CLIENT_ID,
    .offers = "client_id= only",
    .detect = workload_detect,
    .configure = workload_configure,
    .build = workload_build,
};
