/* SPDX-License-Identifier: MIT */
#ifndef AZID_CLI_COMMANDS_H
#define AZID_CLI_COMMANDS_H

/* Exit codes (azid(1)). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,  /* the command ran and the answer is "no" (absent, expired, not healthy) */
    EXIT_USAGE = 2, /* bad command line */
    EXIT_SOURCE = 3 /* the identity source or Key Vault refused or could not be reached */
};

/* Each command gets argv starting at its own name (argv[0] = "fetch"). */
int cmd_fetch(int argc, char **argv);

#endif
