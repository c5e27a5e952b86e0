/* SPDX-License-Identifier: MIT
 * The identity client: settings, the time budget, the retrying request
 * loop and the token request of each source. */
#include "config.h"

#include "client.h"

#include "retry.h"
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static azid_status no_client(azid_error *err)
{
    return err_set(err, AZID_ERR_ARGUMENT, "no client given (NULL)");
}

azid_client *azid_client_new(void)
{
    azid_client *c = calloc(1, sizeof *c);
    if (c) {
        c->timeout_ms = AZID_DEFAULT_TIMEOUT_MS;
        source_config_clear(&c->cfg);
    }
    return c;
}

/* ---- tokens already obtained ------------------------------------------ */

/* Wipes and drops every cached token: on free, and whenever a setting that
 * decides whose token it is or where it comes from changes. */
static void forget_tokens(azid_client *c)
{
    for (size_t i = 0; i < c->ntokens; i++)
        azid_token_free(c->tokens[i]);
    free(c->tokens);
    c->tokens = NULL;
    c->ntokens = 0;
    c->tokens_cap = 0;
}

static int token_usable(const azid_token *t)
{
    return t->expires_on - AZID_EXPIRY_SKEW_S > (int64_t)time(NULL);
}

/* A copy of the cached token for resource, while it is usable: NULL when
 * there is none (or no memory for the copy, and the endpoint is asked). */
static azid_token *cached_token(const azid_client *c, const char *resource)
{
    for (size_t i = 0; i < c->ntokens; i++) {
        const azid_token *t = c->tokens[i];
        if (strcmp(t->resource, resource) == 0)
            return token_usable(t) ? token_new(t->value, t->length, t->expires_on, t->resource,
                                               t->type)
                                   : NULL;
    }
    return NULL;
}

/* Keeps a copy of a token just obtained, replacing an older one for its
 * resource.  Out of memory only means the next call asks again. */
static void cache_token(azid_client *c, const azid_token *t)
{
    azid_token *copy = token_new(t->value, t->length, t->expires_on, t->resource, t->type);
    if (!copy)
        return;
    for (size_t i = 0; i < c->ntokens; i++)
        if (strcmp(c->tokens[i]->resource, t->resource) == 0) {
            azid_token_free(c->tokens[i]);
            c->tokens[i] = copy;
            return;
        }
    if (array_grow(&c->tokens, &c->tokens_cap, c->ntokens + 1, sizeof *c->tokens, 0) != 0) {
        azid_token_free(copy);
        return;
    }
    c->tokens[c->ntokens++] = copy;
}

void azid_client_free(azid_client *client)
{
    if (!client)
        return;
    forget_tokens(client);
    free(client->endpoint_base);
    free(client->identity_value);
    free(client->ca_file);
    source_config_clear(&client->cfg);
    explicit_bzero(client, sizeof *client);
    free(client);
}

/* The source or endpoint changed: resolve again, and ask again. */
static void invalidate(azid_client *c)
{
    c->resolved = 0;
    source_config_clear(&c->cfg);
    forget_tokens(c);
}

azid_status azid_client_set_source(azid_client *client, azid_source source, azid_error *err)
{
    if (!client)
        return no_client(err);
    if (source != AZID_SOURCE_AUTO && !source_row(source))
        return err_set(err, AZID_ERR_ARGUMENT, "unknown source number %d", (int)source);
    client->source = source;
    invalidate(client);
    return AZID_OK;
}

/* Replaces *slot with a copy of value (NULL clears it). */
static azid_status replace(char **slot, const char *value, azid_error *err)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return err_nomem(err, NULL);
    free(*slot);
    *slot = copy;
    return AZID_OK;
}

