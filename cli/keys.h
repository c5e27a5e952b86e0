/* SPDX-License-Identifier: MIT
 * A sorted snapshot of the azid keys the caller can see (azid_keyring_list),
 * for the token, secret and list commands.  Holds descriptions and expiry
 * only, never values. */
#ifndef AZID_CLI_KEYS_H
#define AZID_CLI_KEYS_H

#include "azid.h"

#include <stddef.h>
#include <stdint.h>

struct stored_key {
    char *description;  /* "azid:token:<resource>", "azid:secret:<host>/<name>" */
    azid_key_fields fields; /* the description taken apart (azid_key_parse) */
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

/* What names the key to a user: the resource of a token, VAULT-HOST/NAME
 * of a secret, else the whole description. */
const char *key_shown(const struct stored_key *key);
/* The key with this exact description, or NULL. */
const struct stored_key *keys_find(const struct key_snapshot *snap, const char *description);
/* Appends the first length bytes of item to the ", "-separated list in
 * buf, of which *used bytes are filled (start with 0 and buf[0] = '\0');
 * what does not fit is left out. */
void join_append(char *buf, size_t size, size_t *used, const char *item, size_t length);
/* What names each key of that kind (key_shown), ", "-separated, into buf;
 * "none" when there are none. */
void keys_join_names(const struct key_snapshot *snap, azid_key_kind kind, char *buf, size_t size);

#endif
