/* SPDX-License-Identifier: MIT
 * Lockdown (azid(1) "LOCKDOWN"): who may reach the identity endpoint
 * 169.254.169.254:80, as `azid lockdown` applies it, `azid fetch` explains
 * it to a refused user and `azid doctor` reports it. */
#ifndef AZID_CLI_LOCKDOWN_H
#define AZID_CLI_LOCKDOWN_H

#include "azid.h"

#include <stddef.h>
#include <sys/types.h>

#define LOCKDOWN_ADDR "169.254.169.254"
#define LOCKDOWN_PORT 80
/* The broker's unprivileged fetcher runs as this user when it exists. */
#define LOCKDOWN_BROKER_USER "_azid"
/* Written by `azid lockdown on`, removed by `off`: what the rules allow,
 * for the users who may not read the ruleset (azid fetch, azid doctor). */
#define LOCKDOWN_STATE_FILE "/run/azid-lockdown"

/* Who the rules let through: local uids (sorted, each once) and source
 * networks of forwarded traffic ("10.0.0.0/8", "172.17.0.2"). */
struct lockdown_allow {
    uid_t *uids;
    size_t nuids;
    char (*sources)[20]; /* a.b.c.d/nn, normalised: /32 written as the bare address */
    size_t nsources;
};

void lockdown_allow_free(struct lockdown_allow *allow);
/* Adds uid unless it is there already; -1 when out of memory. */
int lockdown_allow_uid(struct lockdown_allow *allow, uid_t uid);
/* Adds a.b.c.d[/n] (normalised) unless it is there; -1 when out of
 * memory or text is no such network. */
int lockdown_allow_source(struct lockdown_allow *allow, const char *text);
int lockdown_allows_uid(const struct lockdown_allow *allow, uid_t uid);

/* What the rules should allow: root, LOCKDOWN_BROKER_USER when it exists,
 * and every entry of lockdown_allow in the config file at config_path
 * (NULL: the built-in path).  An entry naming no
 * existing user or group is left out and reported through warn, so a typo
 * keeps the endpoint closed to it (warn may be NULL).  AZID_ERR_CONFIG when the file is
 * refused or an entry is malformed. */
azid_status lockdown_desired(const char *config_path, struct lockdown_allow *allow,
                             void (*warn)(const char *message, void *ctx), void *ctx,
                             azid_error *err);

/* The state file: AZID_OK and allow filled when lockdown is on (by the
 * last `azid lockdown on`), AZID_ERR_NOT_FOUND when off. */
azid_status lockdown_state_read(struct lockdown_allow *allow, azid_error *err);
azid_status lockdown_state_write(const struct lockdown_allow *allow, azid_error *err);
azid_status lockdown_state_remove(azid_error *err);

/* Whether both allow the same uids and sources. */
int lockdown_same_allow(const struct lockdown_allow *a, const struct lockdown_allow *b);

/* Runs nft with args (NULL-ended, after "nft"), input on its stdin.  0
 * when it succeeded, with its stdout in *out (malloc'ed; may be NULL);
 * otherwise -1 with the reason (nft's own first error line, or that nft
 * is not installed) in why. */
int lockdown_nft(const char *const *args, const char *input, char **out, char *why,
                 size_t why_size);
/* What table inet azid allows, from the ruleset (root): 1 on (allow
 * filled), 0 off, -1 could not tell (why filled). */
int lockdown_read_applied(struct lockdown_allow *allow, char *why, size_t why_size);

/* "0 (root), 998 (_azid), 1001 (alice)" into buf. */
void lockdown_format_uids(const struct lockdown_allow *allow, char *buf, size_t size);

/* For azid fetch: 1 when the lockdown is on, does not allow the caller's
 * uid, and the endpoint at url (a token endpoint URL) is LOCKDOWN_ADDR:80
 * and refuses a connection at once; 0 otherwise (then ask as usual). */
int lockdown_refuses_caller(const char *url);

#endif
