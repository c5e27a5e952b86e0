/* SPDX-License-Identifier: MIT
 * Test helper: makes the kernel keyring unavailable to this process the way
 * a container's seccomp profile (EPERM) or a kernel without CONFIG_KEYS
 * (ENOSYS) does, or makes one keyctl operation fail.  Shared by
 * tests/unit/test_keyring.c and tests/pam/pam_run.c. */
#ifndef AZID_TESTS_DENY_KEYS_H
#define AZID_TESTS_DENY_KEYS_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define FILTER_DENY(errnum) \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)(errnum) & SECCOMP_RET_DATA))
#define FILTER_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* Installs the filter for this process and its later children; -1 when it
 * cannot be set. */
static inline int install_filter(struct sock_filter *filter, unsigned short length)
{
    struct sock_fprog prog = {length, filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -1;
    return 0;
}

/* Every later add_key, keyctl and request_key fails with errnum. */
static inline int deny_keyring_syscalls(int errnum)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_keyctl, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_add_key, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_request_key, 0, 1),
        FILTER_DENY(errnum),
        FILTER_ALLOW,
    };
    return install_filter(filter, sizeof filter / sizeof filter[0]);
}

/* Every later keyctl(operation, ...) fails with errnum; other operations
 * and add_key still work. */
static inline int deny_keyctl_operation(int operation, int errnum)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_keyctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)operation, 0, 1),
        FILTER_DENY(errnum),
        FILTER_ALLOW,
    };
    return install_filter(filter, sizeof filter / sizeof filter[0]);
}

/* Every later call of syscall nr whose first argument is arg0 fails with
 * errnum: the one fault a root thread cannot otherwise meet, switching its
 * ids back (setresuid(0, -1, -1), setfsuid(0)), as ENOMEM or an LSM could. */
static inline int deny_syscall_arg0(int nr, unsigned arg0, int errnum)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg0, 0, 1),
        FILTER_DENY(errnum),
        FILTER_ALLOW,
    };
    return install_filter(filter, sizeof filter / sizeof filter[0]);
}

#endif
