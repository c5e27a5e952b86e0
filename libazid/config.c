/* SPDX-License-Identifier: MIT
 *
 * The configuration object: module arguments and /etc/azid.conf, kept as
 * three levels so that the order in which callers apply arguments and load
 * the file does not matter.  A single-valued setting's effective value is
 * the first level that sets it: an argument, else the last Match block
 * that applies to the user and sets it, else a line outside Match blocks,
 * else the table's default (azid.conf(5) PRECEDENCE).  Grants accumulate,
 * each with its own identity (policy.c).  Every effective value remembers
 * the line that set it, for the debug dump's "from file:line".
 */
#include "config.h"

#include "conf_parse.h"
#include "internal.h"
#include "options.h"
#include "policy.h"
#include "who.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum file_state { FILE_NOT_READ, FILE_ABSENT, FILE_READ, FILE_REFUSED };

struct azid_config {
    struct conf_file args; /* line 0, outside Match */
    struct conf_file file;
    int *applies; /* per file block */
    enum file_state file_state;
    char *file_path;
    char *file_user;
    int user_unknown;
    char file_error[sizeof ((azid_error *)0)->message];
    /* Derived from the above by derive(); an argument of a plain setting
     * sets its own slot (azid_config_apply_arg). */
    int derive_failed;
    struct settings eff;
    const struct conf_entry **eff_from; /* per option slot; NULL: the default */
    struct policy policy;
    const char **lockdown; /* NULL-terminated */
    size_t nlockdown;
};

/* ---- the effective settings ------------------------------------------------------- */

static void set_from(azid_config *cfg, const struct conf_entry *e)
{
    option_store(e->option, &e->value, &cfg->eff);
    cfg->eff_from[option_slot(e->option)] = e;
}

/* Recomputes eff, the grants and the lockdown list.  On error (a grant
 * conflict, out of memory) the grants are empty: nothing is granted,
 * never something stale. */
static azid_status derive(azid_config *cfg, azid_error *err)
{
    settings_defaults(&cfg->eff);
    memset(cfg->eff_from, 0, option_count() * sizeof *cfg->eff_from);
    /* Lowest level first (outside Match, Match blocks, arguments), so that
     * each higher one overwrites. */
    for (int level = 0; level < 3; level++) {
        const struct conf_file *f = level == 2 ? &cfg->args : &cfg->file;
        for (size_t i = 0; i < f->nentries; i++) {
            const struct conf_entry *e = &f->entries[i];
            enum option_type t = e->option->type;
            if (t == OPT_GRANT || t == OPT_NAMES || (e->block >= 0) != (level == 1))
                continue;
            /* A block's identity binds that block's grants only (policy.c). */
            if (e->block >= 0 && (t == OPT_IDENTITY || !cfg->applies[e->block]))
                continue;
            set_from(cfg, e);
        }
    }

    free(cfg->lockdown);
    cfg->nlockdown = 0;
    cfg->lockdown = calloc(cfg->file.nentries + 1, sizeof *cfg->lockdown);
    for (size_t i = 0; cfg->lockdown && i < cfg->file.nentries; i++)
        if (cfg->file.entries[i].option->type == OPT_NAMES)
            cfg->lockdown[cfg->nlockdown++] = cfg->file.entries[i].value.text;

    policy_free(&cfg->policy);
    azid_status st = policy_build(&cfg->policy, &cfg->args, &cfg->file, cfg->applies,
                                  cfg->file_path ? cfg->file_path : "(arguments)", err);
    if (st == AZID_OK && !cfg->lockdown)
        st = err_nomem(err, "reading the configuration");
    cfg->derive_failed = st != AZID_OK;
    return st;
}

