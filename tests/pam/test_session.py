#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pam_azid session open/close through the real libpam, against the IMDS
emulator, with the real kernel keyring and the exact syslog lines.  See
pamtest.py for the sandbox and the probe stack."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import IGNORED, harness  # noqa: E402

VAULT = "https://vault.azure.net"
ARM = "https://management.azure.com/"
KEYINIT_HINT = ("list 'session optional pam_keyinit.so force revoke' before pam_azid.so; "
                "nothing is stored into a shared or someone else's keyring")


class Session(unittest.TestCase):
    def setUp(self):
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.sandbox = pamtest.Sandbox(self.tmp)
        self.emulators = []

    def tearDown(self):
        for emu in self.emulators:
            emu.stop()
        self.sandbox.__exit__(None, None, None)
        self.tmpdir.__exit__(None, None, None)

    def emulator(self, **kw):
        emu = harness.Emulator(self.tmp, **kw)
        self.emulators.append(emu)
        return emu

    def run_pam(self, args, **kw):
        """One PAM session; asserts no issued token ever reached the logs."""
        r = self.sandbox.run(args, **kw)
        self.assertNoSecretLogged(r, [e["access_token"] for emu in self.emulators
                                      for e in emu.requests() if e["access_token"]])
        return r

    def tokens(self, emu):
        return {e["query"]["resource"][0]: e["access_token"] for e in emu.requests() if e["access_token"]}

    def assertNoSecretLogged(self, r, secrets):
        for secret in secrets:
            for line in r.all_logs:
                self.assertNotIn(secret, line)

    def assertKey(self, r, resource, token, uid, expires_on):
        key = r.keys["azid:token:" + resource]
        self.assertEqual(key["uid"], uid)
        self.assertEqual(key["gid"], uid)
        self.assertEqual(key["perm"], "2f010000")
        self.assertEqual(key["value"], token)
        left = pamtest.timeout_seconds(key["timeout"])
        self.assertIsNotNone(left)
        self.assertGreater(left, 0)
        self.assertLessEqual(left, expires_on - 60 - int(time.time()) + 1)

    # ---- the main job -----------------------------------------------------------

    def test_token_lands_in_session_keyring(self):
        emu = self.emulator(lifetime=100)  # 40 s timeout: /proc/keys shows seconds
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "timeout=3"])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(r.steps["during"], "0")
        self.assertEqual(r.steps["close_session"], "PAM_SUCCESS")
        (entry,) = emu.requests()
        self.assertEqual(list(r.keys), ["azid:token:" + VAULT])
        self.assertKey(r, VAULT, entry["access_token"], 54400, entry["expires_on"])
        self.assertEqual(r.logs, [])  # quiet on success without debug

    def test_real_stack_optional(self):
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], plain=True)
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertIn("azid:token:" + VAULT, r.keys)

    def test_two_resources_two_keys(self):
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "resource=" + ARM])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        tokens = self.tokens(emu)
        self.assertEqual(sorted(r.keys), sorted(["azid:token:" + VAULT, "azid:token:" + ARM]))
        by_resource = {e["query"]["resource"][0]: e for e in emu.requests()}
        for resource in (VAULT, ARM):
            self.assertKey(r, resource, tokens[resource], 54400, by_resource[resource]["expires_on"])
        self.assertNotEqual(tokens[VAULT], tokens[ARM])

    def test_nothing_granted_implicitly(self):
        # No resource= argument and no grant in the file: no default
        # resource, so no key, no request, and without debug not a word.
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual((r.keys, r.logs), ({}, []))
        r = self.run_pam(["endpoint=" + emu.url, "debug"])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual(r.keys, {})
        self.assertIn("(user azuser) granted no resources or secrets: nothing to do", r.lines("DEBUG"))
        self.assertIn("(user azuser) setting: resource: none granted (nothing is granted implicitly)",
                      r.lines("DEBUG"))
        self.assertEqual(r.lines("ERR") + r.lines("INFO"), [])
        self.assertEqual(emu.requests(), [])

    # ---- guards: nothing into a keyring that is not this login's --------------

    def test_guard_without_pam_keyinit(self):
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], keyinit=None)
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual(r.keys, {})
        self.assertEqual(emu.requests(), [])  # no network before the guard passed
        (line,) = r.lines("ERR")
        self.assertTrue(line.startswith("(user azuser) no keys stored: the session keyring is not a "
                                        "per-login keyring of uid 54400: "), line)
        self.assertTrue(line.endswith(KEYINIT_HINT), line)

    def test_guard_service_keyring_of_root(self):
        """sshd under systemd (KeyringMode=private) without pam_keyinit force:
        every connection shares one root keyring; a user's key never goes
        there, nor root's own."""
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], keyinit="revoke",
                         prefix=["keyctl", "session", "-"])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        (line,) = r.lines("ERR")
        self.assertRegex(line, r"^\(user azuser\) no keys stored: the session keyring is not a per-login "
                               r"keyring of uid 54400: _ses \d+ belongs to uid 0 ")
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], user="root", keyinit="revoke",
                         prefix=["keyctl", "session", "-"])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        (line,) = r.lines("ERR")
        self.assertRegex(line, r"^\(user root\) no keys stored: .* does not link _uid.0 as pam_keyinit's do")
        self.assertEqual(emu.requests(), [])

    def test_guard_shared_service_keyring_of_root(self):
        """sshd under systemd with KeyringMode=shared and no pam_keyinit force:
        every connection shares one root keyring that links _uid.0 and holds
        systemd's invocation_id key.  A root login stores nothing there."""
        emu = self.emulator()
        systemd_shared = ["keyctl", "session", "-", "sh", "-c",
                          'keyctl link @u @s && keyctl add user invocation_id 0123456789abcdef @s >/dev/null'
                          ' && exec "$@"', "sh"]
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], user="root", keyinit="revoke",
                         prefix=systemd_shared)
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual(r.keys, {})
        (line,) = r.lines("ERR")
        self.assertRegex(line, r"^\(user root\) no keys stored: the session keyring is not a per-login "
                               r"keyring of uid 0: _ses \d+ holds user invocation_id, ")
        self.assertTrue(line.endswith(KEYINIT_HINT), line)
        self.assertEqual(emu.requests(), [])
        # The same root login with pam_keyinit force gets its token.
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT], user="root", prefix=systemd_shared)
        self.assertEqual(list(r.keys), ["azid:token:" + VAULT], r)

    def test_keyring_unavailable(self):
        emu = self.emulator()
        # Whatever the target: no network when no key could be stored.
        for errno_name, text, keyring in (("EPERM", "Operation not permitted", "session"),
                                          ("ENOSYS", "Function not implemented", "session"),
                                          ("EPERM", "Operation not permitted", "user"),
                                          ("ENOSYS", "Function not implemented", "persistent")):
            r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "keyring=" + keyring],
                             deny_keys=errno_name, during=None)
            self.assertEqual(r.steps["open_session"], IGNORED, r)
            self.assertEqual(r.lines("ERR"), [
                "(user azuser) no keys stored: kernel keyring unavailable (session keyring: %s): keyctl is "
                "blocked here (container seccomp profile) or the kernel lacks CONFIG_KEYS; no key can be "
                "stored" % text])
        self.assertEqual(emu.requests(), [])

    # ---- failures and fail= ---------------------------------------------------------

    def test_http_400_fail_open_and_closed(self):
        emu = self.emulator(identities=["client_id=c1,object_id=o1,msi_res_id=r1"])
        args = ["endpoint=" + emu.url, "resource=" + VAULT, "client_id=unknown"]
        for fail, expected in (("open", IGNORED), ("closed", "PAM_SESSION_ERR")):
            r = self.run_pam(args + ["fail=" + fail])
            self.assertEqual(r.steps["open_session"], expected, r)
            self.assertEqual(r.keys, {})
            (line,) = r.lines("ERR")
            self.assertTrue(line.startswith("(user azuser) no token for https://vault.azure.net: IMDS "
                                            "%s/metadata/identity/oauth2/token: HTTP 400" % emu.url), line)
            self.assertIn("Identity not found", line)
        self.assertEqual(len(emu.requests()), 2)  # a 400 is never retried
        # In a real stack the login goes on.
        r = self.run_pam(args, plain=True)
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)

    def test_hang_bounded_by_timeout(self):
        emu = self.emulator(extra_args=["--fault", "hang-all"])
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "timeout=1.5", "fail=closed"],
                         during=None)
        self.assertEqual(r.steps["open_session"], "PAM_SESSION_ERR", r)
        # The budget, the allowed overrun, and slack for a loaded machine.
        self.assertLess(int(r.steps["open_ms"]), (1.5 + 0.5 + 1) * 1000)
        (line,) = r.lines("ERR")
        self.assertIn("(user azuser) no token for https://vault.azure.net: ", line)
        self.assertIn("1.5 s time budget", line)

    def test_out_of_memory_follows_fail(self):
        """No memory for the configuration: the arguments' fail= still decides."""
        emu = self.emulator()
        for fail, expected in (("open", IGNORED), ("closed", "PAM_SESSION_ERR")):
            r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "fail=" + fail], during=None,
                             prefix=self.fail_calloc(1))
            self.assertEqual(r.steps["open_session"], expected, r)
            self.assertEqual(r.lines("ERR"), ["(user azuser) out of memory setting up; no keys stored"])
        self.assertEqual(emu.requests(), [])

    def test_out_of_memory_anywhere(self):
        """Each allocation of a session open failing in turn: with fail=closed
        the open either fails or stores exactly what was granted (never the
        default resource because an argument was lost)."""
        emu = self.emulator()
        failures = 0
        for n in range(1, 31):
            r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "fail=closed"], prefix=self.fail_calloc(n))
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

    def fail_calloc(self, n):
        shim = os.path.join(harness.top_builddir, "tests", "pam", ".libs", "fail_calloc.so")
        return ["env", "LD_PRELOAD=" + shim, "AZID_FAIL_CALLOC=%d" % n]

    def test_timeout_stops_remaining_items(self):
        emu = self.emulator(extra_args=["--fault", "hang-all"])
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "resource=" + ARM, "timeout=1"],
                         during=None)
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertLess(int(r.steps["open_ms"]), (1 + 0.5 + 1) * 1000)
        lines = r.lines("ERR")
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[1], "(user azuser) 1 more resource(s)/secret(s) not tried after that failure")

    def test_partial_success_keeps_stored_key(self):
        emu = self.emulator(faults=["400"])  # the first request only
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "resource=" + ARM])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual(list(r.keys), ["azid:token:" + ARM])
        (line,) = r.lines("ERR")
        self.assertTrue(line.startswith("(user azuser) no token for https://vault.azure.net: "), line)

    def test_retry_after_500(self):
        emu = self.emulator(faults=["500"])
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        statuses = [e["status"] for e in emu.requests()]
        self.assertEqual(statuses, [500, 200])
        self.assertEqual(r.keys["azid:token:" + VAULT]["value"], emu.requests()[-1]["access_token"])
        self.assertEqual(r.lines("ERR"), [])

    def test_quota_full(self):
        emu = self.emulator()
        resources = ["https://r%02d.example" % i for i in range(24)]  # ~1.3 KB each, 20000 bytes
        r = self.run_pam(["endpoint=" + emu.url] + ["resource=" + x for x in resources], user="azquota")
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        stored = len(r.keys)
        self.assertGreater(stored, 0)
        self.assertLess(stored, len(resources))
        lines = r.lines("ERR")
        self.assertEqual(len(lines), len(resources) - stored, lines)
        self.assertRegex(lines[0], r"^\(user azquota\) key not stored: cannot store azid:token:https://r\d\d.example: "
                                   r"the key quota of uid 54402 is full \(EDQUOT; kernel.keys.maxbytes=\d+, ")

    # ---- arguments, config, debug ---------------------------------------------------

    def test_unknown_argument_logged_rest_applies(self):
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "bogus=1", "resource=" + VAULT, "keyring=nowhere"])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertIn("azid:token:" + VAULT, r.keys)
        lines = r.lines("ERR")
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith("(user azuser) ignoring module argument: unknown argument 'bogus=1'"))
        self.assertTrue(lines[1].startswith("(user azuser) ignoring module argument: "))
        self.assertIn("nowhere", lines[1])

    def test_bad_config_file(self):
        conf = self.sandbox.write_config("resource = https://x\nthis is bad\n")
        emu = self.emulator()
        for extra, expected in (([], IGNORED), (["fail=closed"], "PAM_SESSION_ERR")):
            r = self.run_pam(["endpoint=" + emu.url, "config=" + conf] + extra, during=None)
            self.assertEqual(r.steps["open_session"], expected, r)
            (line,) = r.lines("ERR")
            self.assertTrue(line.startswith("(user azuser) config file not used, no keys stored: %s:2: " % conf), line)
        self.assertEqual(emu.requests(), [])

    def test_config_grants_per_user(self):
        conf = self.sandbox.write_config("Match user azother\n    resource = %s\n" % VAULT)
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "config=" + conf, "debug"])
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertIn("(user azuser) granted no resources or secrets: nothing to do", r.lines("DEBUG"))
        self.assertEqual(r.lines("ERR") + r.lines("INFO"), [])
        r = self.run_pam(["endpoint=" + emu.url, "config=" + conf], user="azother")
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(r.keys["azid:token:" + VAULT]["uid"], 54401)

    def test_identity_per_grant(self):
        # Issue 9 #3, carol's case: two Match blocks apply, each with its own
        # identity; each resource is requested with its own block's identity,
        # never with the last block's.
        storage = "https://storage.azure.com/"
        conf = self.sandbox.write_config("Match group azuser\n"
                                         "client_id = web-client\n"
                                         "resource = %s\n"
                                         "Match user azuser\n"
                                         "resource = %s\n"
                                         "client_id = dba-client\n"
                                         "Match all\n"
                                         "resource = %s\n" % (storage, VAULT, ARM))
        emu = self.emulator(identities=["client_id=web-client,object_id=o1,msi_res_id=r1",
                                        "client_id=dba-client,object_id=o2,msi_res_id=r2",
                                        "client_id=outside,object_id=o3,msi_res_id=r3"])
        r = self.run_pam(["endpoint=" + emu.url, "config=" + conf, "client_id=outside", "debug"])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        sent = sorted((e["query"]["resource"][0], e["query"].get("client_id")) for e in emu.requests())
        self.assertEqual(sent, sorted([(storage, ["web-client"]), (VAULT, ["dba-client"]),
                                       (ARM, ["outside"])]))
        self.assertEqual(sorted(r.keys), sorted("azid:token:" + x for x in (storage, VAULT, ARM)))
        debug = r.lines("DEBUG")
        self.assertIn("(user azuser) setting: resource=%s (%s:3, Match group azuser) with "
                      "client_id=web-client (line 2)" % (storage, conf), debug)
        self.assertIn("(user azuser) setting: resource=%s (%s:5, Match user azuser) with "
                      "client_id=dba-client (line 6)" % (VAULT, conf), debug)
        self.assertIn("(user azuser) setting: resource=%s (%s:8)" % (ARM, conf), debug)
        self.assertIn("(user azuser) asking as the identity client_id=web-client", debug)

    def test_one_resource_two_identities_refused(self):
        conf = self.sandbox.write_config("Match group azuser\n"
                                         "client_id = web-client\n"
                                         "resource = %s\n"
                                         "Match user azuser\n"
                                         "client_id = dba-client\n"
                                         "resource = %s\n" % (VAULT, VAULT))
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "config=" + conf], during=None)
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        (line,) = r.lines("ERR")
        self.assertEqual(line, "(user azuser) config file not used, no keys stored: %s:6: resource %s "
                               "is granted to this user with client_id=dba-client here and with "
                               "client_id=web-client by line 3; a resource gets one identity per "
                               "user: give both the same identity or grant it once" % (conf, VAULT))
        self.assertEqual(emu.requests(), [])
        # The error is per user: one to whom neither block applies is not refused.
        r = self.run_pam(["endpoint=" + emu.url, "config=" + conf], user="azother")
        self.assertEqual(r.steps["open_session"], IGNORED, r)
        self.assertEqual(r.lines("ERR"), [])

    def test_debug_lists_settings_never_token(self):
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "debug"])
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        token = emu.requests()[0]["access_token"]
        debug = r.lines("DEBUG")
        serial = r.keys["azid:token:" + VAULT]["serial"]
        for expected in ("(user azuser) pam_sm_open_session: entry",
                         "(user azuser) setting: resource=https://vault.azure.net (argument)",
                         "(user azuser) setting: endpoint=%s (argument)" % emu.url,
                         "(user azuser) setting: fail=open (default)",
                         "(user azuser) the session keyring is a per-login keyring of uid 54400",
                         "(user azuser) identity source imds, token endpoint %s/metadata/identity/oauth2/token" % emu.url,
                         "(user azuser) pam_sm_open_session: exit (success)",
                         "(user azuser) removed key %d (or it went with its revoked keyring)" % serial,
                         "(user azuser) pam_sm_close_session: exit (success)"):
            self.assertIn(expected, debug)
        self.assertTrue(any(l.startswith("(user azuser) stored azid:token:https://vault.azure.net as key %d in the "
                                         "session keyring, expiring in " % serial) for l in debug), debug)
        self.assertTrue(token and r.keys["azid:token:" + VAULT]["value"] == token)

    def test_off_azure_is_quiet_and_fast(self):
        # Even with fail=closed, and without pam_keyinit: one info line.
        for keyinit in ("force revoke", None):
            r = self.run_pam(["resource=" + VAULT, "timeout=5", "fail=closed"], keyinit=keyinit,
                             netns=True, fake_dmi=True)
            self.assertEqual(r.steps["open_session"], IGNORED, r)
            self.assertLess(int(r.steps["open_ms"]), 1000)  # never waits for the 5 s budget
            self.assertEqual(r.lines("ERR"), [])
            (line,) = r.lines("INFO")
            self.assertTrue(line.startswith("(user azuser) no managed identity here, nothing to do: "), line)

    def test_user_keyring_outlives_session(self):
        emu = self.emulator(lifetime=360)  # a 300 s key: outlives a slow run; "after" removes it
        desc = "azid:token:" + VAULT
        find = "k=$(keyctl search @u user %s) && printf 'USERKEY %%s %%s\\n' \"$k\" " % desc
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "keyring=user"],
                         during=find + '"$(keyctl pipe "$k")"',
                         after=find + "after && keyctl unlink \"$k\" @u >/dev/null")
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(r.steps["during"], "0")
        self.assertEqual(r.steps["after"], "0")
        lines = [l.split(" ") for l in r.stdout.splitlines() if l.startswith("USERKEY ")]
        self.assertEqual(len(lines), 2, r.stdout)
        self.assertEqual(lines[0][2], emu.requests()[0]["access_token"])
        self.assertEqual(lines[1][1:], [lines[0][1], "after"])  # not removed at close

    def test_real_uid_not_restored_fails_the_session(self):
        """The user keyring's lookup switches the thread's real uid to the
        user; when it cannot be switched back (a fault injected with
        seccomp), the session fails whatever fail= says, with one CRIT line."""
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "keyring=user", "fail=open"],
                         deny_uid_restore=True, during=None)
        self.assertEqual(r.steps["open_session"], "PAM_SESSION_ERR", r)
        (line,) = r.lines("CRIT")
        self.assertEqual(line, "(user azuser) key not stored, session refused whatever fail= says: cannot "
                               "restore this thread's real uid to 0 after looking up the user keyring of "
                               "uid 54400 (Cannot allocate memory): it stays uid 54400; stopping")
        self.assertEqual(r.lines("ERR"), [])

    # ---- close --------------------------------------------------------------------------

    def test_close_removes_keys(self):
        emu = self.emulator()
        # Without revoke the session keyring survives close: pam_azid's own
        # removal is what empties it.
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "resource=" + ARM], keyinit="force",
                         after=pamtest.INSPECT + "echo AFTER; keyctl rlist @s")
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(len(r.keys), 2)
        self.assertEqual(r.steps["close_session"], "PAM_SUCCESS")
        self.assertEqual(r.steps["after"], "0")
        after = r.stdout.split("AFTER\n", 1)[1].split()
        for key in r.keys.values():
            self.assertNotIn(str(key["serial"]), after)

    def test_forked_child_end_keeps_keys(self):
        """sshd's post-auth child ends its copy of the handle (PAM_DATA_SILENT)
        before the shell runs: the login's keys stay; the parent's close
        removes them."""
        emu = self.emulator()
        r = self.run_pam(["endpoint=" + emu.url, "resource=" + VAULT, "debug"], keyinit="force",
                         child_end=True, after="echo LEFT; keyctl rlist @s; echo END")
        self.assertEqual(r.steps["open_session"], "PAM_SUCCESS", r)
        self.assertEqual(r.steps["child_end"], "0")
        key = r.keys["azid:token:" + VAULT]
        self.assertEqual(key["value"], emu.requests()[0]["access_token"])
        self.assertEqual(r.steps["close_session"], "PAM_SUCCESS")
        self.assertIn("(user azuser) removed key %d (or it went with its revoked keyring)" % key["serial"],
                      r.lines("DEBUG"))
        left = r.stdout.split("LEFT\n", 1)[1].split("END\n", 1)[0].split()
        self.assertNotIn(str(key["serial"]), left)

    def test_close_without_keys(self):
        r = self.run_pam(["resource=" + VAULT, "debug"], keyinit=None, during=None)
        self.assertEqual(r.steps["close_session"], IGNORED, r)
        self.assertIn("(user azuser) this session stored no keys in its session keyring: nothing to remove",
                      r.lines("DEBUG"))


if __name__ == "__main__":
    pamtest.require_root()
    harness.main()
