/* SPDX-License-Identifier: MIT
 * The option table (pam-krb5's module/options.c is the model): one row per
 * option feeds argument parsing, the file parser, the settings struct, the
 * debug dump and the man pages (tests/unit/test_config checks them). */
#include "config.h"

#include "options.h"

#include "internal.h"
#include "secret_url.h"
#include "source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AZID_CONFIG_PATH
#error "the build must define AZID_CONFIG_PATH (\"$(sysconfdir)/azid.conf\")"
#endif

/* ---- the one seconds parser --------------------------------------------------- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

long seconds_parse(const char *text, long min_ms, long max_ms)
{
    const char *p = text;
    long whole = 0, frac = 0;
    int digits = 0, rest = 0;

    if (!p || !is_digit(*p))
        return -1;
    /* Stop growing once out of range, so whole * 1000 cannot overflow. */
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

azid_status azid_timeout_parse(const char *seconds, long *ms, azid_error *err)
{
    long v = seconds_parse(seconds, 1, AZID_TIMEOUT_MAX_MS);
    if (v < 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "timeout '%.100s': expected seconds, e.g. 5 or 2.5 (more than 0, at most "
                       "%d)", seconds ? seconds : "", AZID_TIMEOUT_MAX_MS / 1000);
    if (ms)
        *ms = v;
    return AZID_OK;
}

/* ---- value checks ---------------------------------------------------------------- */

static const char *check_resource(const char *value, char *buf, size_t size)
{
    if (azid_resource_check(value, NULL) == AZID_OK)
        return NULL;
    if (!text_is_word(value))
        return "a resource URI or application ID with no spaces, e.g. https://vault.azure.net";
    snprintf(buf, size, "a resource of at most %d characters, so that its key azid:token:<resource> "
             "fits the kernel's 4095 bytes", AZID_RESOURCE_MAX);
    return buf;
}

static const char *check_secret(const char *value, char *buf, size_t size)
{
    secret_url parts;
    const char *why = secret_url_problem(value, &parts);
    if (!why)
        return NULL;
    snprintf(buf, size, SECRET_URL_FORM " (%s)", why);
    return buf;
}

static const char *check_identity(const char *value, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    return text_is_word(value) ? NULL : "the identity's ID with no spaces";
}

static const char *check_endpoint(const char *value, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    return source_check_base_url(value, NULL) == AZID_OK
               ? NULL
               : "scheme://host[:port] with scheme http or https and no path, "
                 "e.g. http://127.0.0.1:40342";
}

static const char *check_path(const char *value, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    int ok = value[0] == '/';
    for (const char *p = value; ok && *p; p++)
        ok = (unsigned char)*p >= ' ' && *p != 0x7f;
    return ok ? NULL : "an absolute path";
}

static const char *check_broker(const char *value, char *buf, size_t size)
{
    if (!strcmp(value, "auto") || !strcmp(value, "off") || !check_path(value, buf, size))
        return NULL;
    return "auto, off or the absolute path of the broker's socket";
}

static int is_name_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '_' || c == '-';
}

