/* SPDX-License-Identifier: MIT
 * azid status: the broker's cache and counters, never a value. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "Shows the state of the broker, azidd(8): each cached token (identity,\n"
    "resource, when it expires, when it is refreshed, how many users' keys hold\n"
    "it), each failure in the negative cache (until when, and why), and the\n"
    "counters: requests sent to the identity endpoint, of which throttled\n"
    "(HTTP 429), tokens served to callers, callers answered from the negative\n"
    "cache, refreshes, requests in flight and queued.  Never prints a token.\n"
    "The socket is broker= from /etc/azid.conf (default /run/azid/azidd.sock).\n"
    "\n"
    "  --json      print one JSON object: \"socket\", \"tokens\" and \"negative\"\n"
    "              (lists of objects), and the counters\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 shown; 1 no broker answers (or broker=off); 2 usage.\n";

struct listing {
    azid_broker_entry *entries;
    size_t n;
    int failed; /* out of memory */
};

/* Copies each entry: the strings live only during the visit. */
static void collect(const azid_broker_entry *e, void *ctx)
{
    struct listing *l = ctx;
    azid_broker_entry *grown = realloc(l->entries, (l->n + 1) * sizeof *grown);
    if (!grown) {
        l->failed = 1;
        return;
    }
    l->entries = grown;
    azid_broker_entry copy = *e;
    const char **fields[] = {&copy.source, &copy.endpoint, &copy.identity, &copy.resource,
                             &copy.status, &copy.message};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (*fields[i] && !(*fields[i] = strdup(*fields[i])))
            l->failed = 1;
    l->entries[l->n++] = copy;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        azid_broker_entry *e = &l->entries[i];
        free((char *)e->source);
        free((char *)e->endpoint);
        free((char *)e->identity);
        free((char *)e->resource);
        free((char *)e->status);
        free((char *)e->message);
    }
    free(l->entries);
}

static void json_field(const char *name, const char *value)
{
    printf(",\"%s\":", name);
    if (value)
        json_print_string(stdout, value);
    else
        fputs("null", stdout);
}

static void print_json(const char *socket, const struct listing *l,
                       const azid_broker_counters *c)
{
    fputs("{\"socket\":", stdout);
    json_print_string(stdout, socket);
    for (int negative = 0; negative <= 1; negative++) {
        printf(",\"%s\":[", negative ? "negative" : "tokens");
        const char *sep = "";
        for (size_t i = 0; i < l->n; i++) {
            const azid_broker_entry *e = &l->entries[i];
            if (e->negative != negative)
                continue;
            printf("%s{\"identity\":", sep);
            json_print_string(stdout, e->identity);
            json_field(e->secret ? "secret" : "resource", e->resource);
            json_field("source", e->source);
            json_field("endpoint", e->endpoint);
            if (negative) {
                printf(",\"until\":%lld", (long long)e->until);
                json_field("status", e->status);
                json_field("message", e->message);
            } else {
                printf(",\"expires_on\":%lld,\"refresh_at\":%lld,\"keys\":%ld",
                       (long long)e->expires_on, (long long)e->refresh_at, e->keys);
            }
            fputs("}", stdout);
            sep = ",";
        }
        fputs("]", stdout);
    }
    printf(",\"requests\":%llu,\"throttled\":%llu,\"served\":%llu,\"negative_hits\":%llu,"
           "\"refreshes\":%llu,\"in_flight\":%ld,\"queued\":%ld}\n",
           (unsigned long long)c->requests, (unsigned long long)c->throttled,
           (unsigned long long)c->served, (unsigned long long)c->negative_hits,
           (unsigned long long)c->refreshes, c->in_flight, c->queued);
}

static void print_text(const char *socket, const struct listing *l,
                       const azid_broker_counters *c)
{
    long now = (long)time(NULL);
    char left[32], refresh[32];
    printf("broker %s\n", socket);
    for (size_t i = 0; i < l->n; i++) {
        const azid_broker_entry *e = &l->entries[i];
        const char *where = e->endpoint ? e->endpoint : e->source;
        if (!e->negative) {
            format_time_left((long)e->expires_on - now, left, sizeof left);
            format_time_left(e->refresh_at > now ? (long)e->refresh_at - now : 0, refresh,
                             sizeof refresh);
            printf("%-9s %s %s expires in %s, refresh in %s, %ld key%s (%s)\n",
                   e->secret ? "secret" : "token", e->identity, e->resource, left, refresh,
                   e->keys, e->keys == 1 ? "" : "s", where);
        } else {
            format_time_left(e->until > now ? (long)e->until - now : 0, left, sizeof left);
            printf("negative  %s %s for %s more: %s: %s (%s)\n", e->identity, e->resource, left,
                   e->status ? e->status : "?", e->message ? e->message : "", where);
        }
    }
    printf("requests %llu, throttled %llu, served %llu, negative hits %llu, refreshes %llu, "
           "in flight %ld, queued %ld\n",
           (unsigned long long)c->requests, (unsigned long long)c->throttled,
           (unsigned long long)c->served, (unsigned long long)c->negative_hits,
           (unsigned long long)c->refreshes, c->in_flight, c->queued);
}

int cmd_status(int argc, char **argv)
{
    int json = 0;
    int rc = parse_keyring_options(argc, argv, help, &json);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return usage_error("status", "no arguments expected");
    azid_config *cfg;
    long timeout_ms;
    const char *socket = broker_socket(&cfg, &timeout_ms);
    if (!socket) {
        azid_config_free(cfg);
        report("status", "broker=off in the config file: no broker is asked");
        return EXIT_FAIL;
    }
    struct listing l = {0};
    azid_broker_counters counters;
    azid_error err;
    azid_status st = azid_broker_status(socket, timeout_ms, collect, &l, &counters, &err);
    if (st == AZID_ERR_UNREACHABLE)
        report("status", "no broker answers at %s (%s); start it with 'systemctl start "
                         "azidd.socket', or run azidd as root",
               socket, err.message);
    else if (st != AZID_OK)
        report("status", "%s", err.message);
    else if (l.failed)
        report("status", "out of memory");
    else if (json)
        print_json(socket, &l, &counters);
    else
        print_text(socket, &l, &counters);
    rc = st == AZID_OK && !l.failed ? finish_stdout("status") : EXIT_FAIL;
    listing_free(&l);
    azid_config_free(cfg);
    return rc;
}
