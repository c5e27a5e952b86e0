/* SPDX-License-Identifier: MIT
 * Who gets what: from the module arguments and the config file's entries
 * (with the Match blocks that apply to the user), the grants, each with the
 * identity to fetch it with.  Pure.  Not installed. */
#ifndef AZID_POLICY_H
#define AZID_POLICY_H

#include "azid.h"
#include "conf_parse.h"

#include <stddef.h>

struct policy {
    azid_grant *grants;
    const struct conf_entry **from;          /* per grant: the line (or argument) */
    const struct conf_entry **identity_from; /* per grant: its identity's; NULL: system */
    size_t n, cap[3];
    const char **resources, **secrets; /* the grants' targets, NULL-terminated */
    size_t nresources, nsecrets;
};

/* The identity rule: a selector inside a Match block binds what that block
 * grants; the arguments' selector, else the one outside Match blocks,
 * binds everything else (and the blocks that name none).  A target granted
 * twice with one identity is kept once; with two identities it is
 * AZID_ERR_CONFIG naming both lines (path in the message).  applies[b]:
 * whether file block b applies to the user.  *out must be empty; it stays
 * empty on error. */
azid_status policy_build(struct policy *out, const struct conf_file *args,
                         const struct conf_file *file, const int *applies, const char *path,
                         azid_error *err);
void policy_free(struct policy *policy);

/* The identity the entries outside Match blocks get (arguments first). */
const struct conf_entry *policy_outside_identity(const struct conf_file *args,
                                                 const struct conf_file *file);

#endif
