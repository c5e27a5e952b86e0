#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azid's command line itself: --help, --version, usage errors (exit 2).
No keyring or network needed: every case is refused or answered before."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

COMMANDS = ["token", "secret", "list", "fetch", "doctor"]


def azid(*args):
    return harness.run([harness.azid()] + list(args))


class Usage(unittest.TestCase):
    def test_help_lists_every_command(self):
        r = azid("--help")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertTrue(r.stdout.startswith("usage: azid COMMAND"))
        for command in COMMANDS:
            self.assertIn("\n  azid %s " % command, r.stdout)
        self.assertEqual(azid("-h").stdout, r.stdout)

    def test_version(self):
        with open(os.path.join(harness.top_srcdir, "configure.ac")) as f:
            version = f.read().split("AC_INIT([azid], [", 1)[1].split("]", 1)[0]
        r = azid("--version")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "azid %s\n" % version, ""))

    def test_each_command_has_help(self):
        for command in COMMANDS:
            for flag in ("--help", "-h"):
                r = azid(command, flag)
                self.assertEqual((r.returncode, r.stderr), (0, ""), (command, r))
                self.assertTrue(r.stdout.startswith("usage: azid %s" % command), r.stdout)

    def test_no_command(self):
        r = azid()
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("usage: azid COMMAND", r.stderr)

    def test_unknown_command_and_options(self):
        cases = {
            ("frobnicate",): "unknown command 'frobnicate'",
            ("--frobnicate",): "unknown option '--frobnicate'",
            ("token", "--frobnicate"): "azid token: unknown option '--frobnicate'",
            ("token", "-x"): "azid token: unknown option '-x'",
            ("list", "--json=yes"): "azid list: option '--json' takes no value",
            ("doctor", "--config"): "azid doctor: option '--config' needs a value",
            ("secret",): "azid secret: name one secret",
            ("token", "a", "b"): "azid token: one RESOURCE at most",
            ("token", ""): "azid token: RESOURCE is empty",
            ("doctor", "--timeout", "-1"): "azid doctor: --timeout wants seconds",
            ("fetch", "-r"): "azid fetch: option '-r' needs a value",
            ("fetch", "--timeout", "100000"):
                "azid fetch: --timeout 100000 is over the ceiling of 300 seconds; give at most 300",
            ("fetch", "--timeout", "300.5"): "azid fetch: --timeout 300.5 is over the ceiling",
            ("fetch", "--timeout", "0"): "azid fetch: --timeout wants a positive number of seconds",
            ("fetch", "--resource"): "azid fetch: option '--resource' needs a value",
            ("fetch", "--config"): "azid fetch: option '--config' needs a value",
            # -r took its value: what is left is the stray argument
            ("fetch", "-r", "https://vault.azure.net", "extra"): "azid fetch: unexpected argument 'extra'",
        }
        for args, message in cases.items():
            r = azid(*args)
            self.assertEqual((r.returncode, r.stdout), (2, ""), (args, r))
            self.assertIn(message, r.stderr, args)

    def test_options_after_arguments(self):
        # getopt permutes: `azid token R --bogus` still sees the option.
        r = azid("token", "https://vault.azure.net", "--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--bogus'", r.stderr)


if __name__ == "__main__":
    harness.main()
