/* SPDX-License-Identifier: MIT
 * Allocator functions for libcurl and jansson that wipe every block before
 * it goes back to the heap.  Tokens, secrets and the Authorization header
 * pass through buffers of theirs that the library never sees (libcurl's
 * request and receive buffers, jansson's lexer strings); freed as they
 * are, those copies stay readable in the heap of sshd or login.  malloc
 * itself stays glibc's, so blocks allocated before the switch are freed
 * correctly too. */
#include "config.h"

#include "internal.h"

#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void wipe_alloc_free(void *p)
{
    if (p) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

/* Never realloc(3): growing in place or moving, glibc would free the old
 * block unwiped. */
void *wipe_alloc_realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    if (size == 0) {
        wipe_alloc_free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    if (size <= old)
        return p;
    void *grown = malloc(size);
    if (!grown)
        return NULL;
    memcpy(grown, p, old);
    wipe_alloc_free(p);
    return grown;
}

int wipe_alloc_pin(void)
{
    /* libcurl and jansson keep these function pointers for the life of the
     * process, but the PAM module holding them is unloaded at pam_end:
     * keep the object that holds them (and so its libraries) mapped. */
    return keep_loaded((const void *)wipe_alloc_free);
}

void wipe_alloc_install_jansson(void)
{
    json_malloc_t m;
    json_free_t f;
    /* Another part of the process may have its own allocator in there:
     * blocks it allocated must go back to it. */
    json_get_alloc_funcs(&m, &f);
    if (m == malloc && f == free)
        json_set_alloc_funcs(malloc, wipe_alloc_free);
}
