/* SPDX-License-Identifier: MIT
 * The broker's socket protocol (broker_proto.c): the input is what azidd
 * reads from a client (broker_proto_parse_request) and what a client reads
 * back (broker_proto_parse_reply).  A refusal is one line; an accepted
 * request has what its verb needs (key: user, uid and an item; token: one
 * resource; status: nothing), words for its items and only known
 * settings; every accepted line, written again with broker_buf, reads back
 * the same. */
#include "config.h"

#include "fuzz.h"

#include "broker_proto.h"
#include "internal.h"

#include <string.h>

static int known_setting(const char *key)
{
    for (size_t i = 0; broker_setting_keys[i]; i++)
        if (strcmp(broker_setting_keys[i], key) == 0)
            return 1;
    return 0;
}

/* Writes the line out again and parses it: the same word and fields. */
static void check_round_trip(const struct broker_line *line)
{
    struct broker_buf b;
    broker_buf_init(&b, BROKER_MAX_LINE + 1);
    broker_buf_word(&b, line->word);
    for (size_t i = 0; i < line->nfields; i++) {
        const struct broker_field *f = &line->fields[i];
        if (strcmp(f->key, "message") == 0 && i + 1 == line->nfields) {
            for (const char *p = f->value; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                    broker_buf_free(&b);
                    return; /* written as spaces: not the same text */
                }
            broker_buf_message(&b, f->value);
        } else {
            broker_buf_field(&b, f->key, f->value);
        }
    }
    if (!b.failed) {
        struct broker_line again;
        azid_error err;
        FUZZ_CHECK(broker_proto_parse_line(b.data, b.length, &again, &err) == AZID_OK);
        FUZZ_CHECK(strcmp(again.word, line->word) == 0 && again.nfields == line->nfields);
        for (size_t i = 0; i < line->nfields; i++)
            FUZZ_CHECK(strcmp(again.fields[i].key, line->fields[i].key) == 0 &&
                       strcmp(again.fields[i].value, line->fields[i].value) == 0);
        broker_line_free(&again);
    }
    broker_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    azid_error err;

    struct broker_request req;
    azid_status st = broker_proto_parse_request(text, size, &req, &err);
    if (st == AZID_OK) {
        FUZZ_CHECK(req.verb == BROKER_VERB_KEY || req.verb == BROKER_VERB_TOKEN ||
                   req.verb == BROKER_VERB_STATUS);
        FUZZ_CHECK(req.nitems <= BROKER_MAX_ITEMS);
        for (size_t i = 0; i < req.nitems; i++) {
            FUZZ_CHECK(text_is_word(req.items[i].target));
            FUZZ_CHECK(!req.items[i].secret || req.verb == BROKER_VERB_KEY);
        }
        for (size_t i = 0; i < req.nsettings; i++)
            FUZZ_CHECK(known_setting(req.settings[i]->key));
        if (req.verb == BROKER_VERB_KEY)
            FUZZ_CHECK(req.user && text_is_word(req.user) && req.nitems > 0);
        if (req.verb == BROKER_VERB_TOKEN)
            FUZZ_CHECK(req.nitems == 1);
        if (req.verb == BROKER_VERB_STATUS)
            FUZZ_CHECK(req.nitems == 0 && req.nsettings == 0);
        check_round_trip(&req.line);
    } else {
        FUZZ_CHECK(st == AZID_ERR_ARGUMENT || st == AZID_ERR_NOMEM);
        fuzz_check_message(&err);
    }
    broker_request_free(&req);

    struct broker_reply reply;
    st = broker_proto_parse_reply(text, size, &reply, &err);
    if (st == AZID_OK) {
        for (size_t i = 0; i < reply.n; i++) {
            FUZZ_CHECK(reply.lines[i].word && reply.lines[i].word[0]);
            FUZZ_CHECK(strcmp(reply.lines[i].word, "end") != 0 &&
                       strcmp(reply.lines[i].word, "wait") != 0);
            check_round_trip(&reply.lines[i]);
        }
    } else {
        FUZZ_CHECK(st == AZID_ERR_RESPONSE || st == AZID_ERR_NOMEM);
        fuzz_check_message(&err);
    }
    broker_reply_free(&reply);
    return 0;
}
