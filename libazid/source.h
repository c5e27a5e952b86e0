/* SPDX-License-Identifier: MIT
 * Identity sources behind one table.  source.c holds the table and what
 * every source shares (detection, endpoint syntax, query encoding); each
 * source_<name>.c holds one source's row: how it is recognised, where its
 * endpoint is, what its token request looks like and which 401 it answers.
 * Adding a source is one new file and one row in source.c (and its
 * azid_source value in azid.h). */
#ifndef AZID_SOURCE_H
#define AZID_SOURCE_H

#include "internal.h"

#include "http.h"

#include <stddef.h>

#define SOURCE_TOKEN_PATH "/metadata/identity/oauth2/token"
/* Path appended to an explicit endpoint= for App Service and Cloud Shell,
 * whose real endpoints come from the environment with their path. */
#define SOURCE_MSI_PATH "/msi/token"
#define SOURCE_IMDS_BASE "http://169.254.169.254"
/* 127.0.0.1, not localhost: the name could resolve elsewhere, and the
 * listener's owner is checked on that address (source_arc.c). */
#define SOURCE_ARC_BASE "http://127.0.0.1:40342"
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
 * environment), existence for the effective ids (as sshd sees it, also
 * under set-user-id su) and a safe read.  With use_env 0, no variable is
 * read at all: the module's host may have taken its environment from the
 * user (login -p). */
const struct source_view *source_view_system(int use_env);

/* A resolved source: which one, where, and its own parameters from the
 * environment.  Strings are malloc'ed. */
struct source_config {
    azid_source source;
    const struct source *row; /* the table row of source */
    char *token_url;          /* full URL, no query */
    char *identity_header;    /* App Service: IDENTITY_HEADER */
    char *client_id;          /* workload: AZURE_CLIENT_ID */
    char *token_file;         /* workload: AZURE_FEDERATED_TOKEN_FILE */
};

void source_config_clear(struct source_config *cfg);

/* One token request, as a source builds it.  Strings are malloc'ed and
 * wiped when cleared (the body may hold the workload assertion, the header
 * App Service's secret). */
struct source_request {
    enum http_method method;
    char *query;  /* "?api-version=...", appended to the token URL */
    char *body;   /* form body of a POST, or NULL */
    char *header; /* one header of the source's own, or NULL */
    int metadata; /* send "Metadata: true" */
};

void source_request_clear(struct source_request *req);

/* How a source's marks were found: detection takes the strongest, ties
 * going to the row earlier in the table.  Environment variables are set
 * for the process on purpose, and an installed agent by the admin, so
 * both beat what the hardware shows. */
enum source_match {
    SOURCE_NO_MATCH = 0,
    SOURCE_BY_HARDWARE,
    SOURCE_BY_AGENT,
    SOURCE_BY_ENVIRONMENT
};

/* A 401 the source answers by asking again with one more header (Arc's
 * key-file challenge).  attempt_epoch is the wall-clock second the
 * challenged attempt started. */
typedef azid_status (*source_challenge_fn)(const struct http_response *resp,
                                           int64_t attempt_epoch, char **header,
                                           azid_error *err);

struct source {
    /* First member: the table's rows are these names (source_names). */
    char name[16];   /* "imds": source=, --source */
    const char *label; /* "IMDS": messages */
    const char *help;  /* one line for azid fetch --help */
    /* The identity kinds it serves, bit (1u << kind); the system-assigned
     * one is always served.  offers says what, when a selector is refused. */
    unsigned identities;
    const char *offers;
    /* Whether this machine or process points at the source.  Writes into
     * how (for azid doctor) how it was recognised, or else what was looked
     * at ("" when the source leaves no mark on a machine). */
    enum source_match (*detect)(const struct source_view *v, char *how, size_t size);
    /* Fills out's URL and parameters (base: an explicit endpoint=, or
     * NULL for the source's own). */
    azid_status (*configure)(const struct source_view *v, const char *base,
                             struct source_config *out, azid_error *err);
    /* The request for a token for resource with the given identity. */
    azid_status (*build)(const struct source_config *cfg, const char *resource,
                         azid_identity_kind kind, const char *id, struct source_request *req,
                         azid_error *err);
    source_challenge_fn on_401; /* NULL: a 401 is an answer */
};

