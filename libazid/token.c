/* SPDX-License-Identifier: MIT
 * Token response parsing.  IMDS sends every field as a JSON string
 * ("expires_on": "1700000000"); Entra and some sources send numbers; both
 * are accepted.  Error messages never quote the body, which may hold a
 * token. */
#include "config.h"

#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

azid_token *token_new(const char *value, size_t length, int64_t expires_on,
                      const char *resource, const char *type)
{
    azid_token *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->value = malloc(length + 1);
    t->resource = strdup(resource ? resource : "");
    t->type = strdup(type ? type : "Bearer");
    if (!t->value || !t->resource || !t->type) {
        azid_token_free(t);
        return NULL;
    }
    memcpy(t->value, value, length);
    t->value[length] = '\0';
    t->length = length;
    t->expires_on = expires_on;
    return t;
}

void azid_token_free(azid_token *token)
{
    if (!token)
        return;
    if (token->value)
        wipe_free(token->value, token->length);
    free(token->resource);
    free(token->type);
    explicit_bzero(token, sizeof *token);
    free(token);
}

const char *azid_token_value(const azid_token *token)
{
    return token ? token->value : NULL;
}

size_t azid_token_length(const azid_token *token)
{
    return token ? token->length : 0;
}

int64_t azid_token_expires_on(const azid_token *token)
{
    return token ? token->expires_on : 0;
}

const char *azid_token_resource(const azid_token *token)
{
    return token ? token->resource : NULL;
}

const char *azid_token_type(const azid_token *token)
{
    return token ? token->type : NULL;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* The range check of an integer field: within +-AZID_EPOCH_MAX.  1, or -1
 * with err set. */
static int in_epoch_range(int64_t n, const char *name, int64_t *out, azid_error *err)
{
    if (n < -AZID_EPOCH_MAX || n > AZID_EPOCH_MAX) {
        err_set(err, AZID_ERR_RESPONSE, "response field %s is out of range", name);
        return -1;
    }
    *out = n;
    return 1;
}

/* Reads an integer field given as a JSON integer, an integral real, or a
 * string of decimal digits, within +-AZID_EPOCH_MAX.  1 found, 0 absent,
 * -1 invalid (err set). */
static int get_int_field(const json_t *obj, const char *name, int64_t *out, azid_error *err)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (json_is_integer(v))
        return in_epoch_range((int64_t)json_integer_value(v), name, out, err);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Compared as doubles first: converting one beyond int64_t is undefined. */
        if (d < -9.2e18 || d > 9.2e18)
            return in_epoch_range(d < 0 ? INT64_MIN : INT64_MAX, name, out, err);
        if (d == (double)(int64_t)d)
            return in_epoch_range((int64_t)d, name, out, err);
        err_set(err, AZID_ERR_RESPONSE, "response field %s is not a whole number", name);
        return -1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (*s == '\0') {
            err_set(err, AZID_ERR_RESPONSE, "response field %s is empty", name);
            return -1;
        }
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (*end != '\0' || errno == ERANGE || !((*s >= '0' && *s <= '9') || *s == '-') ||
            (size_t)json_string_length(v) != strlen(s)) {
            err_set(err, AZID_ERR_RESPONSE, "response field %s is not a decimal number", name);
            return -1;
        }
        return in_epoch_range(n, name, out, err);
    }
    err_set(err, AZID_ERR_RESPONSE,
            "response field %s is %s, not a number or numeric string", name, json_type_name(v));
    return -1;
}

/* Reads a string field.  1 found, 0 absent, -1 invalid (err set). */
static int get_str_field(const json_t *obj, const char *name, const char **out, size_t *len,
                         azid_error *err)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        err_set(err, AZID_ERR_RESPONSE, "response field %s is %s, not a string", name,
                json_type_name(v));
        return -1;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

