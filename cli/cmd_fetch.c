/* SPDX-License-Identifier: MIT
 * azid fetch: a token straight from the identity source (no keyring). */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "lockdown.h"
#include "output.h"

#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help_head[] =
    "Gets a token for RESOURCE from this machine's managed-identity source\n"
    "(IMDS on an Azure VM, the Arc agent, ...) and prints it, followed by a\n"
    "newline.  Nothing is stored.\n"
    "What the options leave out comes from the config file: its source=,\n"
    "endpoint=, timeout= and ca_file=, never its grants or identities (the\n"
    "identity is the system-assigned one unless an option below names one).\n"
    "A config file you may not read is skipped.\n"
    "\n"
    "  -r, --resource R     the resource (audience); default " AZID_DEFAULT_RESOURCE "\n"
    "  --client-id ID       a user-assigned identity by client id\n"
    "  --object-id ID       ... by object (principal) id\n"
    "  --msi-res-id ID      ... by Azure resource id (at most one of the three)\n"
    "  --endpoint URL       token endpoint base, scheme://host[:port]\n"
    "  --ca-file PATH       extra CA bundle for an https endpoint (as ca_file=)\n"
    "  --config PATH        config file (default " AZID_CONFIG_PATH ")\n"
    "  --source S           the identity source, one of:\n";
/* (the sources, from the library's table) */
static const char help_tail[] =
    "  --timeout SECONDS    total time budget, retries included, at most 300;\n"
    "                       default timeout= of the config file, else 5\n"
    "  --json               print {\"access_token\", \"expires_on\", \"resource\", \"token_type\"}\n"
    "  -h, --help           show this help\n"
    "\n"
    "Under 'azid lockdown' a refused user is told so at once: use 'azid token'.\n"
    "\n"
    "Exit status: 0 printed; 1 the config file is refused (why, with its file\n"
    "and line, on stderr); 2 usage; 3 the identity source failed (the reason,\n"
    "with the endpoint and its answer, on stderr).\n";

enum fetch_option {
    OPT_HELP = 'h',
    OPT_RESOURCE = 'r',
    OPT_CLIENT_ID = 256,
    OPT_OBJECT_ID,
    OPT_MSI_RES_ID,
    OPT_ENDPOINT,
    OPT_CA_FILE,
    OPT_CONFIG,
    OPT_SOURCE,
    OPT_TIMEOUT,
    OPT_JSON,
};

static const struct option fetch_options[] = {
    {"resource", required_argument, NULL, OPT_RESOURCE},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"object-id", required_argument, NULL, OPT_OBJECT_ID},
    {"msi-res-id", required_argument, NULL, OPT_MSI_RES_ID},
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* The identity each selector option names. */
static const struct {
    int option;
    azid_identity_kind kind;
    const char *name;
} selectors[] = {
    {OPT_CLIENT_ID, AZID_IDENTITY_CLIENT_ID, "--client-id"},
    {OPT_OBJECT_ID, AZID_IDENTITY_OBJECT_ID, "--object-id"},
    {OPT_MSI_RES_ID, AZID_IDENTITY_MSI_RES_ID, "--msi-res-id"},
};

/* The command line; NULL, source_given 0 and timeout_ms 0 leave the
 * setting to the config file. */
struct fetch_args {
    const char *resource;
    const char *selector; /* the option that named an identity */
    azid_identity_kind kind;
    const char *identity;
    const char *endpoint;
    const char *ca_file;
    const char *config;
    azid_source source;
    int source_given;
    long timeout_ms;
    int json;
};

static int show_help(const char *name)
{
    print_help(name, help_head);
    for (azid_source s = AZID_SOURCE_AUTO; azid_source_describe(s); s++)
        printf("      %-12s %s\n", azid_source_name(s), azid_source_describe(s));
    fputs(help_tail, stdout);
    return EXIT_OK;
}

