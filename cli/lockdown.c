/* SPDX-License-Identifier: MIT
 * Who lockdown lets through, and the state file that tells the users who
 * cannot read the ruleset.  The state file is a hint, never the truth:
 * `azid fetch` believes it only when the endpoint also refuses it at once,
 * because `nft flush ruleset` (nftables.service restarting) removes the
 * rules and leaves the file. */
#include "config.h"

#include "lockdown.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long azid fetch waits for the endpoint to refuse it: a reset comes
 * back in well under a millisecond, a real endpoint accepts as fast. */
#define PROBE_TIMEOUT_MS 1000
#define STATE_MAX 8192

static azid_status fail(azid_error *err, azid_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static azid_status fail(azid_error *err, azid_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
        err->http_status = 0;
    }
    return status;
}

void lockdown_allow_free(struct lockdown_allow *allow)
{
    free(allow->uids);
    free(allow->sources);
    *allow = (struct lockdown_allow){0};
}

int lockdown_allows_uid(const struct lockdown_allow *allow, uid_t uid)
{
    for (size_t i = 0; i < allow->nuids; i++)
        if (allow->uids[i] == uid)
            return 1;
    return 0;
}

int lockdown_allow_uid(struct lockdown_allow *allow, uid_t uid)
{
    if (lockdown_allows_uid(allow, uid))
        return 0;
    uid_t *uids = realloc(allow->uids, (allow->nuids + 1) * sizeof *uids);
    if (!uids)
        return -1;
    /* Sorted, as nft lists a set: the state file and status compare alike. */
    size_t i = allow->nuids;
    for (; i > 0 && uids[i - 1] > uid; i--)
        uids[i] = uids[i - 1];
    uids[i] = uid;
    allow->uids = uids;
    allow->nuids++;
    return 0;
}

/* "a.b.c.d" or "a.b.c.d/n" as nft lists it (host bits cleared, /32 bare)
 * into out; -1 when text is not such an address. */
static int parse_source(const char *text, char out[20])
{
    char addr[16];
    unsigned prefix = 32;
    size_t len = strcspn(text, "/");
    if (len >= sizeof addr)
        return -1;
    memcpy(addr, text, len);
    addr[len] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return -1;
    if (text[len] == '/') {
        const char *p = text + len + 1;
        if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 2 || atoi(p) > 32)
            return -1;
        prefix = (unsigned)atoi(p);
    }
    uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
    in.s_addr &= mask;
    inet_ntop(AF_INET, &in, addr, sizeof addr);
    if (prefix == 32)
        snprintf(out, 20, "%s", addr);
    else
        snprintf(out, 20, "%s/%u", addr, prefix);
    return 0;
}

int lockdown_allow_source(struct lockdown_allow *allow, const char *text)
{
    char source[20];
    if (parse_source(text, source) < 0)
        return -1;
    for (size_t i = 0; i < allow->nsources; i++)
        if (strcmp(allow->sources[i], source) == 0)
            return 0;
    char(*sources)[20] = realloc(allow->sources, (allow->nsources + 1) * sizeof *sources);
    if (!sources)
        return -1;
    memcpy(sources[allow->nsources], source, sizeof source);
    allow->sources = sources;
    allow->nsources++;
    return 0;
}

/* Every user whose primary group is gid or whom the group lists. */
static int allow_group(struct lockdown_allow *allow, const struct group *gr)
{
    gid_t gid = gr->gr_gid;
    for (char **member = gr->gr_mem; member && *member; member++) {
        const struct passwd *pw = getpwnam(*member);
        if (pw && lockdown_allow_uid(allow, pw->pw_uid) < 0)
            return -1;
    }
    setpwent();
    for (const struct passwd *pw; (pw = getpwent());)
        if (pw->pw_gid == gid && lockdown_allow_uid(allow, pw->pw_uid) < 0) {
            endpwent();
            return -1;
        }
    endpwent();
    return 0;
}

