/* SPDX-License-Identifier: MIT
 *
 * libazid's keyring functions against the real kernel keyring.  Every test
 * starts in a fresh session keyring, made the way pam_keyinit makes a
 * login's (real uid switched to the user, @u linked).  Checks "as the user"
 * run in a child that drops to the user and inherits that keyring, like the
 * login shell.  Needs root; skipped otherwise or when keyctl is blocked.
 */
#include "config.h"

#include "azid.h"
#include "../pam/deny_keys.h"

#include <errno.h>
#include <keyutils.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Throwaway ids, one per test that charges keys to a user, so that one
 * test's keys (collected asynchronously) never count against another's
 * quota. */
enum {
    UID_SESSION = 54321,
    UID_UPDATE,
    UID_USERRING,
    UID_PERSISTENT,
    UID_QUOTA,
    UID_OTHER,
    UID_LIST,
    UID_THREAD, /* .. UID_THREAD + THREADS - 1 */
};
#define THREADS 4
#define KEYS_PER_THREAD 25
#define GID_OF(uid) ((gid_t)(uid) + 1000)

#define PERM_EXPECTED 0x2f010000u

/* Makes the calling process join a new session keyring owned by uid/gid
 * that links uid's user keyring, exactly like pam_keyinit force. */
static void login_session(uid_t uid)
{
    assert_int_equal(setresgid(GID_OF(uid) * (uid != 0), (gid_t)-1, (gid_t)-1), 0);
    assert_int_equal(setresuid(uid, (uid_t)-1, (uid_t)-1), 0);
    key_serial_t s = keyctl_join_session_keyring(NULL);
    long linked = keyctl_link(KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING);
    assert_int_equal(setresuid(0, (uid_t)-1, (uid_t)-1), 0);
    assert_int_equal(setresgid(0, (gid_t)-1, (gid_t)-1), 0);
    assert_true(s > 0);
    assert_int_equal(linked, 0);
}

static int setup_root_session(void **state)
{
    (void)state;
    login_session(0);
    return 0;
}

/* Runs fn in a child that became uid (all ids, groups dropped) and keeps
 * the parent's session keyring; returns fn's result (0 = good). */
static int as_user(uid_t uid, int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gid_t gid = GID_OF(uid);
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
            _exit(99);
        _exit(fn(arg));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int64_t in_seconds(long s)
{
    return (int64_t)time(NULL) + s;
}

static char *description(const char *resource)
{
    char *d = azid_key_description_token(resource);
    assert_non_null(d);
    return d;
}

/* Stores value for uid (and its group) in this process's session keyring. */
static azid_status store_session(uid_t uid, const char *desc, const char *value, int64_t expires_on,
                                 int32_t *serial, azid_error *err)
{
    return azid_keyring_store(AZID_KEYRING_SESSION, uid, GID_OF(uid), desc, value, strlen(value),
                              expires_on, serial, err);
}

/* Parses keyctl_describe: "type;uid;gid;perm;description". */
static void describe(key_serial_t key, unsigned *uid, unsigned *gid, unsigned *perm)
{
    char *buf = NULL;
    assert_true(keyctl_describe_alloc(key, &buf) > 0);
    char type[32];
    assert_int_equal(sscanf(buf, "%31[^;];%u;%u;%x;", type, uid, gid, perm), 4);
    assert_string_equal(type, "user");
    free(buf);
}

struct listed {
    int count;
    const char *want;
    long seconds_left;
    int32_t serial;
};

static void collect(const azid_key_info *key, void *ctx)
{
    struct listed *l = ctx;
    l->count++;
    if (l->want && strcmp(key->description, l->want) == 0) {
        l->seconds_left = key->seconds_left;
        l->serial = key->serial;
    }
}

static long seconds_left(const char *desc)
{
    struct listed l = {0, desc, -2, -1};
    azid_error err;
    assert_int_equal(azid_keyring_list(collect, &l, &err), AZID_OK);
    return l.seconds_left;
}

/* ---- descriptions ---------------------------------------------------------- */

/* Checks a description the library allocated, then frees it. */
static void expect_description(char *got, const char *want)
{
    assert_string_equal(got, want);
    free(got);
}

static void test_descriptions(void **state)
{
    (void)state;
    expect_description(azid_key_description_token("https://vault.azure.net"),
                       "azid:token:https://vault.azure.net");
    expect_description(azid_key_description_token("https://vault.azure.net/"),
                       "azid:token:https://vault.azure.net/");
    expect_description(azid_key_description_secret("v1.vault.azure.net", "db-password"),
                       "azid:secret:v1.vault.azure.net/db-password");
    assert_null(azid_key_description_token(NULL));
}

/* What the CLI reads instead of splitting descriptions itself. */
static void test_description_fields(void **state)
{
    (void)state;
    azid_key_fields f;
    char *d = azid_key_description_token("https://vault.azure.net/");
    assert_int_equal(azid_key_parse(d, &f), AZID_KEY_TOKEN);
    assert_string_equal(f.resource, "https://vault.azure.net/");
    assert_null(f.name);
    free(d);
    d = azid_key_description_secret("v1.vault.azure.net", "db-password");
    assert_int_equal(azid_key_parse(d, &f), AZID_KEY_SECRET);
    assert_int_equal(f.vault_host_length, strlen("v1.vault.azure.net"));
    assert_memory_equal(f.vault_host, "v1.vault.azure.net", f.vault_host_length);
    assert_string_equal(f.vault_host, "v1.vault.azure.net/db-password");
    assert_string_equal(f.name, "db-password");
    assert_null(f.resource);
    free(d);
    static const char *const others[] = {
        "azid:token:", "azid:secret:v1.vault.azure.net", "azid:secret:/name",
        "azid:secret:host/", "azid:secret:a/b/c", "krb5cc", "azid:other:x", NULL};
    for (const char *const *o = others; *o; o++) {
        assert_int_equal(azid_key_parse(*o, &f), AZID_KEY_OTHER);
        assert_null(f.resource);
        assert_null(f.vault_host);
        assert_null(f.name);
    }
    assert_int_equal(azid_key_parse(NULL, &f), AZID_KEY_OTHER);
}

/* ---- the guard ------------------------------------------------------------- */

/* A process started without a session keyring (a service, su without a new
 * session) resolves @s to the user-session keyring, shared by every process
 * of the uid.  Joining it by name makes this process such a one. */
static void test_guard_user_session_keyring(void **state)
{
    (void)state;
    /* 0 when it already was (as for a process started without one). */
    assert_true(keyctl_join_session_keyring("_uid_ses.0") >= 0);
    assert_int_equal(keyctl_get_keyring_ID(KEY_SPEC_SESSION_KEYRING, 0),
                     keyctl_get_keyring_ID(KEY_SPEC_USER_SESSION_KEYRING, 0));
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_ERR_NOT_SESSION);
    assert_int_equal(err.status, AZID_ERR_NOT_SESSION);
    assert_non_null(strstr(err.message, "user-session keyring _uid_ses.0 of uid 0"));
    assert_non_null(strstr(err.message, "'session optional pam_keyinit.so force revoke' before "
                                        "pam_azid.so"));
}

