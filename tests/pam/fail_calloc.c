/* SPDX-License-Identifier: MIT
 *
 * Test helper, loaded with LD_PRELOAD into tests/pam/pam_run: with
 * AZID_FAIL_CALLOC=N the Nth calloc called from pam_azid.so itself (counting
 * from 1) returns NULL, the only way to reach the module's out-of-memory
 * paths through the real libpam.  The first calloc of each entry point is
 * the one setting up its configuration.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *__libc_calloc(size_t n, size_t size);
void *calloc(size_t n, size_t size);

static unsigned long calls_from_module;

static int from_module(const void *caller)
{
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "pam_azid.so");
}

void *calloc(size_t n, size_t size)
{
    const char *nth = getenv("AZID_FAIL_CALLOC");
    if (nth && from_module(__builtin_return_address(0)) &&
        ++calls_from_module == strtoul(nth, NULL, 10)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}
