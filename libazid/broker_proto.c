/* SPDX-License-Identifier: MIT
 * The broker's socket protocol (broker_proto.h): one line parser for
 * requests and replies, the request checks, and the line builder. */
#include "config.h"

#include "broker_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const broker_setting_keys[] = {"source",     "endpoint", "client_id", "object_id",
                                           "msi_res_id", "timeout",  "ca_file",   NULL};

static bool word_ok(const char *value, size_t length)
{
    return text_bad_char(value, length) < 0;
}

void broker_line_free(struct broker_line *line)
{
    if (line->buf) {
        explicit_bzero(line->buf, strlen(line->buf));
        free(line->buf);
    }
    memset(line, 0, sizeof *line);
}

azid_status broker_proto_parse_line(const char *data, size_t length, struct broker_line *out,
                                    azid_error *err)
{
    memset(out, 0, sizeof *out);
    if (length == 0)
        return err_set(err, AZID_ERR_ARGUMENT, "empty line");
    if (length > BROKER_MAX_LINE)
        return err_set(err, AZID_ERR_ARGUMENT, "line longer than %d bytes", BROKER_MAX_LINE);
    if (memchr(data, '\0', length))
        return err_set(err, AZID_ERR_ARGUMENT, "NUL byte in the line");
    out->buf = malloc(length + 1);
    if (!out->buf)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    memcpy(out->buf, data, length);
    out->buf[length] = '\0';

    char *p = out->buf, *end = out->buf + length;
    for (int first = 1; p < end; first = 0) {
        char *space = memchr(p, ' ', (size_t)(end - p));
        char *stop = space ? space : end;
        if (stop == p)
            return err_set(err, AZID_ERR_ARGUMENT, "empty field (two spaces, or a space at "
                                                   "either end)");
        if (!first && (size_t)(stop - p) >= 8 && memcmp(p, "message=", 8) == 0) {
            /* The free-text field takes the rest of the line. */
            for (char *c = p + 8; c < end; c++)
                if ((unsigned char)*c < ' ' || *c == 0x7f)
                    return err_set(err, AZID_ERR_ARGUMENT, "control character in message=");
            if (out->nfields == BROKER_MAX_FIELDS)
                return err_set(err, AZID_ERR_ARGUMENT, "more than %d fields", BROKER_MAX_FIELDS);
            p[7] = '\0';
            out->fields[out->nfields++] = (struct broker_field){p, p + 8};
            break;
        }
        if (!word_ok(p, (size_t)(stop - p)))
            return err_set(err, AZID_ERR_ARGUMENT, "a field holds a control character or a "
                                                   "byte outside printable ASCII");
        *stop = '\0';
        if (first) {
            out->word = p;
        } else {
            char *eq = strchr(p, '=');
            if (!eq || eq == p || !eq[1])
                return err_set(err, AZID_ERR_ARGUMENT, "field \"%.40s\" is not KEY=VALUE", p);
            if (out->nfields == BROKER_MAX_FIELDS)
                return err_set(err, AZID_ERR_ARGUMENT, "more than %d fields", BROKER_MAX_FIELDS);
            *eq = '\0';
            out->fields[out->nfields++] = (struct broker_field){p, eq + 1};
        }
        p = stop + 1;
    }
    return AZID_OK;
}

const char *broker_line_get(const struct broker_line *line, const char *key)
{
    for (size_t i = 0; i < line->nfields; i++)
        if (strcmp(line->fields[i].key, key) == 0)
            return line->fields[i].value;
    return NULL;
}

