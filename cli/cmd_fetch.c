/* SPDX-License-Identifier: MIT
 * azid fetch: a token straight from the identity source (no keyring). */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "lockdown.h"
#include "output.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help_head[] =
    "Gets a token for RESOURCE from this machine's managed-identity source\n"
    "(IMDS on an Azure VM, the Arc agent, ...) and prints it, followed by a\n"
    "newline.  Nothing is stored.\n"
    "\n"
    "  -r, --resource R     the resource (audience); default " AZID_DEFAULT_RESOURCE "\n"
    "  --client-id ID       a user-assigned identity by client id\n"
    "  --object-id ID       ... by object (principal) id\n"
    "  --msi-res-id ID      ... by Azure resource id (at most one of the three)\n"
    "  --endpoint URL       token endpoint base, scheme://host[:port]\n"
    "  --ca-file PATH       extra CA bundle for an https endpoint (as ca_file=)\n"
    "  --source S           the identity source, one of:\n";
/* (the sources, from the library's table) */
static const char help_tail[] =
    "  --timeout SECONDS    total time budget, retries included; default 5, at most 300\n"
    "  --json               print {\"access_token\", \"expires_on\", \"resource\", \"token_type\"}\n"
    "  -h, --help           show this help\n"
    "\n"
    "Under 'azid lockdown' a refused user is told so at once: use 'azid token'.\n"
    "\n"
    "Exit status: 0 printed; 2 usage; 3 the identity source failed (the reason,\n"
    "with the endpoint and its answer, on stderr).\n";

enum fetch_option {
    OPT_HELP = 'h',
    OPT_RESOURCE = 'r',
    OPT_CLIENT_ID = 256,
    OPT_OBJECT_ID,
    OPT_MSI_RES_ID,
    OPT_ENDPOINT,
    OPT_CA_FILE,
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

struct fetch_args {
    const char *resource;
    const char *selector; /* the option that named an identity */
    azid_identity_kind kind;
    const char *identity;
    const char *endpoint;
    const char *ca_file;
    azid_source source;
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
        case OPT_SOURCE:
            if (azid_source_parse(optarg, &a->source, &err) != AZID_OK)
                return usage_error(argv[0], "%s", err.message);
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

int cmd_fetch(int argc, char **argv)
{
    struct fetch_args a = {
        .resource = AZID_DEFAULT_RESOURCE,
        .source = AZID_SOURCE_AUTO,
        .timeout_ms = AZID_DEFAULT_TIMEOUT_MS,
    };
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;

    azid_client *client = azid_client_new();
    if (!client) {
        report(argv[0], "out of memory");
        return EXIT_FAIL;
    }
    azid_error err;
    azid_token *token = NULL;
    if (azid_client_set_source(client, a.source, &err) != AZID_OK ||
        azid_client_set_timeout_ms(client, a.timeout_ms, &err) != AZID_OK ||
        (a.endpoint && azid_client_set_endpoint(client, a.endpoint, &err) != AZID_OK) ||
        (a.ca_file && azid_client_set_ca_file(client, a.ca_file, &err) != AZID_OK) ||
        (a.identity && azid_client_set_identity(client, a.kind, a.identity, &err) != AZID_OK)) {
        azid_client_free(client);
        return report_error(argv[0], &err);
    }
    /* NULL without a source: the request below says so. */
    const char *endpoint = azid_client_endpoint(client);
    /* The library would retry a reset until the budget is spent. */
    if (lockdown_refuses_caller(endpoint)) {
        report(argv[0], "%s refused uid %u at once: azid lockdown is on and lets only root, "
               "the broker and the lockdown_allow users of " AZID_CONFIG_PATH " reach it; "
               "run 'azid token %s' for a token azid grants you (or ask an admin to add you "
               "to lockdown_allow)", endpoint, (unsigned)geteuid(), a.resource);
        azid_client_free(client);
        return EXIT_SOURCE;
    }
    /* Every request of this process goes to endpoint (retries and Arc's
     * challenge too): at an http:// URL it needs no TLS (the library
     * accepts only lower-case schemes). */
    if (endpoint && strncmp(endpoint, "http://", 7) == 0 &&
        azid_global_init(AZID_GLOBAL_NO_TLS, &err) != AZID_OK) {
        azid_client_free(client);
        return report_error(argv[0], &err);
    }
    if (azid_client_get_token(client, a.resource, &token, &err) != AZID_OK) {
        azid_client_free(client);
        return report_error(argv[0], &err);
    }
    azid_client_free(client);

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
