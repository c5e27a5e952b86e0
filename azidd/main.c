/* SPDX-License-Identifier: MIT
 * azidd(8): options, the listening socket (its own or systemd's), and one
 * poll loop over every connection and fetcher.  A connection lives through
 * three states, each with a deadline: reading its one request line,
 * waiting for the cache entries it needs, writing the reply.  No caller
 * can hold the loop: reads and writes never block, and a request that is
 * garbage, too large, incomplete or too slow gets an error reply and is
 * closed. */
#include "config.h"

#include "azidd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
/* An unprivileged uid cannot take every connection slot. */
#define MAX_CONNS_PER_UID 32
#define READ_DEADLINE_MS 2000
#define WRITE_DEADLINE_MS 5000
/* A caller waits at most this long even if a fetcher misbehaves (it is
 * killed after its own timeout, at most an hour by the option table). */
#define WAIT_DEADLINE_MS (3700L * 1000)
#define SD_LISTEN_FDS_START 3

enum conn_state { CONN_READ, CONN_WAIT, CONN_WRITE };

struct conn {
    int fd;
    struct ucred peer;
    enum conn_state state;
    int64_t deadline_ms;
    size_t in_length;
    struct broker_request req;
    struct entry *items[BROKER_MAX_ITEMS];
    /* ms the item's failure stays in the negative cache, when it was
     * there as the request came in; -1 otherwise */
    long negative_left_ms[BROKER_MAX_ITEMS];
    size_t nitems;
    uid_t uid; /* whose token: the peer, or the user a root caller names */
    char user[256];
    struct broker_buf out;
    size_t sent;
    /* Last: accept_all does not zero it (8 KB at every connection); only
     * the in_length bytes that recv wrote are read, and wiped. */
    char in[BROKER_MAX_REQUEST + 1];
};

static struct conn *conns[MAX_CONNS];
static size_t nconns;
static const char *config_path; /* --config; NULL for the built-in path */
/* A reply was made since the poll set was built: it has no POLLOUT there. */
static bool replied;
static volatile sig_atomic_t stopping;

void log_msg(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(priority, fmt, ap);
    va_end(ap);
}

/* ---- configuration --------------------------------------------------------- */

/* The config file as it is now, for user (NULL: no Match block). */
static azid_status load_config(const char *user, azid_config **out, azid_error *err)
{
    azid_config *cfg = azid_config_new();
    if (!cfg)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    azid_status st = AZID_OK;
    if (config_path) {
        char arg[4200];
        snprintf(arg, sizeof arg, "config=%s", config_path);
        st = azid_config_apply_arg(cfg, arg, err);
    }
    if (st == AZID_OK)
        st = azid_config_load(cfg, user, err);
    if (st != AZID_OK) {
        azid_config_free(cfg);
        return st;
    }
    *out = cfg;
    return AZID_OK;
}

long config_negative_cache_ms(void)
{
    azid_config *cfg;
    azid_error err;
    if (load_config(NULL, &cfg, &err) != AZID_OK) {
        log_msg(LOG_ERR, "negative_cache: %s; using %d s", err.message, AZIDD_DEFAULT_NEGATIVE_S);
        return AZIDD_DEFAULT_NEGATIVE_S * 1000L;
    }
    long ms = azid_config_negative_cache_ms(cfg);
    azid_config_free(cfg);
    return ms;
}

/* ---- connections -------------------------------------------------------------- */

static void conn_close(size_t i)
{
    struct conn *c = conns[i];
    close(c->fd);
    broker_request_free(&c->req);
    broker_buf_free(&c->out);
    explicit_bzero(c->in, c->in_length);
    free(c);
    conns[i] = conns[--nconns];
}

static void start_reply(struct conn *c)
{
    broker_buf_word(&c->out, "end");
    broker_buf_end_line(&c->out);
    c->state = CONN_WRITE;
    c->deadline_ms = now_ms() + WRITE_DEADLINE_MS;
    c->sent = 0;
    replied = true;
}

/* Replaces whatever was built with one error line. */
static void reply_error(struct conn *c, azid_status status, const char *message)
{
    broker_buf_free(&c->out);
    broker_buf_init(&c->out, BROKER_MAX_LINE);
    broker_buf_word(&c->out, "error");
    broker_buf_field(&c->out, "status", azid_status_name(status));
    broker_buf_message(&c->out, message);
    broker_buf_end_line(&c->out);
    start_reply(c);
}

