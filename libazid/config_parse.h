/* SPDX-License-Identifier: MIT
 * The option table and the pure parts of the configuration: what unit
 * tests, the fuzzer and other libazid files need.  Not installed. */
#ifndef AZID_CONFIG_PARSE_H
#define AZID_CONFIG_PARSE_H

#include "azid.h"

#include <stddef.h>

/* A config file larger than this is refused, as is a longer line or value. */
#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_LINE_MAX 4096
/* Bounds of timeout=, in milliseconds. */
#define CONFIG_TIMEOUT_MAX_MS 300000
/* Bounds of negative_cache=, in milliseconds (0 turns it off). */
#define CONFIG_NEGATIVE_CACHE_MAX_MS 3600000

typedef enum config_type {
    CONFIG_LIST,    /* repeatable; every value is kept (resource, secret) */
    CONFIG_STRING,  /* one word of printable ASCII (identity selectors) */
    CONFIG_URI,     /* scheme://host[:port] */
    CONFIG_ENUM,    /* one of the words in choices */
    CONFIG_SECONDS, /* decimal seconds */
    CONFIG_FLAG,    /* bare as an argument; yes|no */
    CONFIG_PATH     /* absolute path */
} config_type;

typedef struct config_option config_option;

/* Returns 0 when value is valid; otherwise writes what a valid value looks
 * like ("seconds, e.g. 5 or 2.5 ...") into expect. */
typedef int (*config_check_fn)(const config_option *option, const char *value, char *expect,
                               size_t expect_size);

struct config_option {
    const char *name;
    config_type type;
    int in_file;               /* the config file may set it */
    const char *default_value; /* effective value when nothing sets it; NULL: none */
    const char *unset_means;   /* with no default: what happens when unset */
    const char *syntax;        /* the value as the man pages write it ("SECONDS") */
    const char *description;   /* one line */
    config_check_fn check;
    const char *const *choices; /* CONFIG_ENUM: accepted words in enum order, NULL-ended */
    int slot;                   /* where config.c keeps it */
    azid_identity_kind identity; /* identity selectors: which kind */
    int file_only;               /* not a module or command-line argument */
};

/* The option table in documentation order; NULL past the end. */
const config_option *config_option_at(size_t index);

/* A Key Vault secret URL taken apart:
 * https://<vault>.<suffix>/secrets/<name>[/<version>], <suffix> one of
 * vault.azure.net, vault.azure.cn, vault.usgovcloudapi.net,
 * vault.microsoftazure.de, managedhsm.azure.net. */
typedef struct secret_url {
    char vault_host[254]; /* lower-case, e.g. "myvault.vault.azure.net" */
    char name[128];       /* [0-9A-Za-z-]+ */
    char version[65];     /* [0-9A-Za-z]*, "" for the latest */
} secret_url;

/* AZID_ERR_ARGUMENT naming the URL and what is wrong with it. */
azid_status secret_url_parse(const char *url, secret_url *out, azid_error *err);

/* The file parser without any I/O: applies config text as
 * azid_config_load does for a file at path (used in messages only), for
 * user (NULL: no Match block applies) whose groups, primary and
 * supplementary, are groups[0..ngroups).  text need not be NUL-terminated.
 * On error nothing of the text applies. */
azid_status config_apply_text(azid_config *config, const char *text, size_t len,
                              const char *path, const char *user,
                              const char *const *groups, size_t ngroups, azid_error *err);

/* Effective settings in the types azid_config_new_client needs. */
azid_source config_source(const azid_config *config);
/* The identity kind; *value is its ID (NULL for the system-assigned one). */
azid_identity_kind config_identity(const azid_config *config, const char **value);

#endif
