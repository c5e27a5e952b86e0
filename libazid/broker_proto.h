/* SPDX-License-Identifier: MIT
 * The broker's socket protocol, shared by azidd and its clients (pam_azid,
 * azid).  Pure: no I/O, no clock; fuzzed through
 * broker_proto_parse_request() and broker_proto_parse_line().
 *
 * One request per connection: a single line
 *     azid1 VERB KEY=VALUE ...\n
 * answered by lines of the same shape (WORD KEY=VALUE ...), the last one
 * "end".  A request that waits for the endpoint is first acknowledged with
 * a "wait" line, at once, so that a client can tell a broker at work from
 * one that is hung.  Values are printable ASCII without spaces; only a reply's
 * message= field, always last, runs to the end of its line and may hold
 * spaces (and UTF-8).  Requests are at most BROKER_MAX_REQUEST bytes. */
#ifndef AZID_BROKER_PROTO_H
#define AZID_BROKER_PROTO_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_PROTO_VERSION "azid1"
#define BROKER_MAX_REQUEST 8192
/* One reply line: a token, or a secret in hex (a key holds at most 32 KB),
 * and its fields. */
#define BROKER_MAX_LINE (72 * 1024)
/* A whole reply (azid status lists every cache entry). */
#define BROKER_MAX_REPLY (4 * 1024 * 1024)
#define BROKER_MAX_FIELDS 48
/* Resources one key request may name. */
#define BROKER_MAX_ITEMS 32

struct broker_field {
    const char *key;
    const char *value;
};

/* A parsed line; key and value point into buf (owned). */
struct broker_line {
    char *buf;
    const char *word;
    size_t nfields;
    struct broker_field fields[BROKER_MAX_FIELDS];
};

/* Parses one line (without its '\n').  AZID_ERR_ARGUMENT naming the defect,
 * AZID_ERR_NOMEM.  Free with broker_line_free, whatever the result. */
azid_status broker_proto_parse_line(const char *data, size_t length, struct broker_line *out,
                                    azid_error *err);
void broker_line_free(struct broker_line *line);
/* The value of the first field named key, NULL when absent. */
const char *broker_line_get(const struct broker_line *line, const char *key);
/* A field as a decimal integer in [min, max]; false when absent or not. */
bool broker_line_get_int(const struct broker_line *line, const char *key, int64_t min,
                         int64_t max, int64_t *out);

enum broker_verb {
    /* root only: make or refresh the shared key of a user for each
     * resource; answered with key serials, never token values */
    BROKER_VERB_KEY,
    /* a token the policy grants the caller's uid, with its value */
    BROKER_VERB_TOKEN,
    /* the cache and counters, never a value */
    BROKER_VERB_STATUS
};

/* The settings a key request may carry: how the module would have asked
 * the endpoint itself.  The broker applies them as module arguments. */
extern const char *const broker_setting_keys[];

struct broker_request {
    struct broker_line line;
    enum broker_verb verb;
    const char *user; /* key: whose key (required; for the audit line) */
    uint32_t uid;     /* key: that user's uid (required): root's caller already
                       * looked it up, and the broker's loop must not wait
                       * for the user database */
    /* key: the resources (tokens) and secret URLs asked for, in order;
     * token: one resource */
    struct broker_item {
        const char *target;
        bool secret;
    } items[BROKER_MAX_ITEMS];
    size_t nitems;
    /* key: "name=value" settings (source, endpoint, identity, timeout),
     * pointers into line.fields */
    const struct broker_field *settings[BROKER_MAX_FIELDS];
    size_t nsettings;
};

/* Parses a whole request as read from the socket: exactly one line ending
 * in '\n', at most BROKER_MAX_REQUEST bytes.  Every malformed request is
 * AZID_ERR_ARGUMENT with a message for the error reply.  Free with
 * broker_request_free, whatever the result. */
azid_status broker_proto_parse_request(const char *data, size_t length,
                                       struct broker_request *req, azid_error *err);
void broker_request_free(struct broker_request *req);

struct broker_reply {
    struct broker_line *lines; /* without the final "end" */
    size_t n;
};

/* Splits a whole reply into its lines ("wait" lines are left out), which
 * must end with an "end" line and nothing after it.  AZID_ERR_RESPONSE naming the defect.  Free with
 * broker_reply_free, whatever the result (it wipes: a reply may hold a
 * token). */
azid_status broker_proto_parse_reply(const char *data, size_t length, struct broker_reply *reply,
                                     azid_error *err);
void broker_reply_free(struct broker_reply *reply);

/* A growing text buffer for requests and replies.  Once an append fails
 * (no memory, a value that cannot be sent, past max), failed stays set and
 * the buffer should not be sent. */
struct broker_buf {
    char *data;
    size_t length, capacity, max;
    bool failed;
};

void broker_buf_init(struct broker_buf *b, size_t max);
/* Wipes (it may hold a token) and frees. */
void broker_buf_free(struct broker_buf *b);
/* Bytes as they are (what a reader received). */
void broker_buf_raw(struct broker_buf *b, const char *data, size_t length);
/* Starts a line with its first word. */
void broker_buf_word(struct broker_buf *b, const char *word);
/* " key=value": value must be non-empty printable ASCII without spaces. */
void broker_buf_field(struct broker_buf *b, const char *key, const char *value);
void broker_buf_field_int(struct broker_buf *b, const char *key, int64_t value);
/* " message=text": control characters become spaces; must be the line's
 * last field. */
void broker_buf_message(struct broker_buf *b, const char *text);
void broker_buf_end_line(struct broker_buf *b);

/* Secret values are sent in hex (they may hold spaces and any byte).
 * broker_hex_decode: the bytes in *out (malloc'ed, NUL-terminated; wipe
 * after use), false when text is not even-length hex or no memory. */
void broker_buf_field_hex(struct broker_buf *b, const char *key, const void *data,
                          size_t length);
bool broker_hex_decode(const char *text, char **out, size_t *length);


#endif