static void audit(const struct conn *c, const struct entry *e, const struct broker_item *item,
                  int64_t expires_on, const char *how)
{
    char when[32] = "?";
    time_t t = (time_t)expires_on;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_msg(LOG_INFO, "issued %s: user %s (uid %u), identity %s, %s %s, expires %s (%lld), %s",
            item->secret ? "secret" : "token", c->user, (unsigned)c->uid, cache_identity(e),
            item->secret ? "secret" : "resource", item->target, when, (long long)expires_on,
            how);
    cache_count_served();
}

/* Every item has its answer: the reply. */
static void answer(struct conn *c)
{
    broker_buf_init(&c->out, BROKER_MAX_REPLY);
    for (size_t i = 0; i < c->nitems; i++) {
        struct entry *e = c->items[i];
        const struct broker_item *item = &c->req.items[i];
        const char *what = item->secret ? "secret" : "resource";
        const char *value = NULL;
        int64_t expires_on = 0;
        int32_t serial = -1;
        azid_error err;
        azid_status st = cache_token(e, &value, &expires_on, &err);
        if (st == AZID_OK && c->req.verb == BROKER_VERB_KEY)
            st = cache_user_key(e, c->uid, &serial, &err);
        if (st != AZID_OK && c->negative_left_ms[i] >= 0) {
            cache_count_negative_hit();
            log_msg(LOG_NOTICE,
                    "nothing issued to user %s (uid %u) for %s %s: %s (from the negative "
                    "cache, %.1f s left)",
                    c->user, (unsigned)c->uid, what, item->target, err.message,
                    (double)c->negative_left_ms[i] / 1000);
        } else if (st != AZID_OK)
            log_msg(LOG_NOTICE, "nothing issued to user %s (uid %u) for %s %s: %s", c->user,
                    (unsigned)c->uid, what, item->target, err.message);
        if (st != AZID_OK) {
            broker_buf_word(&c->out, c->req.verb == BROKER_VERB_KEY ? "fail" : "error");
            broker_buf_field(&c->out, what, item->target);
            broker_buf_field(&c->out, "status", azid_status_name(st));
            broker_buf_message(&c->out, err.message);
        } else if (c->req.verb == BROKER_VERB_KEY) {
            char how[64];
            snprintf(how, sizeof how, "shared key %d", serial);
            audit(c, e, item, expires_on, how);
            broker_buf_word(&c->out, "key");
            broker_buf_field(&c->out, what, item->target);
            broker_buf_field_int(&c->out, "serial", serial);
            broker_buf_field_int(&c->out, "expires_on", expires_on);
            const char *host, *name;
            if (cache_secret_names(e, &host, &name)) {
                broker_buf_field(&c->out, "vault_host", host);
                broker_buf_field(&c->out, "name", name);
            }
        } else {
            audit(c, e, item, expires_on, "value to the caller");
            broker_buf_word(&c->out, "token");
            broker_buf_field(&c->out, "resource", item->target);
            broker_buf_field_int(&c->out, "expires_on", expires_on);
            broker_buf_field(&c->out, "type", "Bearer");
            broker_buf_field(&c->out, "value", value);
        }
        broker_buf_end_line(&c->out);
    }
    if (c->out.failed)
        reply_error(c, AZID_ERR_NOMEM, "out of memory building the reply");
    else
        start_reply(c);
}

static void check_ready(struct conn *c)
{
    for (size_t i = 0; i < c->nitems; i++)
        if (!cache_ready(c->items[i]))
            return;
    answer(c);
}

static void answer_waiters(void)
{
    for (size_t i = 0; i < nconns; i++)
        if (conns[i]->state == CONN_WAIT)
            check_ready(conns[i]);
}

