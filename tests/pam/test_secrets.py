#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pam_azid's secret= through the real libpam: Key Vault secrets land in the
session keyring as azid:secret:<host>/<name>.  Runs in a private network
namespace where v1.vault.azure.net is the Key Vault emulator (HTTPS, a
throwaway CA given as ca_file=) on 127.0.0.1:443."""

import hashlib
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import IGNORED, harness  # noqa: E402

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

    def test_secret_lands_in_session_keyring(self):
        self.vault(["db=" + VALUE])
        r = self.run_pam(["resource=https://vault.azure.net", "debug"])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        key = r.keys[KEY]
        self.assertEqual((key["uid"], key["gid"], key["perm"]), (54400, 54400, "2f010000"))
        self.assertEqual(key["value"], VALUE)
        vault_token = [e for e in self.imds.requests() if e["query"]["resource"] == ["https://vault.azure.net"]]
        left = pamtest.timeout_seconds(key["timeout"])
        self.assertGreater(left, 0)
        self.assertLessEqual(left, max(e["expires_on"] for e in vault_token) - 60 - int(time.time()) + 1)
        self.assertEqual([e["auth"] for e in self.kv.requests()], ["ok"])
        self.assertIn("azid:token:https://vault.azure.net", r.keys)
        self.assertTrue(any(l.startswith("(user azuser) stored %s as key %d in the session keyring"
                                         % (KEY, key["serial"])) for l in r.lines("DEBUG")), r.logs)

    def test_sslkeylogfile_never_created_as_root(self):
        """login -p (telnetd) hands the user's environment to root's PAM
        stack: SSLKEYLOGFILE would make libcurl create that file as root and
        write the TLS keys of the Key Vault connection into it."""
        self.vault(["db=" + VALUE])
        keylog = os.path.join(self.tmp, "keylog")
        r = self.run_pam(["resource=https://vault.azure.net"], env_extra={"SSLKEYLOGFILE": keylog})
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertFalse(os.path.exists(keylog), "root created SSLKEYLOGFILE")
        self.assertEqual(r.keys, {})
        self.assertTrue(any("refusing to use libcurl as root while SSLKEYLOGFILE is set" in l
                            for l in r.lines("ERR")), r.logs)
        self.assertEqual((self.imds.requests(), self.kv.requests()), ([], []))

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

    def test_secret_expiry_caps_key_timeout(self):
        self.vault(["db=%s,exp=%d" % (VALUE, int(time.time()) + 200)])
        r = self.run_pam([])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        left = pamtest.timeout_seconds(r.keys[KEY]["timeout"])
        self.assertGreater(left, 0)
        self.assertLessEqual(left, 200 - 60)

    def test_secret_denied_keeps_tokens(self):
        self.vault(["db=%s,enabled=false" % VALUE])
        for fail, expected in (("open", IGNORED), ("closed", "PAM_SESSION_ERR")):
            r = self.run_pam(["resource=https://storage.azure.com/", "fail=" + fail])
            self.assertEqual(r.steps["open_session"], expected, r)
            self.assertNotIn(KEY, r.keys)
            self.assertIn("azid:token:https://storage.azure.com/", r.keys)
            (line,) = r.lines("ERR")
            self.assertTrue(line.startswith("(user azuser) no secret: Key Vault %s: HTTP 403" % URL), line)
            self.assertEqual(line.count(URL), 1, line)

    def test_one_vault_token_per_session(self):
        # The vault audience is both a granted resource and what two secrets
        # need: IMDS is asked once, and that token is the one stored and the
        # one Key Vault sees.
        self.vault(["db=" + VALUE, "api=s3cret-api-key"])
        r = self.run_pam(["resource=" + VAULT, "secret=https://%s/secrets/api" % HOST])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual([e["query"]["resource"] for e in self.imds.requests()], [[VAULT]])
        stored = r.keys["azid:token:" + VAULT]["value"]
        self.assertEqual([e["token_sha256"] for e in self.kv.requests()],
                         [hashlib.sha256(stored.encode()).hexdigest()] * 2)
        self.assertEqual(r.keys["azid:secret:%s/api" % HOST]["value"], "s3cret-api-key")

    def test_empty_secret_not_stored(self):
        self.vault(["db="])
        r = self.run_pam(["resource=https://storage.azure.com/"])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertNotIn(KEY, r.keys)
        self.assertIn("azid:token:https://storage.azure.com/", r.keys)
        (line,) = r.lines("ERR")
        self.assertEqual(line, "(user azuser) key not stored: cannot store %s: the kernel does not store an "
                               "empty user key; give the secret a non-empty value in the vault" % KEY)


if __name__ == "__main__":
    pamtest.require_root()
    kvtest.enter_network_namespace()
    harness.main()
