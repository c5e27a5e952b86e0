/* SPDX-License-Identifier: MIT
 * The table of identity sources and what they share: detection, the
 * endpoint syntax and query encoding.  Detection never touches the
 * network: off Azure it must answer at once instead of waiting for a
 * timeout at every login. */
#include "config.h"

#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the table ---------------------------------------------------------- */

/* One row per source, in azid_source order.  The rows are the sources'
 * names, the first member of each struct source, so that this one list is
 * also the option's choices (config.c) and the parse error's list. */
const char *const source_names[] = {
    [AZID_SOURCE_AUTO] = "auto",
    [AZID_SOURCE_IMDS] = source_imds.name,
    [AZID_SOURCE_ARC] = source_arc.name,
    [AZID_SOURCE_APPSERVICE] = source_appservice.name,
    [AZID_SOURCE_CLOUDSHELL] = source_cloudshell.name,
    [AZID_SOURCE_WORKLOAD] = source_workload.name,
    NULL,
};

#define SOURCE_COUNT (sizeof source_names / sizeof source_names[0] - 1)

const struct source *source_row(azid_source source)
{
    if ((unsigned)source == AZID_SOURCE_AUTO || (unsigned)source >= SOURCE_COUNT)
        return NULL;
    return (const struct source *)(const void *)source_names[source];
}

const char *source_label(azid_source source)
{
    const struct source *row = source_row(source);
    return row ? row->label : "identity endpoint";
}

const char *azid_source_name(azid_source source)
{
    return (unsigned)source < SOURCE_COUNT ? source_names[source] : "unknown";
}

const char *azid_source_describe(azid_source source)
{
    if (source == AZID_SOURCE_AUTO)
        return "detect it (the default): environment first, then the machine";
    const struct source *row = source_row(source);
    return row ? row->help : NULL;
}

azid_status azid_source_parse(const char *name, azid_source *out, azid_error *err)
{
    for (size_t i = 0; name && out && i < SOURCE_COUNT; i++)
        if (strcmp(name, source_names[i]) == 0) {
            *out = (azid_source)i;
            return AZID_OK;
        }
    char names[128] = "";
    for (size_t i = 0, used = 0; i < SOURCE_COUNT && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                 i == 0 ? "" : i + 1 == SOURCE_COUNT ? " or " : ", ",
                                 source_names[i]);
    return err_set(err, AZID_ERR_ARGUMENT, "unknown source '%s': use %s", name ? name : "",
                   names);
}

/* ---- what detection looks at ---------------------------------------------- */

static const char *system_get_env(void *ctx, const char *name)
{
    (void)ctx;
    return secure_getenv(name);
}

static const char *no_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static int system_path_exists(void *ctx, const char *path)
{
    (void)ctx;
    return faccessat(AT_FDCWD, path, F_OK, AT_EACCESS) == 0;
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
static const struct source_view system_view_no_env = {
    no_env, system_path_exists, system_read_file, NULL};

const struct source_view *source_view_system(int use_env)
{
    return use_env ? &system_view : &system_view_no_env;
}

/* ---- resolving ---------------------------------------------------------------- */

void source_config_clear(struct source_config *cfg)
{
    free(cfg->token_url);
    wipe_free_str(cfg->identity_header); /* App Service's shared secret */
    free(cfg->client_id);
    free(cfg->token_file);
    memset(cfg, 0, sizeof *cfg);
    cfg->source = AZID_SOURCE_AUTO;
}

void source_request_clear(struct source_request *req)
{
    free(req->query);
    wipe_free_str(req->body);
    wipe_free_str(req->header);
    memset(req, 0, sizeof *req);
}

azid_source source_detect(const struct source_view *view, char *reason, size_t size)
{
    azid_source found = AZID_SOURCE_AUTO;
    enum source_match best = SOURCE_NO_MATCH;
    char looked[256] = "";
    size_t used = 0;
    for (size_t i = AZID_SOURCE_AUTO + 1; i < SOURCE_COUNT; i++) {
        const struct source *row = source_row((azid_source)i);
        char how[160] = "";
        enum source_match m = row->detect(view, how, sizeof how);
        if (m > best) {
            best = m;
            found = (azid_source)i;
            snprintf(reason, size, "%s", how);
        } else if (m == SOURCE_NO_MATCH && how[0] && used < sizeof looked) {
            used += (size_t)snprintf(looked + used, sizeof looked - used, "%s%s",
                                     used ? " and " : "", how);
        }
    }
    if (found == AZID_SOURCE_AUTO)
        snprintf(reason, size, "not an Azure machine: %s", looked);
    return found;
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
        char reason[256];
        source = endpoint_base ? AZID_SOURCE_IMDS : source_detect(view, reason, sizeof reason);
        if (source == AZID_SOURCE_AUTO)
            return err_set(err, AZID_ERR_NO_SOURCE,
                           "not an Azure VM (no Azure asset tag in %s, no Arc agent) \xe2\x80\x94 "
                           "set endpoint= to use another token endpoint",
                           SOURCE_DMI_ASSET_TAG_FILE);
    }
    const struct source *row = source_row(source);
    if (!row)
        return err_set(err, AZID_ERR_ARGUMENT, "unknown source number %d", (int)source);
    out->source = source;
    out->row = row;
    azid_error local;
    azid_status st = row->configure(view, endpoint_base, out, err ? err : &local);
    if (st == AZID_OK && !out->token_url)
        st = err_nomem(err, "configuring the source");
    if (st != AZID_OK)
        source_config_clear(out);
    return st;
}

