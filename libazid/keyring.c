/* SPDX-License-Identifier: MIT
 *
 * Kernel keyring storage.  The module runs as root inside sshd/login/su,
 * but the keys it stores must belong to the user: owner and quota follow
 * the creating thread's fsuid/fsgid, so those are switched around every
 * add_key, per thread (setfsuid is a plain syscall, glibc does not
 * broadcast it to other threads).  See reference/keyring.md.
 */
#include "config.h"

#include "internal.h"

#include <errno.h>
#include <keyutils.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_PREFIX "azid:token:"
#define SECRET_PREFIX "azid:secret:"
#define KEY_PREFIX "azid:"

/* Possessor view/read/write/search/setattr, owner view: the login's
 * processes (which possess the session keyring) read the key; other
 * processes of the same uid see only its description; no LINK, so it
 * cannot be copied into a keyring that outlives the session. */
#define AZID_KEY_PERM                                                                    \
    (KEY_POS_VIEW | KEY_POS_READ | KEY_POS_WRITE | KEY_POS_SEARCH | KEY_POS_SETATTR |     \
     KEY_USR_VIEW)

/* The kernel refuses longer descriptions (KEY_MAX_DESC_SIZE less the NUL). */
#define DESCRIPTION_MAX 4095
_Static_assert(sizeof TOKEN_PREFIX - 1 + AZID_RESOURCE_MAX == DESCRIPTION_MAX,
               "AZID_RESOURCE_MAX follows from the token prefix and the kernel's limit");

/* Bounds for walking keyrings in azid_keyring_list. */
#define LIST_MAX_KEYRINGS 64
#define LIST_MAX_KEYS 1024

/* ---- descriptions ------------------------------------------------------ */

static char *join3(const char *a, const char *b, const char *sep, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), ls = strlen(sep), lc = strlen(c);
    char *s = malloc(la + lb + ls + lc + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, sep, ls);
    memcpy(s + la + lb + ls, c, lc + 1);
    return s;
}

azid_status azid_resource_check(const char *resource, azid_error *err)
{
    if (!resource || !*resource)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "the resource is empty; name one, e.g. https://vault.azure.net");
    size_t n = strlen(resource);
    long bad = text_bad_char(resource, n);
    if (bad >= 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "resource '%.*s...' has a space, control or non-ASCII character at "
                       "offset %ld; a resource is one word of printable ASCII, e.g. "
                       "https://vault.azure.net", (int)(bad < 80 ? bad : 80), resource, bad);
    if (n > AZID_RESOURCE_MAX)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "resource '%.40s...' has %zu characters; at most %d fit in the key "
                       "description " TOKEN_PREFIX "<resource> (the kernel's limit is %d bytes)",
                       resource, n, AZID_RESOURCE_MAX, DESCRIPTION_MAX);
    return AZID_OK;
}

char *azid_key_description_token(const char *resource)
{
    return resource ? join3(TOKEN_PREFIX, resource, "", "") : NULL;
}

char *azid_key_description_secret(const char *vault_host, const char *name)
{
    return vault_host && name ? join3(SECRET_PREFIX, vault_host, "/", name) : NULL;
}

