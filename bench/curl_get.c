/* SPDX-License-Identifier: MIT
 *
 * The reference bench/run holds a cold session open against: a bare
 * libcurl GET of one IMDS token, as any C program would write it, in a
 * long-lived process (libcurl initialised once, a new handle per GET).
 *
 *   curl_get URL N [IDLE_MS]
 *
 * Prints one "get_us=N" line per GET; exits 1 if any GET fails.  IDLE_MS:
 * sleep that long before each GET, as tests/pam/pam_run --idle does before
 * each session (back to back, the process, the emulator and the CPU caches
 * stay warm as they never are for a login).
 */
#include "config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The body is read and dropped, as a caller that parsed it would. */
static size_t discard(char *data, size_t size, size_t nmemb, void *userdata)
{
    (void)data;
    (void)userdata;
    return size * nmemb;
}

int main(int argc, char **argv)
{
    long n = argc == 3 || argc == 4 ? strtol(argv[2], NULL, 10) : 0;
    long idle_ms = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
    if (n < 1 || idle_ms < 0 || idle_ms > 10000) {
        fputs("usage: curl_get URL N [IDLE_MS]\n", stderr);
        return 2;
    }
    const struct timespec idle = {idle_ms / 1000, idle_ms % 1000 * 1000000};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    struct curl_slist *headers = curl_slist_append(NULL, "Metadata: true");
    for (long i = 0; i < n; i++) {
        struct timespec a, b;
        if (idle_ms)
            nanosleep(&idle, NULL);
        clock_gettime(CLOCK_MONOTONIC, &a);
        CURL *curl = curl_easy_init();
        long status = 0;
        if (!curl)
            return 1;
        curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        CURLcode rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(curl);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc != CURLE_OK || status != 200) {
            fprintf(stderr, "curl_get: %s: %s, HTTP %ld\n", argv[1], curl_easy_strerror(rc), status);
            return 1;
        }
        printf("get_us=%ld\n", (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
    }
    curl_slist_free_all(headers);
    return 0;
}
