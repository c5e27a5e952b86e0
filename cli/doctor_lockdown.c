/* SPDX-License-Identifier: MIT
 * azid doctor's lockdown lines: whether it is on and whom it lets through,
 * and the local processes of other uids that talk to IMDS, which the
 * lockdown cuts off (or would).  Those are found by their sockets:
 * /proc/net/tcp{,6} give each connection's remote address, owner uid and
 * inode, /proc/PID/fd links name the processes holding it (all of them
 * only for root), /proc/PID/cgroup their unit. */
#include "config.h"

#include "doctor.h"
#include "lockdown.h"

#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 169.254.169.254:80 as /proc/net/tcp and tcp6 (IPv4-mapped) write it. */
#define PROC_TCP_IMDS "FEA9FEA9:0050"
#define PROC_TCP6_IMDS "0000000000000000FFFF0000FEA9FEA9:0050"
#define MAX_SOCKETS 256
#define MAX_REPORTED 20

struct imds_socket {
    unsigned long inode;
    uid_t uid;
    int reported;
};

/* The connections to the endpoint in one /proc/net file (TIME_WAIT ones
 * belong to nobody: inode 0). */
static size_t scan_net(const char *path, const char *remote, struct imds_socket *out,
                       size_t n, size_t max)
{
    FILE *f = fopen(path, "re");
    char line[512], rem[64];
    unsigned uid;
    unsigned long inode;
    if (!f)
        return n;
    while (n < max && fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %*s %63s %*s %*s %*s %*s %u %*s %lu", rem, &uid, &inode) == 3 &&
            strcmp(rem, remote) == 0 && inode)
            out[n++] = (struct imds_socket){inode, (uid_t)uid, 0};
    fclose(f);
    return n;
}

/* The systemd unit of a process ("mdsd.service"), or "" outside one. */
static void unit_of(long pid, char *unit, size_t size)
{
    char path[64], line[512];
    unit[0] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/cgroup", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *last = strrchr(line, '/');
        if (last && (strstr(last, ".service") || strstr(last, ".scope"))) {
            snprintf(unit, size, "%s", last + 1);
            break;
        }
    }
    fclose(f);
}

static const char *user_name(uid_t uid, char *buf, size_t size)
{
    const struct passwd *pw = getpwuid(uid);
    if (pw)
        snprintf(buf, size, "%u (%s)", (unsigned)uid, pw->pw_name);
    else
        snprintf(buf, size, "%u", (unsigned)uid);
    return buf;
}

/* The socket of sockets[] this process holds, or NULL. */
static struct imds_socket *held_by(long pid, struct imds_socket *sockets, size_t n)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
    DIR *fds = opendir(dir);
    if (!fds)
        return NULL;
    struct imds_socket *found = NULL;
    for (struct dirent *e; !found && (e = readdir(fds));) {
        char target[64];
        ssize_t len = readlinkat(dirfd(fds), e->d_name, target, sizeof target - 1);
        unsigned long inode;
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (sscanf(target, "socket:[%lu]", &inode) != 1)
            continue;
        for (size_t i = 0; i < n && !found; i++)
            if (sockets[i].inode == inode)
                found = &sockets[i];
    }
    closedir(fds);
    return found;
}

static void report_agents(struct doctor *d, const struct lockdown_allow *allow, int on,
                          const char *config_path)
{
    struct imds_socket sockets[MAX_SOCKETS];
    size_t n = scan_net("/proc/net/tcp", PROC_TCP_IMDS, sockets, 0, MAX_SOCKETS);
    n = scan_net("/proc/net/tcp6", PROC_TCP6_IMDS, sockets, n, MAX_SOCKETS);
    size_t refused = 0;
    for (size_t i = 0; i < n; i++)
        refused += !lockdown_allows_uid(allow, sockets[i].uid);
    const char *verdict = on ? "lockdown refuses it" : "'azid lockdown on' would cut it off";
    char user[300], unit[256], comm[64], path[64];
    unsigned lines = 0;

    DIR *proc = refused ? opendir("/proc") : NULL;
    for (struct dirent *e; proc && lines < MAX_REPORTED && (e = readdir(proc));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        struct imds_socket *s = held_by(pid, sockets, n);
        if (!s || lockdown_allows_uid(allow, s->uid))
            continue;
        s->reported = 1;
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        FILE *f = fopen(path, "re");
        if (!f || !fgets(comm, sizeof comm, f))
            snprintf(comm, sizeof comm, "?");
        if (f)
            fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        unit_of(pid, unit, sizeof unit);
        finding(d, FINDING_WARN, "IMDS users",
                "uid %s: %s (pid %ld%s%s) holds a connection to " LOCKDOWN_ADDR ":%d and %s; "
                "if it needs the identity, add its user to lockdown_allow in %s and run "
                "'azid lockdown on'", user_name(s->uid, user, sizeof user), comm, pid,
                *unit ? ", " : "", unit, LOCKDOWN_PORT, verdict, config_path);
        lines++;
    }
    if (proc)
        closedir(proc);
    /* Sockets whose holder this uid may not see (other users' /proc/PID/fd). */
    for (size_t i = 0; i < n && lines < MAX_REPORTED; i++) {
        if (sockets[i].reported || lockdown_allows_uid(allow, sockets[i].uid))
            continue;
        finding(d, FINDING_WARN, "IMDS users",
                "uid %s holds a connection to " LOCKDOWN_ADDR ":%d and %s; run 'sudo azid "
                "doctor' to see the process, and add its user to lockdown_allow in %s if it "
                "needs the identity", user_name(sockets[i].uid, user, sizeof user),
                LOCKDOWN_PORT, verdict, config_path);
        lines++;
        for (size_t j = i + 1; j < n; j++)
            sockets[j].reported |= sockets[j].uid == sockets[i].uid;
    }
    if (!refused)
        finding(d, FINDING_OK, "IMDS users",
                "no process of a uid lockdown refuses holds a connection to " LOCKDOWN_ADDR
                ":%d now (agents such as the Azure Monitor Agent, user syslog, connect "
                "briefly: look again while they run)", LOCKDOWN_PORT);
}

