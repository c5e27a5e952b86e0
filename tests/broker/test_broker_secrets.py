#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Key Vault secrets through azidd: pam_azid's secret= with broker=, a real
broker process, the IMDS emulator and the Key Vault emulator (HTTPS, a
throwaway CA) in a private network namespace where v1.vault.azure.net is
127.0.0.1, as tests/pam/test_secrets.py sets it up."""

import os
import sys
import subprocess
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "pam"))
import pamtest  # noqa: E402
from pamtest import harness  # noqa: E402

sys.path.insert(0, os.path.join(harness.top_srcdir, "tests", "lib"))
import kvtest  # noqa: E402

HOST = "v1.vault.azure.net"
URL = "https://%s/secrets/db" % HOST
KEY = "azid:secret:%s/db" % HOST
# Spaces and a byte past ASCII: the protocol carries secrets in hex.
VALUE = "s3cret db p\u00e4ssword"


class BrokerSecrets(unittest.TestCase):
    def setUp(self):
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        kvtest.map_hosts(self.tmp, {"127.0.0.1": [HOST]})
        pki = kvtest.Pki(self.tmp)
        cert, key = pki.server("ca", ["*.vault.azure.net"])
        self.ca = pki.ca("ca")[0]
        self.imds = harness.Emulator(self.tmp)
        self.kv = kvtest.KeyVault(self.tmp, cert, key, secrets=["db=" + VALUE], imds_log=self.imds.log_path)
        self.broker = harness.Broker(self.tmp)
        self.sandbox = pamtest.Sandbox(os.path.join(self.tmp, "pam"))

    def tearDown(self):
        self.broker.stop()
        self.kv.stop()
        self.imds.stop()
        self.sandbox.__exit__(None, None, None)
        subprocess.run(["umount", "/etc/hosts"], check=True)
        self.tmpdir.__exit__(None, None, None)

    def test_secret_through_the_broker_is_a_shared_key_and_asked_for_once(self):
        args = ["endpoint=" + self.imds.url, "ca_file=" + self.ca, "secret=" + URL,
                "broker=" + self.broker.socket, "debug"]
        first = self.sandbox.run(args)
        self.assertEqual(first.steps.get("open_session"), "PAM_SUCCESS", first)
        key = first.keys[KEY]
        self.assertEqual(key["value"], VALUE)
        self.assertEqual((key["uid"], key["perm"]), (0, "0b350000"), "the broker's shared key")
        second = self.sandbox.run(args)
        self.assertEqual(second.keys[KEY]["serial"], key["serial"])
        self.assertEqual(second.keys[KEY]["value"], VALUE)
        self.assertEqual(len(self.kv.requests()), 1, "the second login was served from the cache")
        self.assertEqual(len(self.imds.requests()), 1)
        audits = [l for l in self.broker.log() if "issued secret:" in l]
        self.assertEqual(len(audits), 2, self.broker.log())
        self.assertIn("user azuser (uid %d), identity system, secret %s, expires " % (
            pamtest.USERS["azuser"], URL), audits[0])
        for line in self.broker.log() + first.all_logs + second.all_logs:
            self.assertNotIn("s3cret", line)
            self.assertNotIn(VALUE.encode().hex(), line)
        self.assertIn("secret source=auto endpoint=%s identity=system secret=%s " % (self.imds.url, URL),
                      "\n".join(self.broker.status()))


if __name__ == "__main__":
    pamtest.require_root()
    kvtest.enter_network_namespace()
    harness.main()
