/* SPDX-License-Identifier: MIT
 * Test helper: makes the kernel keyring unavailable to this process the way
 * a container's seccomp profile (EPERM) or a kernel without CONFIG_KEYS
 * (ENOSYS) does.  Shared by tests/unit/test_keyring.c and tests/pam/pam_run.c. */
#ifndef AZID_TESTS_DENY_KEYS_H
#define AZID_TESTS_DENY_KEYS_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* Every later add_key, keyctl and request_key of this process and its
 * children fails with errnum.  Returns -1 when the filter cannot be set. */
static inline int deny_keyring_syscalls(int errnum)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_keyctl, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_add_key, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_request_key, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)errnum & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -1;
    return 0;
}

#endif