azid_key_kind azid_key_parse(const char *description, azid_key_fields *out)
{
    memset(out, 0, sizeof *out);
    if (!description)
        return out->kind;
    if (strncmp(description, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) == 0 &&
        description[strlen(TOKEN_PREFIX)]) {
        out->kind = AZID_KEY_TOKEN;
        out->resource = description + strlen(TOKEN_PREFIX);
    } else if (strncmp(description, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0) {
        /* Neither a host nor a secret name holds a '/'. */
        const char *host = description + strlen(SECRET_PREFIX), *slash = strchr(host, '/');
        if (slash && slash > host && slash[1] && !strchr(slash + 1, '/')) {
            out->kind = AZID_KEY_SECRET;
            out->vault_host = host;
            out->vault_host_length = (size_t)(slash - host);
            out->name = slash + 1;
        }
    }
    return out->kind;
}

/* ---- errors -------------------------------------------------------------- */

static bool facility_unavailable(int e)
{
    return e == EPERM || e == ENOSYS;
}

static azid_status unavailable(azid_error *err, int e, const char *what)
{
    return err_set(err, AZID_ERR_KEYRING,
                   "kernel keyring unavailable (%s: %s): keyctl is blocked here (container "
                   "seccomp profile) or the kernel lacks CONFIG_KEYS; no key can be stored",
                   what, strerror(e));
}

static void read_sysctl(const char *name, char *buf, size_t size)
{
    char path[128], *text;
    snprintf(path, sizeof path, "/proc/sys/kernel/keys/%s", name);
    if (file_read_small(path, "", size - 1, 0, &text, NULL, NULL, NULL) != AZID_OK) {
        snprintf(buf, size, "?");
        return;
    }
    snprintf(buf, size, "%.*s", (int)strcspn(text, "\n"), text);
    free(text);
}

/* Maps the errno of a failed store step to a status and message. */
static azid_status store_error(azid_error *err, int e, const char *step, const char *description,
                               uid_t uid)
{
    if (e == EDQUOT) {
        char bytes[32], keys[32];
        read_sysctl(uid == 0 ? "root_maxbytes" : "maxbytes", bytes, sizeof bytes);
        read_sysctl(uid == 0 ? "root_maxkeys" : "maxkeys", keys, sizeof keys);
        return err_set(err, AZID_ERR_QUOTA,
                       "cannot store %s: the key quota of uid %u is full (EDQUOT; "
                       "kernel.keys.%s=%s, kernel.keys.%s=%s, shared by all its sessions); raise "
                       "them with sysctl or store fewer resources/secrets",
                       description, (unsigned)uid, uid == 0 ? "root_maxbytes" : "maxbytes", bytes,
                       uid == 0 ? "root_maxkeys" : "maxkeys", keys);
    }
    if (facility_unavailable(e))
        return unavailable(err, e, step);
    return err_set(err, AZID_ERR_KEYRING, "cannot store %s (%s): %s", description, step,
                   strerror(e));
}

/* ---- credentials ----------------------------------------------------------- */

/* The real uid decides which user keyring KEY_SPEC_USER_KEYRING names.  The
 * raw syscall changes only this thread; glibc's setresuid would change every
 * thread of the host process (as pam_keyinit explains). */
static int thread_setresuid(uid_t r, uid_t e, uid_t s)
{
#ifdef SYS_setresuid32
    return (int)syscall(SYS_setresuid32, r, e, s);
#else
    return (int)syscall(SYS_setresuid, r, e, s);
#endif
}

struct fs_creds {
    uid_t fsuid;
    gid_t fsgid;
};

/* Puts the file-system ids back and reads them back: a thread left acting
 * on files and keys as the user must not go unnoticed. */
static azid_status fs_creds_restore(const struct fs_creds *saved, azid_error *err)
{
    setfsuid(saved->fsuid);
    setfsgid(saved->fsgid);
    uid_t fsuid = (uid_t)setfsuid((uid_t)-1);
    gid_t fsgid = (gid_t)setfsgid((gid_t)-1);
    if (fsuid == saved->fsuid && fsgid == saved->fsgid)
        return AZID_OK;
    return err_set(err, AZID_ERR_CREDENTIALS,
                   "cannot restore this thread's file-system ids to uid %u gid %u after acting "
                   "as the user: they stay uid %u gid %u; stopping",
                   (unsigned)saved->fsuid, (unsigned)saved->fsgid, (unsigned)fsuid,
                   (unsigned)fsgid);
}

/* Makes this thread act on the file system and the keyring as uid/gid.
 * setfs[ug]id report the previous id, never an error: read back to check. */
static azid_status fs_creds_become(struct fs_creds *saved, uid_t uid, gid_t gid, azid_error *err)
{
    saved->fsgid = (gid_t)setfsgid(gid);
    saved->fsuid = (uid_t)setfsuid(uid);
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) {
        if (fs_creds_restore(saved, err) != AZID_OK)
            return AZID_ERR_CREDENTIALS;
        return err_set(err, AZID_ERR_SYSTEM,
                       "cannot act as uid %u gid %u to own the key (running as uid %u without "
                       "CAP_SETUID/CAP_SETGID)",
                       (unsigned)uid, (unsigned)gid, (unsigned)getuid());
    }
    return AZID_OK;
}


