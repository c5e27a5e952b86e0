/* SPDX-License-Identifier: MIT
 * What the fuzz targets share.  Each tests/fuzz/fuzz_<target>.c defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (configure
 * --enable-fuzzing) or with replay.c, which runs the seed corpus
 * tests/fuzz/corpus/<target>/ under make check.  Besides "no crash, no
 * leak, no undefined behaviour" each target checks what the rest of azid
 * relies on; FUZZ_CHECK stops the run naming the broken rule. */
#ifndef AZID_FUZZ_H
#define AZID_FUZZ_H

#include "azid.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
_Noreturn void fuzz_fail(const char *what, const char *file, int line);

/* A failure's message: one non-empty line of printable text. */
void fuzz_check_message(const azid_error *err);

/* A refusal's message never quotes the secret (a token or secret value
 * from the input, NULL for none).  Checked where a quote is recognisable:
 * the value is long, or has a character no message of azid's has. */
void fuzz_check_not_quoted(const azid_error *err, const char *secret, size_t length);

/* A configuration the parsers accepted: every granted secret is a valid
 * Key Vault URL, every resource one printable word, the timeout within its
 * bounds, and every getter and the debug dump work on it. */
void fuzz_check_config(const azid_config *config);

/* The input as a NUL-terminated string (cut at its first NUL); NULL when
 * out of memory. */
char *fuzz_strndup(const uint8_t *data, size_t size);

#endif
