/* SPDX-License-Identifier: MIT
 *
 * Module arguments and /etc/azid.conf.  One option table drives argument
 * parsing, file parsing, azid_config_get and the debug dump; azid.conf(5)
 * and pam_azid(8) list the same options (tests/unit/test_config checks).
 *
 * Settings live in three levels kept apart, so the order in which callers
 * apply arguments and load the file does not matter: arguments, the file's
 * lines outside Match blocks ("global"), and the file's matching Match
 * blocks.  A scalar's effective value is the first level that sets it, in
 * that order; lists are the de-duplicated union of all levels.
 */
#include "config.h"

#include "config_parse.h"
#include "internal.h"
#include "source.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AZID_CONFIG_PATH
#error "the build must define AZID_CONFIG_PATH (\"$(sysconfdir)/azid.conf\")"
#endif

enum scalar_slot {
    SLOT_IDENTITY, /* one setting, three selector spellings */
    SLOT_TIMEOUT,
    SLOT_ENDPOINT,
    SLOT_SOURCE,
    SLOT_KEYRING,
    SLOT_FAIL,
    SLOT_CONFIG,
    SLOT_CA_FILE,
    SLOT_DEBUG,
    SLOT_BROKER,
    SLOT_NEGATIVE_CACHE,
    NSLOTS
};

enum list_slot { LIST_RESOURCE, LIST_SECRET, LIST_LOCKDOWN_ALLOW, NLISTS };

#define SECRET_URL_FORM "https://<vault>.vault.azure.net/secrets/<name>[/<version>]"
#define IDENTITY_KEYS "client_id, object_id, msi_res_id"

/* ---- value checks ---------------------------------------------------------- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One word of printable ASCII: what ends up in a URL query or a key
 * description. */
