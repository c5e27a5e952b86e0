/* SPDX-License-Identifier: MIT
 * Which identity source serves this machine, and what each one's request
 * looks like.  Detection never touches the network: off Azure it must
 * answer at once instead of waiting for a timeout at every login. */
#include "config.h"

#include "source.h"

#include "http.h"
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *system_get_env(void *ctx, const char *name)
{
    (void)ctx;
    return secure_getenv(name);
}

static int system_path_exists(void *ctx, const char *path)
{
    (void)ctx;
    return access(path, F_OK) == 0;
}

static long system_read_file(void *ctx, const char *path, char *buf, size_t size)
{
    (void)ctx;
    char *data;
    size_t n;
    if (file_read_small(path, "", size - 1, 0, &data, &n, NULL, NULL) != AZID_OK)
        return -1;
    memcpy(buf, data, n + 1);
    wipe_free(data, size);
    return (long)n;
}

static const struct source_view system_view = {
    system_get_env, system_path_exists, system_read_file, NULL};

const struct source_view *source_view_system(void)
{
    return &system_view;
}

const char *source_label(azid_source source)
{
    switch (source) {
    case AZID_SOURCE_IMDS: return "IMDS";
    case AZID_SOURCE_ARC: return "Arc";
    case AZID_SOURCE_APPSERVICE: return "App Service";
    case AZID_SOURCE_CLOUDSHELL: return "Cloud Shell";
    case AZID_SOURCE_WORKLOAD: return "workload identity";
    case AZID_SOURCE_AUTO: break;
    }
    return "identity endpoint";
}

void source_config_clear(struct source_config *cfg)
{
    free(cfg->token_url);
    wipe_free_str(cfg->identity_header); /* App Service's shared secret */
    free(cfg->client_id);
    free(cfg->token_file);
    memset(cfg, 0, sizeof *cfg);
    cfg->source = AZID_SOURCE_AUTO;
}

static const char *env(const struct source_view *v, const char *name)
{
    const char *value = v->get_env(v->ctx, name);
    return value && *value ? value : NULL;
}

/* base (trailing '/' dropped) + path, malloc'ed. */
static char *join(const char *base, const char *path)
{
    size_t n = strlen(base);
    if (n && base[n - 1] == '/')
        n--;
    char *out = malloc(n + strlen(path) + 1);
    if (out) {
        memcpy(out, base, n);
        strcpy(out + n, path);
    }
    return out;
}

