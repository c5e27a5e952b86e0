#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pam_azid properties that take a sweep of sessions rather than one case
(the single-session cases are data: tests/pam/cases, test_cases.py): every
allocation failing in turn, and the key quota filling up."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import IGNORED, harness  # noqa: E402

VAULT = "https://vault.azure.net"


class Sweeps(pamtest.SandboxTest):
    def run_pam(self, args, **kw):
        """One PAM session; asserts no issued token ever reached the logs."""
        r = self.sandbox.run(args, **kw)
        for e in self.emu.requests():
            for line in r.all_logs:
                if e["access_token"]:
                    self.assertNotIn(e["access_token"], line)
        return r

    def fail_calloc(self, n):
        shim = os.path.join(harness.top_builddir, "tests", "pam", ".libs", "fail_calloc.so")
        return ["env", "LD_PRELOAD=" + shim, "AZID_FAIL_CALLOC=%d" % n]

    def test_out_of_memory_anywhere(self):
        """Each allocation of a session open failing in turn: with fail=closed
        the open either fails or stores exactly what was granted (never the
        default resource because an argument was lost)."""
        failures = 0
        for n in range(1, 31):
            r = self.run_pam(["endpoint=" + self.emu.url, "resource=" + VAULT, "fail=closed"],
                             prefix=self.fail_calloc(n))
            self.assertEqual(r.returncode, 0, r)
            # Never "skipped" for want of memory: the argument would be lost.
            self.assertEqual([l for l in r.lines("ERR") if "ignoring module argument" in l], [], (n, r))
            if r.steps["open_session"] == "PAM_SUCCESS":
                self.assertEqual(list(r.keys), ["azid:token:" + VAULT], (n, r))
            else:
                failures += 1
                self.assertEqual(r.steps["open_session"], "PAM_SESSION_ERR", (n, r))
                self.assertEqual(r.keys, {}, (n, r))
                self.assertNotEqual(r.lines("ERR"), [], (n, r))
        self.assertGreater(failures, 5)

    def test_quota_full(self):
        resources = ["https://r%02d.example" % i for i in range(24)]  # ~1.3 KB each, 20000 bytes
        r = self.run_pam(["endpoint=" + self.emu.url] + ["resource=" + x for x in resources], user="azquota")
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        stored = len(r.keys)
        self.assertGreater(stored, 0)
        self.assertLess(stored, len(resources))
        lines = r.lines("ERR")
        self.assertEqual(len(lines), len(resources) - stored, lines)
        self.assertRegex(lines[0], r"^\(user azquota\) key not stored: cannot store azid:token:https://r\d\d.example: "
                                   r"the key quota of uid 54402 is full \(EDQUOT; kernel.keys.maxbytes=\d+, ")


if __name__ == "__main__":
    pamtest.require_root()
    harness.main()
