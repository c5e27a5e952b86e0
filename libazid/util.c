/* SPDX-License-Identifier: MIT
 * Small helpers every libazid file shares, each written once: a growable
 * array, the printable-word rule and a safe reader for small files. */
#include "config.h"

#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int array_grow(void *items, size_t *capacity, size_t need, size_t size, int wipe)
{
    if (need <= *capacity)
        return 0;
    size_t cap = *capacity ? *capacity : 8;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    if (size && cap > SIZE_MAX / size)
        return -1;
    void *old;
    memcpy(&old, items, sizeof old);
    void *grown;
    if (wipe) {
        /* realloc may leave the old block behind unwiped. */
        grown = malloc(cap * size);
        if (!grown)
            return -1;
        if (old) {
            memcpy(grown, old, *capacity * size);
            wipe_free(old, *capacity * size);
        }
    } else if (!(grown = realloc(old, cap * size))) {
        return -1;
    }
    memcpy(items, &grown, sizeof grown);
    *capacity = cap;
    return 0;
}

long text_bad_char(const char *value, size_t length)
{
    if (length == 0)
        return 0;
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)value[i] <= 0x20 || (unsigned char)value[i] >= 0x7f)
            return (long)i;
    return -1;
}

int text_is_word(const char *value)
{
    return value && text_bad_char(value, strlen(value)) < 0;
}

azid_status file_read_small(const char *path, const char *what, size_t max, unsigned flags,
                            char **data, size_t *length, struct stat *st, azid_error *err)
{
    *data = NULL;
    if (length)
        *length = 0;
    /* O_NONBLOCK: a FIFO put in the file's place must not hang the caller. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
                            (flags & FILE_FOLLOW ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        int e = errno;
        err_set(err, AZID_ERR_SYSTEM, "cannot open %s %s: %s", what, path, strerror(e));
        errno = e;
        return AZID_ERR_SYSTEM;
    }
    struct stat sb;
    azid_status status = AZID_OK;
    char *buf = NULL;
    ssize_t n = 0;
    int e = 0;
    int stat_ok = fstat(fd, &sb) == 0;
    if (!stat_ok) {
        e = errno;
        status = err_set(err, AZID_ERR_SYSTEM, "cannot stat %s %s: %s", what, path, strerror(e));
    } else if (!S_ISREG(sb.st_mode)) {
        status = err_set(err, AZID_ERR_ARGUMENT, "%s %s is not a regular file", what, path);
    } else if (!(buf = malloc(max + 1))) {
        status = err_nomem(err, "reading a file");
    } else {
        size_t got = 0;
        while (got <= max && (n = read(fd, buf + got, max + 1 - got)) > 0)
            got += (size_t)n;
        e = errno;
        if (n < 0)
            status = err_set(err, AZID_ERR_SYSTEM, "cannot read %s %s: %s", what, path,
                             strerror(e));
        else if ((got == 0 && !(flags & FILE_EMPTY_OK)) || got > max) {
            /* The size is read, not trusted: procfs and sysfs report 0 or
             * 4096; a regular file's own size makes the clearer message. */
            char size[32] = "0";
            if (got && (uintmax_t)sb.st_size > max)
                snprintf(size, sizeof size, "%lld", (long long)sb.st_size);
            else if (got)
                snprintf(size, sizeof size, "more than %zu", max);
            status = err_set(err, AZID_ERR_ARGUMENT, "%s %s has %s bytes; expected 1 to %zu",
                             what, path, size, max);
        }
        else
            buf[got] = '\0';
        n = (ssize_t)got;
    }
    if (st && stat_ok)
        *st = sb;
    close(fd);
    if (status != AZID_OK) {
        wipe_free(buf, buf ? max + 1 : 0);
        errno = e;
        return status;
    }
    *data = buf;
    if (length)
        *length = (size_t)n;
    return AZID_OK;
}

int keep_loaded(const void *addr)
{
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname)
        return 0;
    return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != NULL;
}