static void test_guard_accepts_login_keyring(void **state)
{
    (void)state;
    login_session(UID_SESSION);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(UID_SESSION, &err), AZID_OK);
    assert_int_equal(err.status, AZID_OK);
}

static void test_guard_other_owner(void **state)
{
    (void)state;
    login_session(UID_SESSION);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(UID_OTHER, &err), AZID_ERR_NOT_SESSION);
    char want[128];
    snprintf(want, sizeof want, "not a per-login keyring of uid %d", UID_OTHER);
    assert_non_null(strstr(err.message, want));
    snprintf(want, sizeof want, "belongs to uid %d", UID_SESSION);
    assert_non_null(strstr(err.message, want));
    assert_non_null(strstr(err.message, "pam_keyinit.so force revoke"));
}

/* A keyring a service made for itself (systemd KeyringMode=private) has the
 * right owner for root but does not link root's user keyring. */
static void test_guard_service_keyring(void **state)
{
    (void)state;
    assert_true(keyctl_join_session_keyring(NULL) > 0);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_ERR_NOT_SESSION);
    assert_non_null(strstr(err.message, "does not link _uid.0"));
}

/* systemd's KeyringMode=shared: a keyring the service manager made, linking
 * the service user's keyring (root's, for sshd) and holding its
 * invocation_id key.  Owner and link are right for a root login, but every
 * connection shares it. */
static void test_guard_shared_service_keyring(void **state)
{
    (void)state;
    assert_true(keyctl_join_session_keyring(NULL) > 0);
    assert_int_equal(keyctl_link(KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING), 0);
    static const unsigned char id[16] = {1, 2, 3};
    assert_true(add_key("user", "invocation_id", id, sizeof id, KEY_SPEC_SESSION_KEYRING) > 0);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_ERR_NOT_SESSION);
    assert_non_null(strstr(err.message, "not a per-login keyring of uid 0"));
    assert_non_null(strstr(err.message, "holds user invocation_id"));
    assert_non_null(strstr(err.message, "pam_keyinit.so force revoke"));
}

/* The same keyring holding more keys than the guard's first read takes in
 * (the kernel then copies none of them): the guard still sees the marker. */
