#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pam_azid's secret= through the real libpam, where one session is not
enough to say it: the heap blocks freed during a login searched for the
values (the single-session cases are data, tests/pam/cases/secrets).  Runs
in a private network namespace where v1.vault.azure.net is the Key Vault
emulator (HTTPS, a throwaway CA given as ca_file=) on 127.0.0.1:443."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import harness  # noqa: E402

sys.path.insert(0, os.path.join(harness.top_srcdir, "tests", "lib"))
import kvtest  # noqa: E402

HOST = "v1.vault.azure.net"
URL = "https://%s/secrets/db" % HOST
KEY = "azid:secret:%s/db" % HOST
VALUE = "s3cret-db-password"
VAULT = "https://vault.azure.net"


class Secrets(unittest.TestCase):
    def setUp(self):
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        kvtest.map_hosts(self.tmp, {"127.0.0.1": [HOST]})
        pki = kvtest.Pki(self.tmp)
        self.cert, self.key = pki.server("ca", ["*.vault.azure.net"])
        self.ca = pki.ca("ca")[0]
        self.sandbox = pamtest.Sandbox(self.tmp)
        self.imds = harness.Emulator(self.tmp)
        self.kv = None

    def tearDown(self):
        for emu in (self.kv, self.imds):
            if emu:
                emu.stop()
        self.sandbox.__exit__(None, None, None)
        # The next test maps its own copy (this one is removed with tmp).
        subprocess.run(["umount", "/etc/hosts"], check=True)
        self.tmpdir.__exit__(None, None, None)

    def vault(self, secrets, faults=()):
        self.kv = kvtest.KeyVault(self.tmp, self.cert, self.key, secrets=secrets, faults=faults,
                                  imds_log=self.imds.log_path)
        return self.kv

    def run_pam(self, extra, **kw):
        r = self.sandbox.run(["endpoint=" + self.imds.url, "ca_file=" + self.ca, "secret=" + URL] + extra, **kw)
        for line in r.all_logs:
            self.assertNotIn(VALUE, line)
            for e in self.imds.requests():
                self.assertNotIn(e["access_token"] or "-", line)
        return r

    def test_no_unwiped_copy_in_freed_memory(self):
        """Every heap block freed during a login (libcurl's request and
        receive buffers, OpenSSL's, jansson's lexer strings, the module's
        own) is searched for the token, the secret and the bearer header
        (tests/pam/free_scan.c): none may hold one.  The resource, which
        nobody wipes, is found: the scanner sees what is left."""
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.freescan-" + os.urandom(24).hex()
        self.imds.stop()
        self.imds = harness.Emulator(self.tmp, faults=['field:access_token="%s"' % token])
        self.vault(["db=" + VALUE + "-" + os.urandom(12).hex()])
        log = os.path.join(self.tmp, "free_scan.log")
        shim = os.path.join(harness.top_builddir, "tests", "pam", ".libs", "free_scan.so")
        needles = [token, "Bearer " + token, VALUE, "resource=https%3A%2F%2Fvault.azure.net"]
        r = self.run_pam(["resource=https://vault.azure.net", "debug"],
                         prefix=["env", "LD_PRELOAD=" + shim, "AZID_FREE_SCAN=" + ",".join(needles),
                                 "AZID_FREE_SCAN_LOG=" + log])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(r.keys["azid:token:" + VAULT]["value"], token)
        self.assertTrue(r.keys[KEY]["value"].startswith(VALUE))
        with open(log) as f:
            lines = f.read().splitlines()
        print("\n  " + "\n  ".join(lines))
        scanned = [l for l in lines if l.startswith("scanned ")]
        self.assertTrue(scanned and int(scanned[-1].split()[1]) > 1000, lines)
        copies = [l for l in lines if l.startswith("copy of value ")]
        self.assertTrue(any(l.startswith("copy of value 3 ") for l in copies), "control not found: %r" % lines)
        self.assertEqual([l for l in copies if not l.startswith("copy of value 3 ")], [])

if __name__ == "__main__":
    pamtest.require_root()
    kvtest.enter_network_namespace()
    harness.main()
