/* SPDX-License-Identifier: MIT
 *
 * How bench/run measures a program's peak RSS: run it as the child of this
 * small process and keep what wait4 says.
 *
 *   peak_rss FILE COMMAND [ARG...]
 *
 * Runs COMMAND with this process's stdin, stdout and stderr, then writes
 * its ru_maxrss in KiB (one line) to FILE.  Exits with COMMAND's status,
 * 128+N if signal N killed it, 127 if it could not be executed, 125 if
 * FILE could not be written or the fork failed, 2 on bad arguments.
 *
 * Why not wait4 in bench.py: Python's subprocess starts children with
 * vfork (posix_spawn), so the child execs in the parent's address space,
 * and Linux keeps the high-water RSS of the address space an exec leaves
 * in the child's ru_maxrss: every child of bench.py reported at least
 * bench.py's own RSS (22-28 MB).  After a real fork from this process,
 * the address space an exec leaves is a copy of this one's, about 1 MB.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: peak_rss FILE COMMAND [ARG...]\n", stderr);
        return 2;
    }
    /* Opened first: a FILE that cannot be written fails before COMMAND
     * runs, not after. */
    FILE *out = fopen(argv[1], "we");
    if (!out) {
        fprintf(stderr, "peak_rss: %s: %s\n", argv[1], strerror(errno));
        return 125;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "peak_rss: fork: %s\n", strerror(errno));
        return 125;
    }
    if (pid == 0) {
        /* bench.py's timeout kills this process: COMMAND goes with it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(125);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "peak_rss: cannot execute %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "peak_rss: wait4: %s\n", strerror(errno));
            return 125;
        }
    }
    if (fprintf(out, "%ld\n", usage.ru_maxrss) < 0 || fclose(out) != 0) {
        fprintf(stderr, "peak_rss: %s: %s\n", argv[1], strerror(errno));
        return 125;
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
