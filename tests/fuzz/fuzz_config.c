/* SPDX-License-Identifier: MIT
 * The /etc/azid.conf parser (config_apply_text): the input is a config
 * file, applied for a user in three groups and for nobody (no Match block
 * applies).  A refused file leaves a one-line error; an accepted one a
 * configuration the rest of azid can use (fuzz_check_config). */
#include "config.h"

#include "fuzz.h"

#include "conf_parse.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const groups[] = {"alice", "dba", "wheel"};
    const char *text = (const char *)data;
    azid_config *cfg = azid_config_new();
    if (!cfg)
        return 0;
    azid_error err;
    if (config_apply_text(cfg, text, size, "/fuzz/azid.conf", "alice", groups, 3, &err) !=
        AZID_OK)
        fuzz_check_message(&err);
    fuzz_check_config(cfg);
    if (config_apply_text(cfg, text, size, "/fuzz/azid.conf", NULL, NULL, 0, &err) != AZID_OK)
        fuzz_check_message(&err);
    fuzz_check_config(cfg);
    azid_config_free(cfg);
    return 0;
}
