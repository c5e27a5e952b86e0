/* SPDX-License-Identifier: MIT
 *
 * The per-call context: who the session is for and the configuration built
 * from the module arguments (the config file is read by session_open, for
 * the user).
 */
#include "config.h"

#include "module.h"

#include "internal.h"

#include <pthread.h>
#include <security/pam_ext.h>
#include <stddef.h>
#include <string.h>

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

/* libpam loads this module at every pam_start and unloads it at pam_end.
 * Kept mapped, a process that runs many sessions (a display manager, a su
 * loop) maps and relocates it and its libraries once, not at every
 * session, and libcurl's setup (libazid/http.c) is done once. */
static void pin_module(void)
{
    keep_loaded((const void *)ctx_run);
}

/* fail= as written in the arguments (the last one wins, as in the
 * parser), for when there is no memory to parse them. */
static bool args_fail_closed(int argc, const char **argv)
{
    bool closed = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "fail=closed") == 0)
            closed = true;
        else if (strcmp(argv[i], "fail=open") == 0)
            closed = false;
    }
    return closed;
}

static int ctx_init(struct module_ctx *ctx, pam_handle_t *pamh, int argc, const char **argv,
                    bool quiet)
{
    *ctx = (struct module_ctx){.pamh = pamh, .user = "(unknown)"};
    const void *item = NULL;
    if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS && item && *(const char *)item) {
        ctx->user = item;
        ctx->user_known = true;
    }
    ctx->config = azid_config_new();
    /* Unknown or malformed arguments are skipped, each with one line; the
     * rest still applies.  One lost for want of memory is not skipped: the
     * session would run with another identity, resource or fail=. */
    azid_status st = ctx->config ? AZID_OK : AZID_ERR_NOMEM;
    for (int i = 0; i < argc && st != AZID_ERR_NOMEM; i++) {
        azid_error err;
        st = azid_config_apply_arg(ctx->config, argv[i], &err);
        if (st != AZID_OK && st != AZID_ERR_NOMEM && !quiet)
            log_err(ctx, "ignoring module argument: %s", err.message);
    }
    if (st == AZID_ERR_NOMEM) {
        ctx->fail_closed = args_fail_closed(argc, argv);
        log_err(ctx, "out of memory setting up; no keys stored");
        return ctx_fail_result(ctx);
    }
    ctx->debug = azid_config_debug(ctx->config);
    ctx->fail_closed = azid_config_fail_closed(ctx->config);
    return PAM_SUCCESS;
}

int ctx_run(pam_handle_t *pamh, int argc, const char **argv, bool report_arguments,
            const char *function, int (*work)(struct module_ctx *ctx))
{
    struct module_ctx ctx;
    pthread_once(&pin_once, pin_module);
    int result = ctx_init(&ctx, pamh, argc, argv, !report_arguments);
    if (result == PAM_SUCCESS) {
        log_debug(&ctx, "%s: entry", function);
        result = log_exit(&ctx, function, work(&ctx));
    }
    azid_config_free(ctx.config);
    return result;
}

int ctx_fail_result(const struct module_ctx *ctx)
{
    return ctx->fail_closed ? PAM_SESSION_ERR : PAM_IGNORE;
}
