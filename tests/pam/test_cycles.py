#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Many pam_start/open/close/pam_end cycles in one process, as in a
long-lived sshd or login manager: every cycle works, libcurl is loaded
once, and under valgrind nothing leaks, nothing is read uninitialised, and
the memory still in use at exit does not grow with the number of cycles."""

import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import harness  # noqa: E402

ARGS = ["resource=https://vault.azure.net", "resource=https://management.azure.com/"]


class Cycles(pamtest.SandboxTest):
    def cycles(self, n, prefix=()):
        r = self.sandbox.run(["endpoint=" + self.emu.url] + ARGS, cycles=n, prefix=prefix, timeout=600)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.steps["cycles"], str(n))
        self.assertEqual(r.steps["open_session[PAM_SUCCESS]"], str(n), r)
        self.assertEqual(r.steps["close_session[PAM_SUCCESS]"], str(n), r)
        self.assertEqual(r.lines("ERR"), [])
        return r

    def test_many_cycles(self):
        self.cycles(300)
        self.assertEqual(len(self.emu.requests()), 600)

    def assert_libcurl_loaded(self, r, times, what):
        loads = re.findall(r"file=%s \[0\];  generating link map" % re.escape(harness.LIBCURL_SONAME), r.stderr)
        self.assertEqual(len(loads), times, "libcurl was loaded %d times for 4 sessions %s" % (len(loads), what))

    def test_libcurl_loaded_once(self):
        # pam_end unloads the module; libcurl must stay (libazid pins it), or
        # every pam_start loads, relocates and initialises it and its TLS
        # libraries again: 13 million instructions a session.
        self.assert_libcurl_loaded(self.cycles(4, prefix=["env", "LD_DEBUG=files"]), 1, "that fetched")
        # And never when no session makes a request (nothing granted; a
        # login the broker serves is tests/broker's).
        r = self.sandbox.run(["endpoint=" + self.emu.url], cycles=4, prefix=["env", "LD_DEBUG=files"])
        self.assertEqual(r.steps.get("open_session[%s]" % pamtest.IGNORED), "4", r)
        self.assert_libcurl_loaded(r, 0, "granted nothing")
        # The module itself stays mapped after the first pam_end.
        self.assertEqual(len(re.findall(r"file=\S*pam_azid\.so \[0\];  generating link map", r.stderr)), 1,
                         "pam_azid.so was mapped more than once for 4 sessions")

    def valgrind(self, n):
        """Runs n cycles under valgrind; returns its report."""
        log = os.path.join(self.tmp, "valgrind.%d.log" % n)
        self.cycles(n, prefix=["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                               "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                               "--log-file=" + log])
        with open(log) as f:
            report = f.read()
        self.assertIn("ERROR SUMMARY: 0 errors", report)
        self.assertRegex(report, r"definitely lost: 0 bytes|All heap blocks were freed")
        self.assertNotRegex(report, r"indirectly lost: [1-9]")
        m = re.search(r"in use at exit: ([\d,]+) bytes", report)
        return int(m.group(1).replace(",", ""))

    @unittest.skipUnless(shutil.which("valgrind"), "valgrind not installed")
    def test_valgrind_clean(self):
        # Still-reachable memory is the one-time setup of libcurl/OpenSSL
        # (its size varies by some 100 bytes from run to run); 17 more
        # cycles must not add to it.
        self.assertLessEqual(self.valgrind(20), self.valgrind(3) + 512)


if __name__ == "__main__":
    pamtest.require_root()
    harness.main()