/* One lockdown_allow entry, as the option table checked it. */
static azid_status allow_entry(struct lockdown_allow *allow, const char *entry,
                               void (*warn)(const char *message, void *ctx), void *ctx,
                               azid_error *err)
{
    char message[300], source[20];
    int rc = 0;
    if (entry[0] == '@') {
        const struct group *gr = entry[1] ? getgrnam(entry + 1) : NULL;
        if (!entry[1])
            return fail(err, AZID_ERR_CONFIG, "lockdown_allow: '@' names no group; write @GROUP");
        if (!gr) {
            if (!warn)
                return AZID_OK;
            snprintf(message, sizeof message,
                     "lockdown_allow: no group '%s' here; its members stay refused", entry + 1);
            warn(message, ctx);
            return AZID_OK;
        }
        rc = allow_group(allow, gr);
    } else if (entry[0] >= '0' && entry[0] <= '9' && strchr(entry, '.')) {
        if (parse_source(entry, source) < 0)
            return fail(err, AZID_ERR_CONFIG,
                        "lockdown_allow: '%s' is not an IPv4 address or network "
                        "(a.b.c.d or a.b.c.d/n)", entry);
        rc = lockdown_allow_source(allow, source);
    } else {
        const struct passwd *pw = getpwnam(entry);
        if (!pw) {
            if (!warn)
                return AZID_OK;
            snprintf(message, sizeof message,
                     "lockdown_allow: no user '%s' here; nobody is let through for it", entry);
            warn(message, ctx);
            return AZID_OK;
        }
        rc = lockdown_allow_uid(allow, pw->pw_uid);
    }
    return rc < 0 ? fail(err, AZID_ERR_NOMEM, "out of memory") : AZID_OK;
}

