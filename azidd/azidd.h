/* SPDX-License-Identifier: MIT
 * azidd's parts: main.c (options, socket, the poll loop, connections),
 * cache.c (tokens per source/identity/resource, single flight, the rate
 * guard, the negative cache, refresh, the users' shared keys) and
 * fetcher.c (the unprivileged child that asks the endpoint).  See
 * azidd(8). */
#ifndef AZIDD_H
#define AZIDD_H

#include "broker_client.h"
#include "broker_proto.h"

#include <poll.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define AZIDD_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* IMDS's documented limits for identity requests (azure-protocol.md). */
#define AZIDD_MAX_IN_FLIGHT 5
#define AZIDD_MAX_PER_SECOND 20
/* How long a 429 without a usable Retry-After holds every caller back
 * (MSAL's default). */
#define AZIDD_THROTTLE_HOLD_MS 5000
/* A Retry-After longer than this is taken as this long. */
#define AZIDD_MAX_HOLD_MS 300000
#define AZIDD_DEFAULT_NEGATIVE_S 60
/* Refreshes of a token IMDS keeps answering with are at least this far
 * apart, so they converge instead of spinning near its expiry. */
#define AZIDD_MIN_REFRESH_MS 5000
/* How often the keys no session holds any more are let go of. */
#define AZIDD_KEY_SWEEP_MS 5000
/* A key just handed out is kept at least this long: the module links it
 * into the new session right after. */
#define AZIDD_KEY_GRACE_MS 10000

void log_msg(int priority, const char *fmt, ...) AZIDD_PRINTF(2, 3);

/* ---- fetcher.c ------------------------------------------------------------ */

/* The fetcher's main (azidd --fetcher): drops privileges, reads one
 * request line on stdin, asks the endpoint, writes the reply on stdout. */
int fetcher_main(void);

/* What the fetcher runs: azidd itself, by the absolute path it was started
 * with (under valgrind /proc/self/exe is valgrind), else /proc/self/exe. */
extern const char *fetcher_program;

struct fetch_child {
    pid_t pid;
    int fd; /* its stdin and stdout (a socketpair) */
    int64_t kill_at;
    struct broker_buf out;
    bool throttled; /* it reported a 429 (cache.c counts the fetcher once) */
};

/* Starts a fetcher for request (one line).  false (logged) when it could
 * not. */
bool fetch_start(struct fetch_child *child, const char *request, size_t length,
                 int64_t kill_at);
/* Reads what is there; true when the child is done (EOF, error or too
 * much).  The child is then reaped and child->out holds its reply. */
bool fetch_read(struct fetch_child *child);
/* Kills and reaps it; frees what it sent. */
void fetch_end(struct fetch_child *child);

/* ---- cache.c ---------------------------------------------------------------- */

struct entry;

/* The cache entry for these settings (source, endpoint, identity,
 * timeout: broker_setting_keys) and resource, created when absent.  NULL
 * with err when a setting or the resource is invalid (checked as module
 * arguments are), or out of memory. */
struct entry *cache_entry(const struct broker_field *const *settings, size_t nsettings,
                          const char *resource, bool secret, azid_error *err);
/* Asks for a fetch unless the entry has a usable token, a failure in the
 * negative cache, or a fetch under way. */
void cache_want(struct entry *e);
/* Whether the entry has an answer (a token or a failure) now. */
bool cache_ready(const struct entry *e);
/* Whether its failure is in the negative cache now; *left_ms how long
 * it stays there. */
bool cache_negative(const struct entry *e, long *left_ms);
/* The answer: AZID_OK with the token, or the failure (err). */
azid_status cache_token(const struct entry *e, const char **value, int64_t *expires_on,
                        azid_error *err);
/* The user's shared key for the entry's token, made or updated. */
azid_status cache_user_key(struct entry *e, uid_t uid, int32_t *serial, azid_error *err);
/* A secret entry's vault host and name (its key's), false for a token. */
bool cache_secret_names(const struct entry *e, const char **host, const char **name);
/* "system" or "client_id=..." */
const char *cache_identity(const struct entry *e);
void cache_count_served(void);
/* A caller answered from the negative cache. */
void cache_count_negative_hit(void);

/* Starts what may start, reads fetchers, refreshes; returns the poll
 * timeout (ms) the cache needs.  fds/n: the fetchers' descriptors to poll
 * are appended (at most max). */
int cache_poll_setup(struct pollfd *fds, size_t *n, size_t max);
/* After poll: handles the fetchers' descriptors in fds[from..n). */
void cache_poll_done(const struct pollfd *fds, size_t n);
/* Called whenever a fetch finished: main.c answers the waiters. */
extern void (*cache_on_change)(void);

/* The status reply lines. */
void cache_status(struct broker_buf *out);
void cache_shutdown(void);

/* negative_cache= from the config file as it is now, in ms. */
long config_negative_cache_ms(void);

#endif