azid_config *azid_config_new(void)
{
    azid_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->eff_from = calloc(option_count(), sizeof *cfg->eff_from)) ||
        derive(cfg, NULL) != AZID_OK) {
        azid_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void file_clear(azid_config *cfg)
{
    conf_file_free(&cfg->file);
    free(cfg->applies);
    cfg->applies = NULL;
}

void azid_config_free(azid_config *cfg)
{
    if (!cfg)
        return;
    conf_file_free(&cfg->args);
    file_clear(cfg);
    policy_free(&cfg->policy);
    free(cfg->eff_from);
    free(cfg->lockdown);
    free(cfg->file_path);
    free(cfg->file_user);
    free(cfg);
}

/* ---- arguments ----------------------------------------------------------------------- */

/* Two identity selectors among the arguments would be two identities for
 * the same grants. */
static int identity_conflict(const azid_config *cfg, const struct option *option,
                             const char *value, azid_error *err)
{
    const struct conf_entry *seen = policy_outside_identity(&cfg->args, NULL);
    if (!seen || seen->option == option)
        return 0;
    err_set(err, AZID_ERR_ARGUMENT,
            "%s=%.100s: conflicts with %s=%.100s given earlier; give at most one of client_id, "
            "object_id, msi_res_id",
            option->name, value, seen->option->name, seen->value.text);
    return 1;
}

azid_status azid_config_apply_arg(azid_config *cfg, const char *arg, azid_error *err)
{
    if (!cfg || !arg)
        return err_set(err, AZID_ERR_ARGUMENT, "no argument given");
    size_t len = strlen(arg);
    if (len > CONFIG_LINE_MAX)
        return err_set(err, AZID_ERR_ARGUMENT, "argument '%.60s...' is longer than %d characters",
                       arg, CONFIG_LINE_MAX);

    const char *eq = strchr(arg, '=');
    const struct option *option = option_find(arg, eq ? (size_t)(eq - arg) : len);
    if (!option) {
        char known[256];
        option_names(OPT_ARG, known, sizeof known);
        return err_set(err, AZID_ERR_ARGUMENT, "unknown argument '%.100s'; known: %s", arg,
                       known);
    }
    if (!(option->where & OPT_ARG))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "argument '%.100s': %s can be set only in the config file (%s = %s)", arg,
                       option->name, option->name, option->syntax);
    const char *value = eq ? eq + 1 : NULL;
    if (!value && option->type != OPT_FLAG)
        return err_set(err, AZID_ERR_ARGUMENT, "argument '%s' needs a value: %s=%s", arg,
                       option->name, option->syntax);

    char expect[384];
    union option_value v;
    azid_status st = option_parse(option, value ? value : "yes", &v, expect, sizeof expect);
    if (st == AZID_ERR_ARGUMENT)
        return err_set(err, AZID_ERR_ARGUMENT, "%s=%.100s: expected %s", option->name, value,
                       expect);
    if (st != AZID_OK)
        return err_nomem(err, "applying an argument");
    if (option->type == OPT_IDENTITY && identity_conflict(cfg, option, value, err)) {
        option_value_free(option, &v);
        return AZID_ERR_ARGUMENT;
    }
    const struct conf_entry *before = cfg->args.entries;
    if (conf_add(&cfg->args, option, &v, 0, -1) != AZID_OK)
        return err_nomem(err, "applying an argument");
    /* pam_azid applies every argument at every session.  A plain setting,
     * the last argument, changes its own slot only: the grants and the
     * lockdown list come from grant, identity and name entries.  Unless the
     * entries moved as the array grew (nothing pointed into an empty one),
     * leaving eff_from and the grants pointing at the old ones, or the last
     * derive failed and left nothing granted, which a new one may mend. */
    enum option_type t = option->type;
    if (t != OPT_GRANT && t != OPT_IDENTITY && t != OPT_NAMES && !cfg->derive_failed &&
        (!before || before == cfg->args.entries)) {
        set_from(cfg, &cfg->args.entries[cfg->args.nentries - 1]);
        return AZID_OK;
    }
    st = derive(cfg, err);
    if (st != AZID_OK) {
        /* Nothing of a refused argument applies. */
        cfg->args.nentries--;
        option_value_free(option, &cfg->args.entries[cfg->args.nentries].value);
        derive(cfg, NULL);
    }
    return st;
}

/* ---- the file -------------------------------------------------------------------------- */

