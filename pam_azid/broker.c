/* SPDX-License-Identifier: MIT
 *
 * Session open through the broker (broker=, pam_azid(8) "Broker"): one
 * request names the user and every resource, with the settings the module
 * would have used itself; azidd answers with the serial of the user's
 * shared key for each, which the module (root, possessing the new login's
 * session keyring) links there.  No token value crosses the socket or
 * enters sshd's memory on this path.
 */
#include "config.h"

#include "module.h"

#include "broker_client.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The request line: user, resources, and the settings that decide where
 * and as whom the token is asked for. */
static bool build_request(const struct module_ctx *ctx, const struct passwd *pw,
                          const azid_grant *const *items, size_t n,
                          azid_identity_kind identity, const char *identity_value,
                          struct broker_buf *req)
{
    broker_buf_raw(req, BROKER_PROTO_VERSION " ", sizeof BROKER_PROTO_VERSION);
    broker_buf_word(req, "key");
    broker_buf_field(req, "user", pw->pw_name);
    broker_buf_field_int(req, "uid", pw->pw_uid);
    for (size_t i = 0; i < n; i++)
        broker_buf_field(req, items[i]->kind == AZID_GRANT_SECRET ? "secret" : "resource",
                         items[i]->target);
    broker_buf_field(req, "source", azid_source_name(azid_config_source(ctx->config)));
    const char *endpoint = azid_config_endpoint(ctx->config);
    if (endpoint)
        broker_buf_field(req, "endpoint", endpoint);
    if (identity != AZID_IDENTITY_SYSTEM)
        broker_buf_field(req, azid_identity_name(identity), identity_value);
    long ms = azid_config_timeout_ms(ctx->config);
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%ld.%03ld", ms / 1000, ms % 1000);
    broker_buf_field(req, "timeout", seconds);
    if (azid_config_ca_file(ctx->config))
        broker_buf_field(req, "ca_file", azid_config_ca_file(ctx->config));
    broker_buf_end_line(req);
    return !req->failed;
}

/* One "key" or "fail" line of the reply, the answer to item: reply_answers
 * checked that it names item, and that a secret's names its vault and
 * secret. */
static void take_line(const struct module_ctx *ctx, const azid_grant *item,
                      const struct broker_line *line, struct broker_result *out)
{
    bool secret = item->kind == AZID_GRANT_SECRET;
    const char *resource = item->target;
    const char *what = secret ? "secret" : "token for";
    const char *host = broker_line_get(line, "vault_host"), *name = broker_line_get(line, "name");
    int64_t serial = 0, expires_on = 0;
    if (strcmp(line->word, "key") == 0 &&
        broker_line_get_int(line, "serial", 1, INT32_MAX, &serial) &&
        broker_line_get_int(line, "expires_on", 0, INT64_MAX, &expires_on)) {
        azid_error err;
        char *description = secret ? azid_key_description_secret(host, name)
                                   : azid_key_description_token(resource);
        azid_status st = description ? broker_link_key((int32_t)serial, description, &err)
                                     : AZID_ERR_NOMEM;
        free(description);
        if (st != AZID_OK) {
            log_err(ctx, "no %s %s: %s", what, resource,
                    st == AZID_ERR_NOMEM ? "out of memory" : err.message);
            out->failed = true;
            return;
        }
        log_debug(ctx, "linked the broker's shared key %d for %s, expires_on %lld",
                  (int)serial, resource, (long long)expires_on);
        out->serials[out->nserials++] = (int32_t)serial;
        return;
    }
    const char *message = broker_line_get(line, "message");
    log_err(ctx, "no %s %s: %s (from the broker)", what, resource,
            message ? message : "malformed reply");
    out->failed = true;
}

/* azidd answers each item of the request with one "key" or "fail" line,
 * in the request's order, a secret's key naming the vault and the secret
 * of its URL.  A reply that does not (a broker of another version, or a
 * bug) is not trusted with the session keyring: nothing of it is linked. */
static bool reply_answers(const azid_grant *const *items, size_t n,
                          const struct broker_reply *reply)
{
    if (reply->n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct broker_line *line = &reply->lines[i];
        bool secret = items[i]->kind == AZID_GRANT_SECRET;
        const char *target = broker_line_get(line, secret ? "secret" : "resource");
        if ((strcmp(line->word, "key") != 0 && strcmp(line->word, "fail") != 0) || !target ||
            strcmp(target, items[i]->target) != 0 ||
            broker_line_get(line, secret ? "resource" : "secret"))
            return false;
        const char *host = broker_line_get(line, "vault_host");
        const char *name = broker_line_get(line, "name");
        azid_secret_url url;
        azid_error err;
        if (secret && strcmp(line->word, "key") == 0 &&
            (!host || !name || azid_secret_url_parse(items[i]->target, &url, &err) != AZID_OK ||
             strcasecmp(host, url.vault_host) != 0 || strcasecmp(name, url.name) != 0))
            return false;
    }
    return true;
}

bool broker_open_session(struct module_ctx *ctx, const struct passwd *pw,
                         const azid_grant *const *items, size_t n, azid_identity_kind identity,
                         const char *identity_value, int64_t deadline_ms,
                         struct broker_result *out)
{
    const char *path = NULL;
    azid_config_broker(ctx->config, &path);
    if (!path || n == 0)
        return false;
    if (n > BROKER_MAX_ITEMS) {
        log_debug(ctx, "more than %d grants for one identity: working in-process",
                  BROKER_MAX_ITEMS);
        return false;
    }
    struct broker_buf req;
    broker_buf_init(&req, BROKER_MAX_REQUEST);
    if (!build_request(ctx, pw, items, n, identity, identity_value, &req)) {
        log_debug(ctx, "the request does not fit the broker's protocol; working in-process");
        broker_buf_free(&req);
        return false;
    }
    azid_error err;
    struct broker_reply reply;
    azid_status st = broker_call(path, req.data, req.length, deadline_ms, &reply, &err);
    broker_buf_free(&req);
    if (st == AZID_ERR_UNREACHABLE) {
        log_debug(ctx, "%s; working in-process", err.message);
        return false;
    }
    if (st != AZID_OK) {
        log_err(ctx, "no tokens: %s", err.message);
        out->failed = true;
        out->budget_spent = st == AZID_ERR_TIMEOUT;
        return true;
    }
    if (reply.n == 1 && strcmp(reply.lines[0].word, "error") == 0) {
        /* The request as a whole, not an item: a broker of another version,
         * or one that is busy.  The module can still do the work. */
        const char *message = broker_line_get(&reply.lines[0], "message");
        log_info(ctx, "the broker refused the request (%s); working in-process",
                 message ? message : "no reason given");
        broker_reply_free(&reply);
        return false;
    }
    if (!reply_answers(items, n, &reply)) {
        log_err(ctx, "the broker's reply does not answer the request item by item (%zu lines "
                     "for %zu items); working in-process (is azidd from the same azid version?)",
                reply.n, n);
        broker_reply_free(&reply);
        return false;
    }
    for (size_t i = 0; i < reply.n; i++)
        take_line(ctx, items[i], &reply.lines[i], out);
    broker_reply_free(&reply);
    return true;
}