/* Waits for the entries of the request's resources under settings. */
static void want(struct conn *c, const struct broker_field *const *settings, size_t nsettings)
{
    for (size_t i = 0; i < c->req.nitems; i++) {
        azid_error err;
        struct entry *e = cache_entry(settings, nsettings, c->req.items[i].target,
                                      c->req.items[i].secret, &err);
        if (!e) {
            reply_error(c, err.status, err.message);
            return;
        }
        long left_ms;
        c->negative_left_ms[c->nitems] = cache_negative(e, &left_ms) ? left_ms : -1;
        c->items[c->nitems++] = e;
    }
    for (size_t i = 0; i < c->nitems; i++)
        cache_want(c->items[i]);
    c->state = CONN_WAIT;
    c->deadline_ms = now_ms() + WAIT_DEADLINE_MS;
    check_ready(c);
    /* The client tells a broker at work from a hung one by this; a fresh
     * connection's buffer always takes it. */
    if (c->state == CONN_WAIT)
        send(c->fd, "wait\n", 5, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The grant of resource to the user cfg was loaded for, NULL when none. */
static const azid_grant *granted(const azid_config *cfg, const char *resource)
{
    const azid_grant *grants;
    size_t n = azid_config_grants(cfg, &grants);
    for (size_t i = 0; i < n; i++)
        if (grants[i].kind == AZID_GRANT_TOKEN && strcmp(grants[i].target, resource) == 0)
            return &grants[i];
    return NULL;
}

/* A token request: what the config file grants the peer's uid, with the
 * identity of that grant and the file's source and endpoint. */
static void handle_token(struct conn *c)
{
    struct passwd *pw = getpwuid(c->peer.uid);
    if (!pw) {
        reply_error(c, AZID_ERR_ARGUMENT, "your uid is not in the user database");
        return;
    }
    c->uid = pw->pw_uid;
    snprintf(c->user, sizeof c->user, "%s", pw->pw_name);
    azid_config *cfg;
    azid_error err;
    if (load_config(c->user, &cfg, &err) != AZID_OK) {
        log_msg(LOG_ERR, "token request of user %s refused: %s", c->user, err.message);
        reply_error(c, err.status, err.message);
        return;
    }
    const char *resource = c->req.items[0].target;
    const azid_grant *grant = granted(cfg, resource);
    if (!grant) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s is not granted to user %s by %s; ask the administrator",
                 resource, c->user, azid_config_path(cfg));
        log_msg(LOG_NOTICE, "refused token request: %s", msg);
        azid_config_free(cfg);
        reply_error(c, AZID_ERR_ARGUMENT, msg);
        return;
    }
    long ms = azid_config_timeout_ms(cfg);
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%ld.%03ld", ms / 1000, ms % 1000);
    struct broker_field fields[4] = {
        {"source", azid_source_name(azid_config_source(cfg))},
        {"timeout", seconds},
    };
    size_t n = 2;
    if (azid_config_endpoint(cfg))
        fields[n++] = (struct broker_field){"endpoint", azid_config_endpoint(cfg)};
    if (grant->identity != AZID_IDENTITY_SYSTEM)
        fields[n++] = (struct broker_field){azid_identity_name(grant->identity),
                                            grant->identity_value};
    const struct broker_field *settings[4];
    for (size_t i = 0; i < n; i++)
        settings[i] = &fields[i];
    want(c, settings, n);
    azid_config_free(cfg);
}

/* A key request: root (pam_azid) names the user and the settings. */
static void handle_key(struct conn *c)
{
    if (c->peer.uid != 0) {
        reply_error(c, AZID_ERR_ARGUMENT, "key requests are for root (pam_azid); use a token "
                                          "request");
        return;
    }
    c->uid = c->req.uid;
    snprintf(c->user, sizeof c->user, "%s", c->req.user);
    want(c, c->req.settings, c->req.nsettings);
}

static void handle_request(struct conn *c)
{
    azid_error err;
    if (broker_proto_parse_request(c->in, c->in_length, &c->req, &err) != AZID_OK) {
        log_msg(LOG_NOTICE, "bad request from uid %u (pid %d): %s", (unsigned)c->peer.uid,
                (int)c->peer.pid, err.message);
        reply_error(c, err.status, err.message);
        return;
    }
    switch (c->req.verb) {
    case BROKER_VERB_STATUS:
        broker_buf_init(&c->out, BROKER_MAX_REPLY);
        cache_status(&c->out);
        if (c->out.failed)
            reply_error(c, AZID_ERR_NOMEM, "the status does not fit a reply");
        else
            start_reply(c);
        break;
    case BROKER_VERB_TOKEN:
        handle_token(c);
        break;
    case BROKER_VERB_KEY:
        handle_key(c);
        break;
    }
}

