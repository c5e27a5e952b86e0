/* SPDX-License-Identifier: MIT
 * Key Vault secret reads: GET https://<vault>/secrets/<name>[/<version>]
 * with a bearer token from the same client, inside the client's single time
 * budget.  The URL parser (secret_url_parse) admits only https and hosts
 * under a Key Vault DNS suffix, and http.c follows no redirect, so the token
 * goes nowhere else.  Messages never quote a response body: it holds the
 * secret. */
#include "config.h"

#include "keyvault.h"

#include "client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void keyvault_secret_url(const secret_url *url, char *buf, size_t size)
{
    snprintf(buf, size, "https://%s/secrets/%s%s%s", url->vault_host, url->name,
             url->version[0] ? "/" : "", url->version);
}

void keyvault_resource(const secret_url *url, char *buf, size_t size)
{
    /* The parser guarantees "<vault>.<known suffix>". */
    const char *suffix = strchr(url->vault_host, '.');
    snprintf(buf, size, "https://%s", suffix ? suffix + 1 : url->vault_host);
}

int keyvault_status_retryable(long status)
{
    return status == 429 || status >= 500;
}

/* ---- the 200 body ------------------------------------------------------- */

/* attributes.<name> as epoch seconds within +-AZID_EPOCH_MAX: 1 present,
 * 0 absent (or null), -1 ill-typed or out of range (err set). */
static int get_date(const json_t *attributes, const char *name, int64_t *out, azid_error *err)
{
    const json_t *v = json_object_get(attributes, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        err_set(err, AZID_ERR_RESPONSE,
                "response field attributes.%s is not a whole number of seconds", name);
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < -AZID_EPOCH_MAX || n > AZID_EPOCH_MAX) {
        err_set(err, AZID_ERR_RESPONSE, "response field attributes.%s is out of range", name);
        return -1;
    }
    *out = (int64_t)n;
    return 1;
}

static azid_secret *secret_new(const char *value, size_t length, const secret_url *url,
                               int64_t expires_on)
{
    azid_secret *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->value = malloc(length + 1);
    s->vault_host = strdup(url->vault_host);
    s->name = strdup(url->name);
    if (!s->value || !s->vault_host || !s->name) {
        azid_secret_free(s);
        return NULL;
    }
    memcpy(s->value, value, length);
    s->value[length] = '\0';
    s->length = length;
    s->expires_on = expires_on;
    return s;
}

/* Checks the attributes; on success *expires_on is lowered to "exp". */
static azid_status check_attributes(const json_t *root, int64_t now_epoch, int64_t *expires_on,
                                    azid_error *err)
{
    const json_t *attributes = json_object_get(root, "attributes");
    if (!attributes || json_is_null(attributes))
        return AZID_OK;
    if (!json_is_object(attributes))
        return err_set(err, AZID_ERR_RESPONSE, "response field attributes is not an object");
    const json_t *enabled = json_object_get(attributes, "enabled");
    if (enabled && !json_is_boolean(enabled) && !json_is_null(enabled))
        return err_set(err, AZID_ERR_RESPONSE,
                       "response field attributes.enabled is not a boolean");
    if (json_is_false(enabled))
        return err_set(err, AZID_ERR_RESPONSE,
                       "the secret is disabled (attributes.enabled is false); enable it in the "
                       "vault");
    int64_t exp = 0, nbf = 0;
    int has_exp = get_date(attributes, "exp", &exp, err);
    int has_nbf = has_exp < 0 ? -1 : get_date(attributes, "nbf", &nbf, err);
    if (has_exp < 0 || has_nbf < 0)
        return AZID_ERR_RESPONSE;
    if (has_exp && exp <= now_epoch)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the secret expired at %lld (attributes.exp, %lld s ago); set a new "
                       "version or extend its expiry in the vault",
                       (long long)exp, (long long)(now_epoch - exp));
    if (has_nbf && nbf > now_epoch)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the secret is not valid before %lld (attributes.nbf, %lld s from now); "
                       "check the clock of this machine or the secret's activation date",
                       (long long)nbf, (long long)(nbf - now_epoch));
    if (has_exp && exp < *expires_on)
        *expires_on = exp;
    return AZID_OK;
}

azid_status keyvault_parse_secret(const char *body, size_t length, const secret_url *url,
                                  int64_t token_expires_on, int64_t now_epoch,
                                  azid_secret **out, azid_error *err)
{
    *out = NULL;
    if (now_epoch < 0 || now_epoch > AZID_EPOCH_MAX)
        return err_set(err, AZID_ERR_ARGUMENT, "the clock is out of range (%lld)",
                       (long long)now_epoch);
    if (length > KEYVAULT_MAX_RESPONSE)
        return err_set(err, AZID_ERR_RESPONSE, "response larger than %d bytes",
                       KEYVAULT_MAX_RESPONSE);
    json_error_t jerr;
    /* jerr.text may quote the body; only its position is used. */
    json_t *root = body && length
                       ? json_loadb(body, length, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr)
                       : NULL;
    if (root && !json_is_object(root)) {
        err_set(err, AZID_ERR_RESPONSE, "response is JSON but not an object");
        json_decref(root);
        return AZID_ERR_RESPONSE;
    }
    if (!root) {
        if (!body || length == 0)
            return err_set(err, AZID_ERR_RESPONSE,
                           "response body is empty (expected a JSON object)");
        if (json_error_code(&jerr) == json_error_premature_end_of_input)
            return err_set(err, AZID_ERR_RESPONSE,
                           "response is truncated: its JSON ends early after %zu bytes", length);
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return err_set(err, AZID_ERR_RESPONSE, "response repeats a JSON field (at byte %d)",
                           jerr.position);
        return err_set(err, AZID_ERR_RESPONSE,
                       "response is not a JSON object (invalid at byte %d of %zu); a proxy or "
                       "captive portal may be answering instead of Key Vault",
                       jerr.position, length);
    }

    azid_status st = AZID_ERR_RESPONSE;
    const json_t *value = json_object_get(root, "value");
    int64_t expires_on = token_expires_on;
    if (!value)
        err_set(err, AZID_ERR_RESPONSE, "response has no value field");
    else if (!json_is_string(value))
        err_set(err, AZID_ERR_RESPONSE, "response field value is not a string");
    else if ((st = check_attributes(root, now_epoch, &expires_on, err)) == AZID_OK) {
        *out = secret_new(json_string_value(value), json_string_length(value), url, expires_on);
        if (!*out)
            st = err_nomem(err, "storing the secret");
    }
    /* jansson's copy of the value is wiped before the tree is freed. */
    if (json_is_string(value))
        explicit_bzero((char *)json_string_value(value), json_string_length(value));
    json_decref(root);
    return st;
}