/* The config file at path (NULL: the built-in one), Match blocks aside. */
static azid_config *load_config(const char *path, azid_error *err)
{
    azid_config *config = azid_config_new();
    char *arg = NULL;
    if (!config || (path && asprintf(&arg, "config=%s", path) < 0)) {
        azid_config_free(config);
        fail(err, AZID_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if ((arg && azid_config_apply_arg(config, arg, err) != AZID_OK) ||
        azid_config_load(config, NULL, err) != AZID_OK) {
        azid_config_free(config);
        config = NULL;
    }
    free(arg);
    return config;
}

azid_status lockdown_desired(const char *config_path, struct lockdown_allow *allow,
                             void (*warn)(const char *message, void *ctx), void *ctx,
                             azid_error *err)
{
    *allow = (struct lockdown_allow){0};
    azid_config *config = load_config(config_path, err);
    if (!config)
        return err ? err->status : AZID_ERR_CONFIG;
    azid_status status = AZID_OK;
    if (lockdown_allow_uid(allow, 0) < 0)
        goto nomem;
    const struct passwd *broker = getpwnam(LOCKDOWN_BROKER_USER);
    if (broker && lockdown_allow_uid(allow, broker->pw_uid) < 0)
        goto nomem;

    const char *const *entries;
    size_t n = azid_config_lockdown_allow(config, &entries);
    for (size_t i = 0; i < n && status == AZID_OK; i++)
        status = allow_entry(allow, entries[i], warn, ctx, err);
    azid_config_free(config);
    if (status != AZID_OK)
        lockdown_allow_free(allow);
    return status;
nomem:
    azid_config_free(config);
    lockdown_allow_free(allow);
    return fail(err, AZID_ERR_NOMEM, "out of memory");
}

int lockdown_same_allow(const struct lockdown_allow *a, const struct lockdown_allow *b)
{
    if (a->nuids != b->nuids || a->nsources != b->nsources)
        return 0;
    for (size_t i = 0; i < a->nuids; i++)
        if (a->uids[i] != b->uids[i])
            return 0;
    for (size_t i = 0; i < a->nsources; i++) {
        size_t j = 0;
        while (j < b->nsources && strcmp(a->sources[i], b->sources[j]) != 0)
            j++;
        if (j == b->nsources)
            return 0;
    }
    return 1;
}

void lockdown_format_uids(const struct lockdown_allow *allow, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < allow->nuids && used < size; i++) {
        const struct passwd *pw = getpwuid(allow->uids[i]);
        int n = pw ? snprintf(buf + used, size - used, "%s%u (%s)", i ? ", " : "",
                              (unsigned)allow->uids[i], pw->pw_name)
                   : snprintf(buf + used, size - used, "%s%u", i ? ", " : "",
                              (unsigned)allow->uids[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* ---- the state file --------------------------------------------------------- */

azid_status lockdown_state_write(const struct lockdown_allow *allow, azid_error *err)
{
    static const char tmp[] = LOCKDOWN_STATE_FILE ".new";
    unlink(tmp); /* left by a run that died between open and rename */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(err, AZID_ERR_SYSTEM, "cannot write %s: %s", tmp, strerror(e));
    }
    fprintf(f, "# azid lockdown on: who may reach " LOCKDOWN_ADDR ":%d (see azid(1));\n"
               "# the rules are table inet azid ('nft list table inet azid').\nuids",
            LOCKDOWN_PORT);
    for (size_t i = 0; i < allow->nuids; i++)
        fprintf(f, " %u", (unsigned)allow->uids[i]);
    fputs("\nsources", f);
    for (size_t i = 0; i < allow->nsources; i++)
        fprintf(f, " %s", allow->sources[i]);
    fputc('\n', f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, LOCKDOWN_STATE_FILE) != 0) {
        int e = errno;
        unlink(tmp);
        return fail(err, AZID_ERR_SYSTEM, "cannot write %s: %s", LOCKDOWN_STATE_FILE,
                    strerror(e));
    }
    return AZID_OK;
}

azid_status lockdown_state_remove(azid_error *err)
{
    if (unlink(LOCKDOWN_STATE_FILE) != 0 && errno != ENOENT)
        return fail(err, AZID_ERR_SYSTEM, "cannot remove %s: %s", LOCKDOWN_STATE_FILE,
                    strerror(errno));
    return AZID_OK;
}

azid_status lockdown_state_read(struct lockdown_allow *allow, azid_error *err)
{
    *allow = (struct lockdown_allow){0};
    FILE *f = fopen(LOCKDOWN_STATE_FILE, "re");
    if (!f)
        return errno == ENOENT
                   ? fail(err, AZID_ERR_NOT_FOUND, "lockdown is off (no %s)", LOCKDOWN_STATE_FILE)
                   : fail(err, AZID_ERR_SYSTEM, "cannot read %s: %s", LOCKDOWN_STATE_FILE,
                          strerror(errno));
    char line[STATE_MAX];
    azid_status status = AZID_OK;
    while (status == AZID_OK && fgets(line, sizeof line, f)) {
        char *save = NULL, *word = strtok_r(line, " \n", &save);
        int uids = word && strcmp(word, "uids") == 0;
        int sources = word && strcmp(word, "sources") == 0;
        while ((uids || sources) && (word = strtok_r(NULL, " \n", &save))) {
            char *end;
            errno = 0;
            unsigned long uid = uids ? strtoul(word, &end, 10) : 0;
            if (uids ? (errno || *end || uid > (uid_t)-1 ||
                        lockdown_allow_uid(allow, (uid_t)uid) < 0)
                     : lockdown_allow_source(allow, word) < 0)
                status = fail(err, AZID_ERR_SYSTEM, "%s: unexpected '%s'; run 'azid lockdown "
                              "on' again to rewrite it", LOCKDOWN_STATE_FILE, word);
        }
    }
    fclose(f);
    if (status != AZID_OK)
        lockdown_allow_free(allow);
    return status;
}

/* ---- azid fetch under lockdown ------------------------------------------------ */

/* Whether url names LOCKDOWN_ADDR port 80 over http. */
static int is_lockdown_endpoint(const char *url)
{
    static const char prefix[] = "http://" LOCKDOWN_ADDR;
    if (!url || strncmp(url, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *rest = url + sizeof prefix - 1;
    if (strncmp(rest, ":80", 3) == 0)
        rest += 3;
    return *rest == '\0' || *rest == '/';
}

/* 1 when a TCP connection to the endpoint is refused (the rules' reset). */
static int endpoint_refuses(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(LOCKDOWN_PORT)};
    inet_pton(AF_INET, LOCKDOWN_ADDR, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int e = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        e = errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        socklen_t len = sizeof e;
        if (e == EINPROGRESS && poll(&p, 1, PROBE_TIMEOUT_MS) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
            e = 0;
    }
    close(fd);
    return e == ECONNREFUSED;
}

int lockdown_refuses_caller(const char *url)
{
    struct lockdown_allow allow;
    if (!is_lockdown_endpoint(url) || lockdown_state_read(&allow, NULL) != AZID_OK)
        return 0;
    int allowed = lockdown_allows_uid(&allow, geteuid());
    lockdown_allow_free(&allow);
    return !allowed && endpoint_refuses();
}
