/* SPDX-License-Identifier: MIT
 *
 * Runs PAM sessions through the real libpam with a stack directory the test
 * wrote (pam_start_confdir), the way login/su do: this process opens the
 * session, a child that drops to the user runs a command (it inherits the
 * session keyring like the user's shell), then this process closes it.
 *
 *   pam_run --confdir DIR --user NAME [--service NAME] [--during CMD]
 *           [--after CMD] [--cycles N] [--times] [--idle MS] [--no-settle]
 *           [--deny-keys EPERM|ENOSYS] [--child-end] [--deny-uid-restore]
 *
 * Prints one "name=RESULT" line per step (open_session=PAM_SUCCESS,
 * open_ms=12, during=0, close_session=PAM_IGNORE, after=0), open_ms being
 * how long pam_open_session took; CMD runs as the user with
 * /bin/sh -c, after the session open or after pam_end.  With --cycles N
 * (N > 1) it runs N start/open/close/end cycles without commands and prints
 * how often each result came, e.g. "open_session[PAM_SUCCESS]=1000"; with
 * --times also, per cycle, "open_us=N" (pam_open_session) and "cycle_us=N"
 * (pam_start to pam_end, which loads and unloads the modules): bench/run.
 * --idle MS sleeps MS milliseconds between pam_start and pam_open_session
 * (not counted in cycle_us), so that every timed open follows as much idle
 * time as bench/curl_get gives its GETs.  --no-settle skips the wait for
 * the kernel to free each closed session's keys (await_key_collection),
 * which is idle too: 10-20 ms more before the next open, which on the VM
 * of bench/README.md makes it slower.  For a few cycles only: the closed
 * sessions' keyrings then stay charged to the user.
 * --deny-keys makes the keyring syscalls fail as in a container or on a
 * kernel without keys.  --child-end makes a child end its copy of the handle
 * after the open, with PAM_DATA_SILENT, as sshd's forked children do.
 * --deny-uid-restore makes a thread's setresuid(0, -1, -1) fail (ENOMEM),
 * so that a real uid switched to the user cannot be switched back.
 */
#include "config.h"

#include "deny_keys.h"

#include <errno.h>

#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct {
    int code;
    const char *name;
} results[] = {
    {PAM_SUCCESS, "PAM_SUCCESS"},
    {PAM_IGNORE, "PAM_IGNORE"},
    {PAM_SESSION_ERR, "PAM_SESSION_ERR"},
    {PAM_NO_MODULE_DATA, "PAM_NO_MODULE_DATA"},
    {PAM_PERM_DENIED, "PAM_PERM_DENIED"},
    {PAM_SYSTEM_ERR, "PAM_SYSTEM_ERR"},
    {PAM_BUF_ERR, "PAM_BUF_ERR"},
    {PAM_USER_UNKNOWN, "PAM_USER_UNKNOWN"},
    {PAM_MODULE_UNKNOWN, "PAM_MODULE_UNKNOWN"},
    {PAM_SYMBOL_ERR, "PAM_SYMBOL_ERR"},
    {PAM_SERVICE_ERR, "PAM_SERVICE_ERR"},
    {PAM_OPEN_ERR, "PAM_OPEN_ERR"},
    {PAM_ABORT, "PAM_ABORT"},
};
#define NRESULTS (sizeof results / sizeof results[0])

static const char *result_name(int code)
{
    for (size_t i = 0; i < NRESULTS; i++)
        if (results[i].code == code)
            return results[i].name;
    return "PAM_(other)";
}

/* Sessions never prompt; a prompt is a bug the test should see. */
static int no_conversation(int n, const struct pam_message **msg, struct pam_response **resp,
                           void *data)
{
    (void)n;
    (void)msg;
    (void)resp;
    (void)data;
    return PAM_CONV_ERR;
}

static int run_as_user(const char *user, const char *command)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct passwd *pw = getpwnam(user);
        if (!pw || initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
            setuid(pw->pw_uid) < 0 || chdir("/") < 0) {
            perror("pam_run: becoming the user");
            _exit(126);
        }
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Keys and keyrings charged to uid (/proc/key-users), -1 if unknown. */
static long charged_keys(uid_t uid)
{
    FILE *f = fopen("/proc/key-users", "re");
    if (!f)
        return -1;
    unsigned id;
    long keys = -1, nkeys;
    /* "  uid:  usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes" */
    while (fscanf(f, " %u: %*d %*d/%*d %ld/%*d %*d/%*d", &id, &nkeys) == 2)
        if (id == uid) {
            keys = nkeys;
            break;
        }
    fclose(f);
    return keys;
}

/* The kernel frees the keys of a closed session asynchronously; hundreds of
 * sessions a second would outrun it and fill the user's quota, which no
 * real login rate does.  After each session, wait (at most 2 s) until the
 * user is charged no more keys than after the second one: that count holds
 * the user keyrings pam_keyinit linked and the revoked session keyring this
 * process still holds, as sshd's monitor would, and the first session's
 * (revoked and empty): libraries first loaded during it, such as libcurl,
 * keep it referenced through the credentials their file mappings hold. */
static void await_key_collection(uid_t uid, long cycle, long *settled)
{
    const struct timespec tick = {0, 1000000};
    if (cycle < 2) {
        /* The count once it has stopped falling. */
        long last = charged_keys(uid);
        for (int steady = 0, i = 0; steady < 50 && i < 2000; i++) {
            nanosleep(&tick, NULL);
            long now = charged_keys(uid);
            steady = now == last ? steady + 1 : 0;
            last = now;
        }
        *settled = last;
        return;
    }
    for (int i = 0; i < 2000 && charged_keys(uid) > *settled; i++)
        nanosleep(&tick, NULL);
}

