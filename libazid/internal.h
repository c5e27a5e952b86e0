/* SPDX-License-Identifier: MIT
 * Helpers shared by libazid's files.  Not installed, not exported. */
#ifndef AZID_INTERNAL_H
#define AZID_INTERNAL_H

#include "azid.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define AZID_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Fills err (when non-NULL) and returns status, so a failure reads
 * `return err_set(err, AZID_ERR_HTTP, "...", ...);`.  http_status is left
 * as it was; set it with err_set_http. */
azid_status err_set(azid_error *err, azid_status status, const char *fmt, ...) AZID_PRINTF(3, 4);
azid_status err_set_http(azid_error *err, azid_status status, long http_status,
                         const char *fmt, ...) AZID_PRINTF(4, 5);
/* Resets err to AZID_OK with an empty message. */
void err_clear(azid_error *err);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* explicit_bzero(p, n) then free(p); NULL is a no-op. */
void wipe_free(void *p, size_t n);
/* wipe_free of a NUL-terminated string. */
void wipe_free_str(char *s);

#endif
