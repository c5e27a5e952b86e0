/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct collect {
    struct key_snapshot *snap;
    size_t capacity;
    int out_of_memory;
};

static void collect_key(const azid_key_info *info, void *ctx)
{
    struct collect *c = ctx;
    if (c->out_of_memory)
        return;
    if (c->snap->count == c->capacity) {
        size_t capacity = c->capacity ? 2 * c->capacity : 16;
        struct stored_key *keys = realloc(c->snap->keys, capacity * sizeof *keys);
        if (!keys) {
            c->out_of_memory = 1;
            return;
        }
        c->snap->keys = keys;
        c->capacity = capacity;
    }
    struct stored_key *key = &c->snap->keys[c->snap->count];
    key->description = strdup(info->description);
    if (!key->description) {
        c->out_of_memory = 1;
        return;
    }
    azid_key_parse(key->description, &key->fields);
    key->serial = info->serial;
    key->seconds_left = info->seconds_left;
    key->expires_on = info->seconds_left < 0 ? -1 : (int64_t)time(NULL) + info->seconds_left;
    c->snap->count++;
}

static int compare_keys(const void *a, const void *b)
{
    const struct stored_key *x = a, *y = b;
    return strcmp(x->description, y->description);
}

azid_status keys_snapshot(struct key_snapshot *snap, azid_error *err)
{
    struct collect c = {snap, 0, 0};
    snap->keys = NULL;
    snap->count = 0;
    azid_status status = azid_keyring_list(collect_key, &c, err);
    if (status == AZID_OK && c.out_of_memory) {
        status = AZID_ERR_NOMEM;
        if (err) {
            err->status = status;
            snprintf(err->message, sizeof err->message, "out of memory listing the keyring");
        }
    }
    if (status != AZID_OK) {
        keys_snapshot_free(snap);
        return status;
    }
    /* The same description can be reachable twice (session keyring and the
     * user keyring linked into it): the first one listed is the one read. */
    size_t kept = 0;
    for (size_t i = 0; i < snap->count; i++) {
        int seen = 0;
        for (size_t j = 0; j < kept && !seen; j++)
            seen = strcmp(snap->keys[j].description, snap->keys[i].description) == 0;
        if (seen)
            free(snap->keys[i].description);
        else
            snap->keys[kept++] = snap->keys[i];
    }
    snap->count = kept;
    if (kept)
        qsort(snap->keys, kept, sizeof *snap->keys, compare_keys);
    return AZID_OK;
}

void keys_snapshot_free(struct key_snapshot *snap)
{
    for (size_t i = 0; i < snap->count; i++)
        free(snap->keys[i].description);
    free(snap->keys);
    snap->keys = NULL;
    snap->count = 0;
}

const char *key_shown(const struct stored_key *key)
{
    switch (key->fields.kind) {
    case AZID_KEY_TOKEN: return key->fields.resource;
    case AZID_KEY_SECRET: return key->fields.vault_host;
    case AZID_KEY_OTHER: break;
    }
    return key->description;
}

const struct stored_key *keys_find(const struct key_snapshot *snap, const char *description)
{
    for (size_t i = 0; i < snap->count; i++)
        if (strcmp(snap->keys[i].description, description) == 0)
            return &snap->keys[i];
    return NULL;
}

void join_append(char *buf, size_t size, size_t *used, const char *item, size_t length)
{
    if (*used >= size)
        return;
    int n = snprintf(buf + *used, size - *used, "%s%.*s", *used ? ", " : "", (int)length, item);
    *used += n > 0 ? (size_t)n : 0;
}

void keys_join_names(const struct key_snapshot *snap, azid_key_kind kind, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < snap->count; i++) {
        const char *name = key_shown(&snap->keys[i]);
        if (snap->keys[i].fields.kind == kind)
            join_append(buf, size, &used, name, strlen(name));
    }
    if (!buf[0])
        snprintf(buf, size, "none");
}
