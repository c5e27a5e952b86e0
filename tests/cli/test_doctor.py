#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azid doctor as an admin would read it, and azid fetch reading the same
config file: a throwaway user in its own session keyring, the IMDS
emulator on loopback inside a private network namespace, PAM stacks and
config files in a temporary directory (and /etc/azid.conf in an overlay)."""

import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402

clitest.enter_namespace(network=True)
import harness  # noqa: E402

AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
ASSET_TAG_FILE = "/sys/class/dmi/id/chassis_asset_tag"
LINE = re.compile(r"^(ok|warn|FAIL) +([^:]+): (.*)$")

GOOD_PAM = {
    "common-auth": "auth required pam_unix.so\n",
    "common-session": "session required pam_unix.so\n"
                      "session optional pam_azid.so resource=https://vault.azure.net\n",
    "sshd": "@include common-auth\n"
            "session optional pam_keyinit.so force revoke\n"
            "@include common-session\n",
    "other": "session required pam_deny.so\n",
}

box = emulator = None


def set_asset_tag(tag):
    with open(ASSET_TAG_FILE, "w") as f:
        f.write(tag + "\n")


def setUpModule():
    global box, emulator
    box = clitest.Sandbox()
    # Whatever machine runs this, doctor sees one that is not on Azure: a
    # tmpfs over /sys/class holding a plain asset tag, none over an Arc agent.
    box.mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/sys/class")
    os.makedirs(os.path.dirname(ASSET_TAG_FILE))
    set_asset_tag("No Asset Tag")
    if os.path.exists("/opt/azcmagent"):
        box.mount("-t", "tmpfs", "tmpfs", "/opt/azcmagent")
    emulator = harness.Emulator(box.dir)


def tearDownModule():
    emulator.stop()
    box.close()


def write_pam(name, files):
    for file, text in files.items():
        box.write(os.path.join(name, file), text)
    return box.path(name)


def findings(result):
    """{what: (level, detail)} of a doctor run; every line must be a finding."""
    out = {}
    for line in result.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            raise AssertionError("not a finding line: %r" % line)
        out[m.group(2)] = (m.group(1), m.group(3))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Doctor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pam = write_pam("pam-good", GOOD_PAM)
        cls.config = box.write("good.conf", "resource = https://vault.azure.net\n")

    def doctor(self, *args, keyring=True, endpoint=None):
        argv = ["doctor", "--pam-dir", self.pam, "--config", self.config]
        argv += ["--endpoint", endpoint or emulator.url]
        return box.azid(*(argv + list(args)), keyring=keyring)

    def assertNoToken(self, result):
        for entry in emulator.log():
            if entry["access_token"]:
                self.assertNotIn(entry["access_token"], result.stdout + result.stderr)

    def test_healthy_setup(self):
        r = self.doctor()
        f = findings(r)
        self.assertEqual((r.rc, r.stderr), (0, ""), r)
        self.assertEqual(f["Azure machine"][0], "warn")  # this test machine is not one
        for what in ("config", "identity source", "endpoint reachable", "identity assigned",
                     "keyring", "PAM stack sshd"):
            self.assertEqual(f[what][0], "ok", (what, f[what]))
        self.assertIn("imds, token endpoint %s/metadata/identity/oauth2/token" % emulator.url,
                      f["identity source"][1])
        self.assertIn("grants 1 resource(s)", f["config"][1])
        self.assertIn("system-assigned identity got a token", f["identity assigned"][1])
        self.assertIn("pam_keyinit.so (sshd:2) before pam_azid.so (common-session:2)",
                      f["PAM stack sshd"][1])
        self.assertNotIn("PAM stack common-session", f, "an included file is no stack")
        self.assertNoToken(r)

    def test_azure_vm_at_the_imds_address(self):
        # Azure's asset tag, and IMDS's address on this namespace's loopback:
        # doctor with no endpoint finds both.
        subprocess.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], check=True)
        try:
            set_asset_tag(AZURE_ASSET_TAG)
            with harness.Emulator(box.dir, bind="169.254.169.254", extra_args=["--port", "80"]) as imds:
                r = box.azid("doctor", "--pam-dir", self.pam, "--config", self.config)
                self.assertEqual(len(imds.requests()), 1)
        finally:
            set_asset_tag("No Asset Tag")
            subprocess.run(["ip", "addr", "del", "169.254.169.254/32", "dev", "lo"], check=False)
        f = findings(r)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(f["Azure machine"][0], "ok")
        self.assertIn("Azure VM", f["Azure machine"][1])
        self.assertEqual(f["identity source"],
                         ("ok", "imds, token endpoint http://169.254.169.254/metadata/identity/oauth2/token"))
        self.assertEqual(f["identity assigned"][0], "ok")

    def test_identity_not_found(self):
        self.config = box.write("client.conf", "client_id = 11111111-2222-3333-4444-555555555555\n")
        r = self.doctor()
        f = findings(r)
        self.assertEqual(r.rc, 1)
        self.assertEqual(f["endpoint reachable"][0], "ok")
        self.assertIn("HTTP 400", f["endpoint reachable"][1])
        level, detail = f["identity assigned"]
        self.assertEqual(level, "FAIL")
        self.assertIn("Identity not found", detail)
        self.assertIn("client_id=11111111-2222-3333-4444-555555555555 is not assigned", detail)
        self.assertIn("az vm identity assign", detail)
        self.assertIn("client_id= in " + self.config, detail)

    def test_multiple_user_assigned_identities(self):
        with harness.Emulator(box.dir, identities=["client_id=a1,object_id=o1,msi_res_id=r1",
                                                   "client_id=b2,object_id=o2,msi_res_id=r2"]) as emu:
            r = self.doctor(endpoint=emu.url)
        f = findings(r)
        self.assertEqual(r.rc, 1)
        level, detail = f["identity assigned"]
        self.assertEqual(level, "FAIL")
        self.assertIn("Multiple user assigned identities", detail)
        self.assertIn("set client_id= (or object_id=, msi_res_id=) in " + self.config, detail)

    def test_unreachable_endpoint(self):
        url = "http://127.0.0.1:%d" % free_port()
        r = self.doctor("--timeout", "1", endpoint=url)
        f = findings(r)
        self.assertEqual(r.rc, 1)
        level, detail = f["endpoint reachable"]
        self.assertEqual(level, "FAIL")
        self.assertIn(url, detail)
        self.assertIn("check the route and firewall", detail)
        self.assertNotIn("identity assigned", f)
        self.assertLess(r.elapsed, 5)

    def test_unsafe_config_file(self):
        self.config = box.write("unsafe.conf", "resource = https://vault.azure.net\n", mode=0o666)
        r = self.doctor()
        f = findings(r)
        self.assertEqual(r.rc, 1)
        level, detail = f["config"]
        self.assertEqual(level, "FAIL")
        self.assertIn(self.config, detail)
        self.assertIn("writable", detail)

    def test_config_only_root_can_read(self):
        # 0600 is safe: pam_azid reads it as root; the user's doctor cannot.
        self.config = box.write("private.conf", "resource = https://vault.azure.net\n", mode=0o600)
        r = self.doctor()
        level, detail = findings(r)["config"]
        self.assertEqual((r.rc, level), (0, "warn"), r)
        self.assertIn("%s is not readable by uid %d" % (self.config, clitest.UID), detail)
        self.assertIn("run 'sudo azid doctor'", detail)

    def test_malformed_config_names_file_and_line(self):
        self.config = box.write("bad.conf", "# azid\nresource = https://vault.azure.net\nnot_a_key = 1\n")
        r = self.doctor()
        level, detail = findings(r)["config"]
        self.assertEqual((r.rc, level), (1, "FAIL"))
        self.assertIn(self.config + ":3", detail)

    def test_policy_grants_nothing(self):
        # Nothing is granted implicitly: a policy naming no resource or
        # secret anywhere gives every login nothing, and doctor says so.
        self.config = box.write("empty.conf", "# nothing yet\ntimeout = 3\n")
        r = self.doctor()
        f = findings(r)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("grants 0 resource(s) and 0 secret(s)", f["config"][1])
        self.assertEqual(f["policy"], (
            "warn", "%s grants nothing to anyone, and nothing is granted implicitly, so pam_azid "
            "stores no token at any login (unless its line in /etc/pam.d names resource= or "
            "secret=); to grant one, write in %s 'resource = https://vault.azure.net' for "
            "everyone, or 'Match group GROUP' and then that line for one group"
            % (self.config, self.config)))
        # A missing file grants nothing either.
        self.config = box.path("absent.conf")
        self.assertEqual(findings(self.doctor())["policy"][0], "warn")
        # A grant to someone else is a policy: nothing to warn about.
        self.config = box.write("others.conf", "Match user someone-else\nsecret = "
                                "https://kv1.vault.azure.net/secrets/x\n")
        f = findings(self.doctor())
        self.assertIn("grants 0 resource(s) and 0 secret(s)", f["config"][1])
        self.assertNotIn("policy", f)
        self.config = box.write("good.conf", "resource = https://vault.azure.net\n")
        self.assertNotIn("policy", findings(self.doctor()))

    def test_root_sees_who_is_granted_what(self):
        self.config = box.write("levels.conf", (
            "resource = https://vault.azure.net\n"
            "client_id = 11111111-2222-3333-4444-555555555555\n"
            "Match group dba\n"
            "resource = https://database.windows.net/\n"
            "secret = https://kv1.vault.azure.net/secrets/db\n"
            "Match user alice,bob\n"
            "object_id = 99999999-8888-7777-6666-555555555555\n"
            "secret = https://kv1.vault.azure.net/secrets/app\n"
            "Match user carol\n"
            "timeout = 3\n"))
        argv = [harness.azid(), "doctor", "--pam-dir", self.pam, "--config", self.config,
                "--endpoint", emulator.url]
        r = harness.run(argv)
        f = {}
        for line in r.stdout.splitlines():
            m = LINE.match(line)
            self.assertTrue(m, line)
            f[m.group(2)] = (m.group(1), m.group(3))
        self.assertEqual(f["grants outside Match"], (
            "ok", "in %s and the PAM arguments, resources https://vault.azure.net; secrets none; "
            "identity client_id=11111111-2222-3333-4444-555555555555" % self.config))
        self.assertEqual(f["grants Match group dba"], (
            "ok", "at %s:3, resources https://database.windows.net/; secrets "
            "https://kv1.vault.azure.net/secrets/db; identity "
            "client_id=11111111-2222-3333-4444-555555555555" % self.config))
        self.assertEqual(f["grants Match user alice,bob"], (
            "ok", "at %s:6, resources none; secrets https://kv1.vault.azure.net/secrets/app; "
            "identity object_id=99999999-8888-7777-6666-555555555555" % self.config))
        self.assertEqual(f["grants Match user carol"], ("ok", "at %s:9, nothing" % self.config))
        # A user sees only what the file gives it, not the levels.
        self.assertFalse([w for w in findings(self.doctor()) if w.startswith("grants")])

    def test_lockdown_allow_name_that_resolves_to_nobody(self):
        self.config = box.write("allow.conf", "lockdown_allow = root,nosuchuser,@nosuchgroup\n"
                                "resource = https://vault.azure.net\n")
        r = self.doctor()
        warnings = [l for l in r.stdout.splitlines() if l.startswith("warn  lockdown_allow: ")]
        self.assertEqual(warnings, [
            "warn  lockdown_allow: no user 'nosuchuser' here; nobody is let through for it; "
            "correct the name in %s" % self.config,
            "warn  lockdown_allow: no group 'nosuchgroup' here; its members stay refused; "
            "correct the name in %s" % self.config], r)

    def test_pam_stacks(self):
        self.pam = write_pam("pam-mixed", {
            "common-session": GOOD_PAM["common-session"],
            "sshd": GOOD_PAM["sshd"],
            "login": "session optional pam_azid.so\nsession optional pam_keyinit.so force revoke\n",
            "su": "session [success=ok default=ignore] pam_azid.so\n",
            "cron": "session optional pam_keyinit.so revoke\n"
                    "-session optional /lib/x86_64-linux-gnu/security/pam_azid.so\n",
            "commented": "#session optional pam_keyinit.so force revoke\n"
                         "session optional \\\n    pam_azid.so debug\n",
            "sub": "session optional pam_keyinit.so force revoke # first\n"
                   "session substack common-session\n",
            "sshd.dpkg-old": "session optional pam_azid.so\n",
            # libpam's reading: blanks after a continuing backslash, and
            # comment lines inside a continued line, are skipped.
            "continued": "session optional pam_keyinit.so \\  \n"
                         "        force revoke\n"
                         "session optional \\\n"
                         "# pam_azid needs the keyring made above\n"
                         "        pam_azid.so\n",
            # includes nest (RHEL's su-l -> su -> system-auth), and may be absolute
            "nested": "session optional pam_keyinit.so force revoke\n"
                      "session include middle\n",
            "middle": "session include common-session\n",
            "absolute": "session optional pam_keyinit.so force revoke\n"
                        "session include %s\n" % box.write("elsewhere/azid-session",
                                                           "session optional pam_azid.so\n"),
        })
        r = self.doctor()
        f = findings(r)
        self.assertEqual(r.rc, 1)
        self.assertEqual(f["PAM stack continued"],
                         ("ok", "pam_keyinit.so (continued:1) before pam_azid.so (continued:3)"))
        self.assertEqual(f["PAM stack nested"],
                         ("ok", "pam_keyinit.so (nested:1) before pam_azid.so (common-session:2)"))
        self.assertEqual(f["PAM stack absolute"],
                         ("ok", "pam_keyinit.so (absolute:1) before pam_azid.so (%s:1)"
                          % box.path("elsewhere/azid-session")))
        self.assertNotIn("PAM stack middle", f, "an included file is no stack")
        self.assertEqual(f["PAM stack sshd"][0], "ok")
        self.assertEqual(f["PAM stack sub"],
                         ("ok", "pam_keyinit.so (sub:1) before pam_azid.so (common-session:2)"))
        level, detail = f["PAM stack login"]
        self.assertEqual(level, "FAIL")
        self.assertIn("pam_azid.so (login:1) runs before pam_keyinit.so (login:2)", detail)
        self.assertIn("move 'session optional pam_keyinit.so force revoke' above", detail)
        level, detail = f["PAM stack su"]
        self.assertEqual(level, "FAIL")
        self.assertIn("pam_azid.so (su:1) has no pam_keyinit.so before it", detail)
        level, detail = f["PAM stack cron"]
        self.assertEqual(level, "warn")
        self.assertIn("pam_keyinit.so (cron:1) lacks 'force'", detail)
        level, detail = f["PAM stack commented"]
        self.assertEqual(level, "FAIL")
        self.assertIn("pam_azid.so (commented:2) has no pam_keyinit.so", detail)
        self.assertNotIn("PAM stack common-session", f)
        self.assertNotIn("PAM stack sshd.dpkg-old", f)

    def test_no_stack_lists_pam_azid(self):
        self.pam = write_pam("pam-none", {"sshd": "session optional pam_keyinit.so force revoke\n"})
        r = self.doctor()
        level, detail = findings(r)["PAM stacks"]
        self.assertEqual((r.rc, level), (0, "warn"))
        self.assertIn("no stack in %s lists pam_azid.so" % self.pam, detail)

    def test_session_keyring_not_the_users(self):
        r = self.doctor(keyring=False)
        level, detail = findings(r)["keyring"]
        self.assertEqual(level, "warn")
        self.assertIn("pam_keyinit", detail)
        self.assertEqual(r.rc, 0, "warnings alone do not fail")

    def test_keyring_quota(self):
        r = self.doctor()
        level, detail = findings(r)["keyring quota"]
        self.assertEqual(level, "ok", r)
        self.assertRegex(detail, r"^uid %d uses \d+ of \d+ bytes and \d+ of \d+ keys$" % clitest.UID)
        # Filled to within 1 KB of its byte quota with keys in its own
        # session keyring, cleared before the session ends.  A uid of its
        # own: the quota is per uid, and the other CLI tests, which may run
        # at the same time, add keys as clitest.UID.
        uid = clitest.UID + 1
        fill = ("keyctl link @u @s >/dev/null; i=0; while head -c 1000 /dev/zero | "
                "keyctl padd user azid-fill-$i @s >/dev/null 2>&1; do i=$((i+1)); "
                "[ $i -lt 100 ] || exit 9; done; "
                'LD_LIBRARY_PATH="$1" "$1/azid" doctor --pam-dir "$2" --config "$3" --endpoint "$4"; '
                "rc=$?; keyctl clear @s; exit $rc")
        p = subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
                            "keyctl", "session", "-", "sh", "-c", fill, "sh", box.dir, self.pam,
                            self.config, emulator.url],
                           capture_output=True, text=True, timeout=60, cwd="/")
        self.assertEqual(p.returncode, 0, p)
        level, detail = findings(p)["keyring quota"]
        self.assertEqual(level, "warn", p)
        self.assertRegex(detail, r"^uid %d uses \d+ of \d+ bytes and \d+ of \d+ keys; " % uid)
        self.assertIn("raise sysctl kernel.keys.maxbytes / kernel.keys.maxkeys", detail)

    def test_no_identity_source_off_azure(self):
        r = box.azid("doctor", "--pam-dir", self.pam, "--config", self.config)
        f = findings(r)
        self.assertEqual(r.rc, 1)
        self.assertEqual(f["Azure machine"][0], "warn")
        self.assertIn("'No Asset Tag'", f["Azure machine"][1])
        self.assertEqual(f["identity source"][0], "FAIL")
        self.assertIn("endpoint=", f["identity source"][1])
        self.assertNotIn("endpoint reachable", f)
        self.assertLess(r.elapsed, 2, "off Azure, doctor does not wait for a timeout")

    def test_usage_errors(self):
        for args in (["--timeout", "soon"], ["--timeout", "0"], ["extra"], ["--endpoint", "ftp://x"],
                     ["--verbose"]):
            r = box.azid("doctor", *args)
            self.assertEqual((r.rc, r.stdout), (2, ""), (args, r))
            self.assertIn("azid doctor: ", r.stderr)


class FetchReadsTheConfigFile(unittest.TestCase):
    """azid fetch takes the file's source=, endpoint=, timeout= and
    ca_file= under its own options, as doctor reads them; never its grants
    or identities."""

    def setUp(self):
        if harness.CONFIG_PATH != "/etc/azid.conf":
            self.skipTest("this build reads %s by default; configure --sysconfdir=/etc (as "
                          "scripts/check does) to test /etc/azid.conf" % harness.CONFIG_PATH)

    def etc_conf(self, text, mode=0o644):
        path = box.etc_file("azid.conf", text, mode)
        self.addCleanup(os.remove, path)
        return path

    def assert_fetched(self, r):
        self.assertEqual((r.rc, r.stderr), (0, ""), r)
        self.assertEqual(r.stdout, emulator.requests()[-1]["access_token"] + "\n")

    def assert_fails(self, r, rc, *fragments):
        self.assertEqual((r.rc, r.stdout), (rc, ""), r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)
        self.assertTrue(r.stderr.startswith("azid fetch: "), r)
        for f in fragments:
            self.assertIn(f, r.stderr)

    def test_the_endpoint_doctor_checks(self):
        self.etc_conf("endpoint = %s\nresource = https://vault.azure.net\n" % emulator.url)
        r = box.azid("doctor", "--pam-dir", write_pam("pam-good", GOOD_PAM))
        self.assertEqual(findings(r)["endpoint reachable"][0], "ok", r)
        self.assert_fetched(box.azid("fetch"))

    def test_the_command_line_wins(self):
        unreachable = "http://127.0.0.1:%d" % free_port()
        self.etc_conf("endpoint = %s\ntimeout = 1\n" % unreachable)
        r = box.azid("fetch", "--endpoint", emulator.url)
        self.assert_fetched(r)
        r = box.azid("fetch")
        self.assert_fails(r, 3, unreachable, "no token within the 1.0 s time budget")

    def test_timeout_from_the_file(self):
        # A listener that takes the connection and never answers.
        with socket.socket() as hang:
            hang.bind(("127.0.0.1", 0))
            hang.listen(8)
            url = "http://127.0.0.1:%d" % hang.getsockname()[1]
            config = box.write("slow.conf", "endpoint = %s\ntimeout = 1\n" % url)
            r = box.azid("fetch", "--config", config)
            self.assert_fails(r, 3, url, "no token within the 1.0 s time budget")
            self.assertLess(r.elapsed, 2.5)
            r = box.azid("fetch", "--config", config, "--timeout", "2")
            self.assert_fails(r, 3, "no token within the 2.0 s time budget")

    def test_grants_and_identities_of_the_file_are_not_fetchs(self):
        # The emulator knows no such identities: asking with one would fail.
        config = box.write("grants.conf", "client_id = no-such-client\n"
                                          "resource = https://vault.azure.net\n"
                                          "Match user %s\n"
                                          "  object_id = no-such-object\n"
                                          "  resource = https://storage.azure.com/\n"
                                          "  endpoint = %s\n" % (clitest.USER, emulator.url))
        r = box.azid("fetch", "--config", config)
        self.assert_fetched(r)
        self.assertEqual(emulator.requests()[-1]["query"],
                         {"api-version": ["2018-02-01"], "resource": ["https://management.azure.com/"]},
                         "the Match block's endpoint applied, its identity and grants did not")

    def test_a_refused_file_is_an_error_naming_it(self):
        bad = box.write("bad.conf", "# azid\nendpoint = %s\nnot_a_key = 1\n" % emulator.url)
        unsafe = box.write("unsafe.conf", "endpoint = %s\n" % emulator.url, mode=0o666)
        for config, fragment in ((bad, bad + ":3"), (unsafe, "writable by group or others")):
            r = box.azid("fetch", "--config", config, "--endpoint", emulator.url)
            self.assert_fails(r, 1, fragment, "pam_azid and azidd refuse it too")

    def test_a_file_the_user_cannot_read(self):
        # A root-only /etc/azid.conf is pam_azid's: fetch goes on without it.
        unreachable = "http://127.0.0.1:%d" % free_port()
        path = self.etc_conf("endpoint = %s\n" % unreachable, mode=0o600)
        self.assert_fetched(box.azid("fetch", "--endpoint", emulator.url))
        r = box.azid("fetch")
        self.assert_fails(r, 3, "not an Azure VM", "give --endpoint URL (or endpoint= in %s, which uid %d "
                                                   "cannot read) to use another token endpoint"
                          % (path, clitest.UID))
        self.assertLess(r.elapsed, 2)
        # One named on the command line is read, or refused.
        r = box.azid("fetch", "--config", path, "--endpoint", emulator.url)
        self.assert_fails(r, 1, path, "Permission denied")

    def test_off_azure_without_a_file(self):
        absent = box.path("absent.conf")
        r = box.azid("fetch", "--config", absent)
        self.assert_fails(r, 3, "not an Azure VM (no Azure asset tag in %s, no Arc agent); give --endpoint URL "
                                "(or endpoint= in %s) to use another token endpoint" % (ASSET_TAG_FILE, absent))
        self.assertLess(r.elapsed, 2, "off Azure, fetch does not wait for a timeout")
        self.assert_fetched(box.azid("fetch", "--config", absent, "--endpoint", emulator.url))


if __name__ == "__main__":
    harness.main()
