/* SPDX-License-Identifier: MIT
 * The broker's cache: one entry per (source, endpoint, identity,
 * resource), in memory only.  An entry has at most one fetch under way,
 * however many callers wait for it (single flight); fetches start only
 * while fewer than AZIDD_MAX_IN_FLIGHT run and fewer than
 * AZIDD_MAX_PER_SECOND started in the last second, and not while a 429
 * holds every caller back.  A failure stays in the entry for
 * negative_cache seconds.  A token is fetched again at half its lifetime,
 * and the users' shared keys are updated in place. */
#include "config.h"

#include "azidd.h"

#include "token.h"

#include <errno.h>
#include <keyutils.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

/* The shared key of a user for a token: root owns it (root's quota: it is
 * charged once, not per session); its possessors (the login sessions that
 * link it, and the broker) may view, read and search it; root, as owner,
 * may also link it (pam_azid links it into the login's session keyring),
 * write and set its timeout (the broker's refresh).  Nobody else gets
 * anything: see pam_azid(8), "Broker". */
#define SHARED_KEY_PERM                                                                  \
    (KEY_POS_VIEW | KEY_POS_READ | KEY_POS_SEARCH | KEY_USR_VIEW | KEY_USR_WRITE |        \
     KEY_USR_LINK | KEY_USR_SETATTR)

struct entry {
    char *source, *endpoint, *identity, *resource; /* the key of the entry */
    bool secret;            /* resource is a Key Vault secret URL */
    char *vault_host, *name; /* a secret's, from the fetcher: its key's name */
    char *request;                                 /* the fetcher's request line */
    size_t request_length;
    long timeout_ms;
    char *token;
    size_t token_length;
    int64_t expires_on;    /* epoch seconds */
    int64_t refresh_at_ms; /* now_ms() clock */
    int64_t wanted_ms;     /* last time a caller asked */
    bool queued, fetching;
    struct fetch_child child;
    azid_error failure;    /* status AZID_OK when none */
    int64_t negative_until_ms;
    size_t nkeys; /* users' keys that hold its token */
};

/* A user's shared key and the entry whose token it holds. */
struct user_key {
    uid_t uid;
    struct entry *entry;
    int32_t serial;
    int64_t issued_ms; /* last handed out: the module links it just after */
    bool current;      /* it holds the entry's token as it is now */
};

/* The broker's keyring per user, linked into its process keyring: the
 * broker possesses every shared key through it, and add_key into it
 * updates a user's key in place (same serial). */
struct user_ring {
    uid_t uid;
    int32_t serial;
};

static struct entry **entries;
static size_t nentries, entries_cap;
static struct entry **queue; /* FIFO of entries waiting for a fetch slot */
static size_t nqueue, queue_cap;
static struct user_key *ukeys;
static size_t nukeys, ukeys_cap;
static struct user_ring *rings;
static size_t nrings, rings_cap;

static int in_flight;
static int64_t starts_ms[AZIDD_MAX_PER_SECOND]; /* ring of the last fetch starts */
static size_t start_next;
static int64_t hold_until_ms;
static struct {
    unsigned long long requests, throttled, served, negative_hits, refreshes;
} counters;

void (*cache_on_change)(void);

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static bool token_usable(const struct entry *e)
{
    return e->token && e->expires_on - AZID_EXPIRY_SKEW_S > (int64_t)time(NULL);
}

static bool negative(const struct entry *e)
{
    return e->failure.status != AZID_OK && e->negative_until_ms > now_ms();
}

bool cache_secret_names(const struct entry *e, const char **host, const char **name)
{
    *host = e->vault_host;
    *name = e->name;
    return e->secret && e->vault_host && e->name;
}

const char *cache_identity(const struct entry *e)
{
    return e->identity;
}

void cache_count_served(void)
{
    counters.served++;
}

static const char *kind(const struct entry *e)
{
    return e->secret ? "secret" : "token for";
}

static void forget_token(struct entry *e)
{
    if (e->token)
        wipe_free(e->token, e->token_length);
    e->token = NULL;
    e->token_length = 0;
}

/* ---- entries ------------------------------------------------------------ */

static const char *setting(const struct broker_field *const *settings, size_t n,
                           const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(settings[i]->key, key) == 0)
            return settings[i]->value;
    return NULL;
}