/* Which blocks apply to who (group lookup only when a Match group needs it). */
static azid_status evaluate_blocks(const struct conf_file *file, struct who *who, int *applies,
                                   azid_error *err)
{
    for (size_t b = 0; b < file->nblocks; b++) {
        const struct conf_block *block = &file->blocks[b];
        applies[b] = 0;
        if (!who->user)
            continue;
        if (block->kind == MATCH_USER) {
            applies[b] = conf_names_match(block->names, &who->user, 1);
            continue;
        }
        if (!who->groups_known) {
            azid_status st = who_lookup_groups(who, err);
            if (st != AZID_OK)
                return st;
        }
        applies[b] = conf_names_match(block->names, who->groups, who->ngroups);
    }
    return AZID_OK;
}

/* Replaces the file level with *file (NULL: none), and records how the read
 * went, for the dump. */
static azid_status file_install(azid_config *cfg, struct conf_file *file, int *applies,
                                enum file_state state, const char *path, const struct who *who,
                                azid_error *err)
{
    file_clear(cfg);
    if (file) {
        cfg->file = *file;
        cfg->applies = applies;
    }
    cfg->file_state = state;
    free(cfg->file_path);
    free(cfg->file_user);
    cfg->file_path = strdup(path);
    cfg->file_user = who->user ? strdup(who->user) : NULL;
    cfg->user_unknown = who->user_unknown;
    snprintf(cfg->file_error, sizeof cfg->file_error, "%s", state == FILE_REFUSED ? err->message : "");
    if (!cfg->file_path || (who->user && !cfg->file_user))
        return err_nomem(err, "reading the configuration");
    return derive(cfg, err);
}

static azid_status file_apply(azid_config *cfg, const char *text, size_t len, const char *path,
                              struct who *who, azid_error *err)
{
    struct conf_file file = {0};
    azid_status st = conf_parse(text, len, path, &file, err);
    int *applies = NULL;
    if (st == AZID_OK && !(applies = calloc(file.nblocks + 1, sizeof *applies)))
        st = err_nomem(err, "reading the configuration");
    if (st == AZID_OK)
        st = evaluate_blocks(&file, who, applies, err);
    if (st == AZID_OK)
        st = file_install(cfg, &file, applies, FILE_READ, path, who, err);
    else {
        conf_file_free(&file);
        free(applies);
    }
    /* On error nothing of the file applies. */
    if (st != AZID_OK)
        file_install(cfg, NULL, NULL, FILE_REFUSED, path, who, err);
    return st;
}

azid_status config_apply_text(azid_config *cfg, const char *text, size_t len, const char *path,
                              const char *user, const char *const *groups, size_t ngroups,
                              azid_error *err)
{
    struct who who = {.user = user, .groups = groups, .ngroups = ngroups, .groups_known = 1};
    azid_error local;
    err_clear(&local);
    azid_status st = file_apply(cfg, text, len, path ? path : "(text)", &who, &local);
    if (err)
        *err = local;
    return st;
}

/* Reads path as sshd's StrictModes would accept it.  *text NULL: no file. */
static azid_status file_read(const char *path, char **text, size_t *len, azid_error *err)
{
    struct stat st = {0};
    azid_status status =
        file_read_small(path, "config file", CONFIG_FILE_MAX, FILE_EMPTY_OK, text, len, &st, err);
    int e = errno;
    if (status == AZID_ERR_SYSTEM && e == ENOENT) {
        err_clear(err);
        return AZID_OK;
    }
    if (status == AZID_ERR_SYSTEM && e == ELOOP)
        return err_set(err, AZID_ERR_CONFIG,
                       "%.200s: refusing a symbolic link; point config= at the file itself", path);
    if (status == AZID_ERR_ARGUMENT && !S_ISREG(st.st_mode))
        return err_set(err, AZID_ERR_CONFIG, "%.200s: not a regular file", path);
    if (status == AZID_ERR_ARGUMENT)
        return err_set(err, AZID_ERR_CONFIG, "%.200s: larger than %d KiB", path,
                       CONFIG_FILE_MAX / 1024);
    if (status == AZID_ERR_SYSTEM) {
        err->status = AZID_ERR_CONFIG; /* the helper's message names file and cause */
        return AZID_ERR_CONFIG;
    }
    if (status != AZID_OK)
        return status;
    if (st.st_uid != 0)
        status = err_set(err, AZID_ERR_CONFIG,
                         "%.200s: owned by uid %lu, not root; run: chown root %.200s", path,
                         (unsigned long)st.st_uid, path);
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        status = err_set(err, AZID_ERR_CONFIG,
                         "%.200s: writable by group or others (mode %04o); run: chmod go-w %.200s",
                         path, (unsigned)(st.st_mode & 07777), path);
    if (status != AZID_OK) {
        free(*text);
        *text = NULL;
    }
    return status;
}

