/* SPDX-License-Identifier: MIT
 * /etc/azid.conf's grammar: `key = value` (or `key value`), `#` comment
 * lines, blank lines, and Match user|group|all lines, sshd_config style.
 * Every line is checked, applying to the user or not, so a mistake shows
 * at every login rather than only at the ones it would affect. */
#include "config.h"

#include "conf_parse.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MATCH_FORMS "Match user NAME[,NAME...], Match group NAME[,NAME...] or Match all"
#define KEY_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

struct parser {
    const char *path;
    unsigned line;
    struct conf_file *out;
    int block; /* the current Match block; -1 outside */
    /* The entry of the current scope's identity selector (-1: none), to
     * refuse a second one. */
    long outside_identity, block_identity;
    azid_error *err;
};

static azid_status parse_fail(struct parser *p, const char *fmt, ...) AZID_PRINTF(2, 3);
static azid_status parse_fail(struct parser *p, const char *fmt, ...)
{
    char what[sizeof p->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set(p->err, AZID_ERR_CONFIG, "%.200s:%u: %s", p->path, p->line, what);
}

static azid_status out_of_memory(struct parser *p)
{
    char doing[256];
    snprintf(doing, sizeof doing, "reading %.200s", p->path);
    return err_nomem(p->err, doing);
}

static char *skip_blanks(char *s)
{
    return s + strspn(s, " \t");
}

int conf_names_match(const char *names, const char *const *candidates, size_t n)
{
    for (const char *p = names; *p;) {
        size_t len = strcspn(p, ",");
        for (size_t i = 0; i < n; i++)
            if (candidates[i] && strlen(candidates[i]) == len && !memcmp(candidates[i], p, len))
                return 1;
        p += len;
        p += *p == ',';
    }
    return 0;
}

azid_status conf_add(struct conf_file *file, const struct option *option,
                     union option_value *value, unsigned line, int block)
{
    if (array_grow(&file->entries, &file->entries_cap, file->nentries + 1,
                   sizeof *file->entries, 0)) {
        option_value_free(option, value);
        return AZID_ERR_NOMEM;
    }
    file->entries[file->nentries++] = (struct conf_entry){option, *value, line, block};
    value->text = NULL;
    return AZID_OK;
}

void conf_file_free(struct conf_file *file)
{
    for (size_t i = 0; i < file->nentries; i++)
        option_value_free(file->entries[i].option, &file->entries[i].value);
    free(file->entries);
    for (size_t i = 0; i < file->nblocks; i++)
        free(file->blocks[i].text);
    free(file->blocks);
    *file = (struct conf_file){0};
}

static azid_status parse_match(struct parser *p, char *rest)
{
    static const char *const criteria[] = {[MATCH_USER] = "user", [MATCH_GROUP] = "group"};
    size_t len = strcspn(rest, " \t");
    char *names = skip_blanks(rest + len);
    if (!len)
        return parse_fail(p, "Match needs a criterion: " MATCH_FORMS);
    if (len == 3 && !strncasecmp(rest, "all", 3)) {
        if (*names)
            return parse_fail(p, "nothing may follow 'Match all', found '%.100s'", names);
        /* Ends the Match section: what follows is outside again. */
        p->block = -1;
        return AZID_OK;
    }
    int kind = -1;
    for (int i = 0; i < 2; i++)
        if (strlen(criteria[i]) == len && !strncasecmp(rest, criteria[i], len))
            kind = i;
    if (kind < 0)
        return parse_fail(p, "unknown Match criterion '%.*s'; expected " MATCH_FORMS,
                          (int)(len > 64 ? 64 : len), rest);
    const char *word = criteria[kind];
    if (!*names)
        return parse_fail(p, "'Match %s' needs names: Match %s NAME[,NAME...]", word, word);
    if (strpbrk(names, " \t"))
        return parse_fail(p, "'Match %s %.100s': separate names with commas, no spaces "
                          "(one criterion per Match line)", word, names);
    size_t n = strlen(names);
    if (names[0] == ',' || names[n - 1] == ',' || strstr(names, ",,"))
        return parse_fail(p, "'Match %s %.100s': empty name in the list", word, names);

    struct conf_file *f = p->out;
    if (array_grow(&f->blocks, &f->blocks_cap, f->nblocks + 1, sizeof *f->blocks, 0))
        return out_of_memory(p);
    struct conf_block *b = &f->blocks[f->nblocks];
    size_t size = strlen("Match  ") + strlen(word) + n + 1;
    if (!(b->text = malloc(size)))
        return out_of_memory(p);
    snprintf(b->text, size, "Match %s %s", word, names);
    b->names = b->text + strlen("Match  ") + strlen(word);
    b->line = p->line;
    b->kind = (enum match_kind)kind;
    p->block = (int)f->nblocks++;
    p->block_identity = -1;
    return AZID_OK;
}

/* At most one identity selector per scope: two would be two identities
 * for the same grants. */
static azid_status check_identity(struct parser *p, const struct option *option)
{
    long seen = p->block >= 0 ? p->block_identity : p->outside_identity;
    const struct conf_entry *e = seen >= 0 ? &p->out->entries[seen] : NULL;
    if (e && e->option != option)
        return parse_fail(p, "%s conflicts with %s at line %u; give at most one of "
                          "client_id, object_id, msi_res_id %s",
                          option->name, e->option->name, e->line,
                          p->block >= 0 ? "per Match block" : "outside Match blocks");
    return AZID_OK;
}

static azid_status parse_value(struct parser *p, const struct option *option, const char *text,
                               union option_value *v)
{
    char expect[384];
    azid_status st = option_parse(option, text, v, expect, sizeof expect);
    if (st == AZID_ERR_NOMEM)
        return out_of_memory(p);
    if (st != AZID_OK)
        return parse_fail(p, "%s = %.100s: expected %s", option->name, text, expect);
    return AZID_OK;
}

static azid_status add_value(struct parser *p, const struct option *option,
                             union option_value *v)
{
    if (conf_add(p->out, option, v, p->line, p->block) != AZID_OK)
        return out_of_memory(p);
    if (option->type == OPT_IDENTITY)
        *(p->block >= 0 ? &p->block_identity : &p->outside_identity) =
            (long)p->out->nentries - 1;
    return AZID_OK;
}

/* lockdown_allow (checked whole): one entry per name, each once. */
static azid_status add_names(struct parser *p, const struct option *option, const char *text)
{
    for (const char *name = text; *name;) {
        size_t len = strcspn(name, ",");
        int seen = 0;
        for (size_t i = 0; i < p->out->nentries && !seen; i++) {
            const struct conf_entry *e = &p->out->entries[i];
            seen = e->option == option && strlen(e->value.text) == len &&
                   !memcmp(e->value.text, name, len);
        }
        union option_value v = {.text = strndup(name, len)};
        if (!v.text || (!seen && conf_add(p->out, option, &v, p->line, p->block) != AZID_OK))
            return out_of_memory(p);
        free(v.text);
        name += len + (name[len] == ',');
    }
    return AZID_OK;
}

/* s: one line, trimmed, neither blank nor a comment. */
static azid_status parse_line(struct parser *p, char *s)
{
    size_t len = strspn(s, KEY_CHARS);
    char *rest = s + len;
    if (!len || (*rest && !strchr("= \t", *rest)))
        return parse_fail(p, "expected 'key = value', 'Match ...' or a # comment, found '%.100s'",
                          s);
    if (len == 5 && !strncasecmp(s, "match", 5))
        return parse_match(p, skip_blanks(rest));

    const struct option *option = option_find(s, len);
    if (!option) {
        char known[256];
        option_names(OPT_FILE, known, sizeof known);
        return parse_fail(p, "unknown key '%.*s'; known: %s and Match", (int)(len > 64 ? 64 : len),
                          s, known);
    }
    if (!(option->where & OPT_FILE))
        return parse_fail(p, "%s cannot be set in the config file; give it as a module or "
                          "command-line argument (%s=%s)", option->name, option->name,
                          option->syntax);
    if ((option->where & OPT_GLOBAL) && p->block >= 0)
        return parse_fail(p, "%s applies to the whole machine; move it before the first "
                          "Match line or after 'Match all'", option->name);

    rest = skip_blanks(rest);
    if (*rest == '=')
        rest = skip_blanks(rest + 1);
    if (!*rest)
        return parse_fail(p, "%s has no value; expected %s = %s", option->name, option->name,
                          option->syntax);
    if (option->type == OPT_IDENTITY && check_identity(p, option) != AZID_OK)
        return AZID_ERR_CONFIG;
    union option_value v;
    azid_status st = parse_value(p, option, rest, &v);
    if (st != AZID_OK || option->type != OPT_NAMES)
        return st != AZID_OK ? st : add_value(p, option, &v);
    option_value_free(option, &v);
    return add_names(p, option, rest);
}

/* One line into buf, checked and trimmed; NULL for a blank or comment line. */
static char *next_line(struct parser *p, const char *start, size_t n, char *buf,
                       azid_status *st)
{
    /* Files edited on Windows: CR LF ends a line as LF does. */
    if (n && start[n - 1] == '\r')
        n--;
    *st = AZID_OK;
    if (n > CONFIG_LINE_MAX) {
        *st = parse_fail(p, "line longer than %d characters", CONFIG_LINE_MAX);
        return NULL;
    }
    if (memchr(start, '\0', n)) {
        *st = parse_fail(p, "NUL byte in the line; the file must be text");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)start[i];
        if ((c < ' ' && c != '\t') || c == 0x7f) {
            *st = parse_fail(p, "control character 0x%02x in the line", c);
            return NULL;
        }
    }
    memcpy(buf, start, n);
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    char *s = skip_blanks(buf);
    return *s && *s != '#' ? s : NULL;
}

azid_status conf_parse(const char *text, size_t len, const char *path, struct conf_file *out,
                       azid_error *err)
{
    char buf[CONFIG_LINE_MAX + 1];
    struct parser p = {.path = path, .out = out, .block = -1, .outside_identity = -1,
                       .block_identity = -1, .err = err};
    azid_status st = AZID_OK;

    for (size_t pos = 0; st == AZID_OK && pos < len;) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        p.line++;
        char *s = next_line(&p, start, n, buf, &st);
        if (s)
            st = parse_line(&p, s);
    }
    if (st != AZID_OK)
        conf_file_free(out);
    return st;
}
