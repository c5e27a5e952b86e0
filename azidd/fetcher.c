/* SPDX-License-Identifier: MIT
 * The fetcher: every request to the identity endpoint, and every parse of
 * what it answers, happens in a child that azidd forks and re-executes
 * (azidd --fetcher) so that it starts with none of the broker's
 * memory (other users' tokens), then drops to `_azid` when that account
 * exists, else stays uid 0 with every capability gone; no_new_privs either
 * way.  It reads one request line on stdin and writes its reply on
 * stdout, then exits: one child per request, so a fault in the HTTP or
 * JSON code costs one answer, never the broker. */
#include "config.h"

#include "azidd.h"

#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <keyutils.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#define FETCHER_USER "_azid"
/* The Arc agent's key files are readable by root and this group. */
#define ARC_GROUP "himds"
#define FETCHER_MAX_OUTPUT (BROKER_MAX_LINE + 1024)

/* ---- in the child ---------------------------------------------------------- */

/* Needs CAP_SETPCAP: before the switch to the fetcher's user. */
static bool drop_bounding_set(void)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return false;
    return true;
}

static bool drop_capabilities(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return false;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* Checked, not assumed. */
    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return data[0].effective == 0 && data[0].permitted == 0 && data[1].effective == 0 &&
           data[1].permitted == 0;
}

static bool drop_privileges(char *why, size_t size)
{
    /* A fresh anonymous session keyring: the fetcher reaches no key. */
    if (keyctl_join_session_keyring(NULL) < 0) {
        snprintf(why, size, "joining an empty session keyring: %s", strerror(errno));
        return false;
    }
    if (!drop_bounding_set()) {
        snprintf(why, size, "dropping the capability bounding set: %s", strerror(errno));
        return false;
    }
    struct passwd *pw = getpwnam(FETCHER_USER);
    if (pw && pw->pw_uid != 0) {
        gid_t groups[1];
        size_t ngroups = 0;
        struct group *arc = getgrnam(ARC_GROUP);
        if (arc)
            groups[ngroups++] = arc->gr_gid;
        if (setgroups(ngroups, groups) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
            snprintf(why, size, "switching to user %s: %s", FETCHER_USER, strerror(errno));
            return false;
        }
    }
    if (!drop_capabilities()) {
        snprintf(why, size, "dropping capabilities: %s", strerror(errno));
        return false;
    }
    /* exec (and the uid switch, per fs.suid_dumpable) left this process
     * dumpable, and it is about to hold a token: no core file, and no
     * ptrace or /proc/PID/mem for _azid's other processes. */
    static const struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        snprintf(why, size, "turning off core dumps: %s", strerror(errno));
        return false;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(why, size, "setting no_new_privs: %s", strerror(errno));
        return false;
    }
    return true;
}

static int reply_failure(azid_status status, long http_status, const char *message)
{
    struct broker_buf out;
    broker_buf_init(&out, FETCHER_MAX_OUTPUT);
    broker_buf_word(&out, "fail");
    broker_buf_field(&out, "status", azid_status_name(status));
    broker_buf_field_int(&out, "http", http_status);
    broker_buf_message(&out, message);
    broker_buf_end_line(&out);
    broker_buf_word(&out, "end");
    broker_buf_end_line(&out);
    if (!out.failed)
        fwrite(out.data, 1, out.length, stdout);
    broker_buf_free(&out);
    return 0;
}

/* A line before the reply, while the client waits the hold out (the
 * broker reads it as it comes: cache.c). */
static void report_hold(long http_status, long retry_after_ms)
{
    char line[64];
    int n = snprintf(line, sizeof line, "hold http=%ld retry_after_ms=%ld\n", http_status,
                     retry_after_ms);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    while (write(STDOUT_FILENO, line, (size_t)n) < 0 && errno == EINTR)
        ;
}