static int is_word(const char *value)
{
    if (!*value)
        return 0;
    for (const char *p = value; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return 0;
    return 1;
}

static int word_index(const char *const *words, const char *value)
{
    for (int i = 0; value && words[i]; i++)
        if (!strcmp(words[i], value))
            return i;
    return -1;
}

/* Decimal seconds ("5", "2.5") in milliseconds, rounded up so that any
 * positive value stays positive.  -1 when malformed or out of range. */
static long seconds_in_range(const char *value, long min_ms, long max_ms)
{
    const char *p = value;
    long whole = 0, frac = 0;
    int digits = 0, rest = 0;

    if (!is_digit(*p))
        return -1;
    /* Stop growing once out of range, so whole * 1000 fits a 32-bit long. */
    for (; is_digit(*p); p++)
        whole = whole > max_ms / 1000 ? whole : whole * 10 + (*p - '0');
    if (*p == '.') {
        if (!is_digit(*++p))
            return -1;
        for (; is_digit(*p); p++, digits++) {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
            else if (*p != '0')
                rest = 1;
        }
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (*p)
        return -1;
    long ms = whole * 1000 + frac + rest;
    return ms >= min_ms && ms <= max_ms ? ms : -1;
}

static long seconds_to_ms(const char *value)
{
    return seconds_in_range(value, 1, CONFIG_TIMEOUT_MAX_MS);
}

static const char *const keyvault_suffixes[] = {
    "vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net",
    "vault.microsoftazure.de", "managedhsm.azure.net", NULL,
};

/* NULL when url is a secret URL (filling out), else what is wrong. */
static const char *secret_url_split(const char *url, secret_url *out)
{
    static const char bad_host[] =
        "the host must be <vault>.<suffix>, <suffix> one of vault.azure.net, vault.azure.cn, "
        "vault.usgovcloudapi.net, vault.microsoftazure.de, managedhsm.azure.net, with no port";

    memset(out, 0, sizeof *out);
    if (strncasecmp(url, "https://", 8))
        return "it must start with https://";

    const char *host = url + 8;
    size_t host_len = strcspn(host, "/");
    if (!host_len || host_len >= sizeof out->vault_host)
        return bad_host;
    for (size_t i = 0; i < host_len; i++)
        if (!is_alnum(host[i]) && host[i] != '-' && host[i] != '.')
            return bad_host;
    const char *dot = memchr(host, '.', host_len);
    if (!dot || dot == host)
        return bad_host;
    size_t suffix_len = host_len - (size_t)(dot + 1 - host);
    int known = 0;
    for (int i = 0; keyvault_suffixes[i]; i++)
        if (strlen(keyvault_suffixes[i]) == suffix_len &&
            !strncasecmp(dot + 1, keyvault_suffixes[i], suffix_len))
            known = 1;
    if (!known)
        return bad_host;

    const char *p = host + host_len;
    if (strncmp(p, "/secrets/", 9))
        return "the path must be /secrets/<name>[/<version>]";
    p += 9;
    size_t n = 0;
    while (is_alnum(p[n]) || p[n] == '-')
        n++;
    if (!n || n >= sizeof out->name)
        return "the secret name must be 1 to 127 letters, digits or hyphens";
    memcpy(out->name, p, n);
    p += n;
    if (*p == '/') {
        p++;
        for (n = 0; is_alnum(p[n]); n++)
            ;
        if (!n || n >= sizeof out->version)
            return "the version must be 1 to 64 letters and digits";
        memcpy(out->version, p, n);
        p += n;
    }
    if (*p)
        return "nothing may follow /secrets/<name>[/<version>] (no query, no trailing slash)";

    for (size_t i = 0; i < host_len; i++) {
        char c = host[i];
        out->vault_host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return NULL;
}

azid_status secret_url_parse(const char *url, secret_url *out, azid_error *err)
{
    const char *why = secret_url_split(url ? url : "", out);
    if (!why)
        return AZID_OK;
    memset(out, 0, sizeof *out);
    return err_set(err, AZID_ERR_ARGUMENT,
                   "'%.200s' is not a Key Vault secret URL: %s; expected " SECRET_URL_FORM,
                   url ? url : "", why);
}

static int check_resource(const config_option *option, const char *value, char *expect,
                          size_t size)
{
    (void)option;
    if (is_word(value))
        return 0;
    snprintf(expect, size,
             "a resource URI or application ID with no spaces, e.g. https://vault.azure.net");
    return -1;
}

static int check_secret(const config_option *option, const char *value, char *expect,
                        size_t size)
{
    secret_url parts;
    const char *why = secret_url_split(value, &parts);
    (void)option;
    if (!why)
        return 0;
    snprintf(expect, size, SECRET_URL_FORM " (%s)", why);
    return -1;
}

static int check_identity(const config_option *option, const char *value, char *expect,
                          size_t size)
{
    if (is_word(value))
        return 0;
    snprintf(expect, size, "the identity's %s with no spaces", option->syntax);
    return -1;
}

static int check_seconds(const config_option *option, const char *value, char *expect,
                         size_t size)
{
    (void)option;
    if (seconds_to_ms(value) > 0)
        return 0;
    snprintf(expect, size, "seconds, e.g. 5 or 2.5 (more than 0, at most %d)",
             CONFIG_TIMEOUT_MAX_MS / 1000);
    return -1;
}

static int check_endpoint(const config_option *option, const char *value, char *expect,
                          size_t size)
{
    (void)option;
    if (source_check_base_url(value, NULL) == AZID_OK)
        return 0;
    snprintf(expect, size,
             "scheme://host[:port] with scheme http or https and no path, "
             "e.g. http://127.0.0.1:40342");
    return -1;
}

static int check_choice(const config_option *option, const char *value, char *expect,
                        size_t size)
{
    if (word_index(option->choices, value) >= 0)
        return 0;
    size_t used = (size_t)snprintf(expect, size, "one of");
    for (int i = 0; option->choices[i] && used < size; i++)
        used += (size_t)snprintf(expect + used, size - used, "%s %s", i ? "," : "",
                                 option->choices[i]);
    return -1;
}

static int check_path(const config_option *option, const char *value, char *expect,
                      size_t size)
{
    (void)option;
    int ok = value[0] == '/';
    for (const char *p = value; ok && *p; p++)
        ok = (unsigned char)*p >= ' ' && *p != 0x7f;
    if (ok)
        return 0;
    snprintf(expect, size, "an absolute path");
    return -1;
}

static int check_negative_cache(const config_option *option, const char *value, char *expect,
                                size_t size)
{
    (void)option;
    if (seconds_in_range(value, 0, CONFIG_NEGATIVE_CACHE_MAX_MS) >= 0)
        return 0;
    snprintf(expect, size, "seconds, e.g. 60 or 2.5 (0 turns it off, at most %d)",
             CONFIG_NEGATIVE_CACHE_MAX_MS / 1000);
    return -1;
}

static int check_broker(const config_option *option, const char *value, char *expect,
                        size_t size)
{
    if (!strcmp(value, "auto") || !strcmp(value, "off") || !check_path(option, value, expect, size))
        return 0;
    snprintf(expect, size, "auto, off or the absolute path of the broker's socket");
    return -1;
}

/* A user name, or @ and a group name, as useradd and groupadd accept them. */
static int is_account_name(const char *p, size_t len)
{
    if (len && *p == '@')
        p++, len--;
    if (!len || len > 32 || *p == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(p[i]) && !strchr("._-", p[i]) && !(p[i] == '$' && i == len - 1))
            return 0;
    return 1;
}

/* a.b.c.d/n: the source network of forwarded traffic azid lockdown lets
 * through (a bare address passes is_account_name). */
static int is_ipv4_network(const char *p, size_t len)
{
    char addr[16];
    size_t addr_len = strcspn(p, "/");
    struct in_addr in;
    if (addr_len >= len || addr_len >= sizeof addr || len - addr_len < 2 || len - addr_len > 3)
        return 0;
    memcpy(addr, p, addr_len);
    addr[addr_len] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1)
        return 0;
    int prefix = 0;
    for (size_t i = addr_len + 1; i < len; i++) {
        if (!is_digit(p[i]))
            return 0;
        prefix = prefix * 10 + p[i] - '0';
    }
    return prefix <= 32;
}

static int check_accounts(const config_option *option, const char *value, char *expect,
                          size_t size)
{
    (void)option;
    const char *p = value;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (!is_account_name(p, len) && !is_ipv4_network(p, len))
            break;
        if (!p[len])
            return 0;
        p += len + 1;
    }
    snprintf(expect, size, "user names and @group names separated by commas, no spaces, "
                           "e.g. alice,@ops (and IPv4 sources of forwarded traffic, "
                           "a.b.c.d[/n])");
    return -1;
}

/* ---- the option table ---------------------------------------------------- */

static const char *const keyring_words[] = {
    [AZID_KEYRING_SESSION] = "session",
    [AZID_KEYRING_USER] = "user",
    [AZID_KEYRING_PERSISTENT] = "persistent",
    [AZID_KEYRING_PERSISTENT + 1] = NULL,
};
/* Index 1 is the "on" word: fail_closed and debug are word_index() == 1. */
static const char *const fail_words[] = {"open", "closed", NULL};
static const char *const flag_words[] = {"no", "yes", NULL};

#define IDENTITY_DOC "; at most one of " IDENTITY_KEYS

static const config_option options[] = {
    {"resource", CONFIG_LIST, 1, NULL, "none granted (nothing is granted implicitly)", "URI",
     "resource (audience) to get a token for; repeatable", check_resource, NULL,
     LIST_RESOURCE, AZID_IDENTITY_SYSTEM, 0},
    {"secret", CONFIG_LIST, 1, NULL, "none", "URL",
     "Key Vault secret to fetch, " SECRET_URL_FORM "; repeatable", check_secret, NULL,
     LIST_SECRET, AZID_IDENTITY_SYSTEM, 0},
    {"client_id", CONFIG_STRING, 1, NULL, "system-assigned identity", "client ID",
     "user-assigned identity by client ID" IDENTITY_DOC, check_identity, NULL, SLOT_IDENTITY,
     AZID_IDENTITY_CLIENT_ID, 0},
    {"object_id", CONFIG_STRING, 1, NULL, "system-assigned identity", "object ID",
     "user-assigned identity by object (principal) ID" IDENTITY_DOC, check_identity, NULL,
     SLOT_IDENTITY, AZID_IDENTITY_OBJECT_ID, 0},
    {"msi_res_id", CONFIG_STRING, 1, NULL, "system-assigned identity", "Azure resource ID",
     "user-assigned identity by Azure resource ID" IDENTITY_DOC, check_identity, NULL,
     SLOT_IDENTITY, AZID_IDENTITY_MSI_RES_ID, 0},
    {"timeout", CONFIG_SECONDS, 1, "5", NULL, "SECONDS",
     "total time for all network work of one session open, retries included", check_seconds,
     NULL, SLOT_TIMEOUT, AZID_IDENTITY_SYSTEM, 0},
    {"endpoint", CONFIG_URI, 1, NULL, "the detected source's endpoint", "URL",
     "token endpoint base, scheme://host[:port]; for tests and proxies", check_endpoint, NULL,
     SLOT_ENDPOINT, AZID_IDENTITY_SYSTEM, 0},
    {"source", CONFIG_ENUM, 1, "auto", NULL, "auto|imds|arc|appservice|cloudshell|workload",
     "identity source; auto detects it", check_choice, source_names, SLOT_SOURCE,
     AZID_IDENTITY_SYSTEM, 0},
    {"keyring", CONFIG_ENUM, 1, "session", NULL, "session|user|persistent",
     "keyring the keys go to", check_choice, keyring_words, SLOT_KEYRING, AZID_IDENTITY_SYSTEM, 0},
    {"fail", CONFIG_ENUM, 1, "open", NULL, "open|closed",
     "open: log and let the login go on; closed: fail the session", check_choice, fail_words,
     SLOT_FAIL, AZID_IDENTITY_SYSTEM, 0},
    {"config", CONFIG_PATH, 0, AZID_CONFIG_PATH, NULL, "PATH",
     "config file to read (a module or command-line argument only)", check_path, NULL,
     SLOT_CONFIG, AZID_IDENTITY_SYSTEM, 0},
    {"ca_file", CONFIG_PATH, 1, NULL, "the system trust store", "PATH",
     "extra CA bundle for HTTPS (Key Vault)", check_path, NULL, SLOT_CA_FILE,
     AZID_IDENTITY_SYSTEM, 0},
    {"debug", CONFIG_FLAG, 1, "no", NULL, "yes|no",
     "verbose logging, never a token or secret value", check_choice, flag_words, SLOT_DEBUG,
     AZID_IDENTITY_SYSTEM, 0},
    {"broker", CONFIG_PATH, 1, "auto", NULL, "auto|off|PATH",
     "ask the broker at this socket; auto: " AZID_BROKER_SOCKET " when it answers", check_broker,
     NULL, SLOT_BROKER, AZID_IDENTITY_SYSTEM, 0},
    {"negative_cache", CONFIG_SECONDS, 1, "60", NULL, "SECONDS",
     "the broker answers a failure at once for this long after the endpoint failed (file only)",
     check_negative_cache, NULL, SLOT_NEGATIVE_CACHE, AZID_IDENTITY_SYSTEM, 1},
    {"lockdown_allow", CONFIG_LIST, 1, NULL, "only root and the broker's user", "NAME[,@GROUP...]",
     "users and @groups azid lockdown lets reach the identity endpoint (file only, outside Match)",
     check_accounts, NULL, LIST_LOCKDOWN_ALLOW, AZID_IDENTITY_SYSTEM, 1},
};

#define NOPTIONS (sizeof options / sizeof options[0])

const config_option *config_option_at(size_t index)
{
    return index < NOPTIONS ? &options[index] : NULL;
}

static const config_option *option_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

static const config_option *option_of_slot(int slot)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].type != CONFIG_LIST && options[i].slot == slot)
            return &options[i];
    return NULL;
}

