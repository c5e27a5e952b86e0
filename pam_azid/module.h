/* SPDX-License-Identifier: MIT
 * pam_azid's internals: logging that names the user, the per-call context,
 * and the session work.  Only public.c's pam_sm_* functions are exported
 * (-export-symbols-regex); nothing here is. */
#ifndef PAM_AZID_MODULE_H
#define PAM_AZID_MODULE_H

#include "azid.h"

#include <security/pam_modules.h>
#include <stdbool.h>

#define MODULE_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* One PAM call's state.  Lives on the caller's stack: the module keeps no
 * globals, so concurrent handles in threads never share anything. */
struct module_ctx {
    pam_handle_t *pamh;
    const char *user; /* PAM_USER, owned by libpam; "(unknown)" when unset */
    bool user_known;
    bool debug;
    bool fail_closed;
    azid_config *config;
};

/* Logging: every line is "(user NAME) ..." through pam_syslog (authpriv). */
void log_err(const struct module_ctx *ctx, const char *fmt, ...) MODULE_PRINTF(2, 3);
void log_info(const struct module_ctx *ctx, const char *fmt, ...) MODULE_PRINTF(2, 3);
/* For a failure that must stop the session whatever fail= says. */
void log_crit(const struct module_ctx *ctx, const char *fmt, ...) MODULE_PRINTF(2, 3);
/* Only with the debug argument (or debug in the config file). */
void log_debug(const struct module_ctx *ctx, const char *fmt, ...) MODULE_PRINTF(2, 3);
/* Debug lines for the effective configuration (azid_config_dump). */
void log_settings(const struct module_ctx *ctx);
/* "pam_sm_open_session: exit (ignore)" style line; returns result. */
int log_exit(const struct module_ctx *ctx, const char *function, int result);

/* Runs one entry point: sets up the context from the PAM handle and the
 * module arguments (bad ones are skipped, and logged when
 * report_arguments), logs entry and exit under debug, runs work, frees. */
int ctx_run(pam_handle_t *pamh, int argc, const char **argv, bool report_arguments,
            const char *function, int (*work)(struct module_ctx *ctx));
/* The result for a failure under the fail= setting. */
int ctx_fail_result(const struct module_ctx *ctx);

/* What the broker did for a session open (broker.c). */
struct broker_result {
    int32_t *serials; /* the caller's array, room for every resource */
    size_t nserials;  /* shared keys linked into the session keyring */
    bool failed;      /* some resource has no key (logged) */
    bool budget_spent;
};
struct passwd;
/* Asks the broker (broker= setting) for the user's shared keys of the
 * tokens and secrets items grant, fetched as identity, and links them into
 * the session keyring; the reply must come by deadline_ms (now_ms()).  false when no broker answers: the caller works in-process,
 * with nearly all its budget left. */
bool broker_open_session(struct module_ctx *ctx, const struct passwd *pw,
                         const azid_grant *const *items, size_t n, azid_identity_kind identity,
                         const char *identity_value, int64_t deadline_ms,
                         struct broker_result *out);

int session_open(struct module_ctx *ctx);
int session_close(struct module_ctx *ctx);

#endif
