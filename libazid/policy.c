/* SPDX-License-Identifier: MIT
 * The grants of one user, each with its own identity (SPEC "Config file"):
 * a user is never sent one block's resource with another block's identity. */
#include "config.h"

#include "policy.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last identity selector in scope block (-1: outside) of file. */
static const struct conf_entry *scope_identity(const struct conf_file *file, int block)
{
    const struct conf_entry *found = NULL;
    for (size_t i = 0; file && i < file->nentries; i++)
        if (file->entries[i].option->type == OPT_IDENTITY && file->entries[i].block == block)
            found = &file->entries[i];
    return found;
}

const struct conf_entry *policy_outside_identity(const struct conf_file *args,
                                                 const struct conf_file *file)
{
    const struct conf_entry *arg = scope_identity(args, -1);
    return arg ? arg : scope_identity(file, -1);
}

static int same_identity(const struct conf_entry *a, const struct conf_entry *b)
{
    if (!a || !b)
        return a == b;
    return a->option->identity == b->option->identity && !strcmp(a->value.text, b->value.text);
}

/* "the system-assigned identity", "client_id=X" */
static void describe_identity(const struct conf_entry *id, char *buf, size_t size)
{
    if (id)
        snprintf(buf, size, "%s=%.100s", id->option->name, id->value.text);
    else
        snprintf(buf, size, "the system-assigned identity");
}

/* Arguments come first and share one identity, so the later grant of a
 * conflicting pair is always a file line. */
static azid_status conflict(const struct policy *p, size_t earlier, const struct conf_entry *e,
                            const struct conf_entry *id, const char *path, azid_error *err)
{
    char was[128], now[128], where[160];
    const struct conf_entry *first = p->from[earlier];
    describe_identity(p->identity_from[earlier], was, sizeof was);
    describe_identity(id, now, sizeof now);
    if (first->line)
        snprintf(where, sizeof where, "line %u", first->line);
    else
        snprintf(where, sizeof where, "the argument %s=%.100s", first->option->name,
                 first->value.text);
    return err_set(err, AZID_ERR_CONFIG,
                   "%.200s:%u: %s %.200s is granted to this user with %s here and with %s by %s; "
                   "a %s gets one identity per user: give both the same identity or grant it "
                   "once",
                   path, e->line, e->option->name, e->value.text, now, was, where,
                   e->option->name);
}

static azid_status add(struct policy *p, const struct conf_entry *e, const struct conf_entry *id,
                       const char *path, azid_error *err)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->from[i]->option != e->option || strcmp(p->grants[i].target, e->value.text))
            continue;
        if (same_identity(p->identity_from[i], id))
            return AZID_OK;
        return conflict(p, i, e, id, path, err);
    }
    if (array_grow(&p->grants, &p->cap[0], p->n + 1, sizeof *p->grants, 0) ||
        array_grow(&p->from, &p->cap[1], p->n + 1, sizeof *p->from, 0) ||
        array_grow(&p->identity_from, &p->cap[2], p->n + 1, sizeof *p->identity_from, 0))
        return err_nomem(err, "building the grants");
    p->grants[p->n] = (azid_grant){
        .kind = e->option->grant_secret ? AZID_GRANT_SECRET : AZID_GRANT_TOKEN,
        .target = e->value.text,
        .identity = id ? id->option->identity : AZID_IDENTITY_SYSTEM,
        .identity_value = id ? id->value.text : NULL,
    };
    p->from[p->n] = e;
    p->identity_from[p->n++] = id;
    return AZID_OK;
}

static azid_status targets(struct policy *p, azid_grant_kind kind, const char ***list,
                           size_t *n)
{
    if (!(*list = calloc(p->n + 1, sizeof **list)))
        return AZID_ERR_NOMEM;
    for (size_t i = 0; i < p->n; i++)
        if (p->grants[i].kind == kind)
            (*list)[(*n)++] = p->grants[i].target;
    return AZID_OK;
}

azid_status policy_build(struct policy *out, const struct conf_file *args,
                         const struct conf_file *file, const int *applies, const char *path,
                         azid_error *err)
{
    const struct conf_entry *outside = policy_outside_identity(args, file);
    const struct conf_file *sources[] = {args, file};
    azid_status st = AZID_OK;

    for (size_t s = 0; s < 2 && st == AZID_OK; s++)
        for (size_t i = 0; sources[s] && i < sources[s]->nentries && st == AZID_OK; i++) {
            const struct conf_entry *e = &sources[s]->entries[i];
            if (e->option->type != OPT_GRANT || (e->block >= 0 && !applies[e->block]))
                continue;
            const struct conf_entry *id = e->block >= 0 ? scope_identity(file, e->block) : NULL;
            st = add(out, e, id ? id : outside, path, err);
        }
    if (st == AZID_OK && (targets(out, AZID_GRANT_TOKEN, &out->resources, &out->nresources) ||
                          targets(out, AZID_GRANT_SECRET, &out->secrets, &out->nsecrets)))
        st = err_nomem(err, "building the grants");
    if (st != AZID_OK)
        policy_free(out);
    return st;
}

void policy_free(struct policy *p)
{
    free(p->grants);
    free(p->from);
    free(p->identity_from);
    free(p->resources);
    free(p->secrets);
    *p = (struct policy){0};
}