/* "resource, secret, ..." for messages: what the file (in_file) or an
 * argument may set. */
static void option_names(char *buf, size_t size, int in_file)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NOPTIONS && used < size; i++)
        if (in_file ? options[i].in_file : !options[i].file_only)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                                     options[i].name);
}

/* ---- storage --------------------------------------------------------------- */

struct setting {
    char *value;                 /* NULL: not set at this level */
    const config_option *option; /* the identity selector that set it */
    unsigned line;               /* file line; 0 for an argument */
    int match;                   /* index into file.matches; -1 outside Match */
};

struct item {
    char *value;
    unsigned line; /* 0 for an argument */
    int match;
};

struct items {
    struct item **v; /* pointers, so effective lists survive growth */
    size_t n, cap;
};

struct match_record {
    unsigned line;
    char *text; /* "Match group dba" */
    int applies;
};

/* What one read of the config file contributes. */
struct file_layer {
    struct setting global[NSLOTS];
    struct setting match[NSLOTS];
    struct items lists[NLISTS];
    struct match_record *matches;
    size_t nmatches, cap;
    int grants; /* a resource or secret line anywhere, applying or not */
};

enum file_state { FILE_NOT_READ, FILE_ABSENT, FILE_READ, FILE_REFUSED };

struct effective {
    const char **names;       /* NULL-terminated */
    const struct item **from;
    size_t n;
};

struct azid_config {
    struct setting arg[NSLOTS];
    struct items arg_lists[NLISTS];
    struct file_layer file;
    enum file_state file_state;
    char *file_path;
    char *file_user;
    int user_unknown;
    char file_error[sizeof ((azid_error *)0)->message];
    struct effective effective[NLISTS];
};

static void setting_clear(struct setting *s)
{
    free(s->value);
    s->value = NULL;
    s->option = NULL;
}

