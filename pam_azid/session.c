/* SPDX-License-Identifier: MIT
 *
 * Session open: configuration for the user, the keyring guard (before any
 * network), one client whose single time budget covers every token and
 * secret, one key per item.  Session close: remove the keys stored.
 */
#include "config.h"

#include "module.h"

#include "broker_client.h"

#include <pwd.h>
#include <security/pam_ext.h>
#include <security/pam_modutil.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORED_KEYS_DATA "pam_azid_stored_keys"

/* What close_session needs from open_session (pam_set_data). */
struct stored_key {
    int32_t serial;
    bool shared; /* the broker's key of the user: unlinked, never removed */
};
struct stored_keys {
    bool debug;
    bool fail_closed;
    size_t n;
    struct stored_key key[];
};

/* Frees memory only.  Removing the keys is close_session's job: a forked
 * child that ends its copy of the handle (pam_end with PAM_DATA_SILENT, as
 * sshd's do) must leave the login's keys alone, and so must pam_end after a
 * session that was never closed (the keys expire, and pam_keyinit revokes
 * their keyring). */
static void stored_keys_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
    (void)pamh;
    (void)error_status;
    free(data);
}

struct fetch {
    struct module_ctx *ctx;
    const struct passwd *pw;
    azid_keyring target;
    azid_client *client;
    struct stored_key *serials;
    size_t nserials;
    bool failed;
    bool stopped;   /* after a failure that dooms the rest */
    bool fatal;     /* this thread's ids are wrong: the session must not open */
    bool *brokered; /* per grant: the broker answered for it */
    int64_t deadline_ms; /* the session's budget, for the broker and after it */
    size_t skipped; /* items not tried because of it */
};

static void note_failure(struct fetch *f, azid_status status)
{
    f->failed = true;
    /* The budget is spent, or the keyring refuses every key. */
    if (status == AZID_ERR_TIMEOUT || status == AZID_ERR_KEYRING || status == AZID_ERR_NOMEM)
        f->stopped = true;
}

static void store_key(struct fetch *f, const char *description, const char *value, size_t length,
                      int64_t expires_on)
{
    azid_error err;
    if (!description) {
        log_err(f->ctx, "out of memory naming a key; not stored");
        note_failure(f, AZID_ERR_NOMEM);
        return;
    }
    int32_t serial = -1;
    azid_status st = azid_keyring_store(f->target, f->pw->pw_uid, f->pw->pw_gid, description,
                                        value, length, expires_on, &serial, &err);
    if (st == AZID_ERR_CREDENTIALS) {
        log_crit(f->ctx, "key not stored, session refused whatever fail= says: %s", err.message);
        f->fatal = f->stopped = f->failed = true;
        return;
    }
    if (st != AZID_OK) {
        log_err(f->ctx, "key not stored: %s", err.message);
        note_failure(f, st);
        return;
    }
    log_debug(f->ctx, "stored %s as key %d in the %s keyring, expiring in %lld s", description,
              serial, azid_keyring_name(f->target),
              (long long)(expires_on - AZID_EXPIRY_SKEW_S - (int64_t)time(NULL)));
    if (f->target == AZID_KEYRING_SESSION)
        f->serials[f->nserials++] = (struct stored_key){serial, false};
}

/* Logs a failed fetch: "no token for R: ...", or "no secret: ..." without
 * a name (the library's Key Vault messages start with the secret's URL). */
static bool fetch_failed(struct fetch *f, azid_status status, const char *what, const char *name,
                         const azid_error *err)
{
    if (status == AZID_OK)
        return false;
    log_err(f->ctx, "no %s%s%s: %s", what, name ? " " : "", name ? name : "", err->message);
    note_failure(f, status);
    return true;
}