static void conn_read(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_length, sizeof c->in - c->in_length, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            reply_error(c, AZID_ERR_ARGUMENT, n == 0 ? "the request ended before its newline"
                                                     : "reading the request failed");
            return;
        }
        bool line = memchr(c->in + c->in_length, '\n', (size_t)n) != NULL;
        c->in_length += (size_t)n;
        if (line || c->in_length == sizeof c->in) {
            /* Past BROKER_MAX_REQUEST the parser says "larger than". */
            handle_request(c);
            return;
        }
    }
}

/* Writes what the socket takes; true when the connection is closed (all
 * written, or the peer is gone). */
static bool conn_write(size_t i)
{
    struct conn *c = conns[i];
    while (c->sent < c->out.length) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.length - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n <= 0)
            break;
        c->sent += (size_t)n;
    }
    /* Closing with unread input resets the connection, and the peer
     * (which sent too much) would lose the reply: read what is there. */
    char discard[4096];
    for (int k = 0; k < 16 && recv(c->fd, discard, sizeof discard, MSG_DONTWAIT) > 0; k++)
        ;
    conn_close(i);
    return true;
}

static void accept_all(int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct ucred peer;
        socklen_t len = sizeof peer;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
            close(fd);
            continue;
        }
        size_t same = 0;
        for (size_t i = 0; i < nconns; i++)
            same += conns[i]->peer.uid == peer.uid;
        struct conn *c = NULL;
        if (nconns < MAX_CONNS && (peer.uid == 0 || same < MAX_CONNS_PER_UID))
            c = malloc(sizeof *c);
        if (c)
            memset(c, 0, offsetof(struct conn, in));
        if (!c) {
            /* Closing with unread input would reset the connection and
             * lose the answer. */
            char discard[BROKER_MAX_REQUEST];
            recv(fd, discard, sizeof discard, MSG_DONTWAIT);
            static const char busy[] = "error status=system message=the broker is busy; try "
                                       "again\nend\n";
            send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->peer = peer;
        c->state = CONN_READ;
        c->deadline_ms = now_ms() + READ_DEADLINE_MS;
        broker_buf_init(&c->out, BROKER_MAX_REPLY);
        conns[nconns++] = c;
    }
}

/* ---- the socket ------------------------------------------------------------ */

