/* SPDX-License-Identifier: MIT
 * azid list: the azid keys in the caller's keyring, never their values. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "keys.h"
#include "output.h"

#include <string.h>

static const char help[] =
    "Lists the azid keys in your keyring, one a line: kind (token or secret),\n"
    "the resource or VAULT-HOST/NAME, and the time left before the stored copy\n"
    "expires.  The kernel shows time left rounded down to its largest unit\n"
    "(\"59m\", \"23h\").  Expired keys are not listed.  Never prints a value.\n"
    "With no keys, prints nothing on standard output and says so on standard\n"
    "error.\n"
    "\n"
    "  --json      print one JSON object, {\"keys\": [...]}, with an object per key:\n"
    "              \"kind\", \"description\", \"serial\", \"seconds_left\",\n"
    "              \"expires_on\", and \"resource\" for a token or \"vault_host\" and\n"
    "              \"name\" for a secret\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 listed (even when empty); 1 the keyring cannot be read; 2 usage.\n";

static const char *kind_of(const struct stored_key *key, const char **name)
{
    static const char *const kinds[] = {
        [AZID_KEY_OTHER] = "other", [AZID_KEY_TOKEN] = "token", [AZID_KEY_SECRET] = "secret"};
    *name = key_shown(key);
    return kinds[key->fields.kind];
}

static void print_json_number(const char *field, long long value)
{
    if (value < 0)
        printf(",\"%s\":null", field);
    else
        printf(",\"%s\":%lld", field, value);
}

static void print_json(const struct key_snapshot *snap)
{
    fputs("{\"keys\":[", stdout);
    for (size_t i = 0; i < snap->count; i++) {
        const struct stored_key *key = &snap->keys[i];
        const char *name;
        const char *kind = kind_of(key, &name);
        fputs(i ? ",\n {\"kind\":" : "\n {\"kind\":", stdout);
        json_print_string(stdout, kind);
        fputs(",\"description\":", stdout);
        json_print_string(stdout, key->description);
        printf(",\"serial\":%ld", (long)key->serial);
        print_json_number("seconds_left", key->seconds_left);
        print_json_number("expires_on", key->expires_on);
        if (key->fields.kind == AZID_KEY_TOKEN) {
            fputs(",\"resource\":", stdout);
            json_print_string(stdout, key->fields.resource);
        } else if (key->fields.kind == AZID_KEY_SECRET) {
            char host[1024];
            snprintf(host, sizeof host, "%.*s", (int)key->fields.vault_host_length,
                     key->fields.vault_host);
            fputs(",\"vault_host\":", stdout);
            json_print_string(stdout, host);
            fputs(",\"name\":", stdout);
            json_print_string(stdout, key->fields.name);
        }
        putchar('}');
    }
    fputs(snap->count ? "\n]}\n" : "]}\n", stdout);
}

/* Columns in SPEC's order, kind, name, expiry: the time left comes last
 * as it may hold a space ("no expiry"). */
static void print_table(const struct key_snapshot *snap)
{
    int width = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const char *name;
        kind_of(&snap->keys[i], &name);
        size_t len = strlen(name);
        if (len > (size_t)width)
            width = len < 80 ? (int)len : 80;
    }
    for (size_t i = 0; i < snap->count; i++) {
        const char *name;
        const char *kind = kind_of(&snap->keys[i], &name);
        char left[32];
        format_time_left(snap->keys[i].seconds_left, left, sizeof left);
        printf("%-6s  %-*s  %s\n", kind, width, name, left);
    }
}

int cmd_list(int argc, char **argv)
{
    int json = 0;
    int rc = parse_keyring_options(argc, argv, help, &json);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return usage_error("list", "unexpected argument '%s'", argv[optind]);

    azid_error err = {0};
    struct key_snapshot snap;
    if (keys_snapshot(&snap, &err) != AZID_OK)
        return report_error("list", &err);
    if (json)
        print_json(&snap);
    else if (snap.count)
        print_table(&snap);
    else
        report("list", "no azid keys in your keyring (pam_azid stores them at login; see "
                       "'azid doctor')");
    keys_snapshot_free(&snap);
    return finish_stdout("list");
}
