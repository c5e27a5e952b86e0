/* SPDX-License-Identifier: MIT */
#ifndef AZID_CLI_COMMANDS_H
#define AZID_CLI_COMMANDS_H

#include <getopt.h>
#include <stdio.h>

/* Exit codes (azid(1)). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,  /* the command ran and the answer is "no" (absent, expired, not healthy) */
    EXIT_USAGE = 2, /* bad command line */
    EXIT_SOURCE = 3 /* the identity source or Key Vault refused or could not be reached */
};

/* Each command gets argv starting at its own name (argv[0] = "fetch"). */
int cmd_fetch(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_lockdown(int argc, char **argv);

/* Command-line helpers (main.c), so every command parses and complains
 * alike. */

/* "usage: azid NAME SYNOPSIS" from the command table, to out. */
void print_usage(FILE *out, const char *name);
/* --help: the usage line, then text (the command's description and
 * options), to stdout.  Returns EXIT_OK. */
int print_help(const char *name, const char *text);
/* A bad command line: "azid NAME: <why>", the usage line and a pointer to
 * --help, on stderr.  Returns EXIT_USAGE. */
int usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long over a command's option table: its long options, -h for
 * help, and a short form -X for each option whose val is the letter X
 * (give the others vals from 256 up); positional arguments permuted to
 * the end.  Returns the option's
 * val, -1 after the last option (the positional arguments are then
 * argv[optind..argc-1]), or '?' after reporting an unknown option or a
 * missing value with usage_error (the caller returns EXIT_USAGE). */
int next_option(int argc, char **argv, const struct option *options);
/* The whole option parsing of the keyring commands, whose only options are
 * --json (json non-NULL; else it is unknown) and --help.  Returns -1 to go
 * on with the positional arguments at argv[optind], or the exit code
 * (help shown, or a usage error). */
int parse_keyring_options(int argc, char **argv, const char *help, int *json);

/* The broker's socket from the config file as the caller's policy reads
 * it (broker=; the default socket when the file cannot be read: the broker
 * then says what is wrong with it), NULL for broker=off; *timeout_ms is the
 * file's timeout.  Free *cfg after use of the path. */
struct azid_config;
const char *broker_socket(struct azid_config **cfg, long *timeout_ms);

/* A config file only root can read (a mode of 0600 is safe too) is read
 * by pam_azid and azidd, which run as root; a user's command goes on
 * without it, with the built-in defaults. */
int config_unreadable_by_caller(const char *path);

#endif