struct allow_warning {
    struct doctor *d;
    const char *config_path;
};

/* A lockdown_allow name that resolves to nobody: a typo keeps the
 * endpoint closed to whoever was meant. */
static void warn_allow(const char *message, void *ctx)
{
    const struct allow_warning *w = ctx;
    static const char prefix[] = "lockdown_allow: ";
    if (strncmp(message, prefix, sizeof prefix - 1) == 0)
        message += sizeof prefix - 1;
    finding(w->d, FINDING_WARN, "lockdown_allow", "%s; correct the name in %s", message,
            w->config_path);
}

void doctor_check_lockdown(struct doctor *d, const char *config_path)
{
    struct lockdown_allow applied = {0}, desired = {0}, state = {0};
    azid_error err = {0};
    char why[512], uids[2048];
    int root = geteuid() == 0;
    int have_state = lockdown_state_read(&state, NULL) == AZID_OK;
    int on = root ? lockdown_read_applied(&applied, why, sizeof why) : -1;
    if (root && on < 0)
        finding(d, FINDING_WARN, "lockdown", "cannot read the ruleset (%s); what follows is "
                "what " LOCKDOWN_STATE_FILE " says", why);
    if (on < 0) {
        on = have_state;
        applied = state;
        state = (struct lockdown_allow){0};
    }
    struct allow_warning w = {d, config_path};
    int have_desired = lockdown_desired(config_path, &desired, warn_allow, &w, &err) == AZID_OK;
    if (!have_desired && lockdown_allow_uid(&desired, 0) < 0)
        return; /* out of memory: nothing more to say */

    if (on) {
        lockdown_format_uids(&applied, uids, sizeof uids);
        finding(d, FINDING_OK, "lockdown",
                "on: " LOCKDOWN_ADDR ":%d answers only uids %s and forwarded traffic from %s%s%s",
                LOCKDOWN_PORT, uids, applied.nsources ? applied.sources[0] : "no source",
                applied.nsources > 1 ? " and others ('azid lockdown status')" : "",
                root ? "" : " (as " LOCKDOWN_STATE_FILE " says; root reads the rules)");
        if (root && have_desired && !lockdown_same_allow(&applied, &desired))
            finding(d, FINDING_WARN, "lockdown",
                    "%s now allows others than the rules do; run 'azid lockdown on' to apply it",
                    config_path);
    } else if (root && have_state) {
        finding(d, FINDING_WARN, "lockdown",
                "off, though " LOCKDOWN_STATE_FILE " says 'azid lockdown on' ran: something "
                "removed table inet azid (nft flush ruleset; nftables.service restarted?); run "
                "'azid lockdown on' again");
    } else {
        finding(d, FINDING_OK, "lockdown",
                "off: every local process can get this machine's tokens straight from "
                LOCKDOWN_ADDR ", whatever azid.conf grants; 'azid lockdown on' closes it to "
                "all but root, the broker and lockdown_allow (azid(1))");
    }
    /* Off, the question is whom the rules would refuse: the config's (root
     * only when the config is refused, as the line about it says). */
    report_agents(d, on ? &applied : &desired, on, config_path);
    lockdown_allow_free(&applied);
    lockdown_allow_free(&desired);
    lockdown_allow_free(&state);
}
