/* SPDX-License-Identifier: MIT
 * The pure config-file parser: text in, parsed entries and Match blocks
 * out, no I/O and no user lookup (config.c decides which blocks apply).
 * Unit tests and the fuzzer call it directly.  Not installed. */
#ifndef AZID_CONF_PARSE_H
#define AZID_CONF_PARSE_H

#include "azid.h"
#include "options.h"

#include <stddef.h>

/* A config file larger than this is refused, as is a longer line or value. */
#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_LINE_MAX 4096

/* One key = value, parsed; lockdown_allow gives one entry per name. */
struct conf_entry {
    const struct option *option;
    union option_value value;
    unsigned line; /* 0 for an argument */
    int block;     /* index into conf_file.blocks; -1 outside Match */
};

enum match_kind { MATCH_USER, MATCH_GROUP };

struct conf_block {
    unsigned line;
    enum match_kind kind;
    char *text;        /* "Match group dba,web" */
    const char *names; /* "dba,web", inside text */
};

/* Entries in file order.  Also holds the module arguments (line 0). */
struct conf_file {
    struct conf_entry *entries;
    size_t nentries, entries_cap;
    struct conf_block *blocks;
    size_t nblocks, blocks_cap;
};

/* Parses text (need not be NUL-terminated) of the file at path (named in
 * messages as "path:line: ...") into *out, which must be empty.  On error
 * (AZID_ERR_CONFIG, AZID_ERR_NOMEM) *out is left empty. */
azid_status conf_parse(const char *text, size_t len, const char *path, struct conf_file *out,
                       azid_error *err);
/* Appends an entry, taking value over (freed here when out of memory). */
azid_status conf_add(struct conf_file *file, const struct option *option,
                     union option_value *value, unsigned line, int block);
void conf_file_free(struct conf_file *file);

/* Whether one of the comma-separated names equals one of candidates[0..n). */
int conf_names_match(const char *names, const char *const *candidates, size_t n);

/* (config.c) The file level without any I/O: applies config text as
 * azid_config_load does for a file at path (used in messages only), for
 * user (NULL: no Match block applies) whose groups, primary and
 * supplementary, are groups[0..ngroups).  On error nothing of the text
 * applies. */
azid_status config_apply_text(azid_config *config, const char *text, size_t len,
                              const char *path, const char *user,
                              const char *const *groups, size_t ngroups, azid_error *err);

#endif