bool broker_line_get_int(const struct broker_line *line, const char *key, int64_t min,
                         int64_t max, int64_t *out)
{
    const char *v = broker_line_get(line, key);
    if (!v || !((*v >= '0' && *v <= '9') || (*v == '-' && v[1] >= '0' && v[1] <= '9')))
        return false;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* ---- requests ------------------------------------------------------------ */

static const struct {
    const char *name;
    enum broker_verb verb;
} verbs[] = {
    {"key", BROKER_VERB_KEY},
    {"token", BROKER_VERB_TOKEN},
    {"status", BROKER_VERB_STATUS},
};

static bool is_setting(const char *key)
{
    for (size_t i = 0; broker_setting_keys[i]; i++)
        if (strcmp(key, broker_setting_keys[i]) == 0)
            return true;
    return false;
}

void broker_request_free(struct broker_request *req)
{
    broker_line_free(&req->line);
    memset(req, 0, sizeof *req);
}

/* The fields of a parsed request, against its verb. */
static azid_status check_fields(struct broker_request *req, azid_error *err)
{
    const struct broker_line *l = &req->line;
    bool have_uid = false;
    for (size_t i = 0; i < l->nfields; i++) {
        const struct broker_field *f = &l->fields[i];
        bool secret = strcmp(f->key, "secret") == 0;
        if ((strcmp(f->key, "resource") == 0 && req->verb != BROKER_VERB_STATUS) ||
            (secret && req->verb == BROKER_VERB_KEY)) {
            if (req->nitems == BROKER_MAX_ITEMS)
                return err_set(err, AZID_ERR_ARGUMENT,
                               "more than %d resources and secrets in one request",
                               BROKER_MAX_ITEMS);
            req->items[req->nitems++] = (struct broker_item){f->value, secret};
        } else if (strcmp(f->key, "user") == 0 && req->verb == BROKER_VERB_KEY) {
            if (req->user)
                return err_set(err, AZID_ERR_ARGUMENT, "user= given twice");
            req->user = f->value;
        } else if (strcmp(f->key, "uid") == 0 && req->verb == BROKER_VERB_KEY) {
            if (have_uid)
                return err_set(err, AZID_ERR_ARGUMENT, "uid= given twice");
            struct broker_line one = {.nfields = 1, .fields = {*f}};
            int64_t uid;
            if (!broker_line_get_int(&one, "uid", 0, UINT32_MAX - 1, &uid))
                return err_set(err, AZID_ERR_ARGUMENT, "uid= is not a uid");
            req->uid = (uint32_t)uid;
            have_uid = true;
        } else if (req->verb == BROKER_VERB_KEY && is_setting(f->key)) {
            for (size_t j = 0; j < req->nsettings; j++)
                if (strcmp(req->settings[j]->key, f->key) == 0)
                    return err_set(err, AZID_ERR_ARGUMENT, "%s= given twice", f->key);
            req->settings[req->nsettings++] = f;
        } else {
            return err_set(err, AZID_ERR_ARGUMENT, "field %.40s= is not part of a %s request",
                           f->key, verbs[req->verb].name);
        }
    }
    if (req->verb == BROKER_VERB_KEY && (!req->user || !have_uid))
        return err_set(err, AZID_ERR_ARGUMENT, "a key request needs user= and uid=");
    if (req->verb == BROKER_VERB_KEY && req->nitems == 0)
        return err_set(err, AZID_ERR_ARGUMENT, "a key request needs resource= or secret=");
    if (req->verb == BROKER_VERB_TOKEN && req->nitems != 1)
        return err_set(err, AZID_ERR_ARGUMENT, "a token request names exactly one resource=");
    return AZID_OK;
}

azid_status broker_proto_parse_request(const char *data, size_t length,
                                       struct broker_request *req, azid_error *err)
{
    memset(req, 0, sizeof *req);
    if (length > BROKER_MAX_REQUEST)
        return err_set(err, AZID_ERR_ARGUMENT, "request larger than %d bytes",
                       BROKER_MAX_REQUEST);
    if (length == 0 || data[length - 1] != '\n')
        return err_set(err, AZID_ERR_ARGUMENT, "request does not end with a newline");
    if (memchr(data, '\n', length - 1))
        return err_set(err, AZID_ERR_ARGUMENT, "more than one line in the request");
    size_t n = length - 1;
    if (n && data[n - 1] == '\r')
        n--;
    static const char prefix[] = BROKER_PROTO_VERSION " ";
    if (n < sizeof prefix - 1 || memcmp(data, prefix, sizeof prefix - 1) != 0)
        return err_set(err, AZID_ERR_ARGUMENT, "request does not start with \"%s\"",
                       BROKER_PROTO_VERSION);
    azid_status st = broker_proto_parse_line(data + sizeof prefix - 1, n - (sizeof prefix - 1),
                                             &req->line, err);
    if (st != AZID_OK)
        return st;
    size_t v = 0;
    while (v < sizeof verbs / sizeof verbs[0] && strcmp(verbs[v].name, req->line.word) != 0)
        v++;
    if (v == sizeof verbs / sizeof verbs[0])
        return err_set(err, AZID_ERR_ARGUMENT, "unknown request \"%.40s\" (key, token, status)",
                       req->line.word);
    req->verb = verbs[v].verb;
    return check_fields(req, err);
}

/* ---- replies -------------------------------------------------------------- */

void broker_reply_free(struct broker_reply *reply)
{
    for (size_t i = 0; i < reply->n; i++)
        broker_line_free(&reply->lines[i]);
    free(reply->lines);
    reply->lines = NULL;
    reply->n = 0;
}

/* Splits the reply into lines; it must end with an "end" line. */
azid_status broker_proto_parse_reply(const char *data, size_t length, struct broker_reply *reply,
                                     azid_error *err)
{
    reply->lines = NULL;
    reply->n = 0;
    size_t count = 0;
    for (size_t i = 0; i < length; i++)
        count += data[i] == '\n';
    reply->lines = calloc(count ? count : 1, sizeof reply->lines[0]);
    if (!reply->lines)
        return err_set(err, AZID_ERR_NOMEM, "out of memory");
    const char *p = data, *end = data + length;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        struct broker_line line;
        azid_error lerr;
        if (broker_proto_parse_line(p, (size_t)(nl - p), &line, &lerr) != AZID_OK) {
            broker_line_free(&line);
            return err_set(err, AZID_ERR_RESPONSE, "malformed reply: %s",
                           lerr.message);
        }
        p = nl + 1;
        if (strcmp(line.word, "wait") == 0) {
            broker_line_free(&line);
            continue;
        }
        if (strcmp(line.word, "end") == 0) {
            broker_line_free(&line);
            if (p != end)
                return err_set(err, AZID_ERR_RESPONSE, "the reply goes on past its end");
            return AZID_OK;
        }
        reply->lines[reply->n++] = line;
    }
    return err_set(err, AZID_ERR_RESPONSE, "the reply was cut short (no end line)");
}