/* The token or secret the request's one item names, into out. */
static azid_status fetch(const struct broker_request *req, struct broker_buf *out,
                         azid_error *err)
{
    azid_config *cfg = azid_config_new();
    if (!cfg)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    azid_status st = AZID_OK;
    for (size_t i = 0; i < req->nsettings && st == AZID_OK; i++) {
        char arg[BROKER_MAX_REQUEST];
        snprintf(arg, sizeof arg, "%s=%s", req->settings[i]->key, req->settings[i]->value);
        st = azid_config_apply_arg(cfg, arg, err);
    }
    azid_client *client = NULL;
    if (st == AZID_OK)
        st = azid_config_new_client(cfg, &client, err);
    if (client)
        client->on_hold = report_hold;
    azid_token *token = NULL;
    azid_secret *secret = NULL;
    if (st == AZID_OK && req->items[0].secret)
        st = azid_client_get_secret(client, req->items[0].target, &secret, err);
    else if (st == AZID_OK)
        st = azid_client_get_token(client, req->items[0].target, &token, err);
    if (token) {
        broker_buf_word(out, "token");
        broker_buf_field_int(out, "expires_on", azid_token_expires_on(token));
        broker_buf_field(out, "value", azid_token_value(token));
    } else if (secret) {
        broker_buf_word(out, "secret");
        broker_buf_field_int(out, "expires_on", azid_secret_expires_on(secret));
        broker_buf_field(out, "vault_host", azid_secret_vault_host(secret));
        broker_buf_field(out, "name", azid_secret_name(secret));
        broker_buf_field_hex(out, "value", azid_secret_value(secret), azid_secret_length(secret));
    }
    broker_buf_end_line(out);
    broker_buf_word(out, "end");
    broker_buf_end_line(out);
    azid_token_free(token);
    azid_secret_free(secret);
    azid_client_free(client);
    azid_config_free(cfg);
    if (st == AZID_OK && out->failed)
        st = err_set(err, AZID_ERR_RESPONSE, "the value does not fit the broker's reply");
    return st;
}

int fetcher_main(void)
{
    char why[256];
    if (!drop_privileges(why, sizeof why))
        return reply_failure(AZID_ERR_SYSTEM, 0, why);
    /* Named only once unprivileged: that is what ps shows it doing. */
    prctl(PR_SET_NAME, "azidd-fetcher", 0, 0, 0);
    char line[BROKER_MAX_REQUEST + 1];
    size_t n = fread(line, 1, sizeof line, stdin);
    struct broker_request req;
    azid_error err;
    azid_status st = broker_proto_parse_request(line, n, &req, &err);
    if (st == AZID_OK && req.verb != BROKER_VERB_KEY)
        st = err_set(&err, AZID_ERR_ARGUMENT, "the fetcher takes key requests only");
    err.http_status = 0;
    struct broker_buf out;
    broker_buf_init(&out, FETCHER_MAX_OUTPUT);
    if (st == AZID_OK)
        st = fetch(&req, &out, &err);
    broker_request_free(&req);
    if (st != AZID_OK) {
        broker_buf_free(&out);
        return reply_failure(st, err.http_status, err.message);
    }
    /* Unbuffered: no copy of the token in stdio's buffer. */
    for (size_t sent = 0; sent < out.length;) {
        ssize_t w = write(STDOUT_FILENO, out.data + sent, out.length - sent);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    broker_buf_free(&out);
    return 0;
}

/* ---- in the broker ---------------------------------------------------------- */

const char *fetcher_program = "/proc/self/exe";

bool fetch_start(struct fetch_child *child, const char *request, size_t length,
                 int64_t kill_at)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_msg(LOG_ERR, "cannot start a fetcher: socketpair: %s", strerror(errno));
        return false;
    }
    /* The request holds no secret; it fits the socket buffer at once. */
    if (send(sv[0], request, length, MSG_NOSIGNAL) != (ssize_t)length ||
        shutdown(sv[0], SHUT_WR) < 0) {
        log_msg(LOG_ERR, "cannot start a fetcher: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_msg(LOG_ERR, "cannot start a fetcher: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    if (pid == 0) {
        dup2(sv[1], STDIN_FILENO);
        dup2(sv[1], STDOUT_FILENO);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        closefrom(STDERR_FILENO + 1);
        char *argv[] = {(char *)"azidd", (char *)"--fetcher", NULL};
        execv(fetcher_program, argv);
        _exit(127);
    }
    close(sv[1]);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    *child = (struct fetch_child){.pid = pid, .fd = sv[0], .kill_at = kill_at};
    broker_buf_init(&child->out, FETCHER_MAX_OUTPUT);
    return true;
}

bool fetch_read(struct fetch_child *child)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(child->fd, chunk, sizeof chunk);
        if (n > 0) {
            broker_buf_raw(&child->out, chunk, (size_t)n);
            explicit_bzero(chunk, (size_t)n);
            if (child->out.failed)
                return true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && errno == EAGAIN);
    }
}

void fetch_end(struct fetch_child *child)
{
    if (child->pid > 0) {
        kill(child->pid, SIGKILL);
        while (waitpid(child->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (child->fd >= 0)
        close(child->fd);
    broker_buf_free(&child->out);
    child->pid = -1;
    child->fd = -1;
}
