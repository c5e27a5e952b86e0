/* SPDX-License-Identifier: MIT
 * The firewall side of lockdown: running nft, reading table inet azid.
 *
 * The rules go through the nft command, not libnftables: `azid` is the
 * command every user runs for `azid token`, and linking libnftables
 * would load it (with libnftnl, libmnl and libxtables) into each of those
 * runs and make the package depend on it where nobody locks down.  nft -f
 * applies a whole file as one kernel transaction, exactly as the library
 * would; its errors are the ones an admin knows; and the rules azid writes
 * are the text `nft list table inet azid` shows and an admin can apply by
 * hand.  The price is one fork and exec per command, paid only by root. */
#include "config.h"

#include "lockdown.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where Debian and a source build put nft; PATH is not searched, so the
 * firewall is changed by the nft the system installed. */
static const char *const nft_paths[] = {"/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"};
/* nft answers in milliseconds; this only bounds a wedged one. */
#define NFT_LIMIT_MS 30000
#define NFT_OUTPUT_MAX (4 * 1024 * 1024)

static const char *find_nft(void)
{
    for (size_t i = 0; i < sizeof nft_paths / sizeof nft_paths[0]; i++)
        if (access(nft_paths[i], X_OK) == 0)
            return nft_paths[i];
    return NULL;
}

static long ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Appends what is ready on fd to *buf (capped); 0 at end of file. */
static int drain(int fd, char **buf, size_t *len)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return n < 0 && errno == EINTR ? 1 : 0;
    if (*len + (size_t)n > NFT_OUTPUT_MAX)
        return 1;
    char *grown = realloc(*buf, *len + (size_t)n + 1);
    if (!grown)
        return 1;
    memcpy(grown + *len, chunk, (size_t)n);
    *len += (size_t)n;
    grown[*len] = '\0';
    *buf = grown;
    return 1;
}

int lockdown_nft(const char *const *args, const char *input, char **out, char *why,
                   size_t why_size)
{
    const char *nft = find_nft();
    *out = NULL;
    if (!nft) {
        snprintf(why, why_size, "nft is not installed (looked in /usr/sbin, /sbin, "
                                "/usr/local/sbin); install the nftables package");
        return -1;
    }
    const char *argv[8] = {"nft"};
    size_t argc = 1;
    for (; args[argc - 1] && argc < sizeof argv / sizeof argv[0] - 1; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    int in[2], o[2], e[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        close(in[0]), close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
        if (dup2(in[0], 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
            _exit(127);
        execve(nft, (char *const *)argv, env);
        dprintf(2, "cannot run %s: %s\n", nft, strerror(errno));
        _exit(127);
    }
    close(in[0]), close(o[1]), close(e[1]);
    if (pid < 0) {
        snprintf(why, why_size, "cannot start %s: %s", nft, strerror(errno));
        close(in[1]), close(o[0]), close(e[0]);
        return -1;
    }
    /* The rules are a few hundred bytes: far below a pipe's buffer. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    if (input && write(in[1], input, strlen(input)) < 0)
        snprintf(why, why_size, "writing to nft: %s", strerror(errno));
    close(in[1]);
    signal(SIGPIPE, old);

    char *errtext = NULL;
    size_t outlen = 0, errlen = 0;
    struct pollfd p[2] = {{.fd = o[0], .events = POLLIN}, {.fd = e[0], .events = POLLIN}};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int open_fds = 2, timed_out = 0;
    while (open_fds > 0) {
        long left = NFT_LIMIT_MS - ms_since(&start);
        if (left <= 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(p, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (p[i].fd >= 0 && p[i].revents &&
                !drain(p[i].fd, i ? &errtext : out, i ? &errlen : &outlen)) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        free(errtext);
        return 0;
    }
    if (timed_out)
        snprintf(why, why_size, "%s did not finish within %d s", nft, NFT_LIMIT_MS / 1000);
    else if (errtext && *errtext)
        snprintf(why, why_size, "nft: %.*s", (int)strcspn(errtext, "\n"), errtext);
    else
        snprintf(why, why_size, "%s failed (status %d)", nft,
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    free(errtext);
    free(*out);
    *out = NULL;
    return -1;
}

/* The set elements of table inet azid as nft lists them (JSON). */
static int parse_applied(const char *json, struct lockdown_allow *allow)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr), *item;
    size_t i;
    int rc = root ? 0 : -1;
    json_array_foreach(json_object_get(root, "nftables"), i, item) {
        json_t *set = json_object_get(item, "set"), *elem;
        const char *name = json_string_value(json_object_get(set, "name"));
        if (!name)
            continue;
        size_t j;
        json_array_foreach(json_object_get(set, "elem"), j, elem) {
            char text[20];
            json_t *prefix = json_object_get(elem, "prefix");
            if (json_is_integer(elem) && strcmp(name, "allowed_uids") == 0)
                rc |= lockdown_allow_uid(allow, (uid_t)json_integer_value(elem));
            else if (json_is_string(elem) || prefix) {
                if (prefix)
                    snprintf(text, sizeof text, "%s/%d",
                             json_string_value(json_object_get(prefix, "addr")),
                             (int)json_integer_value(json_object_get(prefix, "len")));
                else
                    snprintf(text, sizeof text, "%s", json_string_value(elem));
                rc |= lockdown_allow_source(allow, text);
            }
        }
    }
    json_decref(root);
    return rc;
}

int lockdown_read_applied(struct lockdown_allow *allow, char *why, size_t why_size)
{
    static const char *const tables[] = {"-j", "list", "tables", "inet", NULL};
    static const char *const table[] = {"-j", "list", "table", "inet", "azid", NULL};
    char *out = NULL;
    *allow = (struct lockdown_allow){0};
    if (lockdown_nft(tables, NULL, &out, why, why_size) != 0)
        return -1;
    json_t *root = json_loads(out ? out : "", 0, NULL), *item;
    size_t i;
    int on = 0;
    json_array_foreach(json_object_get(root, "nftables"), i, item) {
        const char *name = json_string_value(json_object_get(json_object_get(item, "table"), "name"));
        on |= name && strcmp(name, "azid") == 0;
    }
    json_decref(root);
    free(out);
    if (!on)
        return 0;
    if (lockdown_nft(table, NULL, &out, why, why_size) != 0)
        return -1;
    int rc = parse_applied(out ? out : "", allow);
    free(out);
    if (rc != 0) {
        snprintf(why, why_size, "cannot read nft's listing of table inet azid");
        lockdown_allow_free(allow);
        return -1;
    }
    return 1;
}
