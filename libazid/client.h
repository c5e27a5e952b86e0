/* SPDX-License-Identifier: MIT
 * The identity client's insides, shared with keyvault.c: the time budget
 * and the retrying request loop. */
#ifndef AZID_CLIENT_H
#define AZID_CLIENT_H

#include "internal.h"

#include "http.h"
#include "source.h"

#include <stdint.h>

struct azid_client {
    azid_source source;        /* as configured (AUTO: detect) */
    char *endpoint_base;       /* endpoint=, NULL for the source's own */
    azid_identity_kind identity_kind;
    char *identity_value;
    long timeout_ms;
    int64_t deadline_ms;       /* now_ms() clock; 0 until the first request */
    char *ca_file;
    int ignore_environment;    /* under source auto, read no identity variable */
    int resolved;              /* cfg is valid */
    struct source_config cfg;
    /* Tokens obtained with the current settings, one per resource: a
     * session asking for the vault audience both as a resource and for its
     * secrets asks the endpoint once.  Handed out as copies. */
    azid_token **tokens;
    size_t ntokens, tokens_cap;
    /* When set, told of each 429 or Retry-After of the identity endpoint
     * (IMDS's limits, not a vault's) as it comes, before the client waits
     * it out: the broker holds its other requests back for that wait, not
     * only after it. */
    void (*on_hold)(long http_status, long retry_after_ms);
};

/* Suggests what to do about a final HTTP status, given the endpoint's
 * error text ("code: description", maybe ""); NULL for no suggestion. */
typedef const char *(*client_hint_fn)(long status, const char *error_text, void *ctx);

struct client_call {
    const char *label;            /* "IMDS", "Key Vault", ... (messages) */
    const char *wanted;           /* what is asked for, "token" when NULL (messages) */
    const char *url;              /* without query (messages) */
    const char *query;            /* appended to url; NULL for none */
    enum http_method method;
    const char *const *headers;   /* NULL-terminated; at most 6 */
    const char *body;             /* POST body or NULL */
    size_t max_body;
    source_challenge_fn on_401;   /* answers a 401 once with one more header; NULL: none */
    client_hint_fn hint;
    void *hint_ctx;
    int (*retryable)(long status); /* transient HTTP statuses; NULL: retry_status_retryable */
    int identity_endpoint;         /* its 429s and Retry-After go to client->on_hold */
};

/* Performs call with the retry policy (retry.h) inside the client's budget.
 * AZID_OK with a 2xx response in resp.  Otherwise resp is cleared and err
 * says "<label> <url>: ..." with the HTTP status and the endpoint's error
 * text (AZID_ERR_HTTP, http_status set), or the transport failure
 * (AZID_ERR_UNREACHABLE), or that the budget ran out (AZID_ERR_TIMEOUT). */
azid_status client_perform(azid_client *client, const struct client_call *call,
                           struct http_response *resp, azid_error *err);

/* The IMDS/Arc hint for a final HTTP status: identity not found (naming the
 * selector), several identities, missing Metadata header, throttling,
 * endpoint updating or failing.  selector is "client_id" etc. or NULL. */
const char *client_imds_hint(long status, const char *error_text, const char *selector);

#endif