azid_status azid_config_load(azid_config *cfg, const char *user, azid_error *err)
{
    if (!cfg)
        return err_set(err, AZID_ERR_ARGUMENT, "no configuration given");
    const char *path = cfg->eff.config;
    struct who who = {.user = user};
    azid_error local;
    char *text = NULL;
    size_t len = 0;

    err_clear(&local);
    azid_status st = file_read(path, &text, &len, &local);
    if (st == AZID_OK && text)
        st = file_apply(cfg, text, len, path, &who, &local);
    else if (st == AZID_OK)
        st = file_install(cfg, NULL, NULL, FILE_ABSENT, path, &who, &local);
    else
        file_install(cfg, NULL, NULL, FILE_REFUSED, path, &who, &local);
    free(text);
    who_free(&who);
    if (err)
        *err = local;
    return st;
}

/* ---- typed accessors ----------------------------------------------------------------- */

const struct settings *config_settings(const azid_config *cfg)
{
    return &cfg->eff;
}

/* The settings of cfg, or the defaults for a NULL configuration. */
static struct settings settings_of(const azid_config *cfg)
{
    struct settings defaults;
    if (cfg)
        return cfg->eff;
    settings_defaults(&defaults);
    return defaults;
}

long azid_config_timeout_ms(const azid_config *cfg)
{
    return settings_of(cfg).timeout_ms;
}

azid_keyring azid_config_keyring(const azid_config *cfg)
{
    return settings_of(cfg).keyring;
}

int azid_config_fail_closed(const azid_config *cfg)
{
    return settings_of(cfg).fail_closed;
}

int azid_config_debug(const azid_config *cfg)
{
    return settings_of(cfg).debug;
}

azid_source azid_config_source(const azid_config *cfg)
{
    return settings_of(cfg).source;
}

const char *azid_config_endpoint(const azid_config *cfg)
{
    return cfg ? cfg->eff.endpoint : NULL;
}

const char *azid_config_ca_file(const azid_config *cfg)
{
    return cfg ? cfg->eff.ca_file : NULL;
}

const char *azid_config_path(const azid_config *cfg)
{
    return settings_of(cfg).config;
}

azid_identity_kind azid_config_identity(const azid_config *cfg, const char **value)
{
    struct identity id = cfg ? cfg->eff.identity : (struct identity){AZID_IDENTITY_SYSTEM, NULL};
    if (value)
        *value = id.id;
    return id.kind;
}

long azid_config_negative_cache_ms(const azid_config *cfg)
{
    return settings_of(cfg).negative_cache_ms;
}

azid_broker_mode azid_config_broker(const azid_config *cfg, const char **socket_path)
{
    const char *value = settings_of(cfg).broker;
    azid_broker_mode mode = !strcmp(value, "off")    ? AZID_BROKER_OFF
                            : !strcmp(value, "auto") ? AZID_BROKER_AUTO
                                                     : AZID_BROKER_PATH;
    if (socket_path)
        *socket_path = mode == AZID_BROKER_OFF    ? NULL
                       : mode == AZID_BROKER_AUTO ? AZID_BROKER_SOCKET
                                                  : value;
    return mode;
}

static size_t list_of(const char **names, size_t n, const char *const **list)
{
    static const char *const none[] = {NULL};
    if (list)
        *list = names ? names : none;
    return names ? n : 0;
}

size_t azid_config_resources(const azid_config *cfg, const char *const **list)
{
    return list_of(cfg ? cfg->policy.resources : NULL, cfg ? cfg->policy.nresources : 0, list);
}