azid_status azid_client_set_endpoint(azid_client *client, const char *base_url, azid_error *err)
{
    if (!client)
        return no_client(err);
    if (base_url && source_check_base_url(base_url, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    invalidate(client);
    return replace(&client->endpoint_base, base_url, err);
}

azid_status azid_client_set_identity(azid_client *client, azid_identity_kind kind,
                                     const char *value, azid_error *err)
{
    if (!client)
        return no_client(err);
    if (kind == AZID_IDENTITY_SYSTEM) {
        forget_tokens(client);
        client->identity_kind = kind;
        return replace(&client->identity_value, NULL, err);
    }
    if (!azid_identity_name(kind))
        return err_set(err, AZID_ERR_ARGUMENT, "unknown identity kind %d", (int)kind);
    if (!text_is_word(value))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s= needs a value without spaces or control characters",
                       azid_identity_name(kind));
    azid_status st = replace(&client->identity_value, value, err);
    if (st == AZID_OK) {
        forget_tokens(client);
        client->identity_kind = kind;
    }
    return st;
}

azid_status azid_client_set_timeout_ms(azid_client *client, long timeout_ms, azid_error *err)
{
    if (!client)
        return no_client(err);
    if (timeout_ms <= 0 || timeout_ms > AZID_TIMEOUT_MAX_MS)
        return err_set(err, AZID_ERR_ARGUMENT, "timeout %ld ms is out of range (1 ms to %d s)",
                       timeout_ms, AZID_TIMEOUT_MAX_MS / 1000);
    client->timeout_ms = timeout_ms;
    return AZID_OK;
}

azid_status azid_client_set_ca_file(azid_client *client, const char *path, azid_error *err)
{
    if (!client)
        return no_client(err);
    /* The effective ids read it (access(2) would ask for the real ones,
     * which differ under set-user-id su). */
    if (path && faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) != 0)
        return err_set(err, AZID_ERR_ARGUMENT, "cannot read CA file %s: %s", path,
                       strerror(errno));
    return replace(&client->ca_file, path, err);
}

/* Resolves the source once (cached until a setting changes). */
static azid_status client_resolve(azid_client *client, azid_error *err)
{
    if (client->resolved)
        return AZID_OK;
    const struct source_view *view =
        source_view_system(client->source != AZID_SOURCE_AUTO || !client->ignore_environment);
    azid_status st = source_resolve(view, client->source, client->endpoint_base, &client->cfg,
                                    err);
    client->resolved = st == AZID_OK;
    return st;
}

azid_status azid_client_resolve_source(azid_client *client, azid_source *source,
                                       azid_error *err)
{
    err_clear(err);
    if (!client)
        return no_client(err);
    azid_status st = client_resolve(client, err);
    if (st == AZID_OK && source)
        *source = client->cfg.source;
    return st;
}

azid_status azid_client_use_environment(azid_client *client, int use, azid_error *err)
{
    if (!client)
        return no_client(err);
    client->ignore_environment = !use;
    invalidate(client);
    return AZID_OK;
}

azid_status azid_client_detect(const azid_client *client, azid_detection *out, azid_error *err)
{
    if (!client)
        return no_client(err);
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the detection (NULL)");
    out->source = source_detect(source_view_system(!client->ignore_environment), out->reason,
                                sizeof out->reason);
    return AZID_OK;
}

const char *azid_client_endpoint(const azid_client *client)
{
    /* Resolving only fills a cache; the client's settings are unchanged. */
    azid_client *c = (azid_client *)client;
    return c && client_resolve(c, NULL) == AZID_OK ? c->cfg.token_url : NULL;
}

/* Starts the budget on first use; the milliseconds left (<= 0: spent). */
static long client_remaining_ms(azid_client *client)
{
    int64_t now = now_ms();
    if (client->deadline_ms == 0)
        client->deadline_ms = now + client->timeout_ms;
    return (long)(client->deadline_ms - now);
}

