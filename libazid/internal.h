/* SPDX-License-Identifier: MIT
 * Helpers shared by libazid's files.  Not installed, not exported. */
#ifndef AZID_INTERNAL_H
#define AZID_INTERNAL_H

#include "azid.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define AZID_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Fills err (when non-NULL) and returns status, so a failure reads
 * `return err_set(err, AZID_ERR_HTTP, "...", ...);`.  http_status is left
 * as it was; set it with err_set_http. */
azid_status err_set(azid_error *err, azid_status status, const char *fmt, ...) AZID_PRINTF(3, 4);
azid_status err_set_http(azid_error *err, azid_status status, long http_status,
                         const char *fmt, ...) AZID_PRINTF(4, 5);
/* Resets err to AZID_OK with an empty message. */
void err_clear(azid_error *err);
/* AZID_ERR_NOMEM with "out of memory <doing>" ("out of memory" when doing
 * is NULL or ""), e.g. err_nomem(err, "reading the response"). */
azid_status err_nomem(azid_error *err, const char *doing);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* explicit_bzero(p, n) then free(p); NULL is a no-op. */
void wipe_free(void *p, size_t n);
/* wipe_free of a NUL-terminated string. */
void wipe_free_str(char *s);

/* wipe_alloc.c: free and realloc for libcurl and jansson that wipe every
 * block they give back.  Install them only after wipe_alloc_pin() (1: the
 * object holding them stays mapped for the life of the process). */
void wipe_alloc_free(void *p);
void *wipe_alloc_realloc(void *p, size_t size);
int wipe_alloc_pin(void);
/* Makes jansson free through wipe_alloc_free, unless the process gave it an
 * allocator of its own. */
void wipe_alloc_install_jansson(void);

/* ---- small shared helpers (util.c) ---- */

/* Makes room for at least need items of size bytes in the array *items
 * points to (any T **), whose allocation holds *capacity items: it doubles,
 * starting at 8.  With wipe the old block is copied and wiped instead of
 * realloc'ed, for arrays that hold secrets.  0, or -1 when out of memory or
 * the size overflows (then nothing changed). */
int array_grow(void *items, size_t *capacity, size_t need, size_t size, int wipe);

/* The one rule for a word: non-empty printable ASCII with no space or
 * control character (what goes into an HTTP header, a URL query or a key
 * description).  text_bad_char returns the offset of the first bad byte,
 * -1 when the value is a word, 0 when it is empty. */
long text_bad_char(const char *value, size_t length);
int text_is_word(const char *value); /* NULL is not a word */

/* Reads a small file into *data (malloc'ed, NUL-terminated; wipe it after
 * use: it may be a key), refusing anything but a regular file of 1 to max
 * bytes.  The last component must not be a symbolic link unless flags has
 * FILE_FOLLOW (Kubernetes projects tokens through links).  what names the
 * file in messages ("the Arc key file").  *st (may be NULL) gets the file's
 * status from the open descriptor, also when the file is refused.
 * AZID_ERR_SYSTEM (cannot open or read, errno kept), AZID_ERR_ARGUMENT (not
 * regular, empty, too large), AZID_ERR_NOMEM. */
#define FILE_FOLLOW 1u
#define FILE_EMPTY_OK 2u /* 0 bytes is a valid file (an empty config file) */
azid_status file_read_small(const char *path, const char *what, size_t max, unsigned flags,
                            char **data, size_t *length, struct stat *st, azid_error *err);

/* keyring.c: what keyctl_describe says of a key, "type;uid;gid;perm;
 * description", parsed.  key_describe: 0, or -1 with errno (EINVAL for a
 * malformed answer); description points into d, valid until
 * key_desc_free(d). */
struct key_desc {
    char type[32];
    unsigned uid, gid, perm;
    const char *description;
    char text[256]; /* what azid reads fits: one system call, no allocation */
    char *heap;     /* a longer one */
};
int key_describe(int32_t key, struct key_desc *d);
void key_desc_free(struct key_desc *d);

/* One line of /proc/keys ("serial flags usage timeout perm uid gid type
 * description: summary"), as proc_keys_each gives it. */
struct proc_key {
    int32_t serial;
    char flags[8];   /* "I--Q---": R revoked, D dead, N negative, i invalidated */
    long usage;
    char timeout[8]; /* "perm", "expd", "42s", "5m", ... */
    char type[16];
    const char *rest; /* the description, ": " and the type's summary */
};
/* Calls each with every line of /proc/keys, whole (a description may be
 * 4095 bytes: a piece of one read as a line could pass for another key's),
 * until it returns nonzero (then that value is returned; 0 otherwise).
 * -1 with errno when the file cannot be read. */
int proc_keys_each(int (*each)(const struct proc_key *k, void *ctx), void *ctx);

/* Keeps the object (program or shared object) holding addr mapped for the
 * rest of the process, whoever unloads it (RTLD_NODELETE).  1 when it is. */
int keep_loaded(const void *addr);

#endif