/* ---- final statuses -------------------------------------------------------- */

static const struct {
    long low, high;    /* status range */
    const char *match; /* in Key Vault's "code: message", or NULL for any */
    const char *hint;
} keyvault_hints[] = {
    {401, 401, NULL,
     "Key Vault did not accept the token: it must be issued for the vault's audience "
     "(https://vault.azure.net in the public cloud) by the vault's tenant; check that the "
     "identity belongs to that tenant"},
    {403, 403, "disabled",
     "the secret (or this version of it) is disabled; enable it in the vault"},
    {403, 403, "Client address is not authorized",
     "the vault's firewall blocks this machine; allow its network in the vault's networking "
     "settings or use a private endpoint"},
    {403, 403, NULL,
     "grant the VM's identity 'get' on secrets (Key Vault Secrets User role or an access "
     "policy)"},
    {404, 404, NULL,
     "the vault has no secret of that name (or version); check the name in secret= or "
     "create the secret"},
    {429, 429, NULL, "Key Vault is throttling requests to this vault; try again later"},
    {500, 599, NULL, "Key Vault failed; try again later"},
};

const char *keyvault_hint(long status, const char *error_text, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof keyvault_hints / sizeof keyvault_hints[0]; i++)
        if (status >= keyvault_hints[i].low && status <= keyvault_hints[i].high &&
            (!keyvault_hints[i].match || strstr(error_text, keyvault_hints[i].match)))
            return keyvault_hints[i].hint;
    return NULL;
}

/* ---- the request ------------------------------------------------------------ */

azid_status azid_client_get_secret(azid_client *client, const char *secret_url_text,
                                   azid_secret **out, azid_error *err)
{
    err_clear(err);
    if (!out)
        return err_set(err, AZID_ERR_ARGUMENT, "no place to return the secret");
    *out = NULL;
    secret_url parts;
    azid_status st = secret_url_parse(secret_url_text, &parts, err);
    if (st != AZID_OK)
        return st;
    char url[KEYVAULT_URL_MAX], resource[KEYVAULT_URL_MAX];
    keyvault_secret_url(&parts, url, sizeof url);
    keyvault_resource(&parts, resource, sizeof resource);

    azid_token *token = NULL;
    azid_error terr;
    st = azid_client_get_token(client, resource, &token, &terr);
    if (st != AZID_OK)
        return err_set_http(err, st, terr.http_status, "Key Vault %s: no token for %s: %s", url,
                            resource, terr.message);
    int64_t token_expires_on = azid_token_expires_on(token);
    size_t auth_size = sizeof "Authorization: Bearer " + azid_token_length(token);
    char *auth = malloc(auth_size);
    if (auth)
        snprintf(auth, auth_size, "Authorization: Bearer %s", azid_token_value(token));
    azid_token_free(token);
    if (!auth)
        return err_nomem(err, "building the Key Vault request");

    /* http.c adds "Accept: application/json" to every request. */
    const char *headers[] = {auth, NULL};
    struct client_call call = {
        .label = "Key Vault",
        .wanted = "secret",
        .url = url,
        .query = "?api-version=" KEYVAULT_API_VERSION,
        .method = HTTP_GET,
        .headers = headers,
        .max_body = KEYVAULT_MAX_RESPONSE,
        .hint = keyvault_hint,
        .retryable = keyvault_status_retryable,
    };
    struct http_response resp;
    st = client_perform(client, &call, &resp, err);
    wipe_free_str(auth);
    if (st != AZID_OK)
        return st;
    azid_error perr;
    err_clear(&perr);
    st = keyvault_parse_secret(resp.body, resp.length, &parts, token_expires_on,
                               (int64_t)time(NULL), out, &perr);
    if (st != AZID_OK)
        err_set_http(err, st, resp.status, "Key Vault %s: HTTP %ld but %s", url, resp.status,
                     perr.message);
    http_response_clear(&resp);
    return st;
}

/* ---- the secret object ------------------------------------------------------- */

const char *azid_secret_value(const azid_secret *secret)
{
    return secret ? secret->value : NULL;
}

size_t azid_secret_length(const azid_secret *secret)
{
    return secret ? secret->length : 0;
}

const char *azid_secret_vault_host(const azid_secret *secret)
{
    return secret ? secret->vault_host : NULL;
}

const char *azid_secret_name(const azid_secret *secret)
{
    return secret ? secret->name : NULL;
}

int64_t azid_secret_expires_on(const azid_secret *secret)
{
    return secret ? secret->expires_on : 0;
}

void azid_secret_free(azid_secret *secret)
{
    if (!secret)
        return;
    if (secret->value)
        wipe_free(secret->value, secret->length + 1);
    free(secret->vault_host);
    free(secret->name);
    explicit_bzero(secret, sizeof *secret);
    free(secret);
}