static void test_guard_shared_service_keyring_many_keys(void **state)
{
    (void)state;
    assert_true(keyctl_join_session_keyring(NULL) > 0);
    assert_int_equal(keyctl_link(KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING), 0);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "other:%d", i);
        assert_true(add_key("user", name, "o", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    }
    static const unsigned char id[16] = {1, 2, 3};
    assert_true(add_key("user", "invocation_id", id, sizeof id, KEY_SPEC_SESSION_KEYRING) > 0);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_ERR_NOT_SESSION);
    assert_non_null(strstr(err.message, "holds user invocation_id"));
}

/* The guard passes again for a keyring that holds azid's own keys (a
 * second open_session of the same login). */
static void test_guard_accepts_own_keys(void **state)
{
    (void)state;
    login_session(0);
    assert_true(add_key("user", "azid:token:https://vault.azure.net", "t", 1,
                        KEY_SPEC_SESSION_KEYRING) > 0);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_OK);
}

/* Keys another session module stored before pam_azid (a Kerberos
 * KEYRING: cache) belong to the login: the guard still passes. */
static void test_guard_accepts_other_modules_keys(void **state)
{
    (void)state;
    login_session(0);
    assert_true(add_key("keyring", "krb_ccache:primary", NULL, 0, KEY_SPEC_SESSION_KEYRING) > 0);
    assert_true(add_key("user", "krb5cc", "c", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    azid_error err;
    assert_int_equal(azid_keyring_check_session(0, &err), AZID_OK);
}

/* ---- store ------------------------------------------------------------------- */

static const char TOKEN[] = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ0ZXN0In0.c2lnbmF0dXJl";

struct read_check {
    const char *description;
    const char *expected;
    long max_left; /* > 0: azid_keyring_list shows at most that, rounded down to minutes */
};

static int read_matches(void *arg)
{
    struct read_check *rc = arg;
    char *value = NULL;
    size_t len = 0;
    azid_error err;
    if (azid_keyring_read(rc->description, &value, &len, &err) != AZID_OK) {
        fprintf(stderr, "read %s: %s\n", rc->description, err.message);
        return 1;
    }
    int bad = len != strlen(rc->expected) || strcmp(value, rc->expected) != 0;
    free(value);
    if (bad)
        return 2;
    struct listed l = {0, rc->description, -2, -1};
    if (rc->max_left > 0 && (azid_keyring_list(collect, &l, &err) != AZID_OK ||
                             l.seconds_left <= rc->max_left - 120 || l.seconds_left > rc->max_left)) {
        fprintf(stderr, "%s: %ld s left, expected about %ld\n", rc->description, l.seconds_left,
                rc->max_left);
        return 4;
    }
    return 0;
}

static void assert_fs_ids_are_root(void)
{
    assert_int_equal(setfsuid((uid_t)-1), 0);
    assert_int_equal(setfsgid((gid_t)-1), 0);
}

struct search_check {
    const char *description;
    key_serial_t keyring;
    int32_t serial;
};

/* A process of the same uid in another login (its own session keyring). */
static int read_outside_session(void *arg)
{
    struct search_check *sc = arg;
    if (keyctl_join_session_keyring(NULL) < 0)
        return 10;
    char *desc = NULL;
    if (keyctl_describe_alloc(sc->serial, &desc) < 0)
        return 11; /* owner view: it sees the key */
    free(desc);
    char byte;
    if (keyctl_read(sc->serial, &byte, 1) >= 0 || errno != EACCES)
        return 12;
    char *value = NULL;
    azid_error err;
    if (azid_keyring_read(sc->description, &value, NULL, &err) != AZID_ERR_NOT_FOUND || value)
        return 13;
    return 0;
}

static void test_store_session(void **state)
{
    (void)state;
    login_session(UID_SESSION);
    char *desc = description("https://vault.azure.net");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(store_session(UID_SESSION, desc, TOKEN, in_seconds(3600), &serial, &err),
                     AZID_OK);
    assert_true(serial > 0);
    assert_fs_ids_are_root();

    unsigned uid, gid, perm;
    describe(serial, &uid, &gid, &perm);
    assert_int_equal(uid, UID_SESSION);
    assert_int_equal(gid, GID_OF(UID_SESSION));
    assert_int_equal(perm, PERM_EXPECTED);
    /* It is in the session keyring itself. */
    assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", desc, 0), serial);

    /* /proc/keys rounds down to minutes: 3540 s left shows as 58m or 59m. */
    long left = seconds_left(desc);
    assert_in_range(left, 58 * 60, 3600 - 60);

    struct read_check rc = {desc, TOKEN, 3600 - AZID_EXPIRY_SKEW_S};
    assert_int_equal(as_user(UID_SESSION, read_matches, &rc), 0);
    /* The same uid outside this session sees the key but cannot read it. */
    struct search_check outside = {desc, KEY_SPEC_SESSION_KEYRING, serial};
    assert_int_equal(as_user(UID_SESSION, read_outside_session, &outside), 0);
    free(desc);
}

static void test_store_updates_in_place(void **state)
{
    (void)state;
    login_session(UID_UPDATE);
    char *desc = description("https://storage.azure.com/");
    int32_t first = 0, second = 0;
    azid_error err;
    assert_int_equal(store_session(UID_UPDATE, desc, "old-token", in_seconds(3600), &first, &err),
                     AZID_OK);
    /* As after a write by someone else: add_key leaves no timeout. */
    assert_int_equal(keyctl_set_timeout(first, 0), 0);
    assert_int_equal(seconds_left(desc), -1);
    assert_int_equal(store_session(UID_UPDATE, desc, TOKEN, in_seconds(600), &second, &err),
                     AZID_OK);
    assert_int_equal(second, first);
    assert_in_range(seconds_left(desc), 8 * 60, 600 - 60);
    struct read_check rc = {desc, TOKEN, 600 - AZID_EXPIRY_SKEW_S};
    assert_int_equal(as_user(UID_UPDATE, read_matches, &rc), 0);
    free(desc);
}

static void test_store_refuses_near_expiry(void **state)
{
    (void)state;
    login_session(UID_SESSION);
    char *desc = description("https://near-expiry");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(store_session(UID_SESSION, desc, TOKEN, in_seconds(AZID_EXPIRY_SKEW_S), &serial,
                                   &err),
                     AZID_ERR_ARGUMENT);
    assert_int_equal(serial, -1);
    assert_non_null(strstr(err.message, "azid:token:https://near-expiry"));
    assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", desc, 0), -1);
    free(desc);
}

/* An expiry the clock cannot be subtracted from without overflow. */
static void test_store_refuses_expiry_out_of_range(void **state)
{
    (void)state;
    static const int64_t expiries[] = {INT64_MIN, -AZID_EPOCH_MAX - 1, AZID_EPOCH_MAX + 1,
                                       INT64_MAX};
    for (size_t i = 0; i < sizeof expiries / sizeof expiries[0]; i++) {
        azid_error err;
        assert_int_equal(store_session(UID_SESSION, "azid:token:range", "t", expiries[i], NULL,
                                       &err), AZID_ERR_ARGUMENT);
        assert_non_null(strstr(err.message, "not storing azid:token:range: its expiry"));
        assert_non_null(strstr(err.message, "is out of range"));
    }
}

static void test_store_rejects_empty(void **state)
{
    (void)state;
    azid_error err;
    assert_int_equal(azid_keyring_store(AZID_KEYRING_SESSION, 0, 0, "azid:token:x", "", 0,
                                        in_seconds(3600), NULL, &err),
                     AZID_ERR_ARGUMENT);
}

/* The user keyring as the user's login sees it: a pam_keyinit session
 * keyring links it, so the login shell reads keys stored there. */
static int read_via_login(void *arg)
{
    return read_matches(arg);
}

static int clear_user_keyring(void *arg)
{
    (void)arg;
    return keyctl_clear(KEY_SPEC_USER_KEYRING) == 0 ? 0 : 1;
}

static int search_finds(void *arg)
{
    struct search_check *sc = arg;
    return keyctl_search(sc->keyring, "user", sc->description, 0) == sc->serial ? 0 : 1;
}

static void test_store_user_keyring(void **state)
{
    (void)state;
    /* Root's own login, as in sshd's monitor: KEY_SPEC_USER_KEYRING would
     * be root's. */
    char *desc = description("https://management.azure.com/");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(azid_keyring_store(AZID_KEYRING_USER, UID_USERRING, GID_OF(UID_USERRING),
                                        desc, TOKEN, strlen(TOKEN), in_seconds(3600), &serial,
                                        &err),
                     AZID_OK);
    assert_fs_ids_are_root();
    assert_int_equal(getuid(), 0);
    unsigned uid, gid, perm;
    struct search_check sc = {desc, KEY_SPEC_USER_KEYRING, serial};
    assert_int_equal(as_user(UID_USERRING, search_finds, &sc), 0);
    /* Not in root's keyrings, and no link left behind in this thread's. */
    assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", desc, 0), -1);
    assert_int_equal(keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0), -1);
    void *links = NULL;
    assert_int_equal(keyctl_read_alloc(KEY_SPEC_THREAD_KEYRING, &links), 0);
    free(links);

    /* A later login of that user reads it through its own keyring. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        login_session(UID_USERRING);
        struct read_check rc = {desc, TOKEN, 3600 - AZID_EXPIRY_SKEW_S};
        _exit(as_user(UID_USERRING, read_via_login, &rc));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Owner and permissions as for the session keyring: describe as the
     * owner (view is granted to the owner). */
    setfsuid(UID_USERRING);
    describe(serial, &uid, &gid, &perm);
    setfsuid(0);
    assert_int_equal(uid, UID_USERRING);
    assert_int_equal(gid, GID_OF(UID_USERRING));
    assert_int_equal(perm, PERM_EXPECTED);
    assert_int_equal(as_user(UID_USERRING, clear_user_keyring, NULL), 0);
    free(desc);
}

static int read_persistent(void *arg)
{
    key_serial_t p = keyctl_get_persistent((uid_t)-1, KEY_SPEC_SESSION_KEYRING);
    if (p < 0)
        return 3;
    int r = read_matches(arg);
    /* Leave no 3-day keyring behind for the throwaway uid. */
    keyctl_invalidate(p);
    return r;
}

static void test_store_persistent_keyring(void **state)
{
    (void)state;
    char *desc = description("https://vault.azure.net");
    int32_t serial = 0;
    azid_error err;
    azid_status st = azid_keyring_store(AZID_KEYRING_PERSISTENT, UID_PERSISTENT,
                                        GID_OF(UID_PERSISTENT), desc, TOKEN, strlen(TOKEN),
                                        in_seconds(3600), &serial, &err);
    if (st != AZID_OK && strstr(err.message, strerror(EOPNOTSUPP))) {
        free(desc);
        skip(); /* no CONFIG_PERSISTENT_KEYRINGS */
    }
    assert_int_equal(st, AZID_OK);
    assert_fs_ids_are_root();
    /* A later process of that uid without any login (cron) reads it. */
    struct read_check rc = {desc, TOKEN, 3600 - AZID_EXPIRY_SKEW_S};
    assert_int_equal(as_user(UID_PERSISTENT, read_persistent, &rc), 0);
    free(desc);
}

static void test_store_quota(void **state)
{
    (void)state;
    login_session(UID_QUOTA);
    size_t size = 15000; /* two of these exceed the default 20000 bytes */
    char *big = malloc(size);
    assert_non_null(big);
    memset(big, 'A', size);
    char *d1 = description("https://one");
    char *d2 = description("https://two");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(azid_keyring_store(AZID_KEYRING_SESSION, UID_QUOTA, GID_OF(UID_QUOTA), d1, big,
                                        size, in_seconds(3600), &serial, &err),
                     AZID_OK);
    assert_int_equal(azid_keyring_store(AZID_KEYRING_SESSION, UID_QUOTA, GID_OF(UID_QUOTA), d2, big,
                                        size, in_seconds(3600), &serial, &err),
                     AZID_ERR_QUOTA);
    assert_int_equal(serial, -1);
    assert_non_null(strstr(err.message, "azid:token:https://two"));
    assert_non_null(strstr(err.message, "kernel.keys.maxbytes="));
    assert_fs_ids_are_root();
    assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", d2, 0), -1);
    assert_true(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", d1, 0) > 0);
    free(d1);
    free(d2);
    free(big);
}

static int store_for_other(void *arg)
{
    (void)arg;
    azid_error err;
    azid_status st = store_session(UID_OTHER, "azid:token:x", "t", in_seconds(3600), NULL, &err);
    if (st != AZID_ERR_SYSTEM || !strstr(err.message, "cannot act as uid"))
        return 1;
    return setfsuid((uid_t)-1) == (uid_t)UID_SESSION ? 0 : 2;
}

static void test_store_needs_privilege(void **state)
{
    (void)state;
    login_session(UID_SESSION);
    assert_int_equal(as_user(UID_SESSION, store_for_other, NULL), 0);
}

struct failing_step {
    int operation; /* the keyctl operation made to fail */
    const char *step;
};

/* In a child holding this session keyring: the step after add_key fails. */
static int store_with_failing_step(void *arg)
{
    const struct failing_step *f = arg;
    if (deny_keyctl_operation(f->operation, EACCES) < 0)
        return 90;
    azid_error err;
    int32_t serial = 0;
    uid_t fsuid = (uid_t)setfsuid((uid_t)-1);
    gid_t fsgid = (gid_t)setfsgid((gid_t)-1);
    if (store_session(UID_OTHER, "azid:token:https://failing", TOKEN, in_seconds(3600), &serial,
                      &err) != AZID_ERR_KEYRING ||
        serial != -1 || !strstr(err.message, f->step))
        return 1;
    return (uid_t)setfsuid((uid_t)-1) == fsuid && (gid_t)setfsgid((gid_t)-1) == fsgid ? 0 : 2;
}

/* A key whose timeout or permissions could not be set is never left
 * behind (no timeout, or the possessor's default rights). */
static void test_store_failure_leaves_no_key(void **state)
{
    (void)state;
    login_session(UID_OTHER);
    static const struct failing_step steps[] = {
        {KEYCTL_SET_TIMEOUT, "(set timeout): Permission denied"},
        {KEYCTL_SETPERM, "(set permissions): Permission denied"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        assert_int_equal(as_user(0, store_with_failing_step, (void *)&steps[i]), 0);
        assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user",
                                       "azid:token:https://failing", 0),
                         -1);
    }
}

/* ---- remove, read, list ---------------------------------------------------- */

static void test_remove(void **state)
{
    (void)state;
    char *desc = description("https://remove");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(azid_keyring_store(AZID_KEYRING_SESSION, 0, 0, desc, TOKEN, strlen(TOKEN),
                                        in_seconds(3600), &serial, &err),
                     AZID_OK);
    assert_int_equal(azid_keyring_remove(serial, &err), AZID_OK);
    char *value = NULL;
    assert_int_equal(azid_keyring_read(desc, &value, NULL, &err), AZID_ERR_NOT_FOUND);
    assert_null(value);
    /* Already gone is not an error (pam_keyinit revoked the keyring first). */
    assert_int_equal(azid_keyring_remove(serial, &err), AZID_OK);
    free(desc);
}

/* A serial reused by a key that is not azid's (the azid key expired and
 * was collected during a long login) is left alone at close. */
static void test_remove_spares_reused_serial(void **state)
{
    (void)state;
    key_serial_t other = add_key("user", "krb:ccache", "k", 1, KEY_SPEC_SESSION_KEYRING);
    assert_true(other > 0);
    azid_error err;
    assert_int_equal(azid_keyring_remove(other, &err), AZID_OK);
    assert_int_equal(keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", "krb:ccache", 0), other);
}

static void test_read_absent(void **state)
{
    (void)state;
    char *value = NULL;
    size_t len = 1;
    azid_error err;
    assert_int_equal(azid_keyring_read("azid:token:https://absent", &value, &len, &err),
                     AZID_ERR_NOT_FOUND);
    assert_null(value);
    assert_int_equal(len, 0);
    assert_string_equal(err.message, "no key azid:token:https://absent in your session, user or "
                                     "persistent keyring (expired or never stored); log in again "
                                     "or run azid fetch");
}

static void test_read_expired(void **state)
{
    (void)state;
    char *desc = description("https://expiring");
    int32_t serial = 0;
    azid_error err;
    assert_int_equal(azid_keyring_store(AZID_KEYRING_SESSION, 0, 0, desc, TOKEN, strlen(TOKEN),
                                        in_seconds(3600), &serial, &err),
                     AZID_OK);
    assert_int_equal(keyctl_set_timeout(serial, 1), 0);
    struct timespec ts = {1, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    char *value = NULL;
    assert_int_equal(azid_keyring_read(desc, &value, NULL, &err), AZID_ERR_NOT_FOUND);
    assert_non_null(strstr(err.message, "expired or never stored"));
    assert_int_equal(seconds_left(desc), -2); /* not listed */
    free(desc);
}

/* /proc/keys lines are as long as the description (up to 4095 bytes): adds
 * keys whose descriptions hold, where a 256..4096-byte read buffer would
 * cut, what looks like a line saying that key serial has expired.  Every
 * fixed-width column before the description is 59 bytes wide. */
static void forge_proc_keys_lines(int32_t serial)
{
    char forged[64];
    snprintf(forged, sizeof forged, "%08x I--Q--- 1 expd 3f010000 ", (unsigned)serial);
    size_t flen = strlen(forged);
    for (size_t cut = 256; cut < 4096; cut *= 2) {
        char desc[4096];
        size_t pad = cut - 1 - 59;
        memset(desc, 'x', pad);
        memcpy(desc, "other:", 6);
        memcpy(desc + pad, forged, flen + 1);
        assert_true(add_key("user", desc, "o", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    }
}

static void test_list(void **state)
{
    (void)state;
    login_session(UID_LIST);
    azid_error err;
    int32_t serial = 0;
    assert_int_equal(store_session(UID_LIST, "azid:token:https://a", "a", in_seconds(7200), &serial,
                                   &err),
                     AZID_OK);
    assert_int_equal(store_session(UID_LIST, "azid:secret:v.vault.azure.net/pw", "s",
                                   in_seconds(600), &serial, &err),
                     AZID_OK);
    forge_proc_keys_lines(serial);
    assert_true(add_key("user", "azid:token:https://forever", "f", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    assert_true(add_key("user", "other:thing", "o", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    /* Longer than the buffer the library describes keys into first. */
    char longer[600];
    snprintf(longer, sizeof longer, "azid:token:https://%0500d", 7);
    assert_true(add_key("user", longer, "l", 1, KEY_SPEC_SESSION_KEYRING) > 0);

    struct listed l = {0, "azid:token:https://a", -2, -1};
    assert_int_equal(azid_keyring_list(collect, &l, &err), AZID_OK);
    assert_int_equal(l.count, 4);
    assert_in_range(l.seconds_left, 3600, 7200 - 60); /* "1h" */
    assert_in_range(seconds_left("azid:secret:v.vault.azure.net/pw"), 8 * 60, 600 - 60);
    assert_int_equal(seconds_left("azid:token:https://forever"), -1);
    assert_int_equal(seconds_left("other:thing"), -2);
    assert_int_equal(seconds_left(longer), -1);
}

/* More keys than azid_keyring_list reads from a keyring in its first system
 * call: every one is listed. */
static void test_list_many(void **state)
{
    (void)state;
    login_session(UID_LIST);
    for (int i = 0; i < 40; i++) {
        char desc[64];
        snprintf(desc, sizeof desc, "azid:token:https://many/%d", i);
        assert_true(add_key("user", desc, "m", 1, KEY_SPEC_SESSION_KEYRING) > 0);
    }
    struct listed l = {0, "azid:token:https://many/39", -2, -1};
    azid_error err;
    assert_int_equal(azid_keyring_list(collect, &l, &err), AZID_OK);
    assert_int_equal(l.count, 40);
    assert_int_equal(l.seconds_left, -1);
}

/* ---- threads ------------------------------------------------------------------ */

/* The fsuid switch is per thread: concurrent stores for different users
 * (two logins handled by threads of one process) each give their keys the
 * right owner, and the other threads keep their ids. */
static void *store_many(void *arg)
{
    uid_t uid = (uid_t)(uintptr_t)arg;
    for (int i = 0; i < KEYS_PER_THREAD; i++) {
        char desc[64];
        snprintf(desc, sizeof desc, "azid:token:https://t%u/%d", (unsigned)uid, i);
        azid_error err;
        if (store_session(uid, desc, "t", in_seconds(3600), NULL, &err) != AZID_OK)
            return (void *)1;
        if (setfsuid((uid_t)-1) != 0)
            return (void *)2;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    for (uintptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, store_many, (void *)(UID_THREAD + t)), 0);
    for (int t = 0; t < THREADS; t++) {
        void *result = (void *)-1;
        assert_int_equal(pthread_join(threads[t], &result), 0);
        assert_null(result);
    }
    assert_fs_ids_are_root();
    for (unsigned t = 0; t < THREADS; t++) {
        for (int i = 0; i < KEYS_PER_THREAD; i++) {
            char desc[64];
            snprintf(desc, sizeof desc, "azid:token:https://t%u/%d", UID_THREAD + t, i);
            key_serial_t k = keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", desc, 0);
            assert_true(k > 0);
            unsigned uid, gid, perm;
            describe(k, &uid, &gid, &perm);
            assert_int_equal(uid, UID_THREAD + t);
            assert_int_equal(gid, GID_OF(UID_THREAD + t));
        }
    }
}

/* ---- a kernel or sandbox without keyrings ---------------------------------- */

static int blocked_keyring(void *arg)
{
    int errnum = *(int *)arg;
    if (deny_keyring_syscalls(errnum) < 0)
        return 90;
    azid_error err;
    if (azid_keyring_check_session(0, &err) != AZID_ERR_KEYRING ||
        !strstr(err.message, "kernel keyring unavailable") || !strstr(err.message, strerror(errnum)))
        return 1;
    if (azid_keyring_store(AZID_KEYRING_SESSION, 0, 0, "azid:token:x", "t", 1, in_seconds(3600),
                           NULL, &err) != AZID_ERR_KEYRING ||
        !strstr(err.message, "kernel keyring unavailable"))
        return 2;
    char *value = NULL;
    if (azid_keyring_read("azid:token:x", &value, NULL, &err) != AZID_ERR_KEYRING)
        return 3;
    return 0;
}

static void test_unavailable(void **state)
{
    (void)state;
    /* Docker's default profile answers EPERM; a kernel without keys ENOSYS. */
    int errnums[] = {EPERM, ENOSYS};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(as_user(0, blocked_keyring, &errnums[i]), 0);
}

/* ---- ids that cannot be switched back ------------------------------------ */

/* The real uid stays the user's after the user keyring lookup: the store
 * fails hard and says so. */
static int lost_real_uid(void *arg)
{
    (void)arg;
    login_session(UID_USERRING);
    if (deny_syscall_arg0(__NR_setresuid, 0, ENOMEM) < 0)
        return 90;
    azid_error err;
    azid_status st = azid_keyring_store(AZID_KEYRING_USER, UID_USERRING, GID_OF(UID_USERRING),
                                        "azid:token:lost-ruid", "t", 1, in_seconds(3600), NULL,
                                        &err);
    char want[160];
    snprintf(want, sizeof want, "cannot restore this thread's real uid to 0 after looking up the "
             "user keyring of uid %d (%s): it stays uid %d; stopping", UID_USERRING,
             strerror(ENOMEM), UID_USERRING);
    if (st != AZID_ERR_CREDENTIALS || err.status != AZID_ERR_CREDENTIALS)
        return 1;
    if (!strstr(err.message, want)) {
        fprintf(stderr, "got: %s\nwant: %s\n", err.message, want);
        return 2;
    }
    return strcmp(azid_status_name(st), "credentials") == 0 ? 0 : 3;
}

/* The file-system ids stay the user's after add_key. */
static int lost_fsuid(void *arg)
{
    (void)arg;
    login_session(UID_SESSION);
    if (deny_syscall_arg0(__NR_setfsuid, 0, ENOMEM) < 0)
        return 90;
    azid_error err;
    azid_status st = store_session(UID_SESSION, "azid:token:lost-fsuid", "t", in_seconds(3600),
                                   NULL, &err);
    char want[160];
    /* as_user's child runs with gid GID_OF(0). */
    snprintf(want, sizeof want, "cannot restore this thread's file-system ids to uid 0 gid %u "
             "after acting as the user: they stay uid %d gid %u; stopping",
             (unsigned)GID_OF(0), UID_SESSION, (unsigned)GID_OF(0));
    if (st != AZID_ERR_CREDENTIALS)
        return 1;
    if (!strstr(err.message, want)) {
        fprintf(stderr, "got: %s\nwant: %s\n", err.message, want);
        return 2;
    }
    return 0;
}

static void test_ids_not_restored(void **state)
{
    (void)state;
    assert_int_equal(as_user(0, lost_real_uid, NULL), 0);
    assert_int_equal(as_user(0, lost_fsuid, NULL), 0);
}

int main(void)
{
    if (geteuid() != 0) {
        puts("SKIP: needs root (keys are stored on behalf of other uids)");
        return 77;
    }
    if (keyctl_get_keyring_ID(KEY_SPEC_SESSION_KEYRING, 0) < 0) {
        printf("SKIP: kernel keyring unavailable: %s\n", strerror(errno));
        return 77;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_user_session_keyring),
        cmocka_unit_test(test_descriptions),
        cmocka_unit_test(test_description_fields),
        cmocka_unit_test(test_guard_accepts_login_keyring),
        cmocka_unit_test(test_guard_other_owner),
        cmocka_unit_test(test_guard_service_keyring),
        cmocka_unit_test(test_guard_shared_service_keyring),
        cmocka_unit_test(test_guard_shared_service_keyring_many_keys),
        cmocka_unit_test(test_guard_accepts_own_keys),
        cmocka_unit_test(test_guard_accepts_other_modules_keys),
        cmocka_unit_test_setup(test_store_session, setup_root_session),
        cmocka_unit_test_setup(test_store_updates_in_place, setup_root_session),
        cmocka_unit_test_setup(test_store_refuses_near_expiry, setup_root_session),
        cmocka_unit_test_setup(test_store_rejects_empty, setup_root_session),
        cmocka_unit_test_setup(test_store_refuses_expiry_out_of_range, setup_root_session),
        cmocka_unit_test_setup(test_store_user_keyring, setup_root_session),
        cmocka_unit_test_setup(test_store_persistent_keyring, setup_root_session),
        cmocka_unit_test_setup(test_store_quota, setup_root_session),
        cmocka_unit_test_setup(test_store_needs_privilege, setup_root_session),
        cmocka_unit_test_setup(test_store_failure_leaves_no_key, setup_root_session),
        cmocka_unit_test_setup(test_remove, setup_root_session),
        cmocka_unit_test_setup(test_remove_spares_reused_serial, setup_root_session),
        cmocka_unit_test_setup(test_read_absent, setup_root_session),
        cmocka_unit_test_setup(test_read_expired, setup_root_session),
        cmocka_unit_test_setup(test_list, setup_root_session),
        cmocka_unit_test_setup(test_list_many, setup_root_session),
        cmocka_unit_test_setup(test_threads, setup_root_session),
        cmocka_unit_test_setup(test_unavailable, setup_root_session),
        cmocka_unit_test(test_ids_not_restored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