/* The fetcher's request for the settings, in their canonical order. */
static void compose_request(const struct broker_field *const *settings, size_t n,
                            const char *resource, bool secret, struct broker_buf *req)
{
    broker_buf_raw(req, BROKER_PROTO_VERSION " ", sizeof BROKER_PROTO_VERSION);
    broker_buf_word(req, "key");
    broker_buf_field(req, "user", "azidd");
    broker_buf_field_int(req, "uid", 0);
    broker_buf_field(req, secret ? "secret" : "resource", resource);
    for (size_t i = 0; broker_setting_keys[i]; i++) {
        const char *v = setting(settings, n, broker_setting_keys[i]);
        if (v)
            broker_buf_field(req, broker_setting_keys[i], v);
    }
    broker_buf_end_line(req);
}

/* Checks the settings and the resource or secret URL as module arguments
 * would be. */
static azid_status check_settings(const struct broker_field *const *settings, size_t n,
                                  const char *resource, bool secret, long *timeout_ms,
                                  azid_error *err)
{
    if (!secret && azid_resource_check(resource, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    azid_config *cfg = azid_config_new();
    if (!cfg)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    char arg[BROKER_MAX_REQUEST];
    snprintf(arg, sizeof arg, "%s=%s", secret ? "secret" : "resource", resource);
    azid_status st = azid_config_apply_arg(cfg, arg, err);
    for (size_t i = 0; broker_setting_keys[i] && st == AZID_OK; i++) {
        const char *v = setting(settings, n, broker_setting_keys[i]);
        if (!v)
            continue;
        snprintf(arg, sizeof arg, "%s=%s", broker_setting_keys[i], v);
        st = azid_config_apply_arg(cfg, arg, err);
    }
    *timeout_ms = azid_config_timeout_ms(cfg);
    azid_config_free(cfg);
    return st;
}

static char *identity_of(const struct broker_field *const *settings, size_t n)
{
    static const char *const selectors[] = {"client_id", "object_id", "msi_res_id"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = setting(settings, n, selectors[i]);
        if (v) {
            size_t len = strlen(selectors[i]) + strlen(v) + 2;
            char *s = malloc(len);
            if (s)
                snprintf(s, len, "%s=%s", selectors[i], v);
            return s;
        }
    }
    return strdup("system");
}

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    forget_token(e);
    free(e->source);
    free(e->endpoint);
    free(e->identity);
    free(e->resource);
    free(e->vault_host);
    free(e->name);
    free(e->request);
    free(e);
}

struct entry *cache_entry(const struct broker_field *const *settings, size_t nsettings,
                          const char *resource, bool secret, azid_error *err)
{
    struct broker_buf req;
    broker_buf_init(&req, BROKER_MAX_REQUEST);
    compose_request(settings, nsettings, resource, secret, &req);
    /* The same request as an entry's was checked as that entry was made:
     * a login's warm path skips building a configuration to check it. */
    for (size_t i = 0; !req.failed && i < nentries; i++) {
        struct entry *e = entries[i];
        if (e->request_length == req.length && memcmp(e->request, req.data, req.length) == 0) {
            broker_buf_free(&req);
            return e;
        }
    }
    long timeout_ms = 0;
    azid_status st = check_settings(settings, nsettings, resource, secret, &timeout_ms, err);
    if (st == AZID_OK && req.failed)
        st = err_set(err, AZID_ERR_ARGUMENT, "request too large");
    if (st != AZID_OK) {
        broker_buf_free(&req);
        return NULL;
    }
    const char *source = setting(settings, nsettings, "source");
    const char *endpoint = setting(settings, nsettings, "endpoint");
    char *identity = identity_of(settings, nsettings);
    for (size_t i = 0; identity && i < nentries; i++) {
        struct entry *e = entries[i];
        if (e->secret == secret && strcmp(e->resource, resource) == 0 &&
            strcmp(e->identity, identity) == 0 &&
            strcmp(e->source, source ? source : "auto") == 0 &&
            strcmp(e->endpoint, endpoint ? endpoint : "") == 0) {
            free(identity);
            broker_buf_free(&req);
            return e;
        }
    }
    struct entry *e = calloc(1, sizeof *e);
    bool grown = array_grow(&entries, &entries_cap, nentries + 1, sizeof entries[0], 0) == 0;
    if (e) {
        e->identity = identity;
        identity = NULL;
        e->source = strdup(source ? source : "auto");
        e->endpoint = dup_or_empty(endpoint);
        e->resource = strdup(resource);
        e->secret = secret;
        e->request = req.data;
        e->request_length = req.length;
        req.data = NULL;
        e->timeout_ms = timeout_ms;
        e->child.pid = -1;
        e->child.fd = -1;
    }
    free(identity);
    broker_buf_free(&req);
    if (!grown || !e || !e->identity || !e->source || !e->endpoint || !e->resource ||
        !e->request) {
        entry_free(e);
        err_set(err, AZID_ERR_NOMEM, "out of memory");
        return NULL;
    }
    entries[nentries++] = e;
    return e;
}

static void enqueue(struct entry *e)
{
    if (array_grow(&queue, &queue_cap, nqueue + 1, sizeof queue[0], 0) < 0) {
        log_msg(LOG_ERR, "out of memory queueing a fetch of %s", e->resource);
        return;
    }
    queue[nqueue++] = e;
    e->queued = true;
}

void cache_want(struct entry *e)
{
    e->wanted_ms = now_ms();
    if (token_usable(e) || negative(e) || e->queued || e->fetching)
        return;
    enqueue(e);
}

bool cache_negative(const struct entry *e, long *left_ms)
{
    if (!negative(e))
        return false;
    *left_ms = (long)(e->negative_until_ms - now_ms());
    return true;
}

void cache_count_negative_hit(void)
{
    counters.negative_hits++;
}

bool cache_ready(const struct entry *e)
{
    return token_usable(e) || (!e->queued && !e->fetching && e->failure.status != AZID_OK);
}

azid_status cache_token(const struct entry *e, const char **value, int64_t *expires_on,
                        azid_error *err)
{
    if (token_usable(e)) {
        *value = e->token;
        *expires_on = e->expires_on;
        return AZID_OK;
    }
    *err = e->failure;
    return e->failure.status != AZID_OK
               ? e->failure.status
               : err_set(err, AZID_ERR_SYSTEM, "nothing for %s yet", e->resource);
}

/* ---- shared keys ---------------------------------------------------------- */

static int32_t ring_of(uid_t uid)
{
    for (size_t i = 0; i < nrings; i++)
        if (rings[i].uid == uid)
            return rings[i].serial;
    if (array_grow(&rings, &rings_cap, nrings + 1, sizeof rings[0], 0) < 0)
        return -1;
    char name[40];
    snprintf(name, sizeof name, "azidd:uid:%u", (unsigned)uid);
    key_serial_t ring = add_key("keyring", name, NULL, 0, KEY_SPEC_PROCESS_KEYRING);
    if (ring < 0)
        return -1;
    rings[nrings++] = (struct user_ring){uid, ring};
    return ring;
}

/* The name of the entry's key in a user's keyring; NULL without memory. */
static char *key_description(const struct entry *e)
{
    return e->secret ? azid_key_description_secret(e->vault_host, e->name)
                     : azid_key_description_token(e->resource);
}

/* The key is alive (not revoked, invalidated or expired: the search skips
 * those) and still the one its user's ring holds under its name. */
static bool key_in_ring(const struct user_key *k)
{
    int32_t ring = ring_of(k->uid);
    char *desc = key_description(k->entry);
    bool in = ring >= 0 && desc && keyctl_search(ring, "user", desc, 0) == k->serial;
    free(desc);
    return in;
}

/* Key serial holds the token of record keep's entry now: any other record
 * of it no longer holds what it names. */
static void key_written(size_t keep, int32_t serial)
{
    for (size_t i = 0; i < nukeys; i++)
        if (i != keep && ukeys[i].serial == serial)
            ukeys[i].current = false;
}

/* Writes the entry's token into a user's key: add_key into the user's ring
 * updates the key in place (same serial) and resets its timeout to none,
 * so the permissions and the timeout are set again every time. */
static azid_status write_key(struct entry *e, uid_t uid, int32_t *serial, azid_error *err)
{
    int32_t ring = ring_of(uid);
    if (ring < 0)
        return err_set(err, AZID_ERR_KEYRING, "cannot make the broker's keyring for uid %u: %s",
                       (unsigned)uid, strerror(errno));
    char *desc = key_description(e);
    if (!desc)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    key_serial_t k = add_key("user", desc, e->token, e->token_length, ring);
    int saved = errno;
    free(desc);
    if (k < 0)
        return err_set(err, saved == EDQUOT ? AZID_ERR_QUOTA : AZID_ERR_KEYRING,
                       "cannot store the shared key for uid %u: %s", (unsigned)uid,
                       strerror(saved));
    long left = (long)(e->expires_on - AZID_EXPIRY_SKEW_S - (int64_t)time(NULL));
    if (keyctl_setperm(k, SHARED_KEY_PERM) < 0 || left <= 0 ||
        keyctl_set_timeout(k, (unsigned)left) < 0) {
        saved = errno;
        keyctl_invalidate(k);
        return err_set(err, AZID_ERR_KEYRING, "cannot set up the shared key for uid %u: %s",
                       (unsigned)uid, left <= 0 ? "the token expires now" : strerror(saved));
    }
    *serial = k;
    return AZID_OK;
}

azid_status cache_user_key(struct entry *e, uid_t uid, int32_t *serial, azid_error *err)
{
    /* A key that holds the token already is handed out as it is: a login
     * does not copy the token into the kernel again.  One that root
     * revoked, invalidated, let expire or took out of the ring is written
     * anew. */
    for (size_t i = 0; i < nukeys; i++)
        if (ukeys[i].uid == uid && ukeys[i].entry == e && ukeys[i].current &&
            key_in_ring(&ukeys[i])) {
            ukeys[i].issued_ms = now_ms();
            *serial = ukeys[i].serial;
            return AZID_OK;
        }
    azid_status st = write_key(e, uid, serial, err);
    if (st != AZID_OK)
        return st;
    /* One key per user and resource: it now follows this entry. */
    for (size_t i = 0; i < nukeys; i++)
        if (ukeys[i].serial == *serial) {
            ukeys[i].entry->nkeys--;
            ukeys[i].entry = e;
            ukeys[i].uid = uid;
            ukeys[i].issued_ms = now_ms();
            ukeys[i].current = true;
            e->nkeys++;
            key_written(i, *serial);
            return AZID_OK;
        }
    if (array_grow(&ukeys, &ukeys_cap, nukeys + 1, sizeof ukeys[0], 0) < 0)
        return AZID_OK; /* it will only not be refreshed */
    ukeys[nukeys++] = (struct user_key){uid, e, *serial, now_ms(), true};
    e->nkeys++;
    return AZID_OK;
}

/* Refresh in place: every user's key that follows e gets its new token. */
static void update_keys(struct entry *e)
{
    for (size_t i = 0; i < nukeys; i++) {
        if (ukeys[i].entry != e)
            continue;
        int32_t serial;
        azid_error err;
        ukeys[i].current = write_key(e, ukeys[i].uid, &serial, &err) == AZID_OK;
        if (!ukeys[i].current) {
            log_msg(LOG_WARNING, "key %d of uid %u not refreshed: %s", ukeys[i].serial,
                    (unsigned)ukeys[i].uid, err.message);
            continue;
        }
        ukeys[i].serial = serial;
        key_written(i, serial);
    }
}

static int by_serial(const void *a, const void *b)
{
    uint32_t x = (uint32_t)ukeys[*(const size_t *)a].serial;
    uint32_t y = (uint32_t)ukeys[*(const size_t *)b].serial;
    return x < y ? -1 : x > y;
}

static int find_serial(const void *key, const void *item)
{
    uint32_t x = *(const uint32_t *)key;
    uint32_t y = (uint32_t)ukeys[*(const size_t *)item].serial;
    return x < y ? -1 : x > y;
}

struct usage {
    long *usage;
    const size_t *order; /* ukeys indexes by serial */
};

static int count_usage(const struct proc_key *k, void *ctx)
{
    struct usage *u = ctx;
    uint32_t wanted = (uint32_t)k->serial;
    const size_t *hit = bsearch(&wanted, u->order, nukeys, sizeof u->order[0], find_serial);
    if (hit)
        u->usage[*hit] = k->usage;
    return 0;
}

/* The usage count of each of the users' keys, from /proc/keys, in ukeys
 * order; 0 for a key not listed (gone). */
static void key_usage(long *usage, size_t *order)
{
    memset(usage, 0, nukeys * sizeof usage[0]);
    for (size_t i = 0; i < nukeys; i++)
        order[i] = i;
    qsort(order, nukeys, sizeof order[0], by_serial);
    struct usage u = {usage, order};
    if (proc_keys_each(count_usage, &u) < 0)
        for (size_t i = 0; i < nukeys; i++)
            usage[i] = 2; /* unknown: keep them all */
}

/* Lets go of the keys that only the broker's own keyring still holds:
 * every session that linked one has closed.  A key is then freed, and an
 * entry no session needs stops being refreshed. */
static void drop_unused_keys(void)
{
    static int64_t last_ms;
    int64_t now = now_ms();
    if (nukeys == 0 || now - last_ms < AZIDD_KEY_SWEEP_MS)
        return;
    last_ms = now;
    long *usage = calloc(nukeys, sizeof *usage);
    size_t *order = calloc(nukeys, sizeof *order);
    if (!usage || !order) {
        free(usage);
        free(order);
        return;
    }
    key_usage(usage, order);
    free(order);
    size_t kept = 0;
    for (size_t i = 0; i < nukeys; i++) {
        if (usage[i] > 1 || now - ukeys[i].issued_ms < AZIDD_KEY_GRACE_MS) {
            ukeys[kept++] = ukeys[i];
            continue;
        }
        keyctl_unlink(ukeys[i].serial, ring_of(ukeys[i].uid));
        ukeys[i].entry->nkeys--;
    }
    if (kept < nukeys)
        log_msg(LOG_DEBUG, "let go of %zu key(s) no session holds any more", nukeys - kept);
    nukeys = kept;
    free(usage);
}

/* ---- fetches ---------------------------------------------------------------- */

static bool negative_worthy(azid_status st)
{
    return st == AZID_ERR_UNREACHABLE || st == AZID_ERR_TIMEOUT || st == AZID_ERR_HTTP ||
           st == AZID_ERR_RESPONSE || st == AZID_ERR_NO_SOURCE || st == AZID_ERR_TLS;
}

/* negative_ms: how long callers get this failure at once; -1 for
 * negative_cache= if the failure is worth caching (negative_worthy). */
static void fail(struct entry *e, azid_status st, const char *message, long negative_ms)
{
    bool refreshing = token_usable(e);
    if (refreshing) {
        /* Keep serving the valid token; try again in half of what is
         * left of it, at most 30 s, at least AZIDD_MIN_REFRESH_MS. */
        int64_t half = (e->expires_on - AZID_EXPIRY_SKEW_S - (int64_t)time(NULL)) * 1000 / 2;
        int64_t wait = half > 30000 ? 30000 : half < AZIDD_MIN_REFRESH_MS ? AZIDD_MIN_REFRESH_MS : half;
        e->refresh_at_ms = now_ms() + wait;
        log_msg(LOG_WARNING, "refresh of the %s %s (identity %s) failed, the current "
                             "one stays in use: %s",
                kind(e), e->resource, e->identity, message);
        return;
    }
    e->failure.status = st;
    snprintf(e->failure.message, sizeof e->failure.message, "%s", message);
    if (negative_ms < 0 && negative_worthy(st))
        negative_ms = config_negative_cache_ms();
    if (negative_ms > 0) {
        e->negative_until_ms = now_ms() + negative_ms;
        log_msg(LOG_ERR, "no %s %s (identity %s): %s; callers get this failure from "
                         "the negative cache for %.1f s",
                kind(e), e->resource, e->identity, message, (double)negative_ms / 1000);
    } else {
        e->negative_until_ms = 0;
        log_msg(LOG_ERR, "no %s %s (identity %s): %s", kind(e), e->resource, e->identity,
                message);
    }
}

/* Takes value (length bytes, malloc'ed) into the entry. */
static void succeed(struct entry *e, char *value, size_t length, int64_t expires_on)
{
    int64_t now_s = (int64_t)time(NULL);
    bool same = e->token && e->token_length == length && memcmp(e->token, value, length) == 0;
    forget_token(e);
    e->token = value;
    e->token_length = length;
    e->expires_on = expires_on;
    e->failure.status = AZID_OK;
    e->negative_until_ms = 0;
    /* Half of what is left of the keys' lifetime (they expire
     * AZID_EXPIRY_SKEW_S before the token): IMDS answers a refresh with the
     * token it holds until that nears its end, so the wait halves each time
     * it does, down to AZIDD_MIN_REFRESH_MS, and the keys expire before that
     * spins. */
    int64_t half = (expires_on - AZID_EXPIRY_SKEW_S - now_s) * 1000 / 2;
    e->refresh_at_ms = now_ms() + (half > AZIDD_MIN_REFRESH_MS ? half : AZIDD_MIN_REFRESH_MS);
    log_msg(LOG_INFO, "%s %s %s (identity %s), expires_on %lld, next refresh in %lld s",
            same ? "unchanged" : "new", kind(e), e->resource, e->identity, (long long)expires_on,
            (long long)((e->refresh_at_ms - now_ms()) / 1000));
    update_keys(e);
}

/* A token, or a secret (hex, with its vault host and name), as the fetcher
 * sent it. */
static void take(struct entry *e, const struct broker_line *l, int64_t now_s)
{
    const char *value = broker_line_get(l, "value");
    const char *host = broker_line_get(l, "vault_host"), *name = broker_line_get(l, "name");
    int64_t expires_on = 0;
    char *copy = NULL;
    size_t length = 0;
    bool ok = value && broker_line_get_int(l, "expires_on", now_s, AZID_EPOCH_MAX, &expires_on);
    if (ok && e->secret) {
        ok = host && name && broker_hex_decode(value, &copy, &length);
        if (ok && (!e->vault_host || strcmp(e->vault_host, host) || strcmp(e->name, name))) {
            free(e->vault_host);
            free(e->name);
            e->vault_host = strdup(host);
            e->name = strdup(name);
            ok = e->vault_host && e->name;
        }
    } else if (ok) {
        ok = (copy = strdup(value)) != NULL;
        length = ok ? strlen(copy) : 0;
    }
    if (!ok) {
        if (copy)
            wipe_free(copy, length);
        fail(e, AZID_ERR_RESPONSE,
             "the fetcher's answer has no value or expiry in range (or no memory for it)", -1);
        return;
    }
    if (expires_on - AZID_EXPIRY_SKEW_S <= now_s) {
        /* Not usable, so its waiters would wait for a token that never
         * comes; the negative cache asks again once the endpoint has had
         * time to issue a new one. */
        wipe_free(copy, length);
        char message[160];
        snprintf(message, sizeof message,
                 "the endpoint's token expires in %lld s, within the %d s before expiry "
                 "in which azid hands no token out",
                 (long long)(expires_on - now_s), AZID_EXPIRY_SKEW_S);
        fail(e, AZID_ERR_RESPONSE, message, -1);
        return;
    }
    succeed(e, copy, length, expires_on);
}

/* The endpoint's 429 or Retry-After: it holds back every new request,
 * whatever token it is for, while the fetcher that got it waits it out. */
static void hold(int64_t http, int64_t retry_after_ms)
{
    if (retry_after_ms > AZIDD_MAX_HOLD_MS)
        retry_after_ms = AZIDD_MAX_HOLD_MS;
    int64_t ms = retry_after_ms > 0 ? retry_after_ms : AZIDD_THROTTLE_HOLD_MS;
    if (now_ms() + ms > hold_until_ms)
        hold_until_ms = now_ms() + ms;
    log_msg(LOG_WARNING, "the endpoint answered HTTP %lld%s: no request for %.1f s",
            (long long)http, retry_after_ms > 0 ? " with Retry-After" : "", (double)ms / 1000);
}

/* Takes the fetcher's "hold" lines, which come before its reply, out of
 * what it sent: they do not count against the reply's size, and the rest
 * is the reply. */
static void take_holds(struct fetch_child *child)
{
    char *data = child->out.data;
    size_t taken = 0, length = child->out.length;
    while (data && taken < length) {
        const char *nl = memchr(data + taken, '\n', length - taken);
        if (!nl || length - taken < 5 || memcmp(data + taken, "hold ", 5) != 0)
            break;
        struct broker_line line;
        azid_error err;
        int64_t http = 0, retry_after_ms = -1;
        if (broker_proto_parse_line(data + taken, (size_t)(nl - data - taken), &line, &err) ==
            AZID_OK) {
            broker_line_get_int(&line, "http", 0, 999, &http);
            broker_line_get_int(&line, "retry_after_ms", 0, INT32_MAX, &retry_after_ms);
            if (http == 429 && !child->throttled) {
                child->throttled = true;
                counters.throttled++;
            }
            hold(http, retry_after_ms);
        } else {
            log_msg(LOG_WARNING, "the fetcher's hold line is malformed: %s", err.message);
        }
        broker_line_free(&line);
        taken = (size_t)(nl + 1 - data);
    }
    if (taken) {
        memmove(data, data + taken, length - taken);
        explicit_bzero(data + length - taken, taken);
        child->out.length = length - taken;
    }
}

/* The fetcher's reply: a token, a secret or a failure. */
static void finish(struct entry *e)
{
    struct broker_reply reply = {0};
    azid_error err;
    take_holds(&e->child);
    azid_status st = e->child.out.failed
                         ? err_set(&err, AZID_ERR_RESPONSE, "the fetcher said too much")
                         : broker_proto_parse_reply(e->child.out.data ? e->child.out.data : "",
                                                    e->child.out.length, &reply, &err);
    fetch_end(&e->child);
    e->fetching = false;
    in_flight--;
    counters.requests++;
    int64_t now_s = (int64_t)time(NULL);
    if (st != AZID_OK) {
        fail(e, AZID_ERR_SYSTEM, "the fetcher failed (crashed, killed, or a malformed reply)", -1);
    } else if (reply.n == 1 && strcmp(reply.lines[0].word, e->secret ? "secret" : "token") == 0) {
        take(e, &reply.lines[0], now_s);
    } else if (reply.n == 1 && strcmp(reply.lines[0].word, "fail") == 0) {
        const char *message = broker_line_get(&reply.lines[0], "message");
        int64_t http = 0, held = hold_until_ms - now_ms();
        broker_line_get_int(&reply.lines[0], "http", 0, 999, &http);
        /* A 429 is over when its hold (take_holds) is, not after
         * negative_cache=. */
        fail(e, broker_status_from_name(broker_line_get(&reply.lines[0], "status")),
             message ? message : "the fetcher failed without a message",
             http == 429 ? (long)(held > 0 ? held : 0) : -1);
    } else {
        fail(e, AZID_ERR_SYSTEM, "the fetcher's reply is malformed", -1);
    }
    broker_reply_free(&reply);
    if (cache_on_change)
        cache_on_change();
}

/* When the rate guard lets the next fetch start (<= now: at once). */
static int64_t next_start_ms(void)
{
    int64_t at = starts_ms[start_next] ? starts_ms[start_next] + 1000 : 0;
    return at > hold_until_ms ? at : hold_until_ms;
}

static void start_fetch(struct entry *e)
{
    int64_t now = now_ms();
    if (!fetch_start(&e->child, e->request, e->request_length,
                     now + e->timeout_ms + 1500)) {
        fail(e, AZID_ERR_SYSTEM, "the broker could not start a fetcher", -1);
        if (cache_on_change)
            cache_on_change();
        return;
    }
    e->fetching = true;
    in_flight++;
    starts_ms[start_next] = now;
    start_next = (start_next + 1) % AZIDD_MAX_PER_SECOND;
}

static void start_queued(int64_t now)
{
    size_t started = 0;
    while (started < nqueue && in_flight < AZIDD_MAX_IN_FLIGHT && next_start_ms() <= now) {
        struct entry *e = queue[started++];
        e->queued = false;
        start_fetch(e);
    }
    if (started) {
        memmove(queue, queue + started, (nqueue - started) * sizeof queue[0]);
        nqueue -= started;
    }
}

static void schedule_refreshes(int64_t now, int64_t *next)
{
    drop_unused_keys();
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = entries[i];
        if (!e->token || e->queued || e->fetching)
            continue;
        /* Refreshed while a session holds its key, or a caller asked for
         * it within its lifetime; otherwise it just expires. */
        bool alive = e->nkeys || e->wanted_ms + (e->expires_on - (int64_t)time(NULL)) * 1000 > now;
        if (!alive || !token_usable(e))
            continue;
        if (e->refresh_at_ms <= now) {
            counters.refreshes++;
            enqueue(e);
        } else if (e->refresh_at_ms < *next) {
            *next = e->refresh_at_ms;
        }
    }
}

