/* SPDX-License-Identifier: MIT
 * azid doctor: is pam_keyinit listed before pam_azid in every PAM stack? */
#include "config.h"

#include "doctor.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum module { MODULE_OTHER, MODULE_AZID, MODULE_KEYINIT };

/* libpam's limit on nested includes (PAM_SUBSTACK_MAX_LEVEL); it also
 * ends a file that includes itself. */
#define INCLUDE_DEPTH_MAX 16

/* One session line of a stack, includes resolved. */
struct session_line {
    char where[300]; /* "file:line" */
    enum module module;
    int force; /* pam_keyinit's "force" argument */
};

struct stack {
    struct session_line *lines;
    size_t count, capacity;
};

struct names {
    char **items;
    size_t count, capacity;
};

static int names_add(struct names *n, const char *name)
{
    if (n->count == n->capacity) {
        size_t capacity = n->capacity ? 2 * n->capacity : 8;
        char **items = realloc(n->items, capacity * sizeof *items);
        if (!items)
            return -1;
        n->items = items;
        n->capacity = capacity;
    }
    if (!(n->items[n->count] = strdup(name)))
        return -1;
    n->count++;
    return 0;
}

static int names_has(const struct names *n, const char *name)
{
    for (size_t i = 0; i < n->count; i++)
        if (strcmp(n->items[i], name) == 0)
            return 1;
    return 0;
}

static void names_free(struct names *n)
{
    for (size_t i = 0; i < n->count; i++)
        free(n->items[i]);
    free(n->items);
}

/* The next whitespace-separated field; a field starting with '[' runs to
 * its ']' and may hold spaces (PAM's control and argument syntax). */
static char *next_field(char **cursor)
{
    char *p = *cursor;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return NULL;
    char *start = p;
    if (*p == '[') {
        char *close = strchr(p, ']');
        p = close ? close + 1 : p + strlen(p);
    }
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    *cursor = p;
    return start;
}

static enum module module_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "pam_azid.so") == 0)
        return MODULE_AZID;
    if (strcmp(base, "pam_keyinit.so") == 0)
        return MODULE_KEYINIT;
    return MODULE_OTHER;
}

static int stack_add(struct stack *s, const char *file, unsigned line, enum module module,
                     int force)
{
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? 2 * s->capacity : 16;
        struct session_line *lines = realloc(s->lines, capacity * sizeof *lines);
        if (!lines)
            return -1;
        s->lines = lines;
        s->capacity = capacity;
    }
    struct session_line *l = &s->lines[s->count++];
    snprintf(l->where, sizeof l->where, "%s:%u", file, line);
    l->module = module;
    l->force = force;
    return 0;
}

/* Reads one logical line as libpam assembles it: blank lines and lines
 * starting with '#' are skipped, even inside a continued line; a '#'
 * elsewhere ends the line there; a backslash ending a line (trailing
 * blanks allowed) continues it.  *first_line gets the number of the
 * physical line it starts on.  1 with a line, 0 at the end, -1 out of
 * memory. */
static int read_logical_line(FILE *f, char **line, size_t *size, unsigned *lineno,
                             unsigned *first_line)
{
    char *piece = NULL;
    size_t piece_size = 0, used = 0;
    int got = 0;
    while (getline(&piece, &piece_size, f) >= 0) {
        (*lineno)++;
        char *text = piece + strspn(piece, " \t\n");
        if (!*text || *text == '#')
            continue;
        if (!got)
            *first_line = *lineno;
        got = 1;
        size_t len = strcspn(text, "#");
        int continued = 0;
        if (!text[len]) {
            while (len && strchr(" \t\n", text[len - 1]))
                len--;
            continued = len && text[len - 1] == '\\';
            if (continued)
                text[len - 1] = ' ';
        }
        if (used + len + 1 > *size) {
            char *grown = realloc(*line, used + len + 1);
            if (!grown) {
                free(piece);
                return -1;
            }
            *line = grown;
            *size = used + len + 1;
        }
        memcpy(*line + used, text, len);
        used += len;
        (*line)[used] = '\0';
        if (!continued)
            break;
    }
    free(piece);
    return got;
}

/* Appends file's session lines to stack, following @include and
 * include/substack lines (a relative name is in dir) as libpam does, up to
 * its nesting limit; records the names of included files in included.
 * -1 with errno when file cannot be read. */
