/* SPDX-License-Identifier: MIT
 * The retry policy as pure functions (no clock, no sockets): which
 * outcomes are retried, how long to wait, how long one attempt may take. */
#ifndef AZID_RETRY_H
#define AZID_RETRY_H

/* At most this many attempts per request, whatever the budget. */
#define RETRY_MAX_ATTEMPTS 6
/* Backoff before attempt n+1 (n attempts done): BASE * 2^(n-1), at most MAX. */
#define RETRY_BASE_DELAY_MS 250L
#define RETRY_MAX_DELAY_MS 4000L
/* One attempt may take max(RETRY_MIN_ATTEMPT_MS, budget / 3), but never
 * more than half the budget nor more than what remains: a hanging endpoint
 * is cut off and retried while the budget lasts (with timeout=1 too: the
 * half left holds the first backoff and a second attempt), and an attempt
 * never ends past the deadline. */
#define RETRY_MIN_ATTEMPT_MS 1000L
/* An attempt is not started with less than this left of the budget. */
#define RETRY_MIN_USEFUL_MS 100L
/* Connecting may take at most this long (clipped to the attempt's limit):
 * the endpoint is local or link-local and answers a SYN at once. */
#define RETRY_CONNECT_TIMEOUT_MS 1000L

enum retry_verdict {
    RETRY_AGAIN,        /* wait delay_ms, then try again */
    RETRY_STOP_FINAL,   /* the outcome is not retried (success, 400, bad body...) */
    RETRY_STOP_ATTEMPTS,/* RETRY_MAX_ATTEMPTS reached */
    RETRY_STOP_BUDGET,  /* no further attempt could start in time */
    RETRY_STOP_RETRY_AFTER /* the server's Retry-After ends past the deadline */
};

struct retry_decision {
    enum retry_verdict verdict;
    long delay_ms; /* for RETRY_AGAIN */
};

/* Whether an HTTP status is transient: 404 and 410 (IMDS updating), 429
 * (throttled) and 5xx.  0 (no response: refused, reset, cut off) too. */
int retry_status_retryable(long http_status);

/* The backoff after `attempts_done` attempts (>= 1). */
long retry_backoff_ms(int attempts_done);

/* How long the next attempt may take given the whole budget and what
 * remains of it. */
long retry_attempt_timeout_ms(long budget_ms, long remaining_ms);

/* After `attempts_done` attempts, the last of which was `retryable`, with
 * the server's Retry-After (ms, -1 when none) and `remaining_ms` of the
 * budget left: wait and retry, or stop (and why).  Retry-After replaces the
 * backoff when it is longer; one that would end past the deadline stops at
 * once, since waiting for it could not help. */
struct retry_decision retry_decide(int attempts_done, int retryable, long retry_after_ms,
                                   long remaining_ms);

#endif