/* ---- keyring targets ------------------------------------------------------- */

int key_describe(int32_t key, struct key_desc *d)
{
    d->heap = NULL;
    long size = keyctl_describe(key, d->text, sizeof d->text);
    if (size < 0)
        return -1;
    const char *text = d->text;
    /* Too long for text, which the kernel then left alone. */
    if ((size_t)size > sizeof d->text) {
        if (keyctl_describe_alloc(key, &d->heap) < 0)
            return -1;
        text = d->heap;
    }
    int n = 0;
    if (sscanf(text, "%31[^;];%u;%u;%x;%n", d->type, &d->uid, &d->gid, &d->perm, &n) != 4 ||
        n == 0) {
        key_desc_free(d);
        errno = EINVAL;
        return -1;
    }
    d->description = text + n;
    return 0;
}

void key_desc_free(struct key_desc *d)
{
    free(d->heap);
    d->heap = NULL;
}

int proc_keys_each(int (*each)(const struct proc_key *k, void *ctx), void *ctx)
{
    FILE *f = fopen("/proc/keys", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t size = 0;
    int stop = 0;
    while (!stop && getline(&line, &size, f) >= 0) {
        struct proc_key k;
        unsigned serial;
        int n = 0;
        if (sscanf(line, "%x %7s %ld %7s %*s %*s %*s %15s %n", &serial, k.flags, &k.usage,
                   k.timeout, k.type, &n) != 5 || n == 0)
            continue;
        k.serial = (int32_t)serial;
        k.rest = line + n;
        stop = each(&k, ctx);
    }
    free(line);
    fclose(f);
    return stop;
}

/* The keys a keyring links.  Most link a few: one system call reads them
 * into few; when there are more, the kernel gives the size instead and they
 * are read into more. */
struct key_list {
    key_serial_t few[32];
    void *more;
    const key_serial_t *serials;
    long n; /* 0 when the keyring cannot be read */
};

static void key_list_read(key_serial_t ring, struct key_list *l)
{
    l->more = NULL;
    l->serials = l->few;
    long size = keyctl_read(ring, (char *)l->few, sizeof l->few);
    if (size > (long)sizeof l->few) {
        size = keyctl_read_alloc(ring, &l->more);
        l->serials = l->more;
    }
    l->n = size > 0 ? size / (long)sizeof(key_serial_t) : 0;
}

static void key_list_free(struct key_list *l)
{
    free(l->more);
    l->more = NULL;
}

/* The user keyring (_uid.<uid>) of uid.  When the caller's real uid differs
 * (root in sshd), the real uid is switched for the lookup, as pam_keyinit
 * does, because the kernel resolves @u from it.  setresuid also resets the
 * fsuid to the euid, so the fsuid is set to uid again afterwards.  When the
 * real uid cannot be switched back, *lost_ruid tells the caller, which must
 * fail hard: the thread would go on with the user's real uid. */
static key_serial_t user_keyring_of(uid_t uid, int *lost_ruid)
{
    uid_t ruid = getuid();
    if (ruid == uid)
        return keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 1);
    if (thread_setresuid(uid, (uid_t)-1, (uid_t)-1) < 0)
        return -1;
    key_serial_t u = keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 1);
    int e = errno;
    if (thread_setresuid(ruid, (uid_t)-1, (uid_t)-1) < 0) {
        e = errno;
        u = -1;
        *lost_ruid = 1;
    }
    setfsuid(uid);
    errno = e;
    return u;
}

/* Where a key for target goes.  A user or persistent keyring is not
 * possessed by the calling process, and without possession the new key's
 * timeout and permissions cannot be set (only possessor bits allow it), so
 * it is linked into this thread's keyring for the duration of the store
 * (*staged = true; unstage_target removes that link). */
