/* SPDX-License-Identifier: MIT
 * Whom the config file's Match blocks are evaluated for: a user name and,
 * looked up only when a Match group line needs them, the user's groups.
 * Not installed. */
#ifndef AZID_WHO_H
#define AZID_WHO_H

#include "azid.h"

#include <stddef.h>

struct who {
    const char *user; /* NULL: no Match block applies */
    const char *const *groups;
    size_t ngroups;
    int groups_known;
    int user_unknown; /* not in the user database: no Match group applies */
    char **owned;     /* group names looked up by who_lookup_groups */
};

/* Fills groups with the names of user's primary and supplementary groups
 * from the user database (NSS). */
azid_status who_lookup_groups(struct who *who, azid_error *err);
void who_free(struct who *who);

#endif