static azid_status setting_set(struct setting *s, const config_option *option,
                               const char *value, unsigned line, int match)
{
    char *copy = strdup(value);
    if (!copy)
        return AZID_ERR_NOMEM;
    free(s->value);
    *s = (struct setting){copy, option, line, match};
    return AZID_OK;
}

static void items_free(struct items *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->v[i]->value);
        free(list->v[i]);
    }
    free(list->v);
    *list = (struct items){0};
}

static azid_status items_push(struct items *list, const char *value, unsigned line, int match)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        struct item **v = realloc(list->v, cap * sizeof *v);
        if (!v)
            return AZID_ERR_NOMEM;
        list->v = v;
        list->cap = cap;
    }
    struct item *it = malloc(sizeof *it);
    char *copy = strdup(value);
    if (!it || !copy) {
        free(it);
        free(copy);
        return AZID_ERR_NOMEM;
    }
    *it = (struct item){copy, line, match};
    list->v[list->n++] = it;
    return AZID_OK;
}

static int items_contain(const struct items *list, const char *value)
{
    for (size_t i = 0; i < list->n; i++)
        if (!strcmp(list->v[i]->value, value))
            return 1;
    return 0;
}

static void file_layer_free(struct file_layer *fl)
{
    for (int i = 0; i < NSLOTS; i++) {
        setting_clear(&fl->global[i]);
        setting_clear(&fl->match[i]);
    }
    for (int i = 0; i < NLISTS; i++)
        items_free(&fl->lists[i]);
    for (size_t i = 0; i < fl->nmatches; i++)
        free(fl->matches[i].text);
    free(fl->matches);
    *fl = (struct file_layer){0};
}

static void effective_free(struct effective *e)
{
    free(e->names);
    free(e->from);
    *e = (struct effective){0};
}

/* Recomputes what azid_config_resources/secrets return.  When out of
 * memory the lists end up empty (granting nothing), never stale. */
static azid_status lists_rebuild(azid_config *cfg)
{
    azid_status status = AZID_OK;
    for (int l = 0; l < NLISTS; l++) {
        const struct items *levels[] = {&cfg->arg_lists[l], &cfg->file.lists[l]};
        size_t max = levels[0]->n + levels[1]->n;
        struct effective e = {calloc(max + 1, sizeof *e.names), calloc(max + 1, sizeof *e.from), 0};
        effective_free(&cfg->effective[l]);
        if (!e.names || !e.from) {
            effective_free(&e);
            status = AZID_ERR_NOMEM;
            continue;
        }
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < levels[k]->n; i++) {
                const struct item *it = levels[k]->v[i];
                size_t j = 0;
                while (j < e.n && strcmp(e.names[j], it->value))
                    j++;
                if (j == e.n) {
                    e.names[e.n] = it->value;
                    e.from[e.n++] = it;
                }
            }
        cfg->effective[l] = e;
    }
    return status;
}

azid_config *azid_config_new(void)
{
    azid_config *cfg = calloc(1, sizeof *cfg);
    if (cfg && lists_rebuild(cfg) != AZID_OK) {
        azid_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void azid_config_free(azid_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < NSLOTS; i++)
        setting_clear(&cfg->arg[i]);
    for (int i = 0; i < NLISTS; i++) {
        items_free(&cfg->arg_lists[i]);
        effective_free(&cfg->effective[i]);
    }
    file_layer_free(&cfg->file);
    free(cfg->file_path);
    free(cfg->file_user);
    free(cfg);
}

/* ---- arguments ----------------------------------------------------------- */

azid_status azid_config_apply_arg(azid_config *cfg, const char *arg, azid_error *err)
{
    if (!cfg || !arg)
        return err_set(err, AZID_ERR_ARGUMENT, "no argument given");
    size_t len = strlen(arg);
    if (len > CONFIG_LINE_MAX)
        return err_set(err, AZID_ERR_ARGUMENT, "argument '%.60s...' is longer than %d characters",
                       arg, CONFIG_LINE_MAX);

    const char *eq = strchr(arg, '=');
    const config_option *option = option_find(arg, eq ? (size_t)(eq - arg) : len);
    if (!option) {
        char known[256];
        option_names(known, sizeof known, 0);
        return err_set(err, AZID_ERR_ARGUMENT, "unknown argument '%.100s'; known: %s", arg,
                       known);
    }

    if (option->file_only)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "argument '%.100s': %s can be set only in the config file (%s = %s)", arg,
                       option->name, option->name, option->syntax);
    const char *value = eq ? eq + 1 : NULL;
    if (!value && option->type != CONFIG_FLAG)
        return err_set(err, AZID_ERR_ARGUMENT, "argument '%s' needs a value: %s=%s", arg,
                       option->name, option->syntax);
    if (!value)
        value = flag_words[1];
    char expect[384];
    if (option->check(option, value, expect, sizeof expect))
        return err_set(err, AZID_ERR_ARGUMENT, "%s=%.100s: expected %s", option->name, value,
                       expect);

    if (option->type == CONFIG_LIST) {
        struct items *list = &cfg->arg_lists[option->slot];
        if (items_contain(list, value))
            return AZID_OK;
        if (items_push(list, value, 0, -1) != AZID_OK)
            return err_set(err, AZID_ERR_NOMEM, "out of memory applying argument %s", option->name);
        if (lists_rebuild(cfg) != AZID_OK)
            return err_set(err, AZID_ERR_NOMEM, "out of memory applying argument %s", option->name);
        return AZID_OK;
    }

    struct setting *s = &cfg->arg[option->slot];
    if (option->slot == SLOT_IDENTITY && s->value && s->option != option)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s=%.100s: conflicts with %s=%.100s given earlier; give at most one of "
                       IDENTITY_KEYS,
                       option->name, value, s->option->name, s->value);
    if (setting_set(s, option, value, 0, -1) != AZID_OK)
        return err_set(err, AZID_ERR_NOMEM, "out of memory applying argument %s", option->name);
    return AZID_OK;
}

