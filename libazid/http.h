/* SPDX-License-Identifier: MIT
 * One HTTP attempt through libcurl: the only place libazid talks to curl,
 * and the one that loads it. */
#ifndef AZID_HTTP_H
#define AZID_HTTP_H

#include "internal.h"

#include <stddef.h>

enum http_method { HTTP_GET, HTTP_POST };

struct http_request {
    enum http_method method;
    const char *url;
    const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;            /* POST body (form-encoded), NULL for an empty one */
    const char *ca_file;         /* extra CA bundle, NULL for the system's */
    long connect_timeout_ms;     /* > 0 */
    long timeout_ms;             /* whole attempt, > 0 */
    size_t max_body;             /* larger responses are cut off with an error */
};

struct http_response {
    long status;           /* 0 when no status line arrived */
    char *body;            /* NUL-terminated; wiped on clear (it may hold a token) */
    size_t length;
    long retry_after_ms;   /* Retry-After, -1 when absent or unparsable */
    char *www_authenticate; /* first WWW-Authenticate value, NULL when absent */
    char peer_ip[64];      /* the address connected to ("127.0.0.1"), "" when none */
    long peer_port;
};

/* Performs one attempt.  AZID_OK whenever a complete response arrived,
 * whatever its status.  Otherwise: AZID_ERR_TIMEOUT (the attempt was cut off
 * at timeout_ms), AZID_ERR_UNREACHABLE (refused, reset, DNS...),
 * AZID_ERR_RESPONSE ("response larger than N bytes"), AZID_ERR_NOMEM;
 * err->message then says what happened without naming the URL (callers
 * prefix it).  resp is filled as far as it got; clear it either way. */
azid_status http_perform(const struct http_request *req, struct http_response *resp,
                         azid_error *err);
void http_response_clear(struct http_response *resp);

/* Percent-encodes s (RFC 3986 unreserved characters kept).  malloc'ed;
 * NULL when out of memory. */
char *http_escape(const char *s);

/* Parses a Retry-After value (delta-seconds or an HTTP-date) relative to
 * now_epoch; milliseconds (at most a day's), or -1 when unparsable (or a
 * date while now_epoch is outside 0..AZID_EPOCH_MAX).  Pure. */
long http_parse_retry_after(const char *value, long long now_epoch);

#endif