static int dup_into(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* Fills the per-source parameters, from the environment where the source
 * takes them from there. */
static azid_status configure(const struct source_view *v, azid_source source, const char *base,
                             struct source_config *out, azid_error *err)
{
    const char *label = source_label(source);
    char *url = NULL;
    out->source = source;
    switch (source) {
    case AZID_SOURCE_IMDS:
    case AZID_SOURCE_ARC:
        if (!base && source == AZID_SOURCE_ARC && env(v, "IDENTITY_ENDPOINT")) {
            if (source_check_url("IDENTITY_ENDPOINT", env(v, "IDENTITY_ENDPOINT"), 1, err) != AZID_OK)
                return err->status;
            url = strdup(env(v, "IDENTITY_ENDPOINT"));
        } else {
            url = join(base ? base : source == AZID_SOURCE_ARC ? SOURCE_ARC_BASE
                                                                : SOURCE_IMDS_BASE,
                       SOURCE_TOKEN_PATH);
        }
        break;
    case AZID_SOURCE_APPSERVICE:
    case AZID_SOURCE_CLOUDSHELL: {
        const char *var = source == AZID_SOURCE_APPSERVICE ? "IDENTITY_ENDPOINT" : "MSI_ENDPOINT";
        const char *header = env(v, "IDENTITY_HEADER");
        if (source == AZID_SOURCE_APPSERVICE && !header)
            return err_set(err, AZID_ERR_ARGUMENT,
                           "source appservice needs IDENTITY_HEADER in the environment (set by "
                           "App Service); it is not set");
        /* It is sent as a header: a CR or LF would add headers of its own. */
        if (source == AZID_SOURCE_APPSERVICE && text_bad_char(header, strlen(header)) >= 0)
            return err_set(err, AZID_ERR_ARGUMENT,
                           "IDENTITY_HEADER holds a space or control character; it cannot be "
                           "sent as a header");
        if (base) {
            url = join(base, SOURCE_MSI_PATH);
        } else if (!env(v, var)) {
            return err_set(err, AZID_ERR_ARGUMENT,
                           "source %s needs %s in the environment (set by %s) or endpoint=",
                           azid_source_name(source), var, label);
        } else {
            if (source_check_url(var, env(v, var), 1, err) != AZID_OK)
                return err->status;
            url = strdup(env(v, var));
        }
        if (dup_into(&out->identity_header, source == AZID_SOURCE_APPSERVICE ? header : NULL) != 0)
            goto nomem;
        break;
    }
    case AZID_SOURCE_WORKLOAD: {
        const char *tenant = env(v, "AZURE_TENANT_ID"), *file = env(v, "AZURE_FEDERATED_TOKEN_FILE");
        const char *authority = env(v, "AZURE_AUTHORITY_HOST");
        if (!tenant || !file || !env(v, "AZURE_CLIENT_ID"))
            return err_set(err, AZID_ERR_ARGUMENT,
                           "source workload needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                           "AZURE_FEDERATED_TOKEN_FILE in the environment (set by the AKS "
                           "workload identity webhook)");
        if (!base && authority && strncmp(authority, "https://", 8) != 0)
            return err_set(err, AZID_ERR_ARGUMENT,
                           "AZURE_AUTHORITY_HOST '%s' must be an https:// URL", authority);
        if (strspn(tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            strlen(tenant))
            return err_set(err, AZID_ERR_ARGUMENT,
                           "AZURE_TENANT_ID '%s' is not a tenant id or domain", tenant);
        char *root = join(base ? base : authority ? authority : SOURCE_AUTHORITY_DEFAULT, "/");
        if (!root)
            goto nomem;
        size_t n = strlen(root) + strlen(tenant) + sizeof "/oauth2/v2.0/token";
        url = malloc(n);
        if (url)
            snprintf(url, n, "%s%s/oauth2/v2.0/token", root, tenant);
        free(root);
        if (dup_into(&out->client_id, env(v, "AZURE_CLIENT_ID")) != 0 ||
            dup_into(&out->token_file, file) != 0)
            goto nomem;
        break;
    }
    case AZID_SOURCE_AUTO:
        return err_set(err, AZID_ERR_ARGUMENT, "no source to configure");
    }
    if (!url)
        goto nomem;
    out->token_url = url;
    return AZID_OK;
nomem:
    free(url);
    return err_nomem(err, "configuring the source");
}

/* Detection proper: which source the environment and machine point at. */
static azid_status detect(const struct source_view *v, azid_source *found, azid_error *err)
{
    char tag[128];
    if (env(v, "IDENTITY_ENDPOINT") && env(v, "IDENTITY_HEADER"))
        *found = AZID_SOURCE_APPSERVICE;
    else if (env(v, "IDENTITY_ENDPOINT") && env(v, "IMDS_ENDPOINT"))
        *found = AZID_SOURCE_ARC;
    else if (env(v, "MSI_ENDPOINT"))
        *found = AZID_SOURCE_CLOUDSHELL;
    else if (env(v, "AZURE_TENANT_ID") && env(v, "AZURE_CLIENT_ID") &&
             env(v, "AZURE_FEDERATED_TOKEN_FILE"))
        *found = AZID_SOURCE_WORKLOAD;
    else if (v->path_exists(v->ctx, SOURCE_ARC_AGENT))
        *found = AZID_SOURCE_ARC;
    else if (v->read_file(v->ctx, SOURCE_DMI_ASSET_TAG_FILE, tag, sizeof tag) >= 0 &&
             (tag[strcspn(tag, "\r\n \t")] = '\0', strcmp(tag, SOURCE_AZURE_ASSET_TAG) == 0))
        *found = AZID_SOURCE_IMDS;
    else
        return err_set(err, AZID_ERR_NO_SOURCE,
                       "not an Azure VM (no Azure asset tag in %s, no Arc agent): set endpoint= "
                       "to use another token endpoint", SOURCE_DMI_ASSET_TAG_FILE);
    return AZID_OK;
}

azid_status source_resolve(const struct source_view *view, azid_source wanted,
                           const char *endpoint_base, struct source_config *out,
                           azid_error *err)
{
    source_config_clear(out);
    azid_source source = wanted;
    if (endpoint_base && source_check_base_url(endpoint_base, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    if (source == AZID_SOURCE_AUTO) {
        if (endpoint_base)
            source = AZID_SOURCE_IMDS;
        else if (detect(view, &source, err) != AZID_OK)
            return AZID_ERR_NO_SOURCE;
    }
    azid_error local;
    azid_status st = configure(view, source, endpoint_base, out, err ? err : &local);
    if (st != AZID_OK)
        source_config_clear(out);
    return st;
}

/* A query or form being built; it may hold a credential (the workload
 * assertion), so it grows by copying and wiping. */
struct params {
    char *text;
    size_t length, capacity;
};

/* Appends "<sep>name=<encoded value>"; -1 when out of memory. */
static int append_param(struct params *p, char sep, const char *name, const char *value)
{
    char *enc = http_escape(value);
    if (!enc)
        return -1;
    size_t add = 1 + strlen(name) + 1 + strlen(enc);
    int rc = array_grow(&p->text, &p->capacity, p->length + add + 1, 1, 1);
    if (rc == 0) {
        snprintf(p->text + p->length, add + 1, "%c%s=%s", sep, name, enc);
        p->length += add;
    }
    wipe_free_str(enc);
    return rc;
}

char *source_token_query(const char *api_version, const char *resource,
                         const char *selector_name, const char *selector_value)
{
    struct params q = {NULL, 0, 0};
    if ((api_version && append_param(&q, '?', "api-version", api_version) != 0) ||
        append_param(&q, api_version ? '&' : '?', "resource", resource) != 0 ||
        (selector_name && append_param(&q, '&', selector_name, selector_value) != 0)) {
        free(q.text);
        return NULL;
    }
    return q.text;
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
    struct params form = {NULL, 0, 0};
    int fail = append_param(&form, '&', "client_id", client_id) != 0 ||
               append_param(&form, '&', "scope", scope) != 0 ||
               append_param(&form, '&', "grant_type", "client_credentials") != 0 ||
               append_param(&form, '&', "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0 ||
               append_param(&form, '&', "client_assertion", assertion) != 0;
    free(scope);
    if (fail) {
        wipe_free(form.text, form.capacity);
        return NULL;
    }
    memmove(form.text, form.text + 1, form.length); /* drop the leading '&' */
    return form.text;
}

azid_status source_arc_read_key(const char *www_authenticate, const char *key_dir,
                                char **key, azid_error *err)
{
    *key = NULL;
    static const char prefix[] = "Basic realm=";
    if (!www_authenticate || strncasecmp(www_authenticate, prefix, sizeof prefix - 1) != 0)
        return err_set(err, AZID_ERR_RESPONSE,
                       "HTTP 401 without a 'WWW-Authenticate: Basic realm=<key file>' challenge");
    const char *path = www_authenticate + sizeof prefix - 1;
    size_t dlen = strlen(key_dir), plen = strlen(path);
    if (plen && text_bad_char(path, plen) >= 0)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc challenge names a key file with spaces or control characters; "
                       "refusing to read it");
    const char *base = path + dlen + 1;
    if (strchr(path, '=') || plen <= dlen + 1 + 4 || strncmp(path, key_dir, dlen) != 0 ||
        path[dlen] != '/' || strchr(base, '/') || strcmp(path + plen - 4, ".key") != 0 ||
        base[0] == '.')
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc challenge names key file '%.200s', which is not a .key file "
                       "directly in %s; refusing to read it", path, key_dir);
    char *buf;
    size_t n;
    azid_status st = file_read_small(path, "the Arc key file", SOURCE_ARC_KEY_MAX, 0, &buf, &n,
                                     NULL, err);
    if (st == AZID_ERR_SYSTEM && errno == EACCES)
        return err_set(err, st, "cannot open the Arc key file %s: %s (only root and the himds "
                       "group may read it)", path, strerror(EACCES));
    if (st == AZID_ERR_ARGUMENT && err)
        err->status = AZID_ERR_RESPONSE; /* the server named it */
    if (st != AZID_OK)
        return st == AZID_ERR_ARGUMENT ? AZID_ERR_RESPONSE : st;
    if (text_bad_char(buf, n) >= 0) {
        wipe_free(buf, SOURCE_ARC_KEY_MAX + 1);
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc key file %s holds characters that cannot go in an HTTP header",
                       path);
    }
    *key = buf;
    return AZID_OK;
}