int cache_poll_setup(struct pollfd *fds, size_t *n, size_t max)
{
    int64_t now = now_ms();
    int64_t next = now + 60000;
    schedule_refreshes(now, &next);
    start_queued(now);
    if (nqueue && next_start_ms() < next)
        next = next_start_ms();
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = entries[i];
        if (!e->fetching)
            continue;
        if (e->child.kill_at <= now) {
            /* finish() reads what it said: nothing complete. */
            kill(e->child.pid, SIGKILL);
            fetch_read(&e->child);
            finish(e);
            continue;
        }
        if (e->child.kill_at < next)
            next = e->child.kill_at;
        if (*n < max)
            fds[(*n)++] = (struct pollfd){.fd = e->child.fd, .events = POLLIN};
    }
    int64_t wait = next - now;
    return wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
}

void cache_poll_done(const struct pollfd *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!fds[i].revents)
            continue;
        for (size_t j = 0; j < nentries; j++) {
            struct entry *e = entries[j];
            if (e->fetching && e->child.fd == fds[i].fd) {
                if (fetch_read(&e->child))
                    finish(e);
                else
                    take_holds(&e->child);
                break;
            }
        }
    }
}

/* ---- status ------------------------------------------------------------------ */

static void entry_fields(struct broker_buf *out, const struct entry *e)
{
    broker_buf_field(out, "source", e->source);
    if (e->endpoint[0])
        broker_buf_field(out, "endpoint", e->endpoint);
    broker_buf_field(out, "identity", e->identity);
    broker_buf_field(out, e->secret ? "secret" : "resource", e->resource);
}