static key_serial_t open_target(azid_keyring target, uid_t uid, bool *staged, const char **step,
                                int *lost_ruid)
{
    key_serial_t k;
    *staged = false;
    switch (target) {
    case AZID_KEYRING_SESSION:
        /* Never create one: a new session keyring made here would be
         * root's and nobody's login. */
        *step = "session keyring";
        return keyctl_get_keyring_ID(KEY_SPEC_SESSION_KEYRING, 0);
    case AZID_KEYRING_USER:
        *step = "user keyring";
        k = user_keyring_of(uid, lost_ruid);
        if (k < 0)
            return -1;
        if (keyctl_link(k, KEY_SPEC_THREAD_KEYRING) < 0)
            return -1;
        *staged = true;
        return k;
    case AZID_KEYRING_PERSISTENT:
        *step = "persistent keyring";
        k = keyctl_get_persistent(uid, KEY_SPEC_THREAD_KEYRING);
        if (k >= 0)
            *staged = true;
        return k;
    }
    errno = EINVAL;
    return -1;
}

static void unstage_target(key_serial_t keyring, bool staged)
{
    if (staged)
        keyctl_unlink(keyring, KEY_SPEC_THREAD_KEYRING);
}

/* ---- the guard ---------------------------------------------------------------- */

/* What a session keyring holds, as far as the guard cares: whether it
 * links uid's user keyring directly, as pam_keyinit's new session keyrings
 * do, and whether it holds systemd's "invocation_id" key.  A keyring some
 * service created for itself does not link it (systemd's
 * KeyringMode=private, shared by every sshd connection), or links the
 * service user's and holds that key (KeyringMode=shared: for a root login
 * the owner and the link are right, yet every connection shares it).  Keys
 * that other session modules put there before pam_azid (a Kerberos
 * KEYRING: cache, say) are the login's own and do not count. */
struct session_contents {
    bool links_user;
    bool service_marker;
};

static void scan_session(key_serial_t keyring, uid_t uid, struct session_contents *c)
{
    struct key_list l;
    key_list_read(keyring, &l);
    char want[32];
    snprintf(want, sizeof want, "_uid.%u", (unsigned)uid);
    c->links_user = false;
    c->service_marker = false;
    for (long i = 0; i < l.n; i++) {
        struct key_desc d;
        if (key_describe(l.serials[i], &d) != 0)
            continue;
        if (strcmp(d.type, "keyring") == 0 && d.uid == uid && strcmp(d.description, want) == 0)
            c->links_user = true;
        else if (strcmp(d.type, "user") == 0 && strcmp(d.description, "invocation_id") == 0)
            c->service_marker = true;
        key_desc_free(&d);
    }
    key_list_free(&l);
}

#define KEYINIT_HINT                                                                      \
    "list 'session optional pam_keyinit.so force revoke' before pam_azid.so; nothing is " \
    "stored into a shared or someone else's keyring"

/* A special keyring's serial, never creating it. */
static azid_status lookup_keyring(key_serial_t id, const char *name, key_serial_t *out,
                                  azid_error *err)
{
    *out = keyctl_get_keyring_ID(id, 0);
    if (*out >= 0)
        return AZID_OK;
    if (facility_unavailable(errno))
        return unavailable(err, errno, name);
    return err_set(err, AZID_ERR_KEYRING, "cannot look up the %s: %s", name, strerror(errno));
}

