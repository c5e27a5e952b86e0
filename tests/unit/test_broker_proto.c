/* SPDX-License-Identifier: MIT
 * The broker's socket protocol (libazid/broker_proto.c): what requests
 * parse to, what every malformed one is told, and that the builder and the
 * reply parser agree. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_proto.h"

static azid_status parse(const char *text, struct broker_request *req, azid_error *err)
{
    return broker_proto_parse_request(text, strlen(text), req, err);
}

static void test_key_request(void **state)
{
    (void)state;
    struct broker_request req;
    azid_error err;
    assert_int_equal(parse("azid1 key user=alice uid=1000 resource=https://vault.azure.net "
                           "resource=https://management.azure.com/ client_id=abc timeout=2.5\n",
                           &req, &err),
                     AZID_OK);
    assert_int_equal(req.verb, BROKER_VERB_KEY);
    assert_string_equal(req.user, "alice");
    assert_int_equal(req.uid, 1000);
    assert_int_equal(req.nitems, 2);
    assert_string_equal(req.items[1].target, "https://management.azure.com/");
    assert_false(req.items[1].secret);
    assert_int_equal(req.nsettings, 2);
    assert_string_equal(req.settings[0]->key, "client_id");
    assert_string_equal(req.settings[1]->value, "2.5");
    broker_request_free(&req);

    assert_int_equal(parse("azid1 token resource=R\r\n", &req, &err), AZID_OK);
    assert_int_equal(req.verb, BROKER_VERB_TOKEN);
    assert_null(req.user);
    broker_request_free(&req);
    assert_int_equal(parse("azid1 status\n", &req, &err), AZID_OK);
    assert_int_equal(req.verb, BROKER_VERB_STATUS);
    broker_request_free(&req);
}

static void test_malformed_requests(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"", "does not end with a newline"},
        {"azid1 status", "does not end with a newline"},
        {"azid1 status\nazid1 status\n", "more than one line"},
        {"AZID1 status\n", "does not start with \"azid1\""},
        {"azid1\n", "does not start with"},
        {"azid1 fly\n", "unknown request \"fly\""},
        {"azid1 status  \n", "empty field"},
        {"azid1 token resource=a b\n", "\"b\" is not KEY=VALUE"},
        {"azid1 token resource=\n", "is not KEY=VALUE"},
        {"azid1 token =x\n", "is not KEY=VALUE"},
        {"azid1 token resource=\xc3\xa9\n", "outside printable ASCII"},
        {"azid1 token resource=a\tb\n", "control character"},
        {"azid1 token\n", "exactly one resource="},
        {"azid1 token resource=a resource=b\n", "exactly one resource="},
        {"azid1 token user=root resource=a\n", "user= is not part of a token request"},
        {"azid1 status resource=a\n", "resource= is not part of a status request"},
        {"azid1 key uid=0 resource=a\n", "needs user= and uid="},
        {"azid1 key user=a resource=a\n", "needs user= and uid="},
        {"azid1 key user=a uid=-1 resource=a\n", "uid= is not a uid"},
        {"azid1 key user=a uid=1x resource=a\n", "uid= is not a uid"},
        {"azid1 key user=a uid=4294967295 resource=a\n", "uid= is not a uid"},
        {"azid1 key user=a uid=1 uid=2 resource=a\n", "uid= given twice"},
        {"azid1 key user=a user=b uid=1 resource=a\n", "user= given twice"},
        {"azid1 key user=a uid=1\n", "needs resource= or secret="},
        {"azid1 token secret=https://v.vault.azure.net/secrets/s\n", "secret= is not part of a token"},
        {"azid1 key user=a uid=1 resource=a timeout=1 timeout=2\n", "timeout= given twice"},
        {"azid1 key user=a uid=1 resource=a config=/tmp/x\n", "config= is not part of a key"},
        {"azid1 key user=a uid=1 resource=a message=hello world\n", "message= is not part of a key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct broker_request req;
        azid_error err = {0};
        assert_int_equal(parse(cases[i].text, &req, &err), AZID_ERR_ARGUMENT);
        if (!strstr(err.message, cases[i].says))
            fail_msg("%s: %s", cases[i].text, err.message);
        broker_request_free(&req);
    }

    /* A NUL inside, and sizes. */
    struct broker_request req;
    azid_error err;
    assert_int_equal(broker_proto_parse_request("azid1 status\0\n", 14, &req, &err),
                     AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "NUL"));
    broker_request_free(&req);
    char *big = malloc(BROKER_MAX_REQUEST + 2);
    assert_non_null(big);
    memset(big, 'a', BROKER_MAX_REQUEST + 1);
    big[BROKER_MAX_REQUEST + 1] = '\n';
    assert_int_equal(broker_proto_parse_request(big, BROKER_MAX_REQUEST + 2, &req, &err),
                     AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "larger than 8192 bytes"));
    broker_request_free(&req);
    free(big);

    char many[BROKER_MAX_REQUEST];
    int n = snprintf(many, sizeof many, "azid1 key user=a uid=1");
    for (int i = 0; i <= BROKER_MAX_ITEMS; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, " resource=r%d", i);
    snprintf(many + n, sizeof many - (size_t)n, "\n");
    assert_int_equal(parse(many, &req, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "more than 32 resources and secrets"));
    broker_request_free(&req);
}

