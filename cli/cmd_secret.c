/* SPDX-License-Identifier: MIT
 * azid secret: print a Key Vault secret pam_azid stored in the caller's
 * keyring. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "keys.h"
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char help[] =
    "Prints a Key Vault secret that pam_azid stored in your keyring at login,\n"
    "followed by a newline.  Name it by\n"
    "  NAME                 the secret's name, when one vault's secret has it\n"
    "  VAULT-HOST/NAME      as 'azid list' shows it (myvault.vault.azure.net/db-password)\n"
    "  SECRET-URL           https://VAULT-HOST/secrets/NAME[/VERSION], as in azid.conf\n"
    "Names and hosts match without regard to case, as in Key Vault.\n"
    "\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 printed; 1 no such secret, it expired, or NAME is ambiguous;\n"
    "2 usage.\n";

struct secret_ref {
    char *host; /* NULL for a bare name */
    char *name;
};

static void secret_ref_free(struct secret_ref *ref)
{
    free(ref->host);
    free(ref->name);
}

/* Splits the argument into host and name, URLs and VAULT-HOST/NAME by the
 * library's strict secret-URL parser; EXIT_OK, EXIT_USAGE or EXIT_FAIL
 * (out of memory; the caller frees ref either way). */
static int parse_ref(const char *arg, struct secret_ref *ref)
{
    size_t n = strlen(arg), host_len = strcspn(arg, "/");
    int is_url = strstr(arg, "://") != NULL;
    if (!is_url && !arg[host_len]) {
        if (!n)
            return usage_error("secret", "'' names no secret");
        ref->name = strdup(arg);
        if (!ref->name) {
            report("secret", "out of memory");
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    char *url = NULL;
    /* A URL may end in '/', as a browser shows it. */
    if (is_url)
        url = strndup(arg, n && arg[n - 1] == '/' ? n - 1 : n);
    else if (asprintf(&url, "https://%.*s/secrets/%s", (int)host_len, arg, arg + host_len + 1) < 0)
        url = NULL;
    if (!url) {
        report("secret", "out of memory");
        return EXIT_FAIL;
    }
    azid_secret_url parts;
    azid_error err;
    azid_status st = azid_secret_url_parse(url, &parts, &err);
    free(url);
    if (st != AZID_OK)
        return usage_error("secret", "'%s' is neither NAME, VAULT-HOST/NAME nor a secret URL: %s",
                           arg, err.message);
    ref->host = strdup(parts.vault_host);
    ref->name = strdup(parts.name);
    if (!ref->host || !ref->name) {
        report("secret", "out of memory");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Whether a stored secret is the one ref names. */
static int matches(const azid_key_fields *stored, const struct secret_ref *ref)
{
    if (stored->kind != AZID_KEY_SECRET || strcasecmp(stored->name, ref->name) != 0)
        return 0;
    return !ref->host || (strlen(ref->host) == stored->vault_host_length &&
                          strncasecmp(stored->vault_host, ref->host, stored->vault_host_length) == 0);
}

/* The stored key ref names, or NULL after saying why there is not exactly
 * one. */
static const struct stored_key *find_secret(const struct key_snapshot *snap,
                                            const struct secret_ref *ref, const char *arg)
{
    const struct stored_key *found = NULL;
    size_t count = 0;
    char hosts[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const azid_key_fields *stored = &snap->keys[i].fields;
        if (!matches(stored, ref))
            continue;
        found = &snap->keys[i];
        count++;
        join_append(hosts, sizeof hosts, &used, stored->vault_host, stored->vault_host_length);
    }
    if (count == 1)
        return found;
    if (count > 1) {
        report("secret", "secret %s is stored from %zu vaults (%s); name one: azid secret "
                         "VAULT-HOST/%s", ref->name, count, hosts, ref->name);
    } else {
        char stored[1024];
        keys_join_names(snap, AZID_KEY_SECRET, stored, sizeof stored);
        report("secret", "no secret %s in your keyring: it expired or was never stored "
                         "(stored: %s); pam_azid stores the secret= URLs azid.conf grants you at "
                         "login", arg, stored);
    }
    return NULL;
}

static int print_secret(const struct stored_key *key)
{
    char *payload = NULL;
    size_t length = 0;
    azid_error err = {0};
    azid_status status = azid_keyring_read(key->description, &payload, &length, &err);
    if (status == AZID_ERR_NOT_FOUND) {
        report("secret", "the copy of %s in your keyring expired just now; log in again to "
                         "get a fresh one", key_shown(key));
        return EXIT_FAIL;
    }
    if (status != AZID_OK)
        return report_error("secret", &err);
    int rc = print_value("secret", payload, length);
    explicit_bzero(payload, length);
    free(payload);
    return rc;
}

int cmd_secret(int argc, char **argv)
{
    int rc = parse_keyring_options(argc, argv, help, NULL);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return usage_error("secret", "name one secret");

    const char *arg = argv[optind];
    struct secret_ref ref = {NULL, NULL};
    rc = parse_ref(arg, &ref);
    if (rc != EXIT_OK) {
        secret_ref_free(&ref);
        return rc;
    }
    azid_error err = {0};
    struct key_snapshot snap;
    if (keys_snapshot(&snap, &err) != AZID_OK) {
        rc = report_error("secret", &err);
    } else {
        const struct stored_key *key = find_secret(&snap, &ref, arg);
        rc = key ? print_secret(key) : EXIT_FAIL;
        keys_snapshot_free(&snap);
    }
    secret_ref_free(&ref);
    return rc;
}