static void fetch_token(struct fetch *f, const char *resource)
{
    azid_token *token = NULL;
    azid_error err;
    if (fetch_failed(f, azid_client_get_token(f->client, resource, &token, &err), "token for",
                     resource, &err))
        return;
    log_debug(f->ctx, "got a token for %s, expires_on %lld", resource,
              (long long)azid_token_expires_on(token));
    char *description = azid_key_description_token(resource);
    store_key(f, description, azid_token_value(token), azid_token_length(token),
              azid_token_expires_on(token));
    free(description);
    azid_token_free(token);
}

static void fetch_secret(struct fetch *f, const char *url)
{
    azid_secret *secret = NULL;
    azid_error err;
    if (fetch_failed(f, azid_client_get_secret(f->client, url, &secret, &err), "secret", NULL, &err))
        return;
    log_debug(f->ctx, "got secret %s, to expire at %lld", url,
              (long long)azid_secret_expires_on(secret));
    char *description =
        azid_key_description_secret(azid_secret_vault_host(secret), azid_secret_name(secret));
    store_key(f, description, azid_secret_value(secret), azid_secret_length(secret),
              azid_secret_expires_on(secret));
    free(description);
    azid_secret_free(secret);
}

/* Keeps the serials for close_session, with those of an earlier
 * open_session on the same handle. */
static void remember_keys(struct fetch *f)
{
    if (f->nserials == 0)
        return;
    const void *old = NULL;
    size_t nold = 0;
    if (pam_get_data(f->ctx->pamh, STORED_KEYS_DATA, &old) == PAM_SUCCESS && old)
        nold = ((const struct stored_keys *)old)->n;
    struct stored_keys *keys = malloc(sizeof *keys + (nold + f->nserials) * sizeof keys->key[0]);
    if (!keys) {
        log_err(f->ctx, "out of memory: close_session will not remove the keys stored "
                        "(they expire, and pam_keyinit revoke drops them)");
        return;
    }
    keys->debug = f->ctx->debug;
    keys->fail_closed = f->ctx->fail_closed;
    keys->n = nold + f->nserials;
    if (nold)
        memcpy(keys->key, ((const struct stored_keys *)old)->key, nold * sizeof keys->key[0]);
    memcpy(keys->key + nold, f->serials, f->nserials * sizeof keys->key[0]);
    int r = pam_set_data(f->ctx->pamh, STORED_KEYS_DATA, keys, stored_keys_cleanup);
    if (r != PAM_SUCCESS) {
        free(keys);
        log_err(f->ctx, "cannot keep the stored keys for close_session (%s); they stay until "
                        "they expire",
                pam_strerror(f->ctx->pamh, r));
    }
}

static bool same_identity(const azid_grant *a, const azid_grant *b)
{
    return a->identity == b->identity &&
           (!a->identity_value || !strcmp(a->identity_value, b->identity_value));
}

/* The grants of one identity, tokens then secrets, with the client asking
 * as that identity.  The client's one time budget runs on across identity
 * changes. */
static void fetch_as(struct fetch *f, const azid_grant *grants, size_t n, const azid_grant *as)
{
    azid_error err;
    azid_status st = azid_client_set_identity(f->client, as->identity, as->identity_value, &err);
    if (st != AZID_OK) {
        log_err(f->ctx, "no keys for this identity: %s", err.message);
        note_failure(f, st);
        return;
    }
    if (as->identity != AZID_IDENTITY_SYSTEM)
        log_debug(f->ctx, "asking as the identity %s=%s", azid_identity_name(as->identity),
                  as->identity_value);
    else
        log_debug(f->ctx, "asking as the system-assigned identity");
    for (int secrets = 0; secrets < 2; secrets++)
        for (size_t i = 0; i < n; i++) {
            if (!same_identity(&grants[i], as) || (grants[i].kind == AZID_GRANT_SECRET) != secrets)
                continue;
            if (f->brokered[i])
                continue;
            if (f->stopped)
                f->skipped++;
            else if (secrets) {
                fetch_secret(f, grants[i].target);
            } else {
                fetch_token(f, grants[i].target);
            }
        }
}

