#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pam_azid under source=auto reads no identity variable from its host
process's environment (SPEC; issue 9 finding 4): a root caller such as
`login -p` may pass the user's, and IDENTITY_ENDPOINT/IMDS_ENDPOINT or
MSI_ENDPOINT would send the request where the user wants.  Each case runs
the module through the real libpam with those variables set and an
emulator listening where they point; the emulator must see nothing."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import IGNORED, harness  # noqa: E402

VAULT = "https://vault.azure.net"


class Environment(unittest.TestCase):
    def setUp(self):
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.sandbox = pamtest.Sandbox(self.tmp)
        self.emu = harness.Emulator(self.tmp, mode="cloudshell")

    def tearDown(self):
        self.emu.stop()
        self.sandbox.__exit__(None, None, None)
        self.tmpdir.__exit__(None, None, None)

    def open_with(self, variables, args=("resource=" + VAULT,)):
        prefix = ["env"] + ["%s=%s" % kv for kv in variables.items()]
        # azother: test_session.py, which may run at the same time, logs in azuser
        return self.sandbox.run(list(args), user="azother", prefix=prefix, fake_dmi=True)

    def test_identity_variables_ignored_under_auto(self):
        token_file = os.path.join(self.tmp, "assertion")
        with open(token_file, "w") as f:
            f.write("eyJhbGciOiJub25lIn0.e30.c2ln\n")
        cases = {
            "arc": {"IDENTITY_ENDPOINT": self.emu.url + "/metadata/identity/oauth2/token",
                    "IMDS_ENDPOINT": self.emu.url},
            "appservice": {"IDENTITY_ENDPOINT": self.emu.url + "/msi/token", "IDENTITY_HEADER": "h"},
            "cloudshell": {"MSI_ENDPOINT": self.emu.url + "/msi/token"},
            "workload": {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
                         "AZURE_FEDERATED_TOKEN_FILE": token_file,
                         "AZURE_AUTHORITY_HOST": self.emu.url.replace("http:", "https:")},
        }
        for name, variables in cases.items():
            with self.subTest(source=name):
                r = self.open_with(variables)
                self.assertEqual(r.steps["open_session"], IGNORED, r)
                (line,) = r.lines("INFO")
                self.assertTrue(line.startswith("(user azother) no managed identity here, nothing "
                                                "to do: "), line)
                self.assertEqual(r.keys, {})
        self.assertEqual(self.emu.log(), [])

    def test_named_source_reads_its_variables(self):
        # source=cloudshell is the admin's choice: its variable is its endpoint.
        r = self.open_with({"MSI_ENDPOINT": self.emu.url + "/msi/token"},
                           args=("resource=" + VAULT, "source=cloudshell"))
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(len(self.emu.log()), 1, r)
        self.assertIn("azid:token:" + VAULT, r.keys)


if __name__ == "__main__":
    harness.main()