/* A user name, or @ and a group name, as useradd and groupadd accept them. */
static int is_account_name(const char *p, size_t len)
{
    if (len && *p == '@')
        p++, len--;
    if (!len || len > 32 || *p == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(p[i]) && !(p[i] == '$' && i == len - 1))
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

static const char *check_accounts(const char *value, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    for (const char *p = value;;) {
        size_t len = strcspn(p, ",");
        if (!is_account_name(p, len) && !is_ipv4_network(p, len))
            break;
        if (!p[len])
            return NULL;
        p += len + 1;
    }
    return "user names and @group names separated by commas, no spaces, e.g. alice,@ops (and "
           "IPv4 sources of forwarded traffic, a.b.c.d[/n])";
}

/* ---- the table ---------------------------------------------------------------------- */

static const char *const keyring_words[] = {
    [AZID_KEYRING_SESSION] = "session",
    [AZID_KEYRING_USER] = "user",
    [AZID_KEYRING_PERSISTENT] = "persistent",
    [AZID_KEYRING_PERSISTENT + 1] = NULL,
};
static const char *const fail_words[] = {"open", "closed", NULL};
static const char *const flag_words[] = {"no", "yes", NULL};

#define FIELD(f) .offset = offsetof(struct settings, f)
#define ANYWHERE (OPT_FILE | OPT_ARG)
#define IDENTITY_DOC "; at most one of client_id, object_id, msi_res_id per Match block"
#define IDENTITY(n, k, what)                                                                  \
    {.name = n, .type = OPT_IDENTITY, FIELD(identity), .where = ANYWHERE, .syntax = what,     \
     .doc = "user-assigned identity by " what IDENTITY_DOC,                                    \
     .unset_means = "system-assigned identity", .check = check_identity, .identity = k}

static const struct option options[] = {
    {.name = "resource", .type = OPT_GRANT, .where = ANYWHERE, .syntax = "URI",
     .doc = "resource (audience) to get a token for; repeatable",
     .unset_means = "none granted (nothing is granted implicitly)", .check = check_resource},
    {.name = "secret", .type = OPT_GRANT, .where = ANYWHERE, .syntax = "URL",
     .doc = "Key Vault secret to fetch, " SECRET_URL_FORM "; repeatable", .unset_means = "none",
     .check = check_secret, .grant_secret = 1},
    IDENTITY("client_id", AZID_IDENTITY_CLIENT_ID, "client ID"),
    IDENTITY("object_id", AZID_IDENTITY_OBJECT_ID, "object ID"),
    IDENTITY("msi_res_id", AZID_IDENTITY_MSI_RES_ID, "Azure resource ID"),
    {.name = "timeout", .type = OPT_SECONDS, FIELD(timeout_ms), .where = ANYWHERE,
     .syntax = "SECONDS",
     .doc = "total time for all network work of one session open, retries included",
     .default_text = "5", .min_ms = 1, .max_ms = AZID_TIMEOUT_MAX_MS},
    {.name = "endpoint", .type = OPT_TEXT, FIELD(endpoint), .where = ANYWHERE, .syntax = "URL",
     .doc = "token endpoint base, scheme://host[:port]; for tests and proxies",
     .unset_means = "the detected source's endpoint", .check = check_endpoint},
    {.name = "source", .type = OPT_CHOICE, FIELD(source), .where = ANYWHERE,
     .syntax = "auto|imds|arc|appservice|cloudshell|workload",
     .doc = "identity source; auto detects it", .default_text = "auto", .words = source_names},
    {.name = "keyring", .type = OPT_CHOICE, FIELD(keyring), .where = ANYWHERE,
     .syntax = "session|user|persistent", .doc = "keyring the keys go to",
     .default_text = "session", .words = keyring_words},
    {.name = "fail", .type = OPT_CHOICE, FIELD(fail_closed), .where = ANYWHERE,
     .syntax = "open|closed", .doc = "open: log and let the login go on; closed: fail the session",
     .default_text = "open", .words = fail_words},
    {.name = "config", .type = OPT_TEXT, FIELD(config), .where = OPT_ARG, .syntax = "PATH",
     .doc = "config file to read (a module or command-line argument only)",
     .default_text = AZID_CONFIG_PATH, .check = check_path},
    {.name = "ca_file", .type = OPT_TEXT, FIELD(ca_file), .where = ANYWHERE, .syntax = "PATH",
     .doc = "extra CA bundle for HTTPS (Key Vault)", .unset_means = "the system trust store",
     .check = check_path},
    {.name = "debug", .type = OPT_FLAG, FIELD(debug), .where = ANYWHERE, .syntax = "yes|no",
     .doc = "verbose logging, never a token or secret value", .default_text = "no",
     .words = flag_words},
    {.name = "broker", .type = OPT_TEXT, FIELD(broker), .where = ANYWHERE,
     .syntax = "auto|off|PATH",
     .doc = "ask the broker at this socket; auto: " AZID_BROKER_SOCKET " when it answers",
     .default_text = "auto", .check = check_broker},
    {.name = "negative_cache", .type = OPT_SECONDS, FIELD(negative_cache_ms),
     .where = OPT_FILE | OPT_GLOBAL, .syntax = "SECONDS",
     .doc = "the broker answers a failure at once for this long after the endpoint failed "
            "(file only)",
     .default_text = "60", .min_ms = 0, .max_ms = 3600 * 1000},
    {.name = "lockdown_allow", .type = OPT_NAMES, .where = OPT_FILE | OPT_GLOBAL,
     .syntax = "NAME[,@GROUP...]",
     .doc = "users and @groups azid lockdown lets reach the identity endpoint (file only, "
            "outside Match)",
     .unset_means = "only root and the broker's user", .check = check_accounts},
};

#define NOPTIONS (sizeof options / sizeof options[0])

const struct option *option_at(size_t index)
{
    return index < NOPTIONS ? &options[index] : NULL;
}

size_t option_count(void)
{
    return NOPTIONS;
}

const struct option *option_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

const char *azid_identity_name(azid_identity_kind kind)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].type == OPT_IDENTITY && options[i].identity == kind)
            return options[i].name;
    return NULL;
}

size_t option_slot(const struct option *option)
{
    size_t i = 0;
    while (options[i].type != option->type || options[i].offset != option->offset)
        i++;
    return i;
}

void option_names(unsigned where, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NOPTIONS && used < size; i++)
        if (options[i].where & where)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                                     options[i].name);
}

/* ---- values ----------------------------------------------------------------------------- */

static int word_index(const char *const *words, const char *value)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(words[i], value))
            return i;
    return -1;
}

