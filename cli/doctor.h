/* SPDX-License-Identifier: MIT
 * azid doctor's findings, shared by cmd_doctor.c and doctor_pam.c. */
#ifndef AZID_CLI_DOCTOR_H
#define AZID_CLI_DOCTOR_H

/* The line every stack needs before pam_azid's (pam_azid(8)). */
#define KEYINIT_LINE "session optional pam_keyinit.so force revoke"

enum finding_level { FINDING_OK, FINDING_WARN, FINDING_FAIL };

struct doctor {
    unsigned failures;
    unsigned warnings;
};

/* One line on stdout: "ok|warn|FAIL  <what>: <detail>", the detail ending
 * with what to do when the level is not ok. */
void finding(struct doctor *d, enum finding_level level, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Every PAM stack in pam_dir that lists pam_azid.so in its session lines
 * must list pam_keyinit.so (with "force") before it.  Lines are read as
 * libpam reads them; @include and include/substack lines are followed as
 * deep as libpam follows them; files included by another file are
 * fragments, checked as part of their includers. */
void doctor_check_pam(struct doctor *d, const char *pam_dir);

/* Lockdown on or off, whom it lets through, and the processes of other
 * uids holding connections to the identity endpoint (doctor_lockdown.c). */
void doctor_check_lockdown(struct doctor *d, const char *config_path);

#endif