/* ---- the file parser (no I/O) ---------------------------------------------- */

/* Whom Match blocks are evaluated for.  azid_config_load looks the groups
 * up only when a Match group line needs them. */
struct who {
    const char *user; /* NULL: no Match block applies */
    const char *const *groups;
    size_t ngroups;
    int groups_known;
    int user_unknown;
    char **owned; /* groups looked up here */
};

struct parser {
    const char *path;
    unsigned line;
    struct who *who;
    struct file_layer *fl;
    int in_match;    /* inside a Match block */
    int applies;     /* ... that matches the user */
    /* The identity selector set at each level, to refuse two at one. */
    const config_option *global_identity, *block_identity;
    unsigned global_identity_line, block_identity_line;
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
    return err_set(p->err, AZID_ERR_NOMEM, "out of memory reading %.200s", p->path);
}

static char *skip_blanks(char *s)
{
    return s + strspn(s, " \t");
}

static azid_status who_lookup_groups(struct who *who, azid_error *err);

/* Whether one of the comma-separated names equals one of candidates. */
static int names_match(const char *names, const char *const *candidates, size_t n)
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

enum match_kind { MATCH_ALL, MATCH_USER, MATCH_GROUP };

static const struct {
    const char *word;
    enum match_kind kind;
} match_criteria[] = {{"all", MATCH_ALL}, {"user", MATCH_USER}, {"group", MATCH_GROUP}};

#define MATCH_FORMS "Match user NAME[,NAME...], Match group NAME[,NAME...] or Match all"

static azid_status parse_match(struct parser *p, char *rest)
{
    size_t len = strcspn(rest, " \t");
    char *names = skip_blanks(rest + len);
    const char *word = NULL;
    enum match_kind kind = MATCH_ALL;
    for (size_t i = 0; i < sizeof match_criteria / sizeof match_criteria[0]; i++)
        if (strlen(match_criteria[i].word) == len && !strncasecmp(rest, match_criteria[i].word, len)) {
            word = match_criteria[i].word;
            kind = match_criteria[i].kind;
        }
    if (!len)
        return parse_fail(p, "Match needs a criterion: " MATCH_FORMS);
    if (!word)
        return parse_fail(p, "unknown Match criterion '%.*s'; expected " MATCH_FORMS,
                          (int)(len > 64 ? 64 : len), rest);

    if (kind == MATCH_ALL) {
        if (*names)
            return parse_fail(p, "nothing may follow 'Match all', found '%.100s'", names);
        /* Ends the Match section: what follows is global again. */
        p->in_match = 0;
        return AZID_OK;
    }
    if (!*names)
        return parse_fail(p, "'Match %s' needs names: Match %s NAME[,NAME...]", word, word);
    if (strpbrk(names, " \t"))
        return parse_fail(p, "'Match %s %.100s': separate names with commas, no spaces "
                          "(one criterion per Match line)", word, names);
    size_t n = strlen(names);
    if (names[0] == ',' || names[n - 1] == ',' || strstr(names, ",,"))
        return parse_fail(p, "'Match %s %.100s': empty name in the list", word, names);

    int applies = 0;
    if (p->who->user && kind == MATCH_USER) {
        applies = names_match(names, &p->who->user, 1);
    } else if (p->who->user) {
        if (!p->who->groups_known) {
            azid_status st = who_lookup_groups(p->who, p->err);
            if (st != AZID_OK)
                return st;
        }
        applies = names_match(names, p->who->groups, p->who->ngroups);
    }

    struct file_layer *fl = p->fl;
    if (fl->nmatches == fl->cap) {
        size_t cap = fl->cap ? fl->cap * 2 : 4;
        struct match_record *m = realloc(fl->matches, cap * sizeof *m);
        if (!m)
            return out_of_memory(p);
        fl->matches = m;
        fl->cap = cap;
    }
    struct match_record *m = &fl->matches[fl->nmatches];
    m->line = p->line;
    m->applies = applies;
    size_t size = strlen("Match  ") + strlen(word) + n + 1;
    if (!(m->text = malloc(size)))
        return out_of_memory(p);
    snprintf(m->text, size, "Match %s %s", word, names);
    fl->nmatches++;

    p->in_match = 1;
    p->applies = applies;
    p->block_identity = NULL;
    return AZID_OK;
}

static azid_status parse_setting(struct parser *p, const config_option *option, const char *value)
{
    struct file_layer *fl = p->fl;
    int applies = !p->in_match || p->applies;
    int match = p->in_match ? (int)fl->nmatches - 1 : -1;

    if (option->slot == LIST_LOCKDOWN_ALLOW && option->type == CONFIG_LIST) {
        if (p->in_match)
            return parse_fail(p, "%s applies to the whole machine; move it before the first "
                              "Match line or after 'Match all'", option->name);
        for (const char *name = value; *name;) {
            size_t len = strcspn(name, ",");
            char one[64];
            snprintf(one, sizeof one, "%.*s", (int)len, name);
            if (!items_contain(&fl->lists[option->slot], one) &&
                items_push(&fl->lists[option->slot], one, p->line, -1) != AZID_OK)
                return out_of_memory(p);
            name += len + (name[len] == ',');
        }
        return AZID_OK;
    }
    if (option->type == CONFIG_LIST) {
        fl->grants = 1;
        if (applies && items_push(&fl->lists[option->slot], value, p->line, match) != AZID_OK)
            return out_of_memory(p);
        return AZID_OK;
    }

    if (option->slot == SLOT_IDENTITY) {
        const config_option **seen = p->in_match ? &p->block_identity : &p->global_identity;
        unsigned *seen_line = p->in_match ? &p->block_identity_line : &p->global_identity_line;
        if (*seen && *seen != option)
            return parse_fail(p, "%s conflicts with %s at line %u; give at most one of "
                              IDENTITY_KEYS " %s",
                              option->name, (*seen)->name, *seen_line,
                              p->in_match ? "per Match block" : "outside Match blocks");
        *seen = option;
        *seen_line = p->line;
    }
    if (!applies)
        return AZID_OK;
    struct setting *s = &(p->in_match ? fl->match : fl->global)[option->slot];
    if (setting_set(s, option, value, p->line, match) != AZID_OK)
        return out_of_memory(p);
    return AZID_OK;
}

