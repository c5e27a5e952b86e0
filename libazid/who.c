/* SPDX-License-Identifier: MIT
 * The user database lookups behind Match group. */
#include "config.h"

#include "who.h"

#include "internal.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The getpwnam_r/getgrgid_r buffer: grown on ERANGE up to 1 MiB. */
static int grow(char **buf, size_t *size)
{
    if (*size >= 1024 * 1024)
        return -1;
    char *bigger = realloc(*buf, *size * 2);
    if (!bigger)
        return -1;
    *buf = bigger;
    *size *= 2;
    return 0;
}

/* The user's primary and supplementary gids (*n of them); NULL when out
 * of memory. */
static gid_t *group_ids(const char *user, gid_t primary, int *n)
{
    gid_t *gids = NULL;
    for (*n = 32;;) {
        int want = *n;
        gid_t *more = realloc(gids, (size_t)*n * sizeof *gids);
        if (!more)
            break;
        gids = more;
        if (getgrouplist(user, primary, gids, &want) >= 0) {
            *n = want;
            return gids;
        }
        *n = want > *n && want <= 65536 ? want : *n * 2;
        if (*n > 65536)
            break;
    }
    free(gids);
    return NULL;
}

azid_status who_lookup_groups(struct who *who, azid_error *err)
{
    char errbuf[128], doing[160];
    size_t size = 4096;
    char *buf = malloc(size);
    struct passwd pw, *pwp = NULL;
    int rc = ENOMEM;

    who->groups_known = 1;
    snprintf(doing, sizeof doing, "looking up the groups of %.100s", who->user);
    while (buf && (rc = getpwnam_r(who->user, &pw, buf, size, &pwp)) == ERANGE)
        if (grow(&buf, &size))
            break;
    if (!buf || rc == ERANGE) {
        free(buf);
        return err_nomem(err, doing);
    }
    if (rc) {
        free(buf);
        return err_set(err, AZID_ERR_SYSTEM,
                       "cannot look up user %.100s for Match group: %s; check nsswitch.conf",
                       who->user, strerror_r(rc, errbuf, sizeof errbuf));
    }
    if (!pwp) {
        free(buf);
        who->user_unknown = 1;
        return AZID_OK;
    }

    int n;
    gid_t *gids = group_ids(who->user, pw.pw_gid, &n);
    if (!gids)
        goto nomem;
    who->owned = calloc((size_t)n, sizeof *who->owned);
    if (!who->owned)
        goto nomem;
    for (int i = 0; i < n; i++) {
        struct group gr, *grp = NULL;
        while ((rc = getgrgid_r(gids[i], &gr, buf, size, &grp)) == ERANGE)
            if (grow(&buf, &size))
                goto nomem;
        /* A gid without a name cannot appear in a Match group line. */
        if (!rc && grp && !(who->owned[who->ngroups++] = strdup(grp->gr_name)))
            goto nomem;
    }
    who->groups = (const char *const *)who->owned;
    free(gids);
    free(buf);
    return AZID_OK;

nomem:
    free(gids);
    free(buf);
    return err_nomem(err, doing);
}

void who_free(struct who *who)
{
    for (size_t i = 0; who->owned && i < who->ngroups; i++)
        free(who->owned[i]);
    free(who->owned);
    who->owned = NULL;
}
