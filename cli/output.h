/* SPDX-License-Identifier: MIT
 * Printing helpers shared by the azid commands (cmd_*.c): JSON, values
 * (tokens, secrets) on stdout, errors on stderr. */
#ifndef AZID_CLI_OUTPUT_H
#define AZID_CLI_OUTPUT_H

#include "azid.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* s as a JSON string literal (quoted and escaped) to out. */
void json_print_string(FILE *out, const char *s);
/* A token as one JSON object line on stdout:
 * {"access_token":...,"expires_on":N,"resource":...,"token_type":...};
 * expires_on is epoch seconds, never unknown (SPEC: an integer). */
void json_print_token(const char *access_token, int64_t expires_on, const char *resource,
                      const char *token_type);

/* Gives stdout a line-buffered static buffer that is flushed and wiped at
 * exit, so no copy of a printed value lingers in freed heap memory.  Call
 * once, before any output. */
void stdout_wipe_at_exit(void);

/* Writes a value (token, secret) and a newline to stdout and flushes it.
 * EXIT_OK, or EXIT_FAIL after saying why on stderr (stdout closed, disk
 * full...). */
int print_value(const char *command, const char *value, size_t length);
/* Flushes stdout; EXIT_OK, or EXIT_FAIL after saying why on stderr. */
int finish_stdout(const char *command);

/* "azid COMMAND: <message>" on stderr. */
void report(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vreport(const char *command, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* report() of a library error; returns the exit code for its status:
 * EXIT_SOURCE for the identity source or Key Vault failing, EXIT_USAGE for
 * a bad argument, EXIT_FAIL otherwise. */
int report_error(const char *command, const azid_error *err);

/* How much of a library message says what failed: the part before its
 * " \u2014 " and the library's advice, which a command replaces with its
 * own (printf's "%.*s"). */
int fact_length(const char *message);

/* A time budget in seconds ("5", "0.5") as milliseconds, by the library's
 * one parser (azid_timeout_parse: at most AZID_TIMEOUT_MAX_MS); -1 when
 * text is not one. */
long parse_seconds_ms(const char *text);

/* Time left as people read it: "59m 12s", "2h 05m", "59m", "3d 04h", "no
 * expiry" (seconds < 0). */
void format_time_left(long seconds, char *buf, size_t size);

#endif