size_t azid_config_secrets(const azid_config *cfg, const char *const **list)
{
    return list_of(cfg ? cfg->policy.secrets : NULL, cfg ? cfg->policy.nsecrets : 0, list);
}

size_t azid_config_lockdown_allow(const azid_config *cfg, const char *const **list)
{
    return list_of(cfg ? cfg->lockdown : NULL, cfg ? cfg->nlockdown : 0, list);
}

size_t azid_config_grants(const azid_config *cfg, const azid_grant **grants)
{
    if (grants)
        *grants = cfg ? cfg->policy.grants : NULL;
    return cfg ? cfg->policy.n : 0;
}

int azid_config_grants_anyone(const azid_config *cfg)
{
    const struct conf_file *files[] = {cfg ? &cfg->args : NULL, cfg ? &cfg->file : NULL};
    for (size_t f = 0; f < 2; f++)
        for (size_t i = 0; files[f] && i < files[f]->nentries; i++)
            if (files[f]->entries[i].option->type == OPT_GRANT)
                return 1;
    return 0;
}

azid_status azid_config_levels(const azid_config *cfg,
                               void (*visit)(const azid_grant_level *level, void *ctx),
                               void *ctx, azid_error *err)
{
    if (!cfg)
        return err_set(err, AZID_ERR_ARGUMENT, "no configuration given");
    size_t nblocks = cfg->file.nblocks;
    int *applies = calloc(nblocks ? nblocks : 1, sizeof *applies);
    azid_grant *own = calloc(cfg->policy.n + 1, sizeof *own);
    azid_status st = applies && own ? AZID_OK : err_nomem(err, "listing the grants");
    /* Level -1: the arguments and the lines outside Match; then each block
     * alone.  The policy's own rules give each grant its identity, so a
     * block without a selector shows the one from outside. */
    for (long b = -1; st == AZID_OK && b < (long)nblocks; b++) {
        struct policy p = {0};
        if (b >= 0)
            applies[b] = 1;
        st = policy_build(&p, &cfg->args, &cfg->file, applies,
                          cfg->file_path ? cfg->file_path : "(arguments)", err);
        if (b >= 0)
            applies[b] = 0;
        azid_grant *kept = st == AZID_OK ? realloc(own, (p.n + 1) * sizeof *own) : own;
        if (st == AZID_OK && !kept)
            st = err_nomem(err, "listing the grants");
        own = kept;
        size_t n = 0;
        for (size_t i = 0; st == AZID_OK && i < p.n; i++)
            if (p.from[i]->block == (int)b)
                own[n++] = p.grants[i];
        azid_grant_level level = {
            .match = b >= 0 ? cfg->file.blocks[b].text : NULL,
            .line = b >= 0 ? cfg->file.blocks[b].line : 0,
            .grants = own,
            .ngrants = n,
        };
        if (st == AZID_OK)
            visit(&level, ctx);
        policy_free(&p);
    }
    free(own);
    free(applies);
    return st;
}

/* ---- the dump ----------------------------------------------------------------------------- */

typedef void (*emit_fn)(const char *line, void *ctx);

static void emitf(emit_fn emit, void *ctx, const char *fmt, ...) AZID_PRINTF(3, 4);
static void emitf(emit_fn emit, void *ctx, const char *fmt, ...)
{
    char *line;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        emit(line, ctx);
        free(line);
    }
}

/* "argument", "/etc/azid.conf:12" or "/etc/azid.conf:12, Match group dba". */
static void origin(const azid_config *cfg, const struct conf_entry *e, char *buf, size_t size)
{
    if (!e->line)
        snprintf(buf, size, "argument");
    else if (e->block < 0)
        snprintf(buf, size, "%s:%u", cfg->file_path, e->line);
    else
        snprintf(buf, size, "%s:%u, %s", cfg->file_path, e->line, cfg->file.blocks[e->block].text);
}