static void sleep_ms(long ms)
{
    int64_t until = now_ms() + ms;
    for (int64_t left = ms; left > 0; left = until - now_ms()) {
        struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- the request loop ------------------------------------------------- */

struct failure {
    long status;          /* last HTTP status, 0 for a transport failure */
    char text[320];       /* endpoint's error text, or the transport error */
    azid_status transport; /* for status 0: AZID_ERR_TIMEOUT (cut off) or UNREACHABLE */
    long retry_after_ms;
};

static azid_status fail_final(azid_client *c, const struct client_call *call,
                              const struct failure *f, enum retry_verdict verdict,
                              int attempts, azid_error *err)
{
    double budget_s = (double)c->timeout_ms / 1000;
    if (f->status == 0) {
        if (f->transport == AZID_ERR_TIMEOUT || verdict == RETRY_STOP_BUDGET)
            return err_set_http(err, f->transport == AZID_ERR_TIMEOUT ? AZID_ERR_TIMEOUT
                                                                      : AZID_ERR_UNREACHABLE, 0,
                                "%s %s: no %s within the %.1f s time budget (%d attempt%s; "
                                "last: %s)", call->label, call->url,
                                call->wanted ? call->wanted : "token", budget_s, attempts,
                                attempts == 1 ? "" : "s", f->text);
        return err_set_http(err, AZID_ERR_UNREACHABLE, 0,
                            "%s %s: %s (%d attempts); check that the endpoint is up and "
                            "reachable", call->label, call->url, f->text, attempts);
    }
    const char *hint = call->hint ? call->hint(f->status, f->text, call->hint_ctx) : NULL;
    char why[160] = "";
    if (verdict == RETRY_STOP_ATTEMPTS)
        snprintf(why, sizeof why, " (after %d attempts)", attempts);
    else if (verdict == RETRY_STOP_BUDGET)
        snprintf(why, sizeof why, " (%d attempt%s; no retry fits in the %.1f s time budget)",
                 attempts, attempts == 1 ? "" : "s", budget_s);
    else if (verdict == RETRY_STOP_RETRY_AFTER)
        snprintf(why, sizeof why, " (it asked to retry after %.1f s, past the %.1f s time "
                 "budget)", (double)f->retry_after_ms / 1000, budget_s);
    /* What to do matters more than all of the endpoint's text (Key Vault's
     * 403 runs to 500 characters): the text gives way to the hint. */
    int fixed = snprintf(NULL, 0, "%s %s: HTTP %ld %s%s%s", call->label, call->url, f->status,
                         why, hint ? " \xe2\x80\x94 " : "", hint ? hint : "");
    int room = (int)sizeof err->message - 1 - fixed;
    return err_set_http(err, AZID_ERR_HTTP, f->status, "%s %s: HTTP %ld%s%.*s%s%s%s",
                        call->label, call->url, f->status, f->text[0] ? " " : "",
                        room > 0 ? room : 0, f->text, why, hint ? " \xe2\x80\x94 " : "",
                        hint ? hint : "");
}

/* One attempt with what is left of the budget. */
static azid_status attempt_once(const azid_client *c, const struct client_call *call,
                                const char *url, const char *const *headers, long remaining,
                                struct http_response *resp, azid_error *aerr)
{
    long attempt_ms = retry_attempt_timeout_ms(c->timeout_ms, remaining);
    struct http_request req = {
        .method = call->method,
        .url = url,
        .headers = headers,
        .body = call->body,
        .ca_file = c->ca_file,
        .connect_timeout_ms = attempt_ms < RETRY_CONNECT_TIMEOUT_MS ? attempt_ms
                                                                    : RETRY_CONNECT_TIMEOUT_MS,
        .timeout_ms = attempt_ms,
        .max_body = call->max_body,
    };
    err_clear(aerr);
    http_response_clear(resp);
    return http_perform(&req, resp, aerr);
}

/* Records an attempt that brought no 2xx into f: 1 when it may be
 * retried, 0 when not, -1 when it failed in a way no retry changes (aerr
 * says how). */
static int note_failure(const struct client_call *call, azid_status st,
                        const struct http_response *resp, const azid_error *aerr,
                        struct failure *f)
{
    memset(f, 0, sizeof *f);
    f->retry_after_ms = -1;
    if (st == AZID_OK) {
        f->status = resp->status;
        f->retry_after_ms = resp->retry_after_ms;
        token_describe_error(resp->body, resp->length, f->text, sizeof f->text);
        return call->retryable ? call->retryable(f->status) : retry_status_retryable(f->status);
    }
    if (st != AZID_ERR_TIMEOUT && st != AZID_ERR_UNREACHABLE)
        return -1;
    f->transport = st;
    memcpy(f->text, aerr->message, sizeof f->text - 1); /* cut to fit */
    f->text[sizeof f->text - 1] = '\0';
    return 1;
}

azid_status client_perform(azid_client *c, const struct client_call *call,
                           struct http_response *resp, azid_error *err)
{
    memset(resp, 0, sizeof *resp);
    size_t n_headers = 0;
    const char *headers[8];
    for (const char *const *h = call->headers; h && *h && n_headers < 6; h++)
        headers[n_headers++] = *h;
    headers[n_headers] = NULL;

    size_t url_len = strlen(call->url) + (call->query ? strlen(call->query) : 0) + 1;
    char *full = malloc(url_len), *answer = NULL;
    if (!full)
        return err_nomem(err, NULL);
    snprintf(full, url_len, "%s%s", call->url, call->query ? call->query : "");

    /* Like a retry, a later request is not started with less than
     * RETRY_MIN_USEFUL_MS left (a budget smaller than that gets one try). */
    long remaining = client_remaining_ms(c);
    long least = c->timeout_ms < RETRY_MIN_USEFUL_MS ? c->timeout_ms : RETRY_MIN_USEFUL_MS;
    azid_status st;
    if (remaining < least) {
        st = err_set(err, AZID_ERR_TIMEOUT,
                     "%s %s: the %.1f s time budget was already spent by earlier requests",
                     call->label, call->url, (double)c->timeout_ms / 1000);
        goto out;
    }
    for (int attempts = 1;; attempts++) {
        int64_t attempt_epoch = (int64_t)time(NULL);
        azid_error aerr;
        struct failure f;
        st = attempt_once(c, call, full, headers, remaining, resp, &aerr);
        if (st == AZID_OK && resp->status >= 200 && resp->status <= 299)
            break;
        if (st == AZID_OK && resp->status == 401 && call->on_401 && !answer) {
            /* The challenge's answer is not a retry: no backoff. */
            if ((st = call->on_401(resp, attempt_epoch, &answer, &aerr)) != AZID_OK) {
                err_set_http(err, st, 401, "%s %s: %s", call->label, call->url, aerr.message);
                break;
            }
            headers[n_headers++] = answer;
            headers[n_headers] = NULL;
            if ((remaining = client_remaining_ms(c)) > 0)
                continue;
            memset(&f, 0, sizeof f);
            f.transport = AZID_ERR_TIMEOUT;
            snprintf(f.text, sizeof f.text, "the %s challenge used up the budget", call->label);
            st = fail_final(c, call, &f, RETRY_STOP_BUDGET, attempts, err);
            break;
        }
        int retryable = note_failure(call, st, resp, &aerr, &f);
        if (st == AZID_OK && call->identity_endpoint && c->on_hold &&
            (resp->status == 429 || resp->retry_after_ms > 0))
            c->on_hold(resp->status, resp->retry_after_ms);
        if (retryable < 0) {
            err_set_http(err, st, resp->status, "%s %s: %s", call->label, call->url,
                         aerr.message);
            break;
        }
        struct retry_decision d =
            retry_decide(attempts, retryable, f.retry_after_ms, client_remaining_ms(c));
        if (d.verdict != RETRY_AGAIN) {
            st = fail_final(c, call, &f, d.verdict, attempts, err);
            break;
        }
        sleep_ms(d.delay_ms);
        remaining = client_remaining_ms(c);
    }
out:
    if (st != AZID_OK)
        http_response_clear(resp);
    wipe_free_str(answer);
    free(full);
    return st;
}

/* ---- hints -------------------------------------------------------------- */

const char *client_imds_hint(long status, const char *error_text, const char *selector)
{
    if (status == 400 && strstr(error_text, "Identity not found")) {
#define NOT_FOUND(key) "the VM has no managed identity with that id; assign one (az vm identity " \
                       "assign) or fix " key "="
        static const char *const by_selector[][2] = {
            {"client_id", NOT_FOUND("client_id")},
            {"object_id", NOT_FOUND("object_id")},
            {"msi_res_id", NOT_FOUND("msi_res_id")},
        };
#undef NOT_FOUND
        for (size_t i = 0; selector && i < sizeof by_selector / sizeof by_selector[0]; i++)
            if (strcmp(selector, by_selector[i][0]) == 0)
                return by_selector[i][1];
        return "the machine has no system-assigned managed identity; enable one (az vm "
               "identity assign) or name a user-assigned one with client_id=";
    }
    if (status == 400 && strstr(error_text, "Multiple user assigned"))
        return "the VM has several user-assigned identities; name one with client_id=, "
               "object_id= or msi_res_id=";
    if (status == 400 && strstr(error_text, "bad_request_102"))
        return "the Metadata header did not arrive; is something between azid and the "
               "endpoint rewriting requests?";
    if (status == 400)
        return "the endpoint refused the request; check resource= and the identity settings";
    if (status == 401 || status == 403)
        return "the endpoint refused azid's credentials";
    if (status == 404 || status == 410)
        return "the endpoint is missing or being updated; try again in a minute";
    if (status == 429)
        return "the endpoint is throttling (IMDS allows 20 requests per second per VM); "
               "try again later";
    if (status >= 500)
        return "the endpoint failed; try again later";
    return NULL;
}

static const char *imds_hint(long status, const char *error_text, void *ctx)
{
    return client_imds_hint(status, error_text, ctx);
}

/* ---- token requests, per source ------------------------------------------ */

/* Whether the source serves the client's identity. */
static azid_status check_identity(const azid_client *client, const struct source_config *cfg,
                                  azid_error *err)
{
    azid_identity_kind kind = client->identity_kind;
    if (kind == AZID_IDENTITY_SYSTEM || (cfg->row->identities & (1u << kind)))
        return AZID_OK;
    return err_set(err, AZID_ERR_ARGUMENT,
                   "%s= is not supported by source %s (%s offers %s); remove it",
                   azid_identity_name(kind), cfg->row->name, cfg->row->label, cfg->row->offers);
}

/* Sends the source's request and parses the answer into a token. */
static azid_status request_token(azid_client *client, const struct source_request *req,
                                 const char *resource, azid_token **out, azid_error *err)
{
    const struct source_config *cfg = &client->cfg;
    const char *headers[3] = {NULL, NULL, NULL}, **h = headers;
    if (req->metadata)
        *h++ = "Metadata: true";
    if (req->header)
        *h++ = req->header;
    struct client_call call = {
        .label = cfg->row->label,
        .url = cfg->token_url,
        .query = req->query,
        .method = req->method,
        .headers = headers,
        .body = req->body,
        .max_body = TOKEN_MAX_RESPONSE,
        .on_401 = cfg->row->on_401,
        .identity_endpoint = 1,
        .hint = imds_hint,
        .hint_ctx = (void *)azid_identity_name(client->identity_kind),
    };
    struct http_response resp;
    int64_t request_epoch = (int64_t)time(NULL);
    azid_status st = client_perform(client, &call, &resp, err);
    if (st != AZID_OK)
        return st;
    azid_error perr;
    err_clear(&perr);
    st = token_parse(resp.body, resp.length, resource, request_epoch, (int64_t)time(NULL), out,
                     &perr);
    if (st != AZID_OK)
        err_set_http(err, st, resp.status, "%s %s: HTTP %ld but %s", call.label, call.url,
                     resp.status, perr.message);
    http_response_clear(&resp);
    return st;
}

azid_status azid_client_get_token(azid_client *client, const char *resource, azid_token **out,
                                  azid_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the token (NULL)");
    *out = NULL;
    if (!client)
        return no_client(err);
    if (azid_resource_check(resource, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    if ((*out = cached_token(client, resource)))
        return AZID_OK;

    struct source_request req = {0};
    azid_status st = client_resolve(client, err);
    if (st == AZID_OK)
        st = check_identity(client, &client->cfg, err);
    if (st == AZID_OK)
        st = client->cfg.row->build(&client->cfg, resource, client->identity_kind,
                                    client->identity_value, &req, err);
    if (st == AZID_OK)
        st = request_token(client, &req, resource, out, err);
    if (st == AZID_OK)
        cache_token(client, *out);
    source_request_clear(&req);
    return st;
}