void cache_status(struct broker_buf *out)
{
    int64_t now = now_ms(), now_s = (int64_t)time(NULL);
    for (size_t i = 0; i < nentries; i++) {
        const struct entry *e = entries[i];
        if (token_usable(e)) {
            broker_buf_word(out, e->secret ? "secret" : "token");
            entry_fields(out, e);
            broker_buf_field_int(out, "expires_on", e->expires_on);
            broker_buf_field_int(out, "refresh_at", now_s + (e->refresh_at_ms - now) / 1000);
            broker_buf_field_int(out, "keys", (int64_t)e->nkeys);
            broker_buf_end_line(out);
        }
        if (negative(e)) {
            broker_buf_word(out, "negative");
            entry_fields(out, e);
            broker_buf_field_int(out, "until", now_s + (e->negative_until_ms - now) / 1000);
            broker_buf_field(out, "status", azid_status_name(e->failure.status));
            broker_buf_message(out, e->failure.message);
            broker_buf_end_line(out);
        }
    }
    broker_buf_word(out, "counters");
    broker_buf_field_int(out, "requests", (int64_t)counters.requests);
    broker_buf_field_int(out, "throttled", (int64_t)counters.throttled);
    broker_buf_field_int(out, "served", (int64_t)counters.served);
    broker_buf_field_int(out, "negative_hits", (int64_t)counters.negative_hits);
    broker_buf_field_int(out, "refreshes", (int64_t)counters.refreshes);
    broker_buf_field_int(out, "in_flight", in_flight);
    broker_buf_field_int(out, "queued", (int64_t)nqueue);
    broker_buf_end_line(out);
}

void cache_shutdown(void)
{
    for (size_t i = 0; i < nentries; i++) {
        if (entries[i]->fetching)
            fetch_end(&entries[i]->child);
        entry_free(entries[i]);
    }
    free(entries);
    free(queue);
    free(ukeys);
    free(rings);
    entries = NULL;
    queue = NULL;
    ukeys = NULL;
    rings = NULL;
    nentries = nqueue = nukeys = nrings = 0;
    entries_cap = queue_cap = ukeys_cap = rings_cap = 0;
}