azid_status option_parse(const struct option *option, const char *text,
                         union option_value *out, char *expect, size_t size)
{
    const char *why = NULL;
    switch (option->type) {
    case OPT_SECONDS:
        out->ms = seconds_parse(text, option->min_ms, option->max_ms);
        if (out->ms >= 0)
            return AZID_OK;
        snprintf(expect, size, "seconds, e.g. %s or 2.5 (%s, at most %ld)", option->default_text,
                 option->min_ms ? "more than 0" : "0 turns it off", option->max_ms / 1000);
        return AZID_ERR_ARGUMENT;
    case OPT_CHOICE:
    case OPT_FLAG:
        out->word = word_index(option->words, text);
        if (out->word >= 0)
            return AZID_OK;
        size_t used = (size_t)snprintf(expect, size, "one of");
        for (int i = 0; option->words[i] && used < size; i++)
            used += (size_t)snprintf(expect + used, size - used, "%s %s", i ? "," : "",
                                     option->words[i]);
        return AZID_ERR_ARGUMENT;
    case OPT_IDENTITY:
        if ((why = option->check(text, expect, size))) {
            snprintf(expect, size, "the identity's %s with no spaces", option->syntax);
            return AZID_ERR_ARGUMENT;
        }
        break;
    case OPT_GRANT:
    case OPT_NAMES:
    case OPT_TEXT:
        if ((why = option->check(text, expect, size))) {
            if (why != expect)
                snprintf(expect, size, "%s", why);
            return AZID_ERR_ARGUMENT;
        }
        break;
    }
    out->text = strdup(text);
    return out->text ? AZID_OK : AZID_ERR_NOMEM;
}

void option_value_free(const struct option *option, union option_value *value)
{
    if (option->type != OPT_SECONDS && option->type != OPT_CHOICE && option->type != OPT_FLAG)
        free(value->text);
    value->text = NULL;
}

void option_store(const struct option *option, const union option_value *value,
                  struct settings *settings)
{
    char *field = (char *)settings + option->offset;
    switch (option->type) {
    case OPT_SECONDS:
        memcpy(field, &value->ms, sizeof value->ms);
        break;
    case OPT_CHOICE:
    case OPT_FLAG: {
        /* The enums and flags of struct settings are all int-sized. */
        int word = value->word;
        memcpy(field, &word, sizeof word);
        break;
    }
    case OPT_IDENTITY: {
        struct identity id = {option->identity, value->text};
        memcpy(field, &id, sizeof id);
        break;
    }
    case OPT_TEXT: {
        const char *text = value->text;
        memcpy(field, &text, sizeof text);
        break;
    }
    case OPT_GRANT:
    case OPT_NAMES:
        break;
    }
}

void option_format(const struct option *option, const struct settings *settings, char *buf,
                   size_t size)
{
    const char *field = (const char *)settings + option->offset;
    long ms;
    int word;
    const char *text;
    struct identity id;
    switch (option->type) {
    case OPT_SECONDS:
        memcpy(&ms, field, sizeof ms);
        if (ms % 1000)
            snprintf(buf, size, "%ld.%03ld", ms / 1000, ms % 1000);
        else
            snprintf(buf, size, "%ld", ms / 1000);
        /* 2.500 reads 2.5 */
        for (size_t n = strlen(buf); ms % 1000 && buf[n - 1] == '0'; n--)
            buf[n - 1] = '\0';
        return;
    case OPT_CHOICE:
    case OPT_FLAG:
        memcpy(&word, field, sizeof word);
        snprintf(buf, size, "%s", option->words[word]);
        return;
    case OPT_IDENTITY:
        memcpy(&id, field, sizeof id);
        snprintf(buf, size, "%s", id.id ? id.id : "");
        return;
    case OPT_TEXT:
        memcpy(&text, field, sizeof text);
        snprintf(buf, size, "%s", text ? text : "");
        return;
    case OPT_GRANT:
    case OPT_NAMES:
        buf[0] = '\0';
        return;
    }
}

void settings_defaults(struct settings *settings)
{
    memset(settings, 0, sizeof *settings);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        union option_value v;
        char expect[16];
        if (!o->default_text)
            continue;
        /* Text defaults are literals: store them without a copy. */
        if (o->type == OPT_TEXT)
            v.text = (char *)o->default_text;
        else if (option_parse(o, o->default_text, &v, expect, sizeof expect) != AZID_OK)
            continue; /* tests/unit/test_config checks every default parses */
        option_store(o, &v, settings);
    }
}

const char *azid_keyring_name(azid_keyring keyring)
{
    return (unsigned)keyring <= AZID_KEYRING_PERSISTENT ? keyring_words[keyring] : "unknown";
}

azid_status azid_keyring_parse(const char *name, azid_keyring *out, azid_error *err)
{
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the keyring (NULL)");
    int i = name ? word_index(keyring_words, name) : -1;
    if (i < 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "keyring '%.100s': expected one of session, user, persistent",
                       name ? name : "");
    *out = (azid_keyring)i;
    return AZID_OK;
}