/* ---- shared by the sources ---------------------------------------------------- */

const char *source_env(const struct source_view *v, const char *name)
{
    const char *value = v->get_env(v->ctx, name);
    return value && *value ? value : NULL;
}

char *source_join(const char *base, const char *path)
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

int source_dup(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

azid_status source_url_from_env(const struct source_view *v, const char *base, const char *var,
                                struct source_config *out, azid_error *err)
{
    const char *url = source_env(v, var);
    if (base)
        out->token_url = source_join(base, SOURCE_MSI_PATH);
    else if (!url)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "source %s needs %s in the environment (set by %s) or endpoint=",
                       out->row->name, var, out->row->label);
    else if (source_check_url(var, url, 1, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    else
        out->token_url = strdup(url);
    return AZID_OK;
}

char *source_header(const char *name, const char *value)
{
    size_t n = strlen(name) + 2 + strlen(value) + 1;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "%s: %s", name, value);
    return h;
}

int source_params_add(struct source_params *p, char sep, const char *name, const char *value)
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
    struct source_params q = {NULL, 0, 0};
    if ((api_version && source_params_add(&q, '?', "api-version", api_version) != 0) ||
        source_params_add(&q, api_version ? '&' : '?', "resource", resource) != 0 ||
        (selector_name && source_params_add(&q, '&', selector_name, selector_value) != 0)) {
        free(q.text);
        return NULL;
    }
    return q.text;
}

azid_status source_build_get(struct source_request *req, const char *api_version,
                             const char *resource, const char *const *selectors,
                             azid_identity_kind kind, const char *id, azid_error *err)
{
    req->method = HTTP_GET;
    req->metadata = 1;
    const char *selector = selectors && kind != AZID_IDENTITY_SYSTEM ? selectors[kind] : NULL;
    req->query = source_token_query(api_version, resource, selector, id);
    return req->query ? AZID_OK : err_nomem(err, "building the token request");
}

/* ---- endpoint syntax ------------------------------------------------------------ */

#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
#define IPV6_CHARS "0123456789abcdefABCDEF:."

/* A path of printable ASCII without spaces, query or fragment. */
static int plain_path(const char *p)
{
    return text_is_word(p) && !strpbrk(p, "?#");
}

azid_status source_check_url(const char *what, const char *url, int path_ok, azid_error *err)
{
    const char *p;
    if (!url)
        return err_set(err, AZID_ERR_ARGUMENT, "%s is missing", what);
    if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s '%s' must start with http:// or https://", what, url);
    if (strchr(url, '@'))
        return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' must not contain user information",
                       what, url);
    const char *host = p;
    if (*p == '[') {
        p += 1 + strspn(p + 1, IPV6_CHARS);
        if (*p != ']' || p == host + 1)
            return err_set(err, AZID_ERR_ARGUMENT,
                           "%s '%s' has an unterminated or invalid [IPv6] host", what, url);
        p++;
    } else {
        p += strspn(p, HOST_CHARS);
        if (p == host && (*p == '\0' || strchr(":/?#", *p)))
            return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' has no host", what, url);
    }
    if (*p && !strchr(":/?#", *p))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s '%s' has a space, control or other character not allowed in a host "
                       "name", what, url);
    if (*p == ':') {
        size_t digits = strspn(p + 1, "0123456789");
        long port = digits && digits <= 5 ? strtol(p + 1, NULL, 10) : 0;
        p += 1 + digits;
        if (port < 1 || port > 65535 || (*p && !strchr("/?#", *p)))
            return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' has an invalid port (1-65535)",
                           what, url);
    }
    if (*p == '\0' || (*p == '/' && (p[1] == '\0' || (path_ok && plain_path(p)))))
        return AZID_OK;
    return err_set(err, AZID_ERR_ARGUMENT,
                   "%s '%s' must be scheme://host[:port] with nothing after it (no path, query "
                   "or fragment)", what, url);
}

azid_status source_check_base_url(const char *url, azid_error *err)
{
    return source_check_url("endpoint", url, 0, err);
}
