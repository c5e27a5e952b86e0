/* SPDX-License-Identifier: MIT
 * The shared helpers (libazid/util.c, error.c) and the resource rule
 * (azid_resource_check): each is used in many places, so each behaviour is
 * pinned here once. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static void test_array_grow(void **state)
{
    (void)state;
    int *items = NULL;
    size_t cap = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(array_grow(&items, &cap, (size_t)i + 1, sizeof *items, i % 2), 0);
        assert_true(cap >= (size_t)i + 1);
        items[i] = i;
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(items[i], i); /* kept across both ways of growing */
    size_t before = cap;
    assert_int_equal(array_grow(&items, &cap, 10, sizeof *items, 0), 0);
    assert_int_equal(cap, before); /* enough room: unchanged */
    int *same = items;
    assert_int_equal(array_grow(&items, &cap, SIZE_MAX, sizeof *items, 0), -1);
    assert_ptr_equal(items, same);
    assert_int_equal(cap, before);
    assert_int_equal(array_grow(&items, &cap, SIZE_MAX / 4 + 1, 8, 1), -1);
    assert_ptr_equal(items, same);
    free(items);
}

/* Moved from test_token.c with the function (it was token_find_bad_char). */
static void test_words(void **state)
{
    (void)state;
    assert_int_equal(text_bad_char("abc", 3), -1);
    assert_int_equal(text_bad_char("", 0), 0);
    assert_int_equal(text_bad_char("a b", 3), 1);
    assert_int_equal(text_bad_char("ab\x7f", 3), 2);
    assert_int_equal(text_bad_char("a\tb", 3), 1);
    static const char punct[] = "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}";
    assert_int_equal(text_bad_char(punct, strlen(punct)), -1);
    assert_int_equal(text_bad_char("ab\x80", 3), 2);
    assert_int_equal(text_bad_char("a\0b", 3), 1);
    assert_true(text_is_word("x"));
    assert_false(text_is_word(""));
    assert_false(text_is_word(NULL));
    assert_false(text_is_word("a\tb"));
    assert_false(text_is_word("a\x7f"));
}

static void test_err_nomem(void **state)
{
    (void)state;
    azid_error err;
    assert_int_equal(err_nomem(&err, "reading the response"), AZID_ERR_NOMEM);
    assert_int_equal(err.status, AZID_ERR_NOMEM);
    assert_string_equal(err.message, "out of memory reading the response");
    assert_int_equal(err_nomem(&err, NULL), AZID_ERR_NOMEM);
    assert_string_equal(err.message, "out of memory");
    assert_int_equal(err_nomem(NULL, "x"), AZID_ERR_NOMEM);
}

