/* SPDX-License-Identifier: MIT
 * azid token: print an access token pam_azid stored in the caller's
 * keyring. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "keys.h"
#include "output.h"

#include <jansson.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "Prints the access token for RESOURCE that pam_azid stored in your keyring\n"
    "at login, followed by a newline, for example (curl reads the header on\n"
    "its standard input, keeping the token off every argument list):\n"
    "  azid token https://vault.azure.net | sed 's/^/Authorization: Bearer /' |\n"
    "    curl -H @- URL\n"
    "RESOURCE is tried as given, then with one trailing '/' added or removed.\n"
    "Without RESOURCE, prints the only token stored.\n"
    "When the key for RESOURCE is absent or expired and the broker (azidd(8))\n"
    "answers, asks it: it gives only what the policy grants your uid, and the\n"
    "token is kept in your session keyring too, when that is a per-login\n"
    "keyring of yours (as pam_azid requires); else it is only printed.\n"
    "\n"
    "  --json      print {\"access_token\", \"expires_on\", \"resource\", \"token_type\"};\n"
    "              expires_on (epoch seconds) is the token's own expiry (its JWT exp\n"
    "              claim), else when the stored copy expires; with neither, exit 1\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 printed; 1 no such token, or it expired, or --json and no\n"
    "expiry; 2 usage.\n";

static const char relogin_hint[] =
    "log in again to get a fresh one, or get one directly with 'azid fetch'";

/* The resource with one trailing '/' added or removed; NULL when out of
 * memory. */
static char *slash_variant(const char *resource)
{
    size_t n = strlen(resource);
    if (n && resource[n - 1] == '/')
        return strndup(resource, n - 1);
    char *s = malloc(n + 2);
    if (s) {
        memcpy(s, resource, n);
        memcpy(s + n, "/", 2);
    }
    return s;
}

/* Reads the token stored for resource into *payload; *description gets the
 * key that held it.  AZID_ERR_NOT_FOUND when neither spelling is there. */
static azid_status read_token(const char *resource, char **description, char **payload,
                              size_t *length, azid_error *err)
{
    char *variant = slash_variant(resource);
    const char *names[] = {resource, variant};
    azid_status status = AZID_ERR_NOMEM;
    for (size_t i = 0; i < 2 && names[i]; i++) {
        char *desc = azid_key_description_token(names[i]);
        if (!desc)
            break;
        status = azid_keyring_read(desc, payload, length, err);
        if (status == AZID_OK) {
            *description = desc;
            break;
        }
        free(desc);
        if (status != AZID_ERR_NOT_FOUND)
            break;
    }
    if (status == AZID_ERR_NOMEM) {
        err->status = status;
        snprintf(err->message, sizeof err->message, "out of memory");
    }
    free(variant);
    return status;
}

/* The key is gone: the broker, when one answers, gives what the policy
 * grants this uid; the token goes into the session keyring (for the next
 * call and the login's other programs) and to stdout.  -1 when no broker
 * answers: the caller says the key is absent.  Both spellings of the
 * resource are asked for, as for the keyring. */
static int from_broker(const char *resource, int json, char *why, size_t why_size)
{
    azid_config *cfg;
    long timeout_ms;
    const char *path = broker_socket(&cfg, &timeout_ms);
    char *variant = slash_variant(resource);
    azid_token *token = NULL;
    azid_error err, first;
    azid_status st = AZID_ERR_UNREACHABLE;
    int answered = 0;
    /* A second of slack over the fetch's own budget, for the broker. */
    if (path)
        st = azid_broker_request_token(path, resource, timeout_ms + 1000, &token, &answered,
                                       &first);
    if (path && st == AZID_ERR_ARGUMENT && variant &&
        azid_broker_get_token(path, variant, timeout_ms + 1000, &token, &err) == AZID_OK)
        st = AZID_OK;
    free(variant);
    azid_config_free(cfg);
    /* A broker that answered "unreachable" is running: its endpoint is not. */
    if (st == AZID_ERR_UNREACHABLE && !answered) {
        snprintf(why, why_size, "%s", path ? first.message : "broker=off");
        return -1;
    }
    if (st == AZID_ERR_ARGUMENT) {
        report("token", "no token for %s in your keyring, and the broker refused: %s", resource,
               first.message);
        return EXIT_FAIL;
    }
    if (st != AZID_OK) {
        report("token", "no token for %s in your keyring, and the broker could not get one: %s",
               resource, first.message);
        return EXIT_FAIL;
    }
    char *description = azid_key_description_token(azid_token_resource(token));
    int32_t serial;
    /* pam_azid's rule: only a per-login keyring of this uid gets the key
     * (under sudo, or su without '-', @s is the invoking user's). */
    if (azid_keyring_check_session(getuid(), &err) != AZID_OK)
        report("token", "got a token from the broker but did not keep it: %s", err.message);
    else if (!description ||
             azid_keyring_store(AZID_KEYRING_SESSION, getuid(), getgid(), description,
                                azid_token_value(token), azid_token_length(token),
                                azid_token_expires_on(token), &serial, &err) != AZID_OK)
        report("token", "got a token from the broker but cannot keep it in your keyring: %s",
               description ? err.message : "out of memory");
    free(description);
    int rc;
    if (json) {
        json_print_token(azid_token_value(token), azid_token_expires_on(token),
                         azid_token_resource(token), azid_token_type(token));
        rc = finish_stdout("token");
    } else {
        rc = print_value("token", azid_token_value(token), azid_token_length(token));
    }
    azid_token_free(token);
    return rc;
}