#define KEY_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

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

    int shown = (int)(len > 64 ? 64 : len);
    const config_option *option = option_find(s, len);
    if (!option) {
        char known[256];
        option_names(known, sizeof known, 1);
        return parse_fail(p, "unknown key '%.*s'; known: %s and Match", shown, s, known);
    }
    if (!option->in_file)
        return parse_fail(p, "%s cannot be set in the config file; give it as a module or "
                          "command-line argument (%s=%s)", option->name, option->name,
                          option->syntax);

    rest = skip_blanks(rest);
    if (*rest == '=')
        rest = skip_blanks(rest + 1);
    if (!*rest)
        return parse_fail(p, "%s has no value; expected %s = %s", option->name, option->name,
                          option->syntax);
    char expect[384];
    if (option->check(option, rest, expect, sizeof expect))
        return parse_fail(p, "%s = %.100s: expected %s", option->name, rest, expect);
    return parse_setting(p, option, rest);
}

static azid_status parse_text(struct parser *p, const char *text, size_t len)
{
    char buf[CONFIG_LINE_MAX + 1];
    size_t pos = 0;

    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        p->line++;
        /* Files edited on Windows: CR LF ends a line as LF does. */
        if (n && start[n - 1] == '\r')
            n--;
        if (n > CONFIG_LINE_MAX)
            return parse_fail(p, "line longer than %d characters", CONFIG_LINE_MAX);
        if (memchr(start, '\0', n))
            return parse_fail(p, "NUL byte in the line; the file must be text");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)start[i];
            if ((c < ' ' && c != '\t') || c == 0x7f)
                return parse_fail(p, "control character 0x%02x in the line", c);
        }
        memcpy(buf, start, n);
        while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
            n--;
        buf[n] = '\0';
        char *s = skip_blanks(buf);
        if (!*s || *s == '#')
            continue;
        azid_status st = parse_line(p, s);
        if (st != AZID_OK)
            return st;
    }
    return AZID_OK;
}

/* Replaces the file level with fl (NULL: empty) and records how the read
 * went, for the dump. */
static azid_status file_install(azid_config *cfg, struct file_layer *fl, enum file_state state,
                                const char *path, const struct who *who, const azid_error *why)
{
    file_layer_free(&cfg->file);
    if (fl)
        cfg->file = *fl;
    cfg->file_state = state;
    free(cfg->file_path);
    free(cfg->file_user);
    cfg->file_path = strdup(path);
    cfg->file_user = who->user ? strdup(who->user) : NULL;
    cfg->user_unknown = who->user_unknown;
    snprintf(cfg->file_error, sizeof cfg->file_error, "%s", why ? why->message : "");
    azid_status st = lists_rebuild(cfg);
    if (!cfg->file_path || (who->user && !cfg->file_user))
        st = AZID_ERR_NOMEM;
    return st;
}

static azid_status file_apply(azid_config *cfg, const char *text, size_t len, const char *path,
                              struct who *who, azid_error *err)
{
    azid_error local;
    struct file_layer fl = {0};
    struct parser p = {.path = path, .who = who, .fl = &fl, .err = &local};

    err_clear(&local);
    azid_status st = parse_text(&p, text, len);
    if (st != AZID_OK) {
        file_layer_free(&fl);
        file_install(cfg, NULL, FILE_REFUSED, path, who, &local);
    } else if (file_install(cfg, &fl, FILE_READ, path, who, NULL) != AZID_OK) {
        st = err_set(&local, AZID_ERR_NOMEM, "out of memory reading %.200s", path);
    }
    if (err)
        *err = local;
    return st;
}

azid_status config_apply_text(azid_config *cfg, const char *text, size_t len, const char *path,
                              const char *user, const char *const *groups, size_t ngroups,
                              azid_error *err)
{
    struct who who = {.user = user, .groups = groups, .ngroups = ngroups, .groups_known = 1};
    return file_apply(cfg, text, len, path ? path : "(text)", &who, err);
}

/* ---- file and user database I/O -------------------------------------------- */

