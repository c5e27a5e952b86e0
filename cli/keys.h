/* SPDX-License-Identifier: MIT
 * A sorted snapshot of the azid keys the caller can see (azid_keyring_list),
 * for the token, secret and list commands.  Holds descriptions and expiry
 * only, never values. */
#ifndef AZID_CLI_KEYS_H
#define AZID_CLI_KEYS_H

#include "azid.h"

#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX "azid:token:"
#define SECRET_PREFIX "azid:secret:"

struct stored_key {
    char *description;  /* "azid:token:<resource>", "azid:secret:<host>/<name>" */
    long seconds_left;  /* -1: no timeout; 0: expired */
    int64_t expires_on; /* epoch seconds, -1 with no timeout */
    int32_t serial;
};

struct key_snapshot {
    struct stored_key *keys; /* sorted by description, each description once */
    size_t count;
};

azid_status keys_snapshot(struct key_snapshot *snap, azid_error *err);
void keys_snapshot_free(struct key_snapshot *snap);

/* What follows prefix in the key's description, or NULL when it has
 * another prefix. */
const char *key_name(const struct stored_key *key, const char *prefix);
/* The key with this exact description, or NULL. */
const struct stored_key *keys_find(const struct key_snapshot *snap, const char *description);
/* Appends the first length bytes of item to the ", "-separated list in
 * buf, of which *used bytes are filled (start with 0 and buf[0] = '\0');
 * what does not fit is left out. */
void join_append(char *buf, size_t size, size_t *used, const char *item, size_t length);
/* The names (after prefix) of the keys of that kind, ", "-separated, into
 * buf; "none" when there are none. */
void keys_join_names(const struct key_snapshot *snap, const char *prefix, char *buf, size_t size);

#endif
