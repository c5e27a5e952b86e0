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
    "time left before the stored copy expires, and the resource or\n"
    "VAULT-HOST/NAME.  The kernel shows time left rounded down to its largest\n"
    "unit (\"59m\", \"23h\").  Expired keys are not listed.  Never prints a\n"
    "value.  With no keys, prints nothing on standard output and says so on\n"
    "standard error.\n"
    "\n"
    "  --json      print a JSON list of {\"kind\", \"description\", \"serial\",\n"
    "              \"seconds_left\", \"expires_on\"} objects, with \"resource\" for\n"
    "              tokens and \"vault_host\", \"name\" for secrets\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 listed (even when empty); 1 the keyring cannot be read; 2 usage.\n";

static const char *kind_of(const struct stored_key *key, const char **name)
{
    if ((*name = key_name(key, TOKEN_PREFIX)))
        return "token";
    if ((*name = key_name(key, SECRET_PREFIX)))
        return "secret";
    *name = key->description;
    return "other";
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
    putchar('[');
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
        if (strcmp(kind, "token") == 0) {
            fputs(",\"resource\":", stdout);
            json_print_string(stdout, name);
        } else if (strcmp(kind, "secret") == 0) {
            const char *slash = strrchr(name, '/');
            size_t host_len = slash ? (size_t)(slash - name) : 0;
            char host[1024];
            snprintf(host, sizeof host, "%.*s", (int)host_len, name);
            fputs(",\"vault_host\":", stdout);
            json_print_string(stdout, host);
            fputs(",\"name\":", stdout);
            json_print_string(stdout, slash ? slash + 1 : name);
        }
        putchar('}');
    }
    fputs(snap->count ? "\n]\n" : "]\n", stdout);
}

static void print_table(const struct key_snapshot *snap)
{
    for (size_t i = 0; i < snap->count; i++) {
        const char *name;
        const char *kind = kind_of(&snap->keys[i], &name);
        char left[32];
        format_time_left(snap->keys[i].seconds_left, left, sizeof left);
        printf("%-6s  %-9s  %s\n", kind, left, name);
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
