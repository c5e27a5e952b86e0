/* SPDX-License-Identifier: MIT
 * azid(1): dispatch to one command per file (cli/cmd_*.c). */
#include "config.h"

#include "azid.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"fetch", cmd_fetch,
     "fetch [--resource R] [--client-id ID|--object-id ID|--msi-res-id ID]\n"
     "              [--endpoint URL] [--source S] [--timeout S] [--json]"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: azid COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  azid %s\n", commands[i].usage);
    fprintf(out, "\n  azid --help | --version\n\nSee azid(1).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("azid %s\n", azid_version());
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "azid: unknown command '%s'; run 'azid --help' for the list\n", argv[1]);
    return EXIT_USAGE;
}