/* The tokens and secrets of one identity through the broker: they are
 * then marked brokered (the broker answered for them, key or failure).
 * false when no broker answers: the module works alone from then on. */
static bool through_broker(struct fetch *f, const azid_grant *grants, size_t n,
                           const azid_grant *as)
{
    const azid_grant **items = calloc(n, sizeof items[0]);
    int32_t *linked = calloc(n, sizeof linked[0]);
    size_t nitems = 0;
    for (size_t i = 0; items && i < n; i++)
        if (same_identity(&grants[i], as))
            items[nitems++] = &grants[i];
    struct broker_result br = {.serials = linked};
    bool answered = items && linked &&
                    broker_open_session(f->ctx, f->pw, items, nitems, as->identity,
                                        as->identity_value, f->deadline_ms, &br);
    /* What the broker took (at most its acknowledgement wait when it does
     * not answer) comes off the in-process budget: the login stays within
     * timeout=. */
    int64_t left = f->deadline_ms - now_ms();
    azid_error err;
    if (!answered && azid_client_set_timeout_ms(f->client, left > 0 ? (long)left : 1, &err) != AZID_OK)
        log_err(f->ctx, "%s", err.message);
    if (answered) {
        for (size_t i = 0; i < br.nserials; i++)
            f->serials[f->nserials++] = (struct stored_key){br.serials[i], true};
        for (size_t i = 0; i < n; i++)
            if (same_identity(&grants[i], as))
                f->brokered[i] = true;
        f->failed = f->failed || br.failed;
        f->stopped = f->stopped || br.budget_spent;
    }
    free(items);
    free(linked);
    return answered;
}

/* With the client set up: the source (local checks only), the keyring
 * guard, then the network, grant by grant, each with its own identity. */
static int fetch_all(struct fetch *f, const azid_grant *grants, size_t n)
{
    struct module_ctx *ctx = f->ctx;
    azid_error err;
    azid_source source;
    /* First, so that a machine off Azure says only that, at every login. */
    azid_status st = azid_client_resolve_source(f->client, &source, &err);
    if (st == AZID_ERR_NO_SOURCE) {
        log_info(ctx, "no managed identity here, nothing to do: %s", err.message);
        return PAM_IGNORE;
    }
    if (st != AZID_OK) {
        log_err(ctx, "no keys stored: %s", err.message);
        return ctx_fail_result(ctx);
    }
    log_debug(ctx, "identity source %s, token endpoint %s", azid_source_name(source),
              azid_client_endpoint(f->client));
    /* Before any network: a login that cannot keep the keys must not wait
     * for them.  The user and persistent keyrings do not need a per-login
     * session keyring, but an unusable keyring facility (seccomp, no
     * CONFIG_KEYS) dooms them too. */
    st = azid_keyring_check_session(f->pw->pw_uid, &err);
    if (st == AZID_ERR_KEYRING || (st != AZID_OK && f->target == AZID_KEYRING_SESSION)) {
        log_err(ctx, "no keys stored: %s", err.message);
        return ctx_fail_result(ctx);
    }
    if (st == AZID_OK)
        log_debug(ctx, "the session keyring is a per-login keyring of uid %u",
                  (unsigned)f->pw->pw_uid);

    f->serials = calloc(n, sizeof f->serials[0]);
    if (!f->serials) {
        log_err(ctx, "out of memory; no keys stored");
        return ctx_fail_result(ctx);
    }
    bool *brokered = calloc(n, sizeof brokered[0]);
    if (!brokered) {
        free(f->serials);
        log_err(ctx, "out of memory; no keys stored");
        return ctx_fail_result(ctx);
    }
    f->brokered = brokered;
    f->deadline_ms = now_ms() + azid_config_timeout_ms(ctx->config);
    /* One identity after the other, in the order they first appear; the
     * broker first for the tokens of each (session keyring only: the user
     * and persistent keyrings get the module's own keys). */
    bool ask_broker = f->target == AZID_KEYRING_SESSION;
    for (size_t i = 0; i < n; i++) {
        size_t first = 0;
        while (!same_identity(&grants[first], &grants[i]))
            first++;
        if (first != i)
            continue;
        if (ask_broker && !f->stopped)
            ask_broker = through_broker(f, grants, n, &grants[i]);
        fetch_as(f, grants, n, &grants[i]);
    }
    if (f->skipped)
        log_err(ctx, "%zu more resource(s)/secret(s) not tried after that failure", f->skipped);
    remember_keys(f);
    free(f->serials);
    free(brokered);
    if (f->fatal)
        return PAM_SESSION_ERR;
    return f->failed ? ctx_fail_result(ctx) : PAM_SUCCESS;
}

