/* SPDX-License-Identifier: MIT
 * azid lockdown on|off|status: nftables rules (table inet azid) that let
 * only root, the broker's user and the lockdown_allow entries of
 * /etc/azid.conf reach the identity endpoint 169.254.169.254:80.
 * They are applied with the nft command, not libnftables, so that the
 * library is not loaded into every `azid token` run nor a dependency where
 * nobody locks down, while nft -f still applies one kernel transaction
 * (more in lockdown_nft.c). */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "lockdown.h"
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "Closes the identity endpoint " LOCKDOWN_ADDR ":80 (IMDS) to every local\n"
    "process except root, the broker's user (" LOCKDOWN_BROKER_USER ", when it exists) and the\n"
    "users, @groups and IPv4 sources named by lockdown_allow in azid.conf; other\n"
    "callers get a TCP reset at once.  Forwarded traffic (containers) is refused\n"
    "unless its source address is allowed.  The rules are the nftables table\n"
    "inet azid and nothing else.\n"
    "\n"
    "  on      apply the rules from the config as it is now (again after a change:\n"
    "          the table is replaced in one transaction)\n"
    "  off     remove table inet azid\n"
    "  status  on or off, and who is let through\n"
    "\n"
    "  --config PATH  config file (default " AZID_CONFIG_PATH ")\n"
    "  --json         status: print one JSON object\n"
    "  -h, --help     show this help\n"
    "\n"
    "Root only.  Exit status: 0 done; 1 failed (the reason on stderr); 2 usage.\n";

/* The whole table as one nft transaction: creating it first makes the
 * delete succeed when it is absent, so the table is replaced, never
 * merged, and nothing in between is ever open. */
