/* SPDX-License-Identifier: MIT
 *
 * The reference bench/run holds a warm session open against: one bare
 * round trip to azidd, as pam_azid makes it at a login (a connection, the
 * request line, the reply until azidd closes), with nothing else around
 * it.  A warm open cannot add less than this.
 *
 *   broker_rtt SOCKET REQUEST N [IDLE_MS]
 *
 * REQUEST is the line to send (bench.py's key_request, without its
 * newline).  Prints one "rtt_us=N" line per round trip; exits 1 if one
 * fails or its reply is not a key.  IDLE_MS: sleep that long before each,
 * as curl_get and tests/pam/pam_run --idle do.
 */
#include "config.h"

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

/* The reply's length, or -1. */
static long round_trip(const struct sockaddr_un *sa, const char *line, size_t length, char *reply,
                       size_t size)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 ||
        send(fd, line, length, MSG_NOSIGNAL) != (ssize_t)length) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t n;
    while (got < size - 1 && (n = recv(fd, reply + got, size - 1 - got, 0)) > 0)
        got += (size_t)n;
    close(fd);
    reply[got] = '\0';
    return (long)got;
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
    if (!line)
        return 1;
    snprintf(line, length + 1, "%s\n", argv[2]);
    const struct timespec idle = {idle_ms / 1000, idle_ms % 1000 * 1000000};
    char reply[4096];
    for (long i = 0; i < n; i++) {
        if (idle_ms)
            nanosleep(&idle, NULL);
        long long start = now_us();
        long got = round_trip(&sa, line, length, reply, sizeof reply);
        long long us = now_us() - start;
        if (got < 0 || strncmp(reply, "key ", 4) != 0) {
            fprintf(stderr, "broker_rtt: %s: %s\n", argv[1], got < 0 ? "no answer" : reply);
            free(line);
            return 1;
        }
        printf("rtt_us=%lld\n", us);
    }
    free(line);
    return 0;
}
