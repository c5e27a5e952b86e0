/* SPDX-License-Identifier: MIT
 * The module argument parser (azid_config_apply_arg), as pam_azid applies
 * its argv: the input is split at newlines into at most 64 arguments.  A
 * refused argument leaves a one-line error and the others still apply;
 * the result is a configuration the rest of azid can use. */
#include "config.h"

#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    azid_config *cfg = azid_config_new();
    if (!text || !cfg)
        goto done;
    char *save = NULL;
    int argc = 0;
    for (char *arg = strtok_r(text, "\n", &save); arg && argc < 64;
         arg = strtok_r(NULL, "\n", &save), argc++) {
        azid_error err;
        azid_status st = azid_config_apply_arg(cfg, arg, &err);
        FUZZ_CHECK(st == AZID_OK || st == AZID_ERR_ARGUMENT || st == AZID_ERR_NOMEM);
        if (st != AZID_OK)
            fuzz_check_message(&err);
    }
    fuzz_check_config(cfg);
done:
    azid_config_free(cfg);
    free(text);
    return 0;
}
