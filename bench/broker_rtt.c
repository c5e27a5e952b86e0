/* SPDX-License-Identifier: MIT
 *
 * The reference bench/run holds a warm session open against: one round
 * trip to azidd as a login makes it (a connection, the key request line,
 * the reply until azidd closes), without pam_azid's checks around it
 * (SO_PEERCRED, parsing the reply), so a warm open is not expected to
 * add less.
 *
 *   broker_rtt SOCKET REQUEST N [IDLE_MS]
 *
 * REQUEST is the line to send (bench.py's key_request, without its
 * newline).  Prints one "rtt_us=N" line per round trip.  Exits 1 if one
 * fails or its reply is not a cached key ("key ... serial=N", then
 * "end"), 2 on bad arguments.  IDLE_MS: sleep that long before each, as
 * curl_get and tests/pam/pam_run --idle do.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* The whole reply in reply (NUL-terminated); NULL, or the name of the
 * call that failed with errno set. */
static const char *round_trip(const struct sockaddr_un *sa, const char *line, size_t length,
                              char *reply, size_t size)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "socket";
    const char *failed = NULL;
    size_t got = 0;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
        failed = "connect";
    else if (send(fd, line, length, MSG_NOSIGNAL) != (ssize_t)length)
        failed = "send";
    while (!failed) {
        if (got == size - 1) {
            errno = EMSGSIZE;
            failed = "recv";
            break;
        }
        ssize_t n = recv(fd, reply + got, size - 1 - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            break;
        else if (errno != EINTR)
            failed = "recv";
    }
    int saved = errno;
    close(fd);
    errno = saved;
    reply[got] = '\0';
    return failed;
}

static int cached_key(const char *reply)
{
    size_t n = strlen(reply), first = strcspn(reply, "\n");
    return strncmp(reply, "key ", 4) == 0 && memmem(reply, first, " serial=", 8) && n >= 5 &&
           strcmp(reply + n - 5, "\nend\n") == 0;
}

int main(int argc, char **argv)
{
    long n = argc == 4 || argc == 5 ? strtol(argv[3], NULL, 10) : 0;
    long idle_ms = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (n < 1 || idle_ms < 0 || idle_ms > 10000 || strlen(argv[1]) >= sizeof sa.sun_path) {
        fputs("usage: broker_rtt SOCKET REQUEST N [IDLE_MS]\n", stderr);
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    size_t length = strlen(argv[2]) + 1;
    char *line = malloc(length + 1);
    if (!line) {
        fputs("broker_rtt: out of memory\n", stderr);
        return 1;
    }
    snprintf(line, length + 1, "%s\n", argv[2]);
    const struct timespec idle = {idle_ms / 1000, idle_ms % 1000 * 1000000};
    char reply[4096];
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        if (idle_ms)
            nanosleep(&idle, NULL);
        long long start = now_us();
        const char *failed = round_trip(&sa, line, length, reply, sizeof reply);
        long long us = now_us() - start;
        if (failed) {
            fprintf(stderr, "broker_rtt: %s: %s: %s\n", argv[1], failed, strerror(errno));
            rc = 1;
        } else if (!cached_key(reply)) {
            fprintf(stderr, "broker_rtt: %s: not a cached key (a miss answers \"wait\" first): %.*s\n",
                    argv[1], (int)strcspn(reply, "\n"), reply);
            rc = 1;
        } else {
            printf("rtt_us=%lld\n", us);
        }
    }
    free(line);
    return rc;
}