extern const struct source source_imds, source_arc, source_appservice, source_cloudshell,
    source_workload;

/* The table: source names indexed by azid_source, "auto" first,
 * NULL-terminated (the option's choices in config.c). */
extern const char *const source_names[];
/* The row of a source; NULL for AZID_SOURCE_AUTO and unknown values. */
const struct source *source_row(azid_source source);

/* "IMDS", "Arc", ...; "identity endpoint" for none. */
const char *source_label(azid_source source);

/* Resolves `wanted` (AZID_SOURCE_AUTO: detect) with an optional explicit
 * endpoint base (scheme://host[:port]; it skips detection and means IMDS
 * unless a source is named). */
azid_status source_resolve(const struct source_view *view, azid_source wanted,
                           const char *endpoint_base, struct source_config *out,
                           azid_error *err);

/* What detection finds: the source (AZID_SOURCE_AUTO for none) and how it
 * was recognised, or what was looked at. */
azid_source source_detect(const struct source_view *view, char *reason, size_t size);

/* ---- shared by the sources' files ---- */

/* A variable of the view's environment; NULL when unset or empty. */
const char *source_env(const struct source_view *v, const char *name);
/* base (trailing '/' dropped) + path, malloc'ed; NULL when out of memory. */
char *source_join(const char *base, const char *path);
/* *dst = strdup(src) (NULL stays NULL); -1 when out of memory. */
int source_dup(char **dst, const char *src);
/* Sets out->token_url for a source whose endpoint, path included, is the
 * environment variable var: base + SOURCE_MSI_PATH when endpoint= is set,
 * else var's value once checked. */
azid_status source_url_from_env(const struct source_view *v, const char *base, const char *var,
                                struct source_config *out, azid_error *err);
/* "Name: value", malloc'ed. */
char *source_header(const char *name, const char *value);

/* Checks scheme://host[:port] with an http(s) scheme, a host of letters,
 * digits, '-', '.', '_' or an [IPv6] literal, an optional port and an
 * optional trailing '/'; path_ok also allows a path of printable
 * characters.  No user information, query or fragment.  AZID_ERR_ARGUMENT
 * naming `what` and the reason. */
azid_status source_check_url(const char *what, const char *url, int path_ok, azid_error *err);
/* source_check_url for an endpoint= base (no path). */
azid_status source_check_base_url(const char *url, azid_error *err);

/* The query string (starting with '?') for a token request, values
 * percent-encoded; the selector is omitted when selector_name is NULL.
 * NULL when out of memory. */
char *source_token_query(const char *api_version, const char *resource,
                         const char *selector_name, const char *selector_value);

/* The request of the IMDS-like sources: a GET with "Metadata: true" and
 * the query ?api-version=...&resource=...[&<selector>=<id>], where
 * selectors[kind] names the identity's parameter (selectors NULL: none). */
azid_status source_build_get(struct source_request *req, const char *api_version,
                             const char *resource, const char *const *selectors,
                             azid_identity_kind kind, const char *id, azid_error *err);

/* A form body or query being built: grows by copying and wiping, since it
 * may hold a credential. */
struct source_params {
    char *text;
    size_t length, capacity;
};
/* Appends "<sep>name=<percent-encoded value>"; -1 when out of memory. */
int source_params_add(struct source_params *p, char sep, const char *name, const char *value);

/* The form body of a workload-identity token request (values encoded). */
char *source_workload_form(const char *client_id, const char *assertion, const char *resource);

/* Arc's challenge: from a WWW-Authenticate value ("Basic realm=<path>"),
 * checks that the key file is a regular file ending in .key directly in
 * key_dir, at most SOURCE_ARC_KEY_MAX bytes, owned by root or the himds
 * user and changed no earlier than not_before (epoch seconds; the key is
 * written for the challenge), and returns its contents (malloc'ed, wipe
 * after use). */
azid_status source_arc_read_key(const char *www_authenticate, const char *key_dir,
                                int64_t not_before, char **key, azid_error *err);

#endif