azid_status azid_keyring_check_session(uid_t uid, azid_error *err)
{
    key_serial_t s, us;
    azid_status st = lookup_keyring(KEY_SPEC_SESSION_KEYRING, "session keyring", &s, err);
    if (st == AZID_OK)
        st = lookup_keyring(KEY_SPEC_USER_SESSION_KEYRING, "user-session keyring", &us, err);
    if (st != AZID_OK)
        return st;
    struct key_desc d;
    if (key_describe(s, &d) < 0)
        return err_set(err, AZID_ERR_KEYRING, "cannot describe the session keyring %d: %s", s,
                       strerror(errno));
    if (s == us || strncmp(d.description, "_uid_ses.", 9) == 0)
        st = err_set(err, AZID_ERR_NOT_SESSION,
                     "the session keyring is not a per-login keyring of uid %u: it is the "
                     "user-session keyring %s of uid %u (no pam_keyinit in this stack?); %s",
                     (unsigned)uid, d.description, d.uid, KEYINIT_HINT);
    else if (d.uid != uid)
        st = err_set(err, AZID_ERR_NOT_SESSION,
                     "the session keyring is not a per-login keyring of uid %u: %s %d belongs "
                     "to uid %u (su/sudo without a new session, or no pam_keyinit?); %s",
                     (unsigned)uid, d.description, s, d.uid, KEYINIT_HINT);
    else {
        struct session_contents c;
        scan_session(s, uid, &c);
        if (!c.links_user)
            st = err_set(err, AZID_ERR_NOT_SESSION,
                         "the session keyring is not a per-login keyring of uid %u: %s %d does "
                         "not link _uid.%u as pam_keyinit's do (a keyring shared by a "
                         "service?); %s",
                         (unsigned)uid, d.description, s, (unsigned)uid, KEYINIT_HINT);
        else if (c.service_marker)
            st = err_set(err, AZID_ERR_NOT_SESSION,
                         "the session keyring is not a per-login keyring of uid %u: %s %d "
                         "holds user invocation_id, which pam_keyinit's new keyrings do not "
                         "(a service's keyring, such as systemd's KeyringMode=shared?); %s",
                         (unsigned)uid, d.description, s, KEYINIT_HINT);
    }
    key_desc_free(&d);
    if (st == AZID_OK)
        err_clear(err);
    return st;
}

static bool key_gone(int e)
{
    return e == ENOKEY || e == EKEYEXPIRED || e == EKEYREVOKED;
}

/* ---- store, remove ------------------------------------------------------------- */

azid_status azid_keyring_store(azid_keyring target, uid_t uid, gid_t gid, const char *description,
                               const void *payload, size_t length, int64_t expires_on,
                               int32_t *serial, azid_error *err)
{
    if (serial)
        *serial = -1;
    if (!description || !*description)
        return err_set(err, AZID_ERR_ARGUMENT, "cannot store a key without a description");
    /* add_key would fail with a bare EINVAL. */
    if (!payload || length == 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "cannot store %s: the kernel does not store an empty user key; %s",
                       description,
                       strncmp(description, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0
                           ? "give the secret a non-empty value in the vault"
                           : "store a non-empty value");
    /* The kernel's limit for a "user" key. */
    if (length > 32767)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "cannot store %s: %zu bytes is more than a user key holds (32767)",
                       description, length);
    if (expires_on < -AZID_EPOCH_MAX || expires_on > AZID_EPOCH_MAX)
        return err_set(err, AZID_ERR_ARGUMENT, "not storing %s: its expiry %lld is out of range",
                       description, (long long)expires_on);
    int64_t timeout = expires_on - AZID_EXPIRY_SKEW_S - (int64_t)time(NULL);
    if (timeout <= 0)
        return err_set(err, AZID_ERR_ARGUMENT,
                       "not storing %s: it expires at %lld, less than %d s from now",
                       description, (long long)expires_on, AZID_EXPIRY_SKEW_S);
    if (timeout > UINT_MAX)
        timeout = UINT_MAX;

    /* Created before the switch so that root, not the user, owns it and
     * pays for it: it stays with this thread after the store. */
    if (target != AZID_KEYRING_SESSION && keyctl_get_keyring_ID(KEY_SPEC_THREAD_KEYRING, 1) < 0)
        return store_error(err, errno, "thread keyring", description, uid);

    uid_t saved_ruid = getuid();
    struct fs_creds saved;
    azid_status st = fs_creds_become(&saved, uid, gid, err);
    if (st != AZID_OK)
        return st;

    bool staged = false;
    const char *step = "";
    key_serial_t key = -1;
    int lost_ruid = 0;
    key_serial_t dest = open_target(target, uid, &staged, &step, &lost_ruid);
    int e = 0;
    if (lost_ruid) {
        int ruid_errno = errno;
        uid_t now_ruid = getuid();
        fs_creds_restore(&saved, NULL);
        return err_set(err, AZID_ERR_CREDENTIALS,
                       "cannot restore this thread's real uid to %u after looking up the user "
                       "keyring of uid %u (%s): it stays uid %u; stopping",
                       (unsigned)saved_ruid, (unsigned)uid, strerror(ruid_errno),
                       (unsigned)now_ruid);
    }
    if (dest < 0) {
        e = errno;
    } else {
        step = "add_key";
        /* An existing key of that description is updated in place and its
         * timeout reset to never: the timeout below is set on every write. */
        key = add_key("user", description, payload, length, dest);
        if (key < 0) {
            e = errno;
        } else if (keyctl_set_timeout(key, (unsigned)timeout) < 0) {
            e = errno;
            step = "set timeout";
        } else if (keyctl_setperm(key, AZID_KEY_PERM) < 0) {
            e = errno;
            step = "set permissions";
        }
        if (e && key >= 0) {
            /* Never leave a key without its timeout or with wider rights. */
            keyctl_invalidate(key);
            key = -1;
        }
        unstage_target(dest, staged);
    }
    if (fs_creds_restore(&saved, err) != AZID_OK)
        return AZID_ERR_CREDENTIALS;

    if (e)
        return store_error(err, e, step, description, uid);
    if (serial)
        *serial = key;
    err_clear(err);
    return AZID_OK;
}