static json_t *load_object(const char *body, size_t length, azid_error *err)
{
    if (length > TOKEN_MAX_RESPONSE) {
        err_set(err, AZID_ERR_RESPONSE, "response larger than %d bytes", TOKEN_MAX_RESPONSE);
        return NULL;
    }
    if (length == 0) {
        err_set(err, AZID_ERR_RESPONSE, "response body is empty (expected a JSON object)");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, length,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_premature_end_of_input)
            err_set(err, AZID_ERR_RESPONSE,
                    "response is truncated: its JSON ends early after %zu bytes", length);
        else if (json_error_code(&jerr) == json_error_duplicate_key)
            err_set(err, AZID_ERR_RESPONSE, "response repeats a JSON field (at byte %d)",
                    jerr.position);
        else
            err_set(err, AZID_ERR_RESPONSE,
                    "response is not JSON (invalid at byte %d of %zu); a proxy or captive "
                    "portal may be answering instead of the identity endpoint",
                    jerr.position, length);
        return NULL;
    }
    if (!json_is_object(root)) {
        err_set(err, AZID_ERR_RESPONSE, "response is %s, not a JSON object", json_type_name(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

azid_status token_parse(const char *body, size_t length, const char *resource,
                        int64_t request_epoch, int64_t now_epoch, azid_token **out,
                        azid_error *err)
{
    *out = NULL;
    if (request_epoch < 0 || request_epoch > AZID_EPOCH_MAX || now_epoch < 0 ||
        now_epoch > AZID_EPOCH_MAX)
        return err_set(err, AZID_ERR_ARGUMENT, "the clock is out of range (%lld, %lld)",
                       (long long)request_epoch, (long long)now_epoch);
    json_t *root = load_object(body, length, err);
    if (!root)
        return AZID_ERR_RESPONSE;

    azid_status st = AZID_ERR_RESPONSE;
    const char *value = NULL, *type = "Bearer", *resp_resource = NULL;
    size_t value_len = 0, type_len = 6, res_len = 0;
    int64_t expires_on = 0, expires_in = 0;
    int r = get_str_field(root, "access_token", &value, &value_len, err);
    if (r < 0)
        goto done;
    if (r == 0) {
        err_set(err, AZID_ERR_RESPONSE, "response has no access_token field");
        goto done;
    }
    if (value_len == 0) {
        err_set(err, AZID_ERR_RESPONSE, "response has an empty access_token");
        goto done;
    }
    long bad = text_bad_char(value, value_len);
    if (bad >= 0) {
        err_set(err, AZID_ERR_RESPONSE,
                "access_token has a space, control or non-ASCII character at offset %ld; a "
                "token must be printable ASCII", bad);
        goto done;
    }
    if ((r = get_str_field(root, "token_type", &type, &type_len, err)) < 0)
        goto done;
    if (r == 0)
        type = "Bearer";
    else if (text_bad_char(type, type_len) >= 0) {
        err_set(err, AZID_ERR_RESPONSE, "response field token_type is empty or not printable");
        goto done;
    }
    if (!resource) {
        if ((r = get_str_field(root, "resource", &resp_resource, &res_len, err)) < 0)
            goto done;
        resource = r ? resp_resource : "";
    }

    int has_on = get_int_field(root, "expires_on", &expires_on, err);
    if (has_on < 0)
        goto done;
    if (!has_on) {
        int has_in = get_int_field(root, "expires_in", &expires_in, err);
        if (has_in < 0)
            goto done;
        if (!has_in) {
            err_set(err, AZID_ERR_RESPONSE, "response has neither expires_on nor expires_in");
            goto done;
        }
        expires_on = request_epoch + expires_in; /* both within +-AZID_EPOCH_MAX */
        if (expires_on > AZID_EPOCH_MAX) {
            err_set(err, AZID_ERR_RESPONSE, "response field expires_in is out of range");
            goto done;
        }
    }
    if (expires_on <= now_epoch) {
        err_set(err, AZID_ERR_RESPONSE,
                "token already expired (expires_on %lld is %lld s in the past); check the "
                "clock of this machine", (long long)expires_on,
                (long long)(now_epoch - expires_on));
        goto done;
    }

    *out = token_new(value, value_len, expires_on, resource, type);
    st = *out ? AZID_OK : err_nomem(err, "storing the token");
done:
    /* jansson's copy of the token is wiped before the tree is freed. */
    {
        json_t *tok = json_object_get(root, "access_token");
        if (json_is_string(tok))
            explicit_bzero((char *)json_string_value(tok), json_string_length(tok));
    }
    json_decref(root);
    return st;
}

/* Appends src to buf (size total), replacing control characters, at most
 * 300 characters from src. */
static void append_clean(char *buf, size_t size, const char *src)
{
    size_t n = strlen(buf);
    for (size_t i = 0; src[i] && i < 300 && n + 1 < size; i++)
        buf[n++] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    buf[n] = '\0';
}

void token_describe_error(const char *body, size_t length, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    if (!body || length == 0 || length > TOKEN_MAX_RESPONSE)
        return;
    json_t *root = json_loadb(body, length, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    const json_t *e = json_object_get(root, "error");
    const char *code = NULL, *desc = NULL;
    if (json_is_object(e)) { /* Key Vault */
        code = json_string_value(json_object_get(e, "code"));
        desc = json_string_value(json_object_get(e, "message"));
    } else {
        code = json_string_value(e);
        desc = json_string_value(json_object_get(root, "error_description"));
        if (!desc) /* App Service */
            desc = json_string_value(json_object_get(root, "message"));
    }
    if (code)
        append_clean(buf, size, code);
    if (code && desc)
        append_clean(buf, size, ": ");
    if (desc)
        append_clean(buf, size, desc);
    json_decref(root);
}