/* -1 when parsed; otherwise the exit code (help shown or usage error). */
static int parse_args(int argc, char **argv, struct fetch_args *a)
{
    azid_error err;
    int c;
    while ((c = next_option(argc, argv, fetch_options)) != -1) {
        switch (c) {
        case OPT_RESOURCE:
            if (azid_resource_check(optarg, &err) != AZID_OK)
                return usage_error(argv[0], "--resource: %s", err.message);
            a->resource = optarg;
            break;
        case OPT_CLIENT_ID:
        case OPT_OBJECT_ID:
        case OPT_MSI_RES_ID:
            for (size_t i = 0; i < sizeof selectors / sizeof selectors[0]; i++) {
                if (selectors[i].option != c)
                    continue;
                if (a->selector && a->kind != selectors[i].kind)
                    return usage_error(argv[0], "%s and %s both name an identity; give at most one",
                                       a->selector, selectors[i].name);
                a->selector = selectors[i].name;
                a->kind = selectors[i].kind;
                a->identity = optarg;
            }
            break;
        case OPT_ENDPOINT:
            a->endpoint = optarg;
            break;
        case OPT_CA_FILE:
            a->ca_file = optarg;
            break;
        case OPT_CONFIG:
            a->config = optarg;
            break;
        case OPT_SOURCE:
            if (azid_source_parse(optarg, &a->source, &err) != AZID_OK)
                return usage_error(argv[0], "%s", err.message);
            a->source_given = 1;
            break;
        case OPT_TIMEOUT:
            if ((a->timeout_ms = parse_seconds_ms(optarg)) >= 0)
                break;
            /* Refused by the library's parser: only the reason is chosen here. */
            if (strtod(optarg, NULL) > AZID_TIMEOUT_MAX_MS / 1000.0)
                return usage_error(argv[0], "--timeout %s is over the ceiling of %d seconds; "
                                            "give at most %d", optarg,
                                   AZID_TIMEOUT_MAX_MS / 1000, AZID_TIMEOUT_MAX_MS / 1000);
            return usage_error(argv[0], "--timeout wants a positive number of seconds, "
                                        "not '%s'", optarg);
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_HELP:
            return show_help(argv[0]);
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* The config file as the module reads it for the caller (its Match blocks
 * included), into *cfg, which the caller frees; -1 to go on, else the exit
 * code after saying why.  *skipped: the caller may not read the built-in
 * one (one named with --config must be read). */
static int load_config(const char *name, const char *path, azid_config **cfg, int *skipped)
{
    *skipped = 0;
    *cfg = azid_config_new();
    char *arg = NULL;
    if (!*cfg || (path && asprintf(&arg, "config=%s", path) < 0)) {
        report(name, "out of memory");
        return EXIT_FAIL;
    }
    azid_error err;
    azid_status st = arg ? azid_config_apply_arg(*cfg, arg, &err) : AZID_OK;
    free(arg);
    if (st != AZID_OK)
        return usage_error(name, "--config: %s", err.message);
    if (!path && config_unreadable_by_caller(azid_config_path(*cfg))) {
        *skipped = 1;
        return -1;
    }
    const struct passwd *pw = getpwuid(getuid());
    if (azid_config_load(*cfg, pw ? pw->pw_name : NULL, &err) != AZID_OK) {
        report(name, "%s; fix it (see azid.conf(5)): pam_azid and azidd refuse it too",
               err.message);
        return EXIT_FAIL;
    }
    return -1;
}

/* A client with the command line's settings, else the file's (its grants
 * and identities are not fetch's: the identity is the command line's). */
static azid_status new_client(const struct fetch_args *a, const azid_config *cfg,
                              azid_client **out, azid_error *err)
{
    const char *endpoint = a->endpoint ? a->endpoint : azid_config_endpoint(cfg);
    const char *ca_file = a->ca_file ? a->ca_file : azid_config_ca_file(cfg);
    azid_client *client = *out = azid_client_new();
    if (!client) {
        err->status = AZID_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return AZID_ERR_NOMEM;
    }
    if (azid_client_set_source(client, a->source_given ? a->source : azid_config_source(cfg),
                               err) != AZID_OK ||
        azid_client_set_timeout_ms(client, a->timeout_ms ? a->timeout_ms
                                                         : azid_config_timeout_ms(cfg),
                                   err) != AZID_OK ||
        (endpoint && azid_client_set_endpoint(client, endpoint, err) != AZID_OK) ||
        (ca_file && azid_client_set_ca_file(client, ca_file, err) != AZID_OK) ||
        (a->identity && azid_client_set_identity(client, a->kind, a->identity, err) != AZID_OK))
        return err->status;
    return AZID_OK;
}

/* report_error, with fetch's own advice off Azure: the option first. */
static int report_fetch_error(const char *name, const azid_error *err, const azid_config *cfg,
                              int skipped)
{
    if (err->status != AZID_ERR_NO_SOURCE)
        return report_error(name, err);
    azid_error advised = *err;
    char unread[64] = "";
    if (skipped)
        snprintf(unread, sizeof unread, ", which uid %u cannot read", (unsigned)getuid());
    snprintf(advised.message, sizeof advised.message,
             "%.*s; give --endpoint URL (or endpoint= in %.200s%s) to use another token endpoint",
             fact_length(err->message), err->message, azid_config_path(cfg), unread);
    return report_error(name, &advised);
}

/* The token, or NULL after saying why, with *rc the exit code. */
static azid_token *fetch_token(const char *name, const struct fetch_args *a,
                               const azid_config *cfg, int skipped, int *rc)
{
    azid_client *client;
    azid_error err;
    azid_token *token = NULL;
    azid_status st = new_client(a, cfg, &client, &err);
    /* NULL without a source: the request below says so. */
    const char *endpoint = st == AZID_OK ? azid_client_endpoint(client) : NULL;
    /* The library would retry a reset until the budget is spent. */
    if (st == AZID_OK && lockdown_refuses_caller(endpoint)) {
        report(name, "%s refused uid %u at once: azid lockdown is on and lets only root, "
               "the broker and the lockdown_allow users of " AZID_CONFIG_PATH " reach it; "
               "run 'azid token %s' for a token azid grants you (or ask an admin to add you "
               "to lockdown_allow)", endpoint, (unsigned)geteuid(), a->resource);
        *rc = EXIT_SOURCE;
    } else if (st != AZID_OK ||
               /* Every request of this process goes to endpoint (retries
                * and Arc's challenge too): at an http:// URL it needs no
                * TLS (the library accepts only lower-case schemes). */
               (endpoint && strncmp(endpoint, "http://", 7) == 0 &&
                azid_global_init(AZID_GLOBAL_NO_TLS, &err) != AZID_OK) ||
               azid_client_get_token(client, a->resource, &token, &err) != AZID_OK) {
        *rc = report_fetch_error(name, &err, cfg, skipped);
    }
    azid_client_free(client);
    return token;
}

int cmd_fetch(int argc, char **argv)
{
    struct fetch_args a = {.resource = AZID_DEFAULT_RESOURCE};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    azid_config *cfg;
    int skipped;
    azid_token *token = NULL;
    if ((rc = load_config(argv[0], a.config, &cfg, &skipped)) < 0)
        token = fetch_token(argv[0], &a, cfg, skipped, &rc);
    azid_config_free(cfg);
    if (!token)
        return rc;

    if (a.json) {
        json_print_token(azid_token_value(token), azid_token_expires_on(token),
                         azid_token_resource(token), azid_token_type(token));
        rc = finish_stdout(argv[0]);
    } else {
        rc = print_value(argv[0], azid_token_value(token), azid_token_length(token));
    }
    azid_token_free(token);
    return rc;
}