/* pam_keyinit's revoke runs before pam_azid's close and clears the session
 * keyring: its keys lose their last link (and this process its possession,
 * hence EACCES) and are collected. */
static bool session_keyring_revoked(void)
{
    return keyctl_get_keyring_ID(KEY_SPEC_SESSION_KEYRING, 0) < 0 && errno == EKEYREVOKED;
}

/* Whether serial still names an azid key.  Serials are reused once a key
 * is collected: a key that expired during a long login may have handed its
 * serial to another key this process can reach (a Kerberos ccache in the
 * same session keyring, a key of root's), which is not ours to remove. */
static bool is_azid_key(key_serial_t serial)
{
    struct key_desc d;
    if (key_describe(serial, &d) < 0)
        return !key_gone(errno); /* not viewable: let invalidate decide */
    bool ours = strcmp(d.type, "user") == 0 &&
                strncmp(d.description, KEY_PREFIX, strlen(KEY_PREFIX)) == 0;
    key_desc_free(&d);
    return ours;
}

azid_status azid_keyring_remove(int32_t serial, azid_error *err)
{
    if (is_azid_key(serial) && keyctl_invalidate(serial) < 0) {
        int e = errno;
        if (facility_unavailable(e))
            return unavailable(err, e, "invalidate");
        if (!key_gone(e) && !(e == EACCES && session_keyring_revoked()))
            return err_set(err, AZID_ERR_KEYRING,
                           "cannot remove key %d: %s (no longer in a keyring this process "
                           "possesses?)",
                           serial, strerror(e));
    }
    err_clear(err);
    return AZID_OK;
}

/* ---- read ---------------------------------------------------------------- */

/* keyctl_read_alloc frees intermediate buffers without wiping them; this
 * loop wipes every copy of the value. */
static long read_wiped(key_serial_t key, char **out)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        long size = keyctl_read(key, NULL, 0);
        if (size < 0)
            return -1;
        char *buf = malloc((size_t)size + 1);
        if (!buf) {
            errno = ENOMEM;
            return -1;
        }
        long n = keyctl_read(key, buf, (size_t)size);
        if (n >= 0 && n <= size) {
            buf[n] = '\0';
            *out = buf;
            return n;
        }
        int e = errno;
        wipe_free(buf, (size_t)size + 1);
        if (n < 0) {
            errno = e;
            return -1;
        }
    }
    errno = EAGAIN;
    return -1;
}