/* ---- the line builder -------------------------------------------------- */

void broker_buf_init(struct broker_buf *b, size_t max)
{
    *b = (struct broker_buf){.max = max};
}

void broker_buf_free(struct broker_buf *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->capacity);
        free(b->data);
    }
    *b = (struct broker_buf){.max = b->max};
}

static void append(struct broker_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->length + n + 1 > b->max) {
        b->failed = true;
        return;
    }
    /* Wiped as it grows: the old block may hold a token. */
    if (array_grow(&b->data, &b->capacity, b->length + n + 1, 1, 1) < 0) {
        b->failed = true;
        return;
    }
    memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = '\0';
}

void broker_buf_raw(struct broker_buf *b, const char *data, size_t length)
{
    append(b, data, length);
}

void broker_buf_word(struct broker_buf *b, const char *word)
{
    if (!word_ok(word, strlen(word)) || strchr(word, '='))
        b->failed = true;
    append(b, word, strlen(word));
}

void broker_buf_field(struct broker_buf *b, const char *key, const char *value)
{
    if (!value || !word_ok(value, strlen(value))) {
        b->failed = true;
        return;
    }
    append(b, " ", 1);
    append(b, key, strlen(key));
    append(b, "=", 1);
    append(b, value, strlen(value));
}

void broker_buf_field_int(struct broker_buf *b, const char *key, int64_t value)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, value);
    broker_buf_field(b, key, num);
}

void broker_buf_message(struct broker_buf *b, const char *text)
{
    append(b, " message=", 9);
    for (const char *p = text; *p; p++) {
        char c = ((unsigned char)*p < ' ' || *p == 0x7f) ? ' ' : *p;
        append(b, &c, 1);
    }
}

void broker_buf_end_line(struct broker_buf *b)
{
    append(b, "\n", 1);
}

void broker_buf_field_hex(struct broker_buf *b, const char *key, const void *data,
                          size_t length)
{
    static const char digits[] = "0123456789abcdef";
    if (length == 0) {
        b->failed = true;
        return;
    }
    append(b, " ", 1);
    append(b, key, strlen(key));
    append(b, "=", 1);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = ((const unsigned char *)data)[i];
        char pair[2] = {digits[c >> 4], digits[c & 15]};
        append(b, pair, 2);
    }
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool broker_hex_decode(const char *text, char **out, size_t *length)
{
    size_t n = strlen(text);
    if (n == 0 || n % 2)
        return false;
    char *bytes = malloc(n / 2 + 1);
    if (!bytes)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            wipe_free(bytes, n / 2 + 1);
            return false;
        }
        bytes[i] = (char)(hi << 4 | lo);
    }
    bytes[n / 2] = '\0';
    *out = bytes;
    *length = n / 2;
    return true;
}