/* Why resource is not there, for the one-line message on stderr.  An
 * expired key cannot be told from one never stored: the kernel hides both. */
static int explain_absent(const struct key_snapshot *snap, const char *resource,
                          const char *no_broker)
{
    char stored[1024];
    keys_join_names(snap, AZID_KEY_TOKEN, stored, sizeof stored);
    report("token", "no token for %s in your keyring: it expired or was never stored (stored: "
                    "%s), and no broker to ask (%s); %s", resource, stored, no_broker,
           relogin_hint);
    return EXIT_FAIL;
}

static int base64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* The "exp" claim of a JWT (header.claims.signature, base64url-encoded
 * JSON), or -1 when the token is not one or has none in 1..AZID_EPOCH_MAX.  The kernel shows a
 * key's time left only rounded down to its unit (minutes, hours), so this
 * is the precise expiry whenever there is one; Azure's tokens are JWTs. */
static int64_t jwt_expiry(const char *token)
{
    const char *claims = strchr(token, '.');
    if (!claims)
        return -1;
    claims++;
    size_t len = strcspn(claims, ".");
    if (claims[len] != '.' || len == 0 || len > 65536)
        return -1;
    unsigned char *json = malloc(len);
    if (!json)
        return -1;
    size_t n = 0;
    unsigned long bits = 0;
    unsigned nbits = 0;
    for (size_t i = 0; i < len && claims[i] != '='; i++) {
        int v = base64url_value(claims[i]);
        if (v < 0) {
            n = 0;
            break;
        }
        bits = (bits << 6) | (unsigned long)v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            json[n++] = (unsigned char)(bits >> nbits);
            bits &= (1ul << nbits) - 1;
        }
    }
    json_t *root = n ? json_loadb((const char *)json, n, 0, NULL) : NULL;
    explicit_bzero(json, len);
    free(json);
    json_t *exp = json_object_get(root, "exp");
    int64_t expiry = -1;
    /* Range-checked before any conversion: a double beyond int64_t (1e300)
     * is undefined behaviour to convert. */
    if (json_is_integer(exp) && json_integer_value(exp) > 0 &&
        json_integer_value(exp) <= AZID_EPOCH_MAX)
        expiry = (int64_t)json_integer_value(exp);
    else if (json_is_real(exp) && json_real_value(exp) >= 1 &&
             json_real_value(exp) <= (double)AZID_EPOCH_MAX)
        expiry = (int64_t)json_real_value(exp);
    json_decref(root);
    return expiry;
}

/* The resource of the only token stored, or NULL after saying why there is
 * not exactly one. */
static const char *only_resource(const struct key_snapshot *snap)
{
    const char *found = NULL;
    size_t count = 0;
    for (size_t i = 0; i < snap->count; i++) {
        if (snap->keys[i].fields.kind == AZID_KEY_TOKEN) {
            found = snap->keys[i].fields.resource;
            count++;
        }
    }
    if (count == 1)
        return found;
    if (count == 0) {
        report("token", "no azid token in your keyring; pam_azid stores them at login (see "
                        "'azid doctor'), or get one directly with 'azid fetch'");
    } else {
        char stored[1024];
        keys_join_names(snap, AZID_KEY_TOKEN, stored, sizeof stored);
        report("token", "%zu tokens in your keyring (%s); name one: azid token RESOURCE", count,
               stored);
    }
    return NULL;
}

int cmd_token(int argc, char **argv)
{
    int json = 0;
    int rc = parse_keyring_options(argc, argv, help, &json);
    if (rc >= 0)
        return rc;
    if (argc - optind > 1)
        return usage_error("token", "one RESOURCE at most");
    if (optind < argc && !argv[optind][0])
        return usage_error("token", "RESOURCE is empty; name one, or none when one token is stored");

    azid_error err = {0};
    struct key_snapshot snap;
    if (keys_snapshot(&snap, &err) != AZID_OK)
        return report_error("token", &err);

    const char *resource = optind < argc ? argv[optind] : only_resource(&snap);
    rc = EXIT_FAIL;
    char *description = NULL, *payload = NULL;
    size_t length = 0;
    if (resource) {
        azid_status status = read_token(resource, &description, &payload, &length, &err);
        if (status == AZID_ERR_NOT_FOUND) {
            char no_broker[600] = "";
            if ((rc = from_broker(resource, json, no_broker, sizeof no_broker)) < 0)
                rc = explain_absent(&snap, resource, no_broker);
        } else if (status != AZID_OK)
            rc = report_error("token", &err);
        else if (json) {
            const struct stored_key *key = keys_find(&snap, description);
            int64_t expires_on = jwt_expiry(payload);
            if (expires_on < 0 && key)
                expires_on = key->expires_on;
            azid_key_fields fields;
            azid_key_parse(description, &fields);
            /* SPEC: expires_on is an integer; a guess would outlive the token. */
            if (expires_on < 0) {
                report("token", "the key for %s has no timeout and its token no JWT exp claim, "
                                "so --json has no expires_on to give; print it without --json",
                       fields.resource);
            } else {
                json_print_token(payload, expires_on, fields.resource, "Bearer");
                rc = finish_stdout("token");
            }
        } else {
            rc = print_value("token", payload, length);
        }
    }
    if (payload) {
        explicit_bzero(payload, length);
        free(payload);
    }
    free(description);
    keys_snapshot_free(&snap);
    return rc;
}
