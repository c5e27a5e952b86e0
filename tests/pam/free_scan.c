/* SPDX-License-Identifier: MIT
 *
 * Test helper, loaded with LD_PRELOAD: looks into every heap block as it is
 * freed (free, and the old block of a realloc that moves) for the values
 * named in AZID_FREE_SCAN (comma-separated, each at least 16 characters)
 * and appends one line per copy found to the file AZID_FREE_SCAN_LOG:
 *
 *   copy of value N in a B-byte block freed by OBJECT (SYMBOL)
 *
 * OBJECT and SYMBOL are where the free was called from, so a copy left
 * unwiped is traced to the library that made it.  A line "scanned N
 * blocks" at exit shows that the scanner ran.  Only the first 24
 * characters of a value are looked for, so that a truncated copy counts.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VALUES 8
#define PROBE 24

void __libc_free(void *p);
void *__libc_malloc(size_t size);
void *__libc_realloc(void *p, size_t size);

static char values[MAX_VALUES][PROBE];
static size_t nvalues;
static int log_fd = -1;
static unsigned long scanned;

__attribute__((constructor)) static void scan_init(void)
{
    const char *list = getenv("AZID_FREE_SCAN"), *path = getenv("AZID_FREE_SCAN_LOG");
    if (!list || !path)
        return;
    while (*list && nvalues < MAX_VALUES) {
        size_t n = strcspn(list, ",");
        if (n >= 16) {
            memcpy(values[nvalues++], list, n < PROBE ? n : PROBE);
        }
        list += n + (list[n] == ',');
    }
    log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

__attribute__((destructor)) static void scan_done(void)
{
    if (log_fd >= 0)
        dprintf(log_fd, "scanned %lu blocks\n", scanned);
}

static size_t probe_len(size_t i)
{
    return strnlen(values[i], PROBE);
}

static void scan(void *p, const void *caller)
{
    if (log_fd < 0 || !p)
        return;
    size_t size = malloc_usable_size(p);
    scanned++;
    for (size_t i = 0; i < nvalues; i++) {
        if (!memmem(p, size, values[i], probe_len(i)))
            continue;
        Dl_info info;
        int named = dladdr(caller, &info);
        dprintf(log_fd, "copy of value %zu in a %zu-byte block freed by %s (%s)\n", i, size,
                named && info.dli_fname ? info.dli_fname : "?",
                named && info.dli_sname ? info.dli_sname : "?");
    }
}

void free(void *p)
{
    scan(p, __builtin_return_address(0));
    __libc_free(p);
}

/* glibc's realloc frees a moved block internally, past free(): move it
 * here so that the old block is scanned. */
void *realloc(void *p, size_t size)
{
    if (!p || log_fd < 0)
        return __libc_realloc(p, size);
    if (size == 0) {
        free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    if (size <= old)
        return p;
    void *grown = __libc_malloc(size);
    if (!grown)
        return NULL;
    memcpy(grown, p, old);
    scan(p, __builtin_return_address(0));
    __libc_free(p);
    return grown;
}