static azid_status who_lookup_groups(struct who *who, azid_error *err)
{
    char errbuf[128];
    size_t size = 4096;
    char *buf = NULL;
    struct passwd pw, *pwp = NULL;
    int rc;

    who->groups_known = 1;
    for (;;) {
        char *bigger = realloc(buf, size);
        if (!bigger) {
            free(buf);
            return err_set(err, AZID_ERR_NOMEM, "out of memory looking up user %.100s", who->user);
        }
        buf = bigger;
        rc = getpwnam_r(who->user, &pw, buf, size, &pwp);
        if (rc != ERANGE || size >= 1024 * 1024)
            break;
        size *= 2;
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

    int n = 32;
    gid_t *gids = NULL;
    for (;;) {
        int want = n;
        gid_t *more = realloc(gids, (size_t)n * sizeof *gids);
        if (!more)
            goto nomem;
        gids = more;
        if (getgrouplist(who->user, pw.pw_gid, gids, &want) >= 0) {
            n = want;
            break;
        }
        n = want > n && want <= 65536 ? want : n * 2;
        if (n > 65536)
            goto nomem;
    }

    who->owned = calloc((size_t)n, sizeof *who->owned);
    if (!who->owned)
        goto nomem;
    for (int i = 0; i < n; i++) {
        struct group gr, *grp = NULL;
        for (;;) {
            rc = getgrgid_r(gids[i], &gr, buf, size, &grp);
            if (rc != ERANGE || size >= 1024 * 1024)
                break;
            char *bigger = realloc(buf, size * 2);
            if (!bigger)
                goto nomem;
            buf = bigger;
            size *= 2;
        }
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
    return err_set(err, AZID_ERR_NOMEM, "out of memory looking up the groups of %.100s",
                   who->user);
}

static void who_free(struct who *who)
{
    for (size_t i = 0; who->owned && i < who->ngroups; i++)
        free(who->owned[i]);
    free(who->owned);
}

/* Reads path as sshd's StrictModes would accept it.  *text NULL: no file. */
static azid_status file_read(const char *path, char **text, size_t *len, azid_error *err)
{
    char errbuf[128];
    *text = NULL;
    *len = 0;

    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return AZID_OK;
        if (e == ELOOP)
            return err_set(err, AZID_ERR_CONFIG,
                           "%.200s: refusing a symbolic link; point config= at the file itself",
                           path);
        return err_set(err, AZID_ERR_CONFIG, "%.200s: cannot open: %s", path,
                       strerror_r(e, errbuf, sizeof errbuf));
    }

    struct stat st;
    azid_status status = AZID_OK;
    if (fstat(fd, &st))
        status = err_set(err, AZID_ERR_CONFIG, "%.200s: cannot stat: %s", path,
                         strerror_r(errno, errbuf, sizeof errbuf));
    else if (!S_ISREG(st.st_mode))
        status = err_set(err, AZID_ERR_CONFIG, "%.200s: not a regular file", path);
    else if (st.st_uid != 0)
        status = err_set(err, AZID_ERR_CONFIG,
                         "%.200s: owned by uid %lu, not root; run: chown root %.200s", path,
                         (unsigned long)st.st_uid, path);
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        status = err_set(err, AZID_ERR_CONFIG,
                         "%.200s: writable by group or others (mode %04o); run: chmod go-w %.200s",
                         path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_size > CONFIG_FILE_MAX)
        status = err_set(err, AZID_ERR_CONFIG, "%.200s: larger than %d KiB", path,
                         CONFIG_FILE_MAX / 1024);

    /* One byte more than allowed tells a file that grew since fstat. */
    char *buf = status == AZID_OK ? malloc(CONFIG_FILE_MAX + 1) : NULL;
    if (status == AZID_OK && !buf)
        status = err_set(err, AZID_ERR_NOMEM, "out of memory reading %.200s", path);
    size_t used = 0;
    while (status == AZID_OK && used <= CONFIG_FILE_MAX) {
        ssize_t got = read(fd, buf + used, CONFIG_FILE_MAX + 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            status = err_set(err, AZID_ERR_CONFIG, "%.200s: cannot read: %s", path,
                             strerror_r(errno, errbuf, sizeof errbuf));
        if (got <= 0)
            break;
        used += (size_t)got;
    }
    if (status == AZID_OK && used > CONFIG_FILE_MAX)
        status = err_set(err, AZID_ERR_CONFIG, "%.200s: larger than %d KiB", path,
                         CONFIG_FILE_MAX / 1024);
    close(fd);
    if (status != AZID_OK) {
        free(buf);
        return status;
    }
    *text = buf;
    *len = used;
    return AZID_OK;
}

azid_status azid_config_load(azid_config *cfg, const char *user, azid_error *err)
{
    if (!cfg)
        return err_set(err, AZID_ERR_ARGUMENT, "no configuration given");
    const char *path = azid_config_get(cfg, "config");
    struct who who = {.user = user};
    azid_error local;
    char *text;
    size_t len;

    err_clear(&local);
    azid_status st = file_read(path, &text, &len, &local);
    if (st == AZID_OK && text)
        st = file_apply(cfg, text, len, path, &who, &local);
    else if (st == AZID_OK && file_install(cfg, NULL, FILE_ABSENT, path, &who, NULL) != AZID_OK)
        st = err_set(&local, AZID_ERR_NOMEM, "out of memory reading %.200s", path);
    else if (st != AZID_OK)
        file_install(cfg, NULL, FILE_REFUSED, path, &who, &local);
    free(text);
    who_free(&who);
    if (err)
        *err = local;
    return st;
}

/* ---- effective settings ---------------------------------------------------- */

static const struct setting *effective_setting(const azid_config *cfg, int slot)
{
    const struct setting *levels[] = {&cfg->arg[slot], &cfg->file.match[slot],
                                      &cfg->file.global[slot]};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (levels[i]->value)
            return levels[i];
    return NULL;
}

static const char *effective_value(const azid_config *cfg, const config_option *option)
{
    const struct setting *s = effective_setting(cfg, option->slot);
    return s ? s->value : option->default_value;
}

/* The index of a word setting in its option's choices (a NULL
 * configuration has the defaults). */
static int effective_choice(const azid_config *cfg, int slot)
{
    const config_option *option = option_of_slot(slot);
    int i = word_index(option->choices, cfg ? effective_value(cfg, option) : option->default_value);
    return i < 0 ? 0 : i;
}

const char *azid_config_get(const azid_config *cfg, const char *key)
{
    const config_option *option = key ? option_find(key, strlen(key)) : NULL;
    if (!cfg || !option || option->type == CONFIG_LIST)
        return NULL;
    if (option->slot == SLOT_IDENTITY) {
        const struct setting *s = effective_setting(cfg, SLOT_IDENTITY);
        return s && s->option == option ? s->value : NULL;
    }
    return effective_value(cfg, option);
}

static size_t effective_list(const azid_config *cfg, int slot, const char *const **list)
{
    static const char *const none[] = {NULL};
    const struct effective *e = cfg ? &cfg->effective[slot] : NULL;
    if (list)
        *list = e && e->names ? e->names : none;
    return e ? e->n : 0;
}

size_t azid_config_resources(const azid_config *cfg, const char *const **list)
{
    return effective_list(cfg, LIST_RESOURCE, list);
}

size_t azid_config_secrets(const azid_config *cfg, const char *const **list)
{
    return effective_list(cfg, LIST_SECRET, list);
}

int azid_config_grants_anyone(const azid_config *cfg)
{
    return cfg && (cfg->file.grants || cfg->arg_lists[LIST_RESOURCE].n ||
                   cfg->arg_lists[LIST_SECRET].n);
}

long azid_config_timeout_ms(const azid_config *cfg)
{
    long ms = cfg ? seconds_to_ms(azid_config_get(cfg, "timeout")) : -1;
    return ms > 0 ? ms : AZID_DEFAULT_TIMEOUT_MS;
}

azid_broker_mode azid_config_broker(const azid_config *cfg, const char **socket_path)
{
    const char *value = cfg ? effective_value(cfg, option_of_slot(SLOT_BROKER)) : "auto";
    azid_broker_mode mode = !strcmp(value, "off")    ? AZID_BROKER_OFF
                            : !strcmp(value, "auto") ? AZID_BROKER_AUTO
                                                     : AZID_BROKER_PATH;
    if (socket_path)
        *socket_path = mode == AZID_BROKER_OFF    ? NULL
                       : mode == AZID_BROKER_AUTO ? AZID_BROKER_SOCKET
                                                  : value;
    return mode;
}

long azid_config_negative_cache_ms(const azid_config *cfg)
{
    const config_option *option = option_of_slot(SLOT_NEGATIVE_CACHE);
    return seconds_in_range(cfg ? effective_value(cfg, option) : option->default_value, 0,
                            CONFIG_NEGATIVE_CACHE_MAX_MS);
}

size_t azid_config_lockdown_allow(const azid_config *cfg, const char *const **list)
{
    return effective_list(cfg, LIST_LOCKDOWN_ALLOW, list);
}

azid_keyring azid_config_keyring(const azid_config *cfg)
{
    return (azid_keyring)effective_choice(cfg, SLOT_KEYRING);
}

int azid_config_fail_closed(const azid_config *cfg)
{
    return effective_choice(cfg, SLOT_FAIL) == 1;
}

int azid_config_debug(const azid_config *cfg)
{
    return effective_choice(cfg, SLOT_DEBUG) == 1;
}

azid_source config_source(const azid_config *cfg)
{
    return (azid_source)effective_choice(cfg, SLOT_SOURCE);
}

azid_identity_kind config_identity(const azid_config *cfg, const char **value)
{
    const struct setting *s = cfg ? effective_setting(cfg, SLOT_IDENTITY) : NULL;
    *value = s ? s->value : NULL;
    return s ? s->option->identity : AZID_IDENTITY_SYSTEM;
}

const char *azid_keyring_name(azid_keyring keyring)
{
    return (unsigned)keyring <= AZID_KEYRING_PERSISTENT ? keyring_words[keyring] : "unknown";
}

azid_status azid_keyring_parse(const char *name, azid_keyring *out, azid_error *err)
{
    const config_option *option = option_of_slot(SLOT_KEYRING);
    int i = word_index(keyring_words, name);
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the keyring (NULL)");
    if (i < 0) {
        char expect[128];
        option->check(option, "", expect, sizeof expect);
        return err_set(err, AZID_ERR_ARGUMENT, "keyring '%.100s': expected %s", name ? name : "",
                       expect);
    }
    *out = (azid_keyring)i;
    return AZID_OK;
}

/* ---- the dump -------------------------------------------------------------- */

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
static void origin(const azid_config *cfg, unsigned line, int match, char *buf, size_t size)
{
    if (!line)
        snprintf(buf, size, "argument");
    else if (match < 0)
        snprintf(buf, size, "%s:%u", cfg->file_path, line);
    else
        snprintf(buf, size, "%s:%u, %s", cfg->file_path, line, cfg->file.matches[match].text);
}

static void dump_file(const azid_config *cfg, emit_fn emit, void *ctx)
{
    const char *path = cfg->file_path ? cfg->file_path : azid_config_get(cfg, "config");
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
    for (size_t i = 0; i < cfg->file.nmatches; i++)
        emitf(emit, ctx, "%s (line %u): %s", cfg->file.matches[i].text, cfg->file.matches[i].line,
              cfg->file.matches[i].applies ? "applies" : "does not apply");
}

static void dump_list(const azid_config *cfg, const config_option *option, emit_fn emit,
                      void *ctx)
{
    const struct effective *e = &cfg->effective[option->slot];
    char from[1024];
    for (size_t i = 0; i < e->n; i++) {
        origin(cfg, e->from[i]->line, e->from[i]->match, from, sizeof from);
        emitf(emit, ctx, "%s=%s (%s)", option->name, e->names[i], from);
    }
    if (!e->n)
        emitf(emit, ctx, "%s: %s", option->name, option->unset_means);
}

void azid_config_dump(const azid_config *cfg, void (*emit)(const char *line, void *ctx),
                      void *ctx)
{
    if (!cfg || !emit)
        return;
    dump_file(cfg, emit, ctx);
    int identity_done = 0;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const config_option *option = &options[i];
        if (option->type == CONFIG_LIST) {
            dump_list(cfg, option, emit, ctx);
            continue;
        }
        if (option->slot == SLOT_IDENTITY && identity_done++)
            continue;
        const struct setting *s = effective_setting(cfg, option->slot);
        char from[1024];
        if (s) {
            origin(cfg, s->line, s->match, from, sizeof from);
            emitf(emit, ctx, "%s=%s (%s)", s->option->name, s->value, from);
        } else if (option->default_value) {
            emitf(emit, ctx, "%s=%s (default)", option->name, option->default_value);
        } else if (option->slot == SLOT_IDENTITY) {
            emitf(emit, ctx, "identity: %s (default)", option->unset_means);
        } else {
            emitf(emit, ctx, "%s: not set, %s", option->name, option->unset_means);
        }
    }
}