/* A dead one (invalidated, revoked) can stay listed until the kernel
 * collects it: reaching for it would make a new one. */
static int is_live_persistent(const struct proc_key *k, void *wanted)
{
    size_t n = strlen(wanted);
    return k->flags[0] == 'I' && !strpbrk(k->flags, "RDNi") && strcmp(k->type, "keyring") == 0 &&
           strncmp(k->rest, wanted, n) == 0 && k->rest[n] == ':';
}

/* The caller's persistent keyring (keyring=persistent: cron, systemd
 * --user), linked into this thread's keyring so that searches reach what
 * it holds; -1 when the caller has none.  Only one that exists is reached:
 * keyctl_get_persistent would make one, and a command that reads keys
 * leaves no keyring behind.  /proc/keys lists it to its owner. */
static key_serial_t reach_persistent(void)
{
    char wanted[32];
    snprintf(wanted, sizeof wanted, "_persistent.%u", (unsigned)getuid());
    return proc_keys_each(is_live_persistent, wanted) > 0
               ? keyctl_get_persistent(-1, KEY_SPEC_THREAD_KEYRING)
               : -1;
}

azid_status azid_keyring_read(const char *description, char **payload, size_t *length,
                              azid_error *err)
{
    *payload = NULL;
    if (length)
        *length = 0;
    if (!description || !*description)
        return err_set(err, AZID_ERR_ARGUMENT, "no key description given");
    /* request_key without callout searches the thread, process and session
     * keyrings (and what they link, such as @u under pam_keyinit) and skips
     * expired keys; it never runs /sbin/request-key. */
    key_serial_t key = request_key("user", description, NULL, 0);
    if (key < 0 && errno == ENOKEY)
        key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", description, 0);
    if (key < 0 && errno == ENOKEY) {
        if (reach_persistent() >= 0)
            key = request_key("user", description, NULL, 0);
        else
            errno = ENOKEY; /* what /proc/keys or keyctl said is not the answer */
    }
    if (key < 0) {
        int e = errno;
        if (key_gone(e))
            return err_set(err, AZID_ERR_NOT_FOUND,
                           "no key %s in your session, user or persistent keyring (%s); log in "
                           "again or run azid fetch",
                           description,
                           e == ENOKEY ? "expired or never stored" : strerror(e));
        if (facility_unavailable(e))
            return unavailable(err, e, "request_key");
        return err_set(err, AZID_ERR_KEYRING, "cannot look up key %s: %s", description,
                       strerror(e));
    }
    char *buf = NULL;
    long n = read_wiped(key, &buf);
    if (n < 0) {
        int e = errno;
        if (key_gone(e))
            return err_set(err, AZID_ERR_NOT_FOUND, "key %s (%d) is no longer readable (%s); "
                           "log in again or run azid fetch",
                           description, key, strerror(e));
        if (e == EACCES)
            return err_set(err, AZID_ERR_KEYRING,
                           "key %s (%d) exists but this process does not possess it (Permission "
                           "denied): read it from the login session that stored it, or link "
                           "the keyring holding it into your session keyring",
                           description, key);
        return err_set(err, AZID_ERR_KEYRING, "cannot read key %s (%d): %s", description, key,
                       strerror(e));
    }
    *payload = buf;
    if (length)
        *length = (size_t)n;
    err_clear(err);
    return AZID_OK;
}

/* ---- list ------------------------------------------------------------------- */

struct found_key {
    key_serial_t serial;
    char *description;
    long seconds_left;
};

/* /proc/keys is the only place the kernel shows a key's remaining time,
 * rounded down to its unit: "perm", "expd", "42s", "5m", "3h", "2d", "1w". */
