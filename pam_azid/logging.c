/* SPDX-License-Identifier: MIT
 *
 * Log helpers naming the user, as pam-krb5's putil_* do.  pam_syslog
 * prefixes "pam_azid(SERVICE:session):" and uses LOG_AUTHPRIV; the text
 * after it is part of pam_azid(8)'s troubleshooting table.
 */
#include "config.h"

#include "module.h"

#include <security/pam_ext.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static void log_v(const struct module_ctx *ctx, int priority, const char *fmt, va_list ap)
    MODULE_PRINTF(3, 0);

static void log_v(const struct module_ctx *ctx, int priority, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    pam_syslog(ctx->pamh, priority, "(user %s) %s", ctx->user, text);
}

void log_err(const struct module_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(ctx, LOG_ERR, fmt, ap);
    va_end(ap);
}

void log_crit(const struct module_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(ctx, LOG_CRIT, fmt, ap);
    va_end(ap);
}

void log_info(const struct module_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(ctx, LOG_INFO, fmt, ap);
    va_end(ap);
}

void log_debug(const struct module_ctx *ctx, const char *fmt, ...)
{
    if (!ctx->debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(ctx, LOG_DEBUG, fmt, ap);
    va_end(ap);
}

static void emit_setting(const char *line, void *arg)
{
    log_debug(arg, "setting: %s", line);
}

void log_settings(const struct module_ctx *ctx)
{
    if (ctx->debug)
        azid_config_dump(ctx->config, emit_setting, (void *)ctx);
}

int log_exit(const struct module_ctx *ctx, const char *function, int result)
{
    static const struct {
        int result;
        const char *name;
    } names[] = {
        {PAM_SUCCESS, "success"},
        {PAM_IGNORE, "ignore"},
        {PAM_SESSION_ERR, "failure"},
    };
    const char *name = "failure";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].result == result)
            name = names[i].name;
    log_debug(ctx, "%s: exit (%s)", function, name);
    return result;
}