int session_open(struct module_ctx *ctx)
{
    azid_error err;
    if (!ctx->user_known) {
        log_err(ctx, "no user name (PAM_USER) at session open; no keys stored");
        return ctx_fail_result(ctx);
    }
    /* A bad file stops here: it may hold the identity, endpoint or Match
     * policy, so fetching with the arguments alone could hand out the wrong
     * tokens.  Its fail= does not apply; the arguments' does. */
    if (azid_config_load(ctx->config, ctx->user, &err) != AZID_OK) {
        log_err(ctx, "config file not used, no keys stored: %s", err.message);
        return ctx_fail_result(ctx);
    }
    ctx->debug = azid_config_debug(ctx->config);
    ctx->fail_closed = azid_config_fail_closed(ctx->config);
    log_settings(ctx);

    const azid_grant *grants = NULL;
    size_t n = azid_config_grants(ctx->config, &grants);
    if (n == 0) {
        log_debug(ctx, "granted no resources or secrets: nothing to do");
        return PAM_IGNORE;
    }
    const struct passwd *pw = pam_modutil_getpwnam(ctx->pamh, ctx->user);
    if (!pw) {
        log_err(ctx, "not in the user database (getpwnam); no keys stored");
        return ctx_fail_result(ctx);
    }
    struct fetch f = {.ctx = ctx, .pw = pw, .target = azid_config_keyring(ctx->config)};
    /* Under source=auto nothing of the host process's environment decides
     * where a token comes from: login -p passes the user's. */
    if (azid_config_new_client(ctx->config, &f.client, &err) != AZID_OK ||
        azid_client_use_environment(f.client, 0, &err) != AZID_OK) {
        log_err(ctx, "no keys stored: %s", err.message);
        azid_client_free(f.client);
        return ctx_fail_result(ctx);
    }
    int result = fetch_all(&f, grants, n);
    azid_client_free(f.client);
    return result;
}

int session_close(struct module_ctx *ctx)
{
    const void *data = NULL;
    if (pam_get_data(ctx->pamh, STORED_KEYS_DATA, &data) != PAM_SUCCESS || !data) {
        log_debug(ctx, "this session stored no keys in its session keyring: nothing to remove");
        return PAM_IGNORE;
    }
    const struct stored_keys *keys = data;
    ctx->debug = ctx->debug || keys->debug;
    ctx->fail_closed = keys->fail_closed;
    bool failed = false;
    for (size_t i = 0; i < keys->n; i++) {
        azid_error err;
        const struct stored_key *k = &keys->key[i];
        if ((k->shared ? broker_unlink_key(k->serial, &err)
                       : azid_keyring_remove(k->serial, &err)) != AZID_OK) {
            log_err(ctx, "key %d not removed: %s", k->serial, err.message);
            failed = true;
        } else if (k->shared) {
            log_debug(ctx, "unlinked the broker's shared key %d (or it went with its revoked "
                           "keyring)", k->serial);
        } else {
            log_debug(ctx, "removed key %d (or it went with its revoked keyring)", k->serial);
        }
    }
    /* Frees the list through stored_keys_cleanup. */
    pam_set_data(ctx->pamh, STORED_KEYS_DATA, NULL, NULL);
    return failed ? ctx_fail_result(ctx) : PAM_SUCCESS;
}