static int read_stack(const char *dir, const char *file, int depth, struct stack *stack,
                      struct names *included)
{
    char path[4096];
    if (file[0] == '/')
        snprintf(path, sizeof path, "%s", file);
    else
        snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t size = 0;
    unsigned lineno = 0, first = 0;
    int rc = 0, got;
    while (rc == 0 && (got = read_logical_line(f, &line, &size, &lineno, &first)) > 0) {
        char *cursor = line;
        char *type = next_field(&cursor);
        if (!type)
            continue;
        const char *include = NULL;
        if (strcmp(type, "@include") == 0) {
            include = next_field(&cursor);
        } else {
            if (*type == '-')
                type++; /* "-session": skip silently when the module is missing */
            if (strcasecmp(type, "session") != 0)
                continue;
            char *control = next_field(&cursor);
            char *module = next_field(&cursor);
            if (!control || !module)
                continue;
            if (strcasecmp(control, "include") == 0 || strcasecmp(control, "substack") == 0) {
                include = module;
            } else {
                enum module m = module_of(module);
                int force = 0;
                for (char *arg; (arg = next_field(&cursor));)
                    force |= strcmp(arg, "force") == 0;
                rc = stack_add(stack, file, first, m, m == MODULE_KEYINIT && force);
            }
        }
        if (include && depth + 1 < INCLUDE_DEPTH_MAX) {
            if (!names_has(included, include))
                rc = names_add(included, include);
            if (rc == 0 && read_stack(dir, include, depth + 1, stack, included) < 0 &&
                errno == ENOMEM)
                rc = -1;
        }
    }
    if (got < 0)
        rc = -1;
    int saved_errno = errno;
    free(line);
    fclose(f);
    errno = saved_errno;
    return rc;
}

/* Stack files: regular files, not hidden and not package-manager or
 * editor leftovers. */
static int is_stack_file(const struct dirent *e)
{
    static const char *const leftovers[] = {".dpkg-", ".ucf-", ".rpmnew", ".rpmsave", ".bak"};
    size_t len = strlen(e->d_name);
    if (e->d_name[0] == '.' || (len && e->d_name[len - 1] == '~'))
        return 0;
    for (size_t i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++)
        if (strstr(e->d_name, leftovers[i]))
            return 0;
    return e->d_type == DT_REG || e->d_type == DT_LNK || e->d_type == DT_UNKNOWN;
}

static void judge_stack(struct doctor *d, const char *name, const struct stack *s)
{
    const struct session_line *azid = NULL, *keyinit = NULL;
    for (size_t i = 0; i < s->count; i++) {
        if (!azid && s->lines[i].module == MODULE_AZID)
            azid = &s->lines[i];
        if (!keyinit && s->lines[i].module == MODULE_KEYINIT)
            keyinit = &s->lines[i];
    }
    char what[300];
    snprintf(what, sizeof what, "PAM stack %s", name);
    if (!keyinit)
        finding(d, FINDING_FAIL, what,
                "pam_azid.so (%s) has no pam_keyinit.so before it, so its session keyring is "
                "not the login's own and pam_azid stores nothing; add '%s' above it",
                azid->where, KEYINIT_LINE);
    else if (keyinit > azid)
        finding(d, FINDING_FAIL, what,
                "pam_azid.so (%s) runs before pam_keyinit.so (%s), so its keys land in a "
                "keyring that pam_keyinit then replaces; move '%s' above pam_azid.so",
                azid->where, keyinit->where, KEYINIT_LINE);
    else if (!keyinit->force)
        finding(d, FINDING_WARN, what,
                "pam_keyinit.so (%s) lacks 'force': it keeps a session keyring inherited from "
                "the service (shared by all its logins), and pam_azid then stores nothing; "
                "use '%s'", keyinit->where, KEYINIT_LINE);
    else
        finding(d, FINDING_OK, what, "pam_keyinit.so (%s) before pam_azid.so (%s)",
                keyinit->where, azid->where);
}

void doctor_check_pam(struct doctor *d, const char *pam_dir)
{
    struct dirent **entries = NULL;
    int n = scandir(pam_dir, &entries, is_stack_file, alphasort);
    if (n < 0) {
        finding(d, FINDING_WARN, "PAM stacks", "cannot read %s: %s; run azid doctor as root, "
                "or point --pam-dir at the PAM configuration", pam_dir, strerror(errno));
        return;
    }
    struct stack *stacks = calloc((size_t)n + 1, sizeof *stacks);
    struct names included = {NULL, 0, 0};
    int out_of_memory = !stacks;
    for (int i = 0; i < n && !out_of_memory; i++)
        if (read_stack(pam_dir, entries[i]->d_name, 0, &stacks[i], &included) < 0 &&
            errno == ENOMEM)
            out_of_memory = 1;
    unsigned with_azid = 0;
    for (int i = 0; i < n && !out_of_memory; i++) {
        const char *name = entries[i]->d_name;
        if (names_has(&included, name))
            continue;
        for (size_t j = 0; j < stacks[i].count; j++) {
            if (stacks[i].lines[j].module == MODULE_AZID) {
                judge_stack(d, name, &stacks[i]);
                with_azid++;
                break;
            }
        }
    }
    if (out_of_memory)
        finding(d, FINDING_FAIL, "PAM stacks", "out of memory reading %s; retry", pam_dir);
    else if (!with_azid)
        finding(d, FINDING_WARN, "PAM stacks",
                "no stack in %s lists pam_azid.so, so logins store no tokens; add "
                "'session optional pam_azid.so' after '%s' in the stacks of the services "
                "users log in with (sshd, login), see pam_azid(8)", pam_dir, KEYINIT_LINE);
    for (int i = 0; i < n; i++) {
        if (stacks)
            free(stacks[i].lines);
        free(entries[i]);
    }
    free(stacks);
    free(entries);
    names_free(&included);
}
