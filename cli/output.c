/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "output.h"

#include "commands.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void json_print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out); /* UTF-8 passes through */
    }
    fputc('"', out);
}

void json_print_token(const char *access_token, int64_t expires_on, const char *resource,
                      const char *token_type)
{
    fputs("{\"access_token\":", stdout);
    json_print_string(stdout, access_token);
    printf(",\"expires_on\":%lld", (long long)expires_on);
    fputs(",\"resource\":", stdout);
    json_print_string(stdout, resource);
    fputs(",\"token_type\":", stdout);
    json_print_string(stdout, token_type);
    fputs("}\n", stdout);
}

static char stdout_buffer[BUFSIZ];

static void wipe_stdout_buffer(void)
{
    fflush(stdout);
    explicit_bzero(stdout_buffer, sizeof stdout_buffer);
}

void stdout_wipe_at_exit(void)
{
    setvbuf(stdout, stdout_buffer, _IOLBF, sizeof stdout_buffer);
    atexit(wipe_stdout_buffer);
}

int finish_stdout(const char *command)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        report(command, "cannot write to standard output: %s", strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int print_value(const char *command, const char *value, size_t length)
{
    fwrite(value, 1, length, stdout);
    fputc('\n', stdout);
    return finish_stdout(command);
}

void vreport(const char *command, const char *fmt, va_list ap)
{
    fprintf(stderr, "azid %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void report(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(command, fmt, ap);
    va_end(ap);
}

int report_error(const char *command, const azid_error *err)
{
    report(command, "%s", err->message);
    switch (err->status) {
    case AZID_ERR_NO_SOURCE:
    case AZID_ERR_UNREACHABLE:
    case AZID_ERR_TIMEOUT:
    case AZID_ERR_HTTP:
    case AZID_ERR_RESPONSE:
    case AZID_ERR_TLS:
        return EXIT_SOURCE;
    case AZID_ERR_ARGUMENT:
        return EXIT_USAGE;
    default:
        return EXIT_FAIL;
    }
}

int fact_length(const char *message)
{
    const char *dash = strstr(message, " \xe2\x80\x94 ");
    return (int)(dash ? (size_t)(dash - message) : strlen(message));
}

long parse_seconds_ms(const char *text)
{
    long ms;
    return azid_timeout_parse(text, &ms, NULL) == AZID_OK ? ms : -1;
}

/* "2h 05m", or "2h" when the smaller unit is zero: the kernel reports a
 * key's time left rounded down to its largest unit. */
static void two_units(char *buf, size_t size, long big, char big_unit, long small, char small_unit)
{
    if (small)
        snprintf(buf, size, "%ld%c %02ld%c", big, big_unit, small, small_unit);
    else
        snprintf(buf, size, "%ld%c", big, big_unit);
}

void format_time_left(long seconds, char *buf, size_t size)
{
    if (seconds < 0)
        snprintf(buf, size, "no expiry");
    else if (seconds >= 86400)
        two_units(buf, size, seconds / 86400, 'd', seconds % 86400 / 3600, 'h');
    else if (seconds >= 3600)
        two_units(buf, size, seconds / 3600, 'h', seconds % 3600 / 60, 'm');
    else if (seconds >= 60)
        two_units(buf, size, seconds / 60, 'm', seconds % 60, 's');
    else
        snprintf(buf, size, "%lds", seconds);
}