/* The socket systemd passed (azidd.socket), or -1. */
static int activated_socket(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid())
        return -1;
    long n = strtol(fds, NULL, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n != 1) {
        log_msg(LOG_ERR, "systemd passed %ld sockets; azidd.socket has one", n);
        return -1;
    }
    int fd = SD_LISTEN_FDS_START, listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
        log_msg(LOG_ERR, "the socket systemd passed is not listening");
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int own_socket(const char *path, bool default_path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        log_msg(LOG_ERR, "socket path %s is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    /* Anyone may ask: the directory must be searchable whatever root's
     * umask.  One that exists is the admin's (or systemd's) to set. */
    if (default_path && mkdir("/run/azid", 0755) == 0) {
        chmod("/run/azid", 0755);
    } else if (default_path && errno != EEXIST) {
        log_msg(LOG_ERR, "cannot create /run/azid: %s", strerror(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_msg(LOG_ERR, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_msg(LOG_ERR, "%s exists and is not a socket; not replaced", path);
            close(fd);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            log_msg(LOG_ERR, "another broker is listening on %s; stop it first", path);
            close(fd);
            return -1;
        }
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0666) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        log_msg(LOG_ERR, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- main ---------------------------------------------------------------------- */

static bool have_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32));
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static const char usage[] =
    "usage: azidd [--socket PATH] [--config PATH] [--stderr]\n"
    "The azid broker: one cache of managed-identity tokens for every login; see azidd(8).\n"
    "  --socket PATH  listen there (default " AZID_BROKER_SOCKET ", or systemd's socket)\n"
    "  --config PATH  the policy file (default " AZID_CONFIG_PATH ")\n"
    "  --stderr       log to stderr too (it does when stderr is a terminal)\n"
    "  --help, --version\n";

static void loop(int listen_fd)
{
    static struct pollfd fds[1 + MAX_CONNS + AZIDD_MAX_IN_FLIGHT];
    while (!stopping) {
        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        int64_t now = now_ms();
        int64_t next = now + 60000;
        for (size_t i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            short ev = c->state == CONN_READ ? POLLIN : c->state == CONN_WRITE ? POLLOUT : 0;
            fds[n++] = (struct pollfd){.fd = c->fd, .events = ev};
            if (c->deadline_ms < next)
                next = c->deadline_ms;
        }
        size_t cache_from = n;
        replied = false;
        int wait = cache_poll_setup(fds, &n, sizeof fds / sizeof fds[0]);
        int64_t conn_wait = next - now;
        if (conn_wait < wait)
            wait = conn_wait < 0 ? 0 : (int)conn_wait;
        /* cache_poll_setup answered waiters (a fetcher killed, or one that
         * could not start): their replies go out after this round. */
        if (replied)
            wait = 0;
        int r = poll(fds, n, wait);
        if (r < 0 && errno != EINTR) {
            log_msg(LOG_ERR, "poll: %s", strerror(errno));
            return;
        }
        if (r > 0) {
            cache_poll_done(fds + cache_from, n - cache_from);
            /* Connections by descriptor: conn_close reorders the array. */
            for (size_t k = 1; k < cache_from; k++) {
                if (!fds[k].revents)
                    continue;
                for (size_t i = 0; i < nconns; i++) {
                    struct conn *c = conns[i];
                    if (c->fd != fds[k].fd)
                        continue;
                    if (c->state == CONN_READ)
                        conn_read(c);
                    else if (c->state == CONN_WAIT && (fds[k].revents & (POLLHUP | POLLERR)))
                        conn_close(i); /* gone; its fetch goes on for the cache */
                    else if (c->state == CONN_WRITE)
                        conn_write(i);
                    break;
                }
            }
            if (fds[0].revents)
                accept_all(listen_fd);
        }
        now = now_ms();
        for (size_t i = 0; i < nconns;) {
            struct conn *c = conns[i];
            if (c->deadline_ms > now) {
                /* Replies made this round are sent at once. */
                if (c->state != CONN_WRITE || !conn_write(i))
                    i++;
                continue;
            }
            if (c->state == CONN_READ) {
                log_msg(LOG_NOTICE, "no complete request from uid %u (pid %d) within %d s",
                        (unsigned)c->peer.uid, (int)c->peer.pid, READ_DEADLINE_MS / 1000);
                reply_error(c, AZID_ERR_TIMEOUT, "no complete request line in time");
                conn_write(i);
            } else {
                conn_close(i);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"stderr", no_argument, NULL, 'e'},       {"fetcher", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *socket_path = NULL;
    bool to_stderr = isatty(STDERR_FILENO);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 's': socket_path = optarg; break;
        case 'c': config_path = optarg; break;
        case 'e': to_stderr = true; break;
        case 'F': return fetcher_main();
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("azidd %s\n", azid_version()); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "azidd: unexpected argument %s\n%s", argv[optind], usage);
        return 2;
    }
    openlog("azidd", LOG_PID | (to_stderr ? LOG_PERROR : 0), LOG_DAEMON);
    static char self[PATH_MAX];
    if (argv[0][0] == '/' && realpath(argv[0], self))
        fetcher_program = self;
    if (geteuid() != 0) {
        log_msg(LOG_ERR, "azidd runs as root (it owns the users' shared keys and starts "
                         "unprivileged fetchers); it was started as uid %u",
                (unsigned)geteuid());
        return 1;
    }
    /* Tokens in this process's memory never reach swap or a core file.
     * Without CAP_IPC_LOCK (a container) RLIMIT_MEMLOCK would make later
     * allocations fail instead: then memory stays unlocked. */
    if (have_ipc_lock())
        mlockall(MCL_CURRENT | MCL_FUTURE);
    else
        log_msg(LOG_NOTICE, "no CAP_IPC_LOCK: the cache's memory is not locked against swap");
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd = socket_path ? -1 : activated_socket();
    bool own = fd < 0;
    const char *path = socket_path ? socket_path : AZID_BROKER_SOCKET;
    if (own)
        fd = own_socket(path, !socket_path);
    if (fd < 0)
        return 1;
    cache_on_change = answer_waiters;
    log_msg(LOG_INFO, "listening on %s; policy from %s",
            own ? path : "the socket systemd passed", config_path ? config_path : AZID_CONFIG_PATH);
    loop(fd);
    log_msg(LOG_INFO, "stopping");
    while (nconns)
        conn_close(0);
    cache_shutdown();
    close(fd);
    if (own)
        unlink(path);
    return 0;
}
