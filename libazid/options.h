/* SPDX-License-Identifier: MIT
 * The typed option table: every module argument and config-file key, the
 * field of struct settings it fills, its type, bounds, default and one
 * line of documentation.  Adding an option is a row in options.c and a
 * field here.  Not installed. */
#ifndef AZID_OPTIONS_H
#define AZID_OPTIONS_H

#include "azid.h"

#include <stddef.h>

/* The selected identity: kind and its ID (NULL for the system-assigned). */
struct identity {
    azid_identity_kind kind;
    const char *id;
};

/* Effective values of the single-valued options, parsed.  Strings are
 * borrowed from the entries that set them (or the table's defaults). */
struct settings {
    struct identity identity; /* client_id, object_id, msi_res_id */
    long timeout_ms;
    const char *endpoint;
    azid_source source;
    azid_keyring keyring;
    int fail_closed;
    const char *config;
    const char *ca_file;
    int debug;
    const char *broker; /* "auto", "off" or a socket path */
    long negative_cache_ms;
};

enum option_type {
    OPT_GRANT,    /* repeatable; a grant with an identity (resource, secret) */
    OPT_NAMES,    /* repeatable; comma-separated names (lockdown_allow) */
    OPT_IDENTITY, /* one of three spellings of settings.identity */
    OPT_SECONDS,  /* long milliseconds within bounds */
    OPT_CHOICE,   /* int: the index of a word */
    OPT_FLAG,     /* int 0/1: yes|no, bare as an argument */
    OPT_TEXT      /* const char *, checked by a validator */
};

/* Where an option may be given. */
#define OPT_FILE 1u   /* in the config file */
#define OPT_ARG 2u    /* as a module or command-line argument */
#define OPT_GLOBAL 4u /* in the file only outside Match blocks */

/* A value's check: NULL when good, else what a good one looks like
 * ("an absolute path"), which may be written into buf. */
typedef const char *(*option_check_fn)(const char *value, char *buf, size_t size);

struct option {
    const char *name;
    enum option_type type;
    size_t offset; /* in struct settings; not for OPT_GRANT, OPT_NAMES */
    unsigned where;
    const char *syntax;       /* as the man pages write the value ("SECONDS") */
    const char *doc;          /* one line */
    const char *default_text; /* the default as written in a file; NULL: none */
    const char *unset_means;  /* with no default: what happens when unset */
    long min_ms, max_ms;      /* OPT_SECONDS */
    const char *const *words; /* OPT_CHOICE, OPT_FLAG: NULL-terminated, in value order */
    option_check_fn check;    /* OPT_TEXT, OPT_GRANT, OPT_NAMES, OPT_IDENTITY */
    azid_identity_kind identity; /* OPT_IDENTITY */
    int grant_secret;            /* OPT_GRANT: a secret URL, not a resource */
};

/* A parsed value: ms for OPT_SECONDS, word for OPT_CHOICE and OPT_FLAG,
 * text (owned by whoever holds the value) for the others. */
union option_value {
    long ms;
    int word;
    char *text;
};

/* The table in documentation order; NULL past the end. */
const struct option *option_at(size_t index);
size_t option_count(void);
const struct option *option_find(const char *name, size_t len);
/* The index of the first option writing the same settings field (the
 * three identity selectors share one). */
size_t option_slot(const struct option *option);

/* Parses text for option into *out (text types: a copy, to free with
 * option_value_free).  AZID_OK, AZID_ERR_ARGUMENT with what is expected
 * written into expect, or AZID_ERR_NOMEM. */
azid_status option_parse(const struct option *option, const char *text,
                         union option_value *out, char *expect, size_t size);
void option_value_free(const struct option *option, union option_value *value);
/* Writes value into its field of settings. */
void option_store(const struct option *option, const union option_value *value,
                  struct settings *settings);
/* The value of option's field in settings as a file would write it. */
void option_format(const struct option *option, const struct settings *settings, char *buf,
                   size_t size);
/* The table's defaults. */
void settings_defaults(struct settings *settings);
/* (config.c) The effective settings of a configuration, for libazid's own
 * readers: a new option needs a row and a field, nothing else. */
const struct settings *config_settings(const azid_config *config);

/* "resource, secret, ..." of the options given where (OPT_FILE, OPT_ARG). */
void option_names(unsigned where, char *buf, size_t size);

/* The one seconds parser: decimal seconds ("5", "2.5"), at most three
 * decimals counted (any further non-zero digit rounds up), into
 * milliseconds within [min_ms, max_ms]; -1 when malformed or out of
 * range. */
long seconds_parse(const char *text, long min_ms, long max_ms);

#endif
