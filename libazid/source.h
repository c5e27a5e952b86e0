/* SPDX-License-Identifier: MIT
 * Identity sources: detection (pure, over an injected view of the
 * environment and files) and the per-source request shapes. */
#ifndef AZID_SOURCE_H
#define AZID_SOURCE_H

#include "internal.h"

#include <stddef.h>

#define SOURCE_IMDS_BASE "http://169.254.169.254"
#define SOURCE_ARC_BASE "http://localhost:40342"
#define SOURCE_TOKEN_PATH "/metadata/identity/oauth2/token"
/* Path appended to an explicit endpoint= for App Service and Cloud Shell,
 * whose real endpoints come from the environment with their path. */
#define SOURCE_MSI_PATH "/msi/token"
#define SOURCE_AUTHORITY_DEFAULT "https://login.microsoftonline.com"
#define SOURCE_ARC_AGENT "/opt/azcmagent/bin/himds"
#define SOURCE_ARC_TOKEN_DIR "/var/opt/azcmagent/tokens"
#define SOURCE_ARC_KEY_MAX 4096
#define SOURCE_DMI_ASSET_TAG_FILE "/sys/class/dmi/id/chassis_asset_tag"
#define SOURCE_AZURE_ASSET_TAG "7783-7084-3265-9085-8269-3286-77"

/* What detection looks at; tests substitute their own. */
struct source_view {
    const char *(*get_env)(void *ctx, const char *name);
    int (*path_exists)(void *ctx, const char *path);
    /* Reads at most size-1 bytes, NUL-terminates; -1 when unreadable. */
    long (*read_file)(void *ctx, const char *path, char *buf, size_t size);
    void *ctx;
};

/* The real thing: secure_getenv (a setuid su/sudo ignores the caller's
 * environment), access(2) and read(2). */
const struct source_view *source_view_system(void);

/* A resolved source: which protocol, where, and the source's own
 * parameters from the environment.  Strings are malloc'ed. */
struct source_config {
    azid_source source;
    char *token_url;       /* full URL, no query */
    char *identity_header; /* App Service: IDENTITY_HEADER */
    char *client_id;       /* workload: AZURE_CLIENT_ID */
    char *token_file;      /* workload: AZURE_FEDERATED_TOKEN_FILE */
};

void source_config_clear(struct source_config *cfg);

/* Resolves `wanted` (AZID_SOURCE_AUTO: detect, in this order: environment
 * IDENTITY_ENDPOINT+IDENTITY_HEADER -> appservice, IDENTITY_ENDPOINT +
 * IMDS_ENDPOINT -> arc, MSI_ENDPOINT -> cloudshell, AZURE_TENANT_ID +
 * AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE -> workload; the Arc agent
 * -> arc; the Azure DMI asset tag -> imds; else AZID_ERR_NO_SOURCE) with an
 * optional explicit endpoint base (scheme://host[:port]; it skips detection
 * and means IMDS unless a source is named). */
azid_status source_resolve(const struct source_view *view, azid_source wanted,
                           const char *endpoint_base, struct source_config *out,
                           azid_error *err);

/* "IMDS", "Arc", "App Service", "Cloud Shell", "workload identity". */
const char *source_label(azid_source source);

/* ---- pure syntax (source_syntax.c, linked by config.c too) ---- */

/* The source names indexed by azid_source, NULL-terminated. */
extern const char *const source_names[];

/* Checks scheme://host[:port] with an http(s) scheme, a host of letters,
 * digits, '-', '.', '_' or an [IPv6] literal, an optional port and an
 * optional trailing '/'; path_ok also allows a path of printable
 * characters.  No user information, query or fragment.  AZID_ERR_ARGUMENT
 * naming `what` and the reason. */
azid_status source_check_url(const char *what, const char *url, int path_ok, azid_error *err);
/* source_check_url for an endpoint= base (no path). */
azid_status source_check_base_url(const char *url, azid_error *err);

/* The query string (starting with '?') for a token request, values
 * percent-encoded; the selector is omitted for AZID_IDENTITY_SYSTEM.
 * NULL when out of memory. */
char *source_token_query(const char *api_version, const char *resource,
                         const char *selector_name, const char *selector_value);

/* The form body of a workload-identity token request (values encoded). */
char *source_workload_form(const char *client_id, const char *assertion, const char *resource);

/* Arc's challenge: from a WWW-Authenticate value ("Basic realm=<path>"),
 * checks that the key file is a regular file ending in .key directly in
 * key_dir, at most SOURCE_ARC_KEY_MAX bytes (fstat before reading), and
 * returns its contents (malloc'ed, wipe after use). */
azid_status source_arc_read_key(const char *www_authenticate, const char *key_dir,
                                char **key, azid_error *err);

#endif