/* sshd's children call pam_end(..., PAM_DATA_SILENT) on the handle they
 * inherited; the session (and its keys) belongs to the parent. */
static int end_in_child(pam_handle_t *pamh)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(pam_end(pamh, PAM_SUCCESS | PAM_DATA_SILENT) == PAM_SUCCESS ? 0 : 1);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static long elapsed_us(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
}

static void usage(void)
{
    fputs("usage: pam_run --confdir DIR --user NAME [--service NAME] [--during CMD] "
          "[--after CMD] [--cycles N] [--times] [--idle MS] [--no-settle] "
          "[--deny-keys EPERM|ENOSYS] [--child-end] [--deny-uid-restore]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"confdir", required_argument, NULL, 'c'}, {"user", required_argument, NULL, 'u'},
        {"service", required_argument, NULL, 's'}, {"during", required_argument, NULL, 'd'},
        {"after", required_argument, NULL, 'a'},   {"cycles", required_argument, NULL, 'n'},
        {"deny-keys", required_argument, NULL, 'k'}, {"child-end", no_argument, NULL, 'e'},
        {"deny-uid-restore", no_argument, NULL, 'r'},
        {"times", no_argument, NULL, 't'}, {"idle", required_argument, NULL, 'i'},
        {"no-settle", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const char *confdir = NULL, *user = NULL, *service = "azid-test";
    const char *during = NULL, *after = NULL;
    long cycles = 1, idle_ms = 0;
    int deny_errno = 0;
    bool child_end = false, deny_uid_restore = false, times = false, settle = true;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c': confdir = optarg; break;
        case 'u': user = optarg; break;
        case 's': service = optarg; break;
        case 'd': during = optarg; break;
        case 'a': after = optarg; break;
        case 'n': cycles = strtol(optarg, NULL, 10); break;
        case 'e': child_end = true; break;
        case 'r': deny_uid_restore = true; break;
        case 't': times = true; break;
        case 'i': idle_ms = strtol(optarg, NULL, 10); break;
        case 'S': settle = false; break;
        case 'k': deny_errno = strcmp(optarg, "ENOSYS") == 0 ? ENOSYS : EPERM; break;
        default: usage();
        }
    }
    if (!confdir || !user || optind != argc || cycles < 1 || idle_ms < 0 || idle_ms > 10000 ||
        (cycles > 1 && (during || after)))
        usage();
    if ((deny_errno && deny_keyring_syscalls(deny_errno) < 0) ||
        (deny_uid_restore && deny_syscall_arg0(__NR_setresuid, 0, ENOMEM) < 0)) {
        perror("pam_run: seccomp");
        return 2;
    }

    const struct passwd *pw = getpwnam(user);
    const uid_t uid = pw ? pw->pw_uid : (uid_t)-1;
    long settled = -1;
    const struct pam_conv conv = {no_conversation, NULL};
    unsigned long opened[NRESULTS] = {0}, closed[NRESULTS] = {0};
    const struct timespec idle = {idle_ms / 1000, idle_ms % 1000 * 1000000};
    for (long cycle = 0; cycle < cycles; cycle++) {
        pam_handle_t *pamh = NULL;
        struct timespec cycle_start;
        clock_gettime(CLOCK_MONOTONIC, &cycle_start);
        int r = pam_start_confdir(service, user, &conv, confdir, &pamh);
        if (r != PAM_SUCCESS) {
            printf("pam_start=%s\n", result_name(r));
            return 1;
        }
        struct timespec start;
        long idled_us = 0;
        if (idle_ms) {
            clock_gettime(CLOCK_MONOTONIC, &start);
            nanosleep(&idle, NULL);
            idled_us = elapsed_us(&start);
        }
        clock_gettime(CLOCK_MONOTONIC, &start);
        int open = pam_open_session(pamh, 0);
        if (times)
            printf("open_us=%ld\n", elapsed_us(&start));
        if (cycles == 1)
            printf("open_session=%s\nopen_ms=%ld\n", result_name(open), elapsed_us(&start) / 1000);
        if (child_end)
            printf("child_end=%d\n", end_in_child(pamh));
        if (during)
            printf("during=%d\n", run_as_user(user, during));
        int close = pam_close_session(pamh, 0);
        if (cycles == 1)
            printf("close_session=%s\n", result_name(close));
        pam_end(pamh, close);
        if (times)
            printf("cycle_us=%ld\n", elapsed_us(&cycle_start) - idled_us);
        if (after)
            printf("after=%d\n", run_as_user(user, after));
        if (cycles > 1 && pw && settle)
            await_key_collection(uid, cycle, &settled);
        for (size_t i = 0; i < NRESULTS; i++) {
            opened[i] += results[i].code == open;
            closed[i] += results[i].code == close;
        }
    }
    if (cycles > 1) {
        printf("cycles=%ld\n", cycles);
        for (size_t i = 0; i < NRESULTS; i++) {
            if (opened[i])
                printf("open_session[%s]=%lu\n", results[i].name, opened[i]);
            if (closed[i])
                printf("close_session[%s]=%lu\n", results[i].name, closed[i]);
        }
    }
    return 0;
}