static void dump_file(const azid_config *cfg, emit_fn emit, void *ctx)
{
    const char *path = cfg->file_path ? cfg->file_path : cfg->eff.config;
    switch (cfg->file_state) {
    case FILE_NOT_READ:
        emitf(emit, ctx, "config file %s: not read", path);
        return;
    case FILE_ABSENT:
        emitf(emit, ctx, "config file %s: not present", path);
        return;
    case FILE_REFUSED:
        emitf(emit, ctx, "config file %s: refused, nothing of it applies: %s", path,
              cfg->file_error);
        return;
    case FILE_READ:
        break;
    }
    if (cfg->file_user)
        emitf(emit, ctx, "config file %s: read for user %s", path, cfg->file_user);
    else
        emitf(emit, ctx, "config file %s: read without a user, no Match block applies", path);
    if (cfg->user_unknown)
        emitf(emit, ctx, "user %s: not in the user database, so no Match group block applies",
              cfg->file_user);
    for (size_t i = 0; i < cfg->file.nblocks; i++)
        emitf(emit, ctx, "%s (line %u): %s", cfg->file.blocks[i].text, cfg->file.blocks[i].line,
              cfg->applies[i] ? "applies" : "does not apply");
}

/* A grant line names its identity when it is not the one outside Match. */
static void dump_grants(const azid_config *cfg, const struct option *option, emit_fn emit,
                        void *ctx)
{
    const struct policy *p = &cfg->policy;
    const struct conf_entry *outside = policy_outside_identity(&cfg->args, &cfg->file);
    size_t shown = 0;
    char from[1024];
    for (size_t i = 0; i < p->n; i++) {
        if (p->from[i]->option != option)
            continue;
        origin(cfg, p->from[i], from, sizeof from);
        const struct conf_entry *id = p->identity_from[i];
        if (id == outside)
            emitf(emit, ctx, "%s=%s (%s)", option->name, p->grants[i].target, from);
        else
            emitf(emit, ctx, "%s=%s (%s) with %s=%s (line %u)", option->name, p->grants[i].target,
                  from, id->option->name, id->value.text, id->line);
        shown++;
    }
    if (!shown)
        emitf(emit, ctx, "%s: %s", option->name, option->unset_means);
}

static void dump_names(const azid_config *cfg, const struct option *option, emit_fn emit,
                       void *ctx)
{
    char from[1024];
    for (size_t i = 0; i < cfg->file.nentries; i++) {
        const struct conf_entry *e = &cfg->file.entries[i];
        if (e->option != option)
            continue;
        origin(cfg, e, from, sizeof from);
        emitf(emit, ctx, "%s=%s (%s)", option->name, e->value.text, from);
    }
    if (!cfg->nlockdown)
        emitf(emit, ctx, "%s: %s", option->name, option->unset_means);
}

static void dump_setting(const azid_config *cfg, const struct option *option, emit_fn emit,
                         void *ctx)
{
    const struct conf_entry *e = cfg->eff_from[option_slot(option)];
    char value[1024], from[1024];
    if (e) {
        option_format(e->option, &cfg->eff, value, sizeof value);
        origin(cfg, e, from, sizeof from);
        emitf(emit, ctx, "%s=%s (%s)", e->option->name, value, from);
    } else if (option->default_text) {
        option_format(option, &cfg->eff, value, sizeof value);
        emitf(emit, ctx, "%s=%s (default)", option->name, value);
    } else if (option->type == OPT_IDENTITY) {
        emitf(emit, ctx, "identity: %s (default)", option->unset_means);
    } else {
        emitf(emit, ctx, "%s: not set, %s", option->name, option->unset_means);
    }
}

void azid_config_dump(const azid_config *cfg, void (*emit)(const char *line, void *ctx),
                      void *ctx)
{
    if (!cfg || !emit)
        return;
    dump_file(cfg, emit, ctx);
    for (size_t i = 0; i < option_count(); i++) {
        const struct option *option = option_at(i);
        if (option->type == OPT_GRANT)
            dump_grants(cfg, option, emit, ctx);
        else if (option->type == OPT_NAMES)
            dump_names(cfg, option, emit, ctx);
        else if (option_slot(option) == i)
            dump_setting(cfg, option, emit, ctx);
    }
}
