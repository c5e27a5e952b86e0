/* SPDX-License-Identifier: MIT
 *
 * The PAM entry points, and nothing else.  pam_azid is a session module
 * only: the work needs the session keyring pam_keyinit makes at session
 * open, and sshd runs setcred before that (see pam_azid(8)).
 */
#include "config.h"

#include "module.h"

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    return ctx_run(pamh, argc, argv, true, "pam_sm_open_session", session_open);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    /* Bad arguments were reported at session open. */
    return ctx_run(pamh, argc, argv, false, "pam_sm_close_session", session_close);
}