static long parse_timeout(const char *s)
{
    if (strcmp(s, "perm") == 0)
        return -1;
    if (strcmp(s, "expd") == 0)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    static const struct {
        char unit;
        long seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (*end == units[i].unit)
            return v * units[i].seconds;
    return -1;
}

struct found_keys {
    struct found_key *keys;
    size_t n;
};

static int fill_timeout(const struct proc_key *k, void *ctx)
{
    struct found_keys *found = ctx;
    for (size_t i = 0; i < found->n; i++)
        if (found->keys[i].serial == k->serial)
            found->keys[i].seconds_left = parse_timeout(k->timeout);
    return 0;
}

static void fill_timeouts(struct found_key *keys, size_t n)
{
    struct found_keys found = {keys, n};
    proc_keys_each(fill_timeout, &found);
}

struct walk {
    key_serial_t rings[LIST_MAX_KEYRINGS];
    size_t nrings;
    struct found_key keys[LIST_MAX_KEYS];
    size_t nkeys;
};

static bool walk_seen(const struct walk *w, key_serial_t k)
{
    for (size_t i = 0; i < w->nrings; i++)
        if (w->rings[i] == k)
            return true;
    for (size_t i = 0; i < w->nkeys; i++)
        if (w->keys[i].serial == k)
            return true;
    return false;
}

static void walk_add_ring(struct walk *w, key_serial_t k)
{
    if (k >= 0 && w->nrings < LIST_MAX_KEYRINGS && !walk_seen(w, k))
        w->rings[w->nrings++] = k;
}

static azid_status walk_keyring(struct walk *w, key_serial_t ring)
{
    struct key_list l;
    key_list_read(ring, &l);
    for (long i = 0; i < l.n; i++) {
        key_serial_t k = l.serials[i];
        struct key_desc d;
        if (walk_seen(w, k) || key_describe(k, &d) < 0)
            continue; /* expired, revoked or not viewable: not listed */
        if (strcmp(d.type, "keyring") == 0) {
            walk_add_ring(w, k);
        } else if (strcmp(d.type, "user") == 0 &&
                   strncmp(d.description, KEY_PREFIX, strlen(KEY_PREFIX)) == 0 &&
                   w->nkeys < LIST_MAX_KEYS) {
            char *desc = strdup(d.description);
            if (!desc) {
                key_desc_free(&d);
                key_list_free(&l);
                return AZID_ERR_NOMEM;
            }
            w->keys[w->nkeys++] = (struct found_key){k, desc, -1};
        }
        key_desc_free(&d);
    }
    key_list_free(&l);
    return AZID_OK;
}

azid_status azid_keyring_list(void (*visit)(const azid_key_info *key, void *ctx), void *ctx,
                              azid_error *err)
{
    struct walk *w = calloc(1, sizeof *w);
    if (!w)
        return err_nomem(err, "listing keys");
    key_serial_t s = keyctl_get_keyring_ID(KEY_SPEC_SESSION_KEYRING, 0);
    if (s < 0 && facility_unavailable(errno)) {
        free(w);
        return unavailable(err, errno, "session keyring");
    }
    /* The keyrings the caller possesses, then its user keyring (whose keys
     * it can see even when it cannot read them). */
    walk_add_ring(w, keyctl_get_keyring_ID(KEY_SPEC_THREAD_KEYRING, 0));
    walk_add_ring(w, keyctl_get_keyring_ID(KEY_SPEC_PROCESS_KEYRING, 0));
    walk_add_ring(w, s);
    walk_add_ring(w, keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 0));
    walk_add_ring(w, reach_persistent());
    azid_status st = AZID_OK;
    for (size_t i = 0; i < w->nrings && st == AZID_OK; i++)
        st = walk_keyring(w, w->rings[i]);
    if (st == AZID_OK) {
        fill_timeouts(w->keys, w->nkeys);
        for (size_t i = 0; i < w->nkeys; i++) {
            if (w->keys[i].seconds_left == 0)
                continue; /* expired between the walk and /proc/keys */
            azid_key_info info = {w->keys[i].serial, w->keys[i].description,
                                  w->keys[i].seconds_left};
            visit(&info, ctx);
        }
        err_clear(err);
    } else {
        err_nomem(err, "listing keys");
    }
    for (size_t i = 0; i < w->nkeys; i++)
        free(w->keys[i].description);
    free(w);
    return st;
}