static char dir[64];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/azid-test-util.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static const char *at(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void put(const char *name, const char *contents, size_t n)
{
    FILE *f = fopen(at(name), "w");
    assert_non_null(f);
    assert_int_equal(fwrite(contents, 1, n, f), n);
    fclose(f);
}

static void expect_read_refused(const char *name, unsigned flags, azid_status want,
                                const char *fragment)
{
    char *data = (char *)1;
    azid_error err;
    err_clear(&err);
    assert_int_equal(file_read_small(at(name), "the test file", 16, flags, &data, NULL, NULL, &err),
                     want);
    assert_null(data);
    if (!strstr(err.message, fragment))
        fail_msg("%s: message '%s' lacks '%s'", name, err.message, fragment);
}

static void test_file_read_small(void **state)
{
    (void)state;
    char *data;
    size_t n;
    struct stat st;
    azid_error err;
    put("ok", "hello\n", 6);
    assert_int_equal(file_read_small(at("ok"), "the test file", 16, 0, &data, &n, &st, &err),
                     AZID_OK);
    assert_int_equal(n, 6);
    assert_string_equal(data, "hello\n");
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 6);
    free(data);
    put("max", "0123456789abcdef", 16);
    assert_int_equal(file_read_small(at("max"), "x", 16, 0, &data, &n, NULL, &err), AZID_OK);
    assert_int_equal(n, 16);
    free(data);

    put("big", "0123456789abcdefg", 17);
    expect_read_refused("big", 0, AZID_ERR_ARGUMENT, "the test file");
    expect_read_refused("big", 0, AZID_ERR_ARGUMENT, "/big has 17 bytes; expected 1 to 16");
    put("empty", "", 0);
    expect_read_refused("empty", 0, AZID_ERR_ARGUMENT, "/empty has 0 bytes; expected 1 to 16");
    expect_read_refused("missing", 0, AZID_ERR_SYSTEM,
                        "cannot open the test file");
    assert_int_equal(mkdir(at("dir"), 0700), 0);
    expect_read_refused("dir", 0, AZID_ERR_ARGUMENT, "/dir is not a regular file");
    /* a FIFO is refused at once, not waited on */
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    expect_read_refused("fifo", 0, AZID_ERR_ARGUMENT, "/fifo is not a regular file");

    char target[256];
    snprintf(target, sizeof target, "%s", at("ok"));
    assert_int_equal(symlink(target, at("link")), 0);
    expect_read_refused("link", 0, AZID_ERR_SYSTEM, "cannot open the test file");
    assert_int_equal(file_read_small(at("link"), "x", 16, FILE_FOLLOW, &data, &n, NULL, &err),
                     AZID_OK);
    assert_string_equal(data, "hello\n");
    free(data);

    /* procfs reports a size of 0: the content is read, not the size */
    assert_int_equal(file_read_small("/proc/sys/kernel/keys/maxkeys", "x", 32, 0, &data, &n,
                                     NULL, &err), AZID_OK);
    assert_true(n > 1 && data[n - 1] == '\n');
    free(data);
    assert_int_equal(file_read_small("/proc/self/status", "x", 16, 0, &data, &n, NULL, &err),
                     AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "has more than 16 bytes"));
}

static void test_resource_rule(void **state)
{
    (void)state;
    azid_error err;
    assert_int_equal(azid_resource_check("https://vault.azure.net", &err), AZID_OK);
    assert_int_equal(azid_resource_check("api://00000000-0000-0000-0000-000000000000", &err),
                     AZID_OK);
    assert_int_equal(azid_resource_check(NULL, &err), AZID_ERR_ARGUMENT);
    assert_int_equal(azid_resource_check("", &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message,
                        "the resource is empty; name one, e.g. https://vault.azure.net");
    assert_int_equal(azid_resource_check("a b", &err), AZID_ERR_ARGUMENT);
    assert_string_equal(err.message,
                        "resource 'a...' has a space, control or non-ASCII character at offset "
                        "1; a resource is one word of printable ASCII, e.g. "
                        "https://vault.azure.net");
    assert_int_equal(azid_resource_check("x\r\nInjected: 1", &err), AZID_ERR_ARGUMENT);
    assert_null(strchr(err.message, '\r'));
    assert_null(strstr(err.message, "Injected"));

    /* azid:token:<resource> must fit the kernel's 4095 bytes */
    char resource[AZID_RESOURCE_MAX + 2];
    memset(resource, 'a', sizeof resource - 1);
    resource[sizeof resource - 1] = '\0';
    assert_int_equal(azid_resource_check(resource, &err), AZID_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "has 4085 characters; at most 4084 fit in the key "
                                        "description azid:token:<resource> (the kernel's limit "
                                        "is 4095 bytes)"));
    resource[AZID_RESOURCE_MAX] = '\0';
    assert_int_equal(azid_resource_check(resource, &err), AZID_OK);
    char *description = azid_key_description_token(resource);
    assert_int_equal(strlen(description), 4095);
    free(description);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_err_nomem),
        cmocka_unit_test_setup_teardown(test_file_read_small, make_dir, remove_dir),
        cmocka_unit_test(test_resource_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