static char *ruleset(const struct lockdown_allow *allow)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    fputs("table inet azid {}\n"
          "delete table inet azid\n"
          "table inet azid {\n"
          "\tcomment \"azid lockdown: only these reach the identity endpoint; see azid(1)\"\n"
          "\tset allowed_uids {\n\t\ttype uid\n\t\telements = {", f);
    for (size_t i = 0; i < allow->nuids; i++)
        fprintf(f, "%s %u", i ? "," : "", (unsigned)allow->uids[i]);
    fputs(" }\n\t}\n\tset allowed_sources {\n\t\ttype ipv4_addr\n\t\tflags interval\n", f);
    if (allow->nsources) {
        fputs("\t\telements = {", f);
        for (size_t i = 0; i < allow->nsources; i++)
            fprintf(f, "%s %s", i ? "," : "", allow->sources[i]);
        fputs(" }\n", f);
    }
    /* meta skuid is the owner of the sending socket; forwarded packets
     * have none and are told apart by their source address instead. */
    fputs("\t}\n"
          "\tchain output {\n"
          "\t\ttype filter hook output priority filter; policy accept;\n"
          "\t\tip daddr " LOCKDOWN_ADDR " tcp dport 80 meta skuid != @allowed_uids "
          "reject with tcp reset\n"
          "\t}\n"
          "\tchain forward {\n"
          "\t\ttype filter hook forward priority filter; policy accept;\n"
          "\t\tip daddr " LOCKDOWN_ADDR " tcp dport 80 ip saddr != @allowed_sources "
          "reject with tcp reset\n"
          "\t}\n"
          "}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void warn_stderr(const char *message, void *ctx)
{
    fprintf(stderr, "azid %s: warning: %s\n", (const char *)ctx, message);
}

static void describe(const struct lockdown_allow *allow, FILE *out)
{
    char uids[4096];
    lockdown_format_uids(allow, uids, sizeof uids);
    fprintf(out, "allowed uids: %s\nforwarded traffic allowed from: ", uids);
    for (size_t i = 0; i < allow->nsources; i++)
        fprintf(out, "%s%s", i ? ", " : "", allow->sources[i]);
    fprintf(out, "%s\n", allow->nsources ? "" : "no source (all refused)");
}

static int lockdown_on(const char *config_path)
{
    azid_error err = {0};
    struct lockdown_allow allow;
    if (lockdown_desired(config_path, &allow, warn_stderr, "lockdown", &err) != AZID_OK) {
        report("lockdown", "%s; nothing changed", err.message);
        return EXIT_FAIL;
    }
    char *rules = ruleset(&allow), *out = NULL, why[512];
    static const char *const apply[] = {"-f", "-", NULL};
    int rc = EXIT_FAIL;
    if (!rules)
        report("lockdown", "out of memory; nothing changed");
    else if (lockdown_nft(apply, rules, &out, why, sizeof why) != 0)
        report("lockdown", "applying table inet azid failed: %s; nothing changed", why);
    else if (lockdown_state_write(&allow, &err) != AZID_OK)
        report("lockdown", "the rules are on, but %s: azid fetch cannot explain a refusal",
               err.message);
    else {
        printf("lockdown on: " LOCKDOWN_ADDR ":%d answers only these (table inet azid)\n",
               LOCKDOWN_PORT);
        describe(&allow, stdout);
        rc = finish_stdout("lockdown");
    }
    free(rules);
    free(out);
    lockdown_allow_free(&allow);
    return rc;
}

static int lockdown_off(void)
{
    static const char *const apply[] = {"-f", "-", NULL};
    char *out = NULL, why[512];
    azid_error err = {0};
    if (lockdown_nft(apply, "table inet azid {}\ndelete table inet azid\n", &out, why,
                sizeof why) != 0) {
        report("lockdown", "removing table inet azid failed: %s", why);
        return EXIT_FAIL;
    }
    free(out);
    if (lockdown_state_remove(&err) != AZID_OK) {
        report("lockdown", "the rules are off, but %s", err.message);
        return EXIT_FAIL;
    }
    printf("lockdown off: table inet azid removed; every local process can reach "
           LOCKDOWN_ADDR ":%d\n", LOCKDOWN_PORT);
    return finish_stdout("lockdown");
}

static void print_status_json(int on, const struct lockdown_allow *applied, int current)
{
    printf("{\"lockdown\":\"%s\",\"allowed_uids\":[", on ? "on" : "off");
    for (size_t i = 0; i < applied->nuids; i++)
        printf("%s%u", i ? "," : "", (unsigned)applied->uids[i]);
    fputs("],\"allowed_sources\":[", stdout);
    for (size_t i = 0; i < applied->nsources; i++) {
        fputs(i ? "," : "", stdout);
        json_print_string(stdout, applied->sources[i]);
    }
    printf("],\"config_applied\":%s}\n", current > 0 ? "true" : "false");
}

static int lockdown_status(const char *config_path, int json)
{
    struct lockdown_allow applied, desired;
    char why[512];
    int on = lockdown_read_applied(&applied, why, sizeof why);
    if (on < 0) {
        report("lockdown", "cannot read the ruleset: %s", why);
        return EXIT_FAIL;
    }
    /* Whether the rules still say what the config says now. */
    azid_error err = {0};
    int current = -1;
    if (lockdown_desired(config_path, &desired, NULL, NULL, &err) == AZID_OK) {
        current = on && lockdown_same_allow(&applied, &desired);
        lockdown_allow_free(&desired);
    }

    if (json) {
        print_status_json(on, &applied, current);
    } else if (!on) {
        printf("lockdown: off (no table inet azid); every local process can reach "
               LOCKDOWN_ADDR ":%d\n", LOCKDOWN_PORT);
    } else {
        printf("lockdown: on (table inet azid)\n");
        describe(&applied, stdout);
        if (current == 0)
            printf("config: %s now allows others; run 'azid lockdown on' to apply it\n",
                   config_path ? config_path : AZID_CONFIG_PATH);
        else if (current < 0)
            printf("config: %s; the rules above stay as they are\n", err.message);
    }
    lockdown_allow_free(&applied);
    return finish_stdout("lockdown");
}

int cmd_lockdown(int argc, char **argv)
{
    enum { OPT_CONFIG = 256, OPT_JSON }; /* long only */
    static const struct option options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int c, json = 0;
    while ((c = next_option(argc, argv, options)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            config_path = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case 'h':
            return print_help("lockdown", help);
        default:
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("lockdown", "say on, off or status");
    const char *verb = argv[optind];
    if (optind + 1 < argc)
        return usage_error("lockdown", "unexpected argument '%s'", argv[optind + 1]);
    int is_on = strcmp(verb, "on") == 0, is_off = strcmp(verb, "off") == 0;
    if (!is_on && !is_off && strcmp(verb, "status") != 0)
        return usage_error("lockdown", "unknown action '%s'; say on, off or status", verb);
    if (json && !(!is_on && !is_off))
        return usage_error("lockdown", "--json goes with status only");
    if (geteuid() != 0) {
        report("lockdown", "only root can %s lockdown (it changes and reads the firewall); "
               "run 'sudo azid lockdown %s'", is_on ? "turn on" : is_off ? "turn off" : "read",
               verb);
        return EXIT_FAIL;
    }
    return is_on ? lockdown_on(config_path) : is_off ? lockdown_off()
                                                     : lockdown_status(config_path, json);
}
