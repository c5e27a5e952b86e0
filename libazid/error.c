/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {
    [AZID_OK] = "ok",
    [AZID_ERR_ARGUMENT] = "argument",
    [AZID_ERR_CONFIG] = "config",
    [AZID_ERR_NOMEM] = "nomem",
    [AZID_ERR_NO_SOURCE] = "no-source",
    [AZID_ERR_UNREACHABLE] = "unreachable",
    [AZID_ERR_TIMEOUT] = "timeout",
    [AZID_ERR_HTTP] = "http",
    [AZID_ERR_RESPONSE] = "response",
    [AZID_ERR_KEYRING] = "keyring",
    [AZID_ERR_QUOTA] = "quota",
    [AZID_ERR_NOT_SESSION] = "not-session",
    [AZID_ERR_NOT_FOUND] = "not-found",
    [AZID_ERR_SYSTEM] = "system",
    [AZID_ERR_TLS] = "tls",
    [AZID_ERR_CREDENTIALS] = "credentials",
};

const char *azid_status_name(azid_status status)
{
    if ((unsigned)status < sizeof status_names / sizeof status_names[0] && status_names[status])
        return status_names[status];
    return "unknown";
}

const char *azid_version(void)
{
    return PACKAGE_VERSION;
}

AZID_PRINTF(3, 0)
static void err_vset(azid_error *err, azid_status status, const char *fmt, va_list ap)
{
    err->status = status;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    /* Messages are one line: server text may carry newlines. */
    for (char *p = err->message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

azid_status err_set(azid_error *err, azid_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, status, fmt, ap);
        va_end(ap);
    }
    return status;
}

azid_status err_set_http(azid_error *err, azid_status status, long http_status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, status, fmt, ap);
        va_end(ap);
        err->http_status = http_status;
    }
    return status;
}

void err_clear(azid_error *err)
{
    if (err) {
        err->status = AZID_OK;
        err->http_status = 0;
        err->message[0] = '\0';
    }
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wipe_free(void *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void wipe_free_str(char *s)
{
    if (s)
        wipe_free(s, strlen(s));
}

azid_status err_nomem(azid_error *err, const char *doing)
{
    return err_set(err, AZID_ERR_NOMEM, "out of memory%s%s", doing && *doing ? " " : "",
                   doing ? doing : "");
}