static void test_builder_and_reply_parser_agree(void **state)
{
    (void)state;
    struct broker_buf b;
    broker_buf_init(&b, BROKER_MAX_REPLY);
    broker_buf_word(&b, "wait");
    broker_buf_end_line(&b);
    broker_buf_word(&b, "key");
    broker_buf_field(&b, "resource", "https://vault.azure.net");
    broker_buf_field_int(&b, "serial", 123456);
    broker_buf_end_line(&b);
    broker_buf_word(&b, "fail");
    broker_buf_field(&b, "resource", "R");
    /* Control characters in a message become spaces; UTF-8 stays. */
    broker_buf_message(&b, "HTTP 400 \xe2\x80\x94 Identity not found\nsecond line");
    broker_buf_end_line(&b);
    broker_buf_word(&b, "end");
    broker_buf_end_line(&b);
    assert_false(b.failed);

    struct broker_reply reply;
    azid_error err;
    assert_int_equal(broker_proto_parse_reply(b.data, b.length, &reply, &err), AZID_OK);
    assert_int_equal(reply.n, 2); /* "wait" is left out */
    assert_string_equal(reply.lines[0].word, "key");
    int64_t serial = 0;
    assert_true(broker_line_get_int(&reply.lines[0], "serial", 1, INT32_MAX, &serial));
    assert_int_equal(serial, 123456);
    assert_false(broker_line_get_int(&reply.lines[0], "serial", 1, 1000, &serial));
    assert_false(broker_line_get_int(&reply.lines[0], "resource", 0, 10, &serial));
    assert_null(broker_line_get(&reply.lines[0], "value"));
    assert_string_equal(broker_line_get(&reply.lines[1], "message"),
                        "HTTP 400 \xe2\x80\x94 Identity not found second line");
    broker_reply_free(&reply);

    /* Cut short, or more after the end. */
    assert_int_equal(broker_proto_parse_reply(b.data, b.length - 4, &reply, &err),
                     AZID_ERR_RESPONSE);
    assert_non_null(strstr(err.message, "cut short"));
    broker_reply_free(&reply);
    broker_buf_raw(&b, "x\n", 2);
    assert_int_equal(broker_proto_parse_reply(b.data, b.length, &reply, &err),
                     AZID_ERR_RESPONSE);
    broker_reply_free(&reply);
    broker_buf_free(&b);

    /* Values that cannot be sent fail the buffer instead of corrupting the
     * line; so does going past max. */
    broker_buf_init(&b, 64);
    broker_buf_word(&b, "token");
    broker_buf_field(&b, "value", "two words");
    assert_true(b.failed);
    broker_buf_free(&b);
    broker_buf_init(&b, 16);
    broker_buf_word(&b, "token");
    broker_buf_field(&b, "value", "0123456789abcdef");
    assert_true(b.failed);
    broker_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_request),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_builder_and_reply_parser_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
