/* SPDX-License-Identifier: MIT
 * azid(1): dispatch to one command per file (cli/cmd_*.c), and the
 * command-line helpers they share. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "output.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* after "azid NAME "; '\n' starts a continuation line */
    const char *summary;
};

static const struct command commands[] = {
    {"token", cmd_token, "[RESOURCE] [--json]",
     "print an access token stored in your keyring at login"},
    {"secret", cmd_secret, "NAME | VAULT-HOST/NAME | SECRET-URL",
     "print a Key Vault secret stored in your keyring at login"},
    {"list", cmd_list, "[--json]", "list the azid keys in your keyring, never their values"},
    {"fetch", cmd_fetch,
     "[--resource R] [--client-id ID|--object-id ID|--msi-res-id ID]\n"
     "[--endpoint URL] [--ca-file PATH] [--config PATH] [--source S]\n"
     "[--timeout S] [--json]",
     "get a token straight from the identity source"},
    {"doctor", cmd_doctor, "[--config PATH] [--endpoint URL] [--timeout S] [--pam-dir DIR]",
     "check this machine's identity source, config, keyring and PAM stacks"},
    {"status", cmd_status, "[--json]",
     "the broker's cache: tokens, expiries, refreshes, failures, counters; never a value"},
    {"lockdown", cmd_lockdown, "on|off|status [--config PATH] [--json]",
     "root: let only root, the broker and lockdown_allow reach the identity endpoint"},
};
enum { COMMAND_COUNT = sizeof commands / sizeof commands[0] };

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(name, commands[i].name) == 0)
            return &commands[i];
    return NULL;
}

/* prefix + "azid NAME " + the synopsis, continuation lines aligned under
 * its first line. */
static void print_synopsis(FILE *out, const char *prefix, const struct command *cmd)
{
    int indent = fprintf(out, "%sazid %s ", prefix, cmd->name);
    for (const char *line = cmd->synopsis; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "%.*s\n", (int)len, line);
        line += len;
        if (*line == '\n') {
            line++;
            fprintf(out, "%*s", indent, "");
        }
    }
}

void print_usage(FILE *out, const char *name)
{
    const struct command *cmd = find_command(name);
    if (cmd)
        print_synopsis(out, "usage: ", cmd);
}

int print_help(const char *name, const char *text)
{
    print_usage(stdout, name);
    fprintf(stdout, "\n%s", text);
    return EXIT_OK;
}

int usage_error(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(name, fmt, ap);
    va_end(ap);
    print_usage(stderr, name);
    fprintf(stderr, "Run 'azid %s --help' for more.\n", name);
    return EXIT_USAGE;
}

int next_option(int argc, char **argv, const struct option *options)
{
    /* -h, and a short form for each option whose val is a letter. */
    char shortopts[32] = ":h";
    size_t n = strlen(shortopts);
    for (const struct option *o = options; o->name && n + 3 <= sizeof shortopts; o++) {
        if (o->val == 'h' || o->val > 0x7f || !isalpha(o->val))
            continue;
        shortopts[n++] = (char)o->val;
        if (o->has_arg == required_argument)
            shortopts[n++] = ':';
    }
    shortopts[n] = '\0';
    opterr = 0; /* the messages below name the command */
    int c = getopt_long(argc, argv, shortopts, options, NULL);
    if (c != '?' && c != ':')
        return c;
    const char *arg = argv[optind - 1];
    if (c == ':')
        usage_error(argv[0], "option '%s' needs a value", arg);
    else if (strncmp(arg, "--", 2) != 0 && optopt)
        usage_error(argv[0], "unknown option '-%c'", optopt);
    else if (optopt && strchr(arg, '='))
        usage_error(argv[0], "option '%.*s' takes no value", (int)strcspn(arg, "="), arg);
    else
        usage_error(argv[0], "unknown option '%s'", arg);
    return '?';
}

int parse_keyring_options(int argc, char **argv, const char *help, int *json)
{
    enum { OPT_JSON = 256 }; /* long only: no -j */
    static const struct option options[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = next_option(argc, argv, json ? options : options + 1)) != -1) {
        if (c == 'h')
            return print_help(argv[0], help);
        if (c != OPT_JSON)
            return EXIT_USAGE;
        *json = 1;
    }
    return -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: azid COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        print_synopsis(out, "  ", &commands[i]);
        fprintf(out, "      %s\n", commands[i].summary);
    }
    fprintf(out, "\n  azid --help | --version\n\n"
                 "Run 'azid COMMAND --help' for a command's options.  See azid(1).\n");
}

static int version(void)
{
    /* The library is a separate package file; name it when it differs. */
    if (strcmp(azid_version(), PACKAGE_VERSION) == 0)
        printf("azid %s\n", PACKAGE_VERSION);
    else
        printf("azid %s (libazid %s)\n", PACKAGE_VERSION, azid_version());
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    stdout_wipe_at_exit();
    opterr = 0;
    int c = getopt_long(argc, argv, "+hV", options, NULL);
    switch (c) {
    case 'h':
        usage(stdout);
        return EXIT_OK;
    case 'V':
        return version();
    case -1:
        break;
    default:
        fprintf(stderr, "azid: unknown option '%s'; run 'azid --help'\n", argv[optind - 1]);
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct command *cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "azid: unknown command '%s'; run 'azid --help' for the list\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    int first = optind;
    optind = 0; /* each command's getopt_long starts afresh on its own argv */
    return cmd->run(argc - first, argv + first);
}

const char *broker_socket(azid_config **cfg, long *timeout_ms)
{
    *cfg = azid_config_new();
    *timeout_ms = AZID_DEFAULT_TIMEOUT_MS;
    if (!*cfg)
        return AZID_BROKER_SOCKET;
    struct passwd *pw = getpwuid(getuid());
    azid_error err;
    if (!pw || azid_config_load(*cfg, pw->pw_name, &err) != AZID_OK)
        return AZID_BROKER_SOCKET;
    *timeout_ms = azid_config_timeout_ms(*cfg);
    const char *path = NULL;
    azid_config_broker(*cfg, &path);
    return path;
}

int config_unreadable_by_caller(const char *path)
{
    return getuid() != 0 && access(path, R_OK) != 0 && errno == EACCES;
}
