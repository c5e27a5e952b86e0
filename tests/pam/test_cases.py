#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the PAM session cases in tests/pam/cases/<area>/<case>: each is one
session of pam_azid through the real libpam (pamtest.Sandbox), against the
IMDS emulator and, when the case has a vault, the Key Vault emulator over
real TLS.  tests/pam/README describes the format.

    tests/pam/test_cases.py [-k NAME]        (make check runs it as root)
    AZID_PAM_CASES_SHOW=1 tests/pam/test_cases.py -k NAME
        also prints what each case saw, in the format of its sections

Every case runs inside one private network namespace (loopback only) where
v1.vault.azure.net is 127.0.0.1; every log line of every case is checked
for the tokens IMDS issued and the secret values the vault holds."""

import hashlib
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pamtest  # noqa: E402
from pamtest import harness  # noqa: E402

sys.path.insert(0, os.path.join(harness.top_srcdir, "tests", "lib"))
import kvtest  # noqa: E402

CASES = os.path.join(harness.top_srcdir, "tests", "pam", "cases")
VAULT_HOST = "v1.vault.azure.net"
SECTIONS = ("options", "config", "setup", "run", "keys", "user keys", "keys after close",
            "user keys after close", "requests", "vault requests", "output")
SETUP_KEYS = ("user", "keyinit", "stack", "session", "deny_keys", "deny_uid_restore", "network",
              "fail_calloc", "child_end", "inspect", "imds_lifetime", "imds_identities", "imds_faults", "imds_fault", "vault",
              "sslkeylogfile")
# What pam_run runs in ([setup] session): the session keyring of the test
# (login); a fresh one of root's (root: sshd with KeyringMode=private);
# or one that also links _uid.0 and holds systemd's invocation_id key
# (systemd-shared: KeyringMode=shared).
SESSIONS = {
    "login": [],
    "root": ["keyctl", "session", "-"],
    "systemd-shared": ["keyctl", "session", "-", "sh", "-c",
                       'keyctl link @u @s && keyctl add user invocation_id 0123456789abcdef @s >/dev/null'
                       ' && exec "$@"', "sh"],
}
# The probe stack turns pam_azid's PAM_IGNORE into this (pamtest.py).
PAM_RESULTS = ("PAM_SUCCESS", "PAM_IGNORE", "PAM_SESSION_ERR")

# After pam_end, as the user: the azid keys left in the session keyring and
# in the user keyring.  A key that is invalidated is unusable at once but
# stays linked until the kernel's key garbage collector runs; only keys that
# still exist are listed.
AFTER = r"""
for ring in @s @u; do
  for k in $(keyctl rlist $ring 2>/dev/null); do
    d=$(keyctl rdescribe "$k" 2>/dev/null) || continue
    case "$d" in user\;*\;azid:*) printf 'LEFT %s %s %s\n' "$ring" "$k" "${d#*;*;*;*;}" ;; esac
  done
done
"""
# During the session, besides pamtest.INSPECT (the session keyring): the
# azid keys in the user keyring.
INSPECT_USER = r"""
for k in $(keyctl rlist @u 2>/dev/null); do
  d=$(keyctl rdescribe "$k" 2>/dev/null) || continue
  case "$d" in user\;*\;azid:*)
    printf 'UKEY %s %s %s\n' "$k" "${d#*;*;*;*;}" "$(keyctl pipe "$k" | sha256sum | cut -c1-64)" ;;
  esac
done
"""


class Case:
    """One case file: its sections as lists of lines."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.relpath(path, CASES)
        self.sections = {}
        section = None
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                m = re.fullmatch(r"\[([a-z ]+)\]", line)
                if m:
                    section = m.group(1)
                    if section not in SECTIONS or section in self.sections:
                        raise ValueError("%s:%d: unknown or repeated section [%s]" % (path, number, section))
                    self.sections[section] = []
                elif section is None:
                    if line and not line.startswith("#"):
                        raise ValueError("%s:%d: text before the first section" % (path, number))
                elif section == "config":
                    if line and not line.startswith("    "):
                        raise ValueError("%s:%d: [config] lines are indented by four spaces" % (path, number))
                    self.sections[section].append(line[4:])
                elif line.strip() and not line.lstrip().startswith("#"):
                    self.sections[section].append(line.strip())
        self.setup = self.pairs("setup", r"([a-z_]+) = (.*)")
        for key in self.setup:
            if key not in SETUP_KEYS:
                raise ValueError("%s: unknown [setup] key %s" % (path, key))

    def lines(self, section):
        return self.sections.get(section, [])

    def pairs(self, section, pattern):
        out = {}
        for line in self.lines(section):
            m = re.fullmatch(pattern, line)
            if not m:
                raise ValueError("%s: [%s] line not understood: %s" % (self.path, section, line))
            out[m.group(1)] = m.group(2)
        return out

    def twin_view(self):
        """What a case and its debug twin share: all but the output and the
        debug argument."""
        return {k: v for k, v in self.sections.items() if k != "output"} | {
            "options": [o for o in self.lines("options") if o != "debug"]}


def all_cases():
    out = []
    for area in sorted(os.listdir(CASES)):
        if os.path.isdir(os.path.join(CASES, area)):
            for name in sorted(os.listdir(os.path.join(CASES, area))):
                out.append(Case(os.path.join(CASES, area, name)))
    return out


class Run:
    """The world of one case: emulators, config file, and what it saw."""

    def __init__(self, test, case):
        self.test = test
        self.case = case
        self.subst = {"%u": case.setup.get("user", "azuser")}

    def expand(self, text, regex=False):
        def value(m):
            key = m.group(0)
            if key.startswith("%{serial:"):
                desc = key[len("%{serial:"):-1]
                v = str(self.result.keys[desc]["serial"]) if desc in self.result.keys else "(no key %s)" % desc
            elif key not in self.subst:
                raise ValueError("%s: unknown substitution %s" % (self.case.path, key))
            else:
                v = self.subst[key]
            return re.escape(v) if regex else v
        return re.sub(r"%u|%\{[a-z_]+(?::[^}]*)?\}", value, text)


class Cases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = harness.TempDir()
        cls.tmp = cls.tmpdir.__enter__()
        kvtest.map_hosts(cls.tmp, {"127.0.0.1": [VAULT_HOST]})
        cls.pki = kvtest.Pki(cls.tmp)
        cls.cert, cls.key = cls.pki.server("ca", ["*.vault.azure.net"])
        cls.ca = cls.pki.ca("ca")[0]

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["umount", "/etc/hosts"], check=True)
        cls.tmpdir.__exit__(None, None, None)

    def run_case(self, case):
        if "vault" in case.setup and os.environ.get("AZID_PAM_VALGRIND") == "1":
            # Under memcheck a TLS handshake outlasts the 1 s connect limit.
            self.skipTest("a vault case: not under valgrind")
        with harness.TempDir() as tmp, pamtest.Sandbox(tmp) as sandbox:
            run = Run(self, case)
            setup = case.setup
            emulators = []
            try:
                if setup.get("network") != "none":
                    imds = harness.Emulator(
                        tmp, lifetime=setup.get("imds_lifetime"),
                        identities=setup.get("imds_identities", "").split() or None,
                        faults=setup.get("imds_faults", "").split() or None,
                        extra_args=["--fault", setup["imds_fault"]] if "imds_fault" in setup else ())
                    emulators.append(imds)
                    run.subst["%{imds}"] = imds.url
                else:
                    imds = None
                vault_secrets = self.vault_secrets(setup)
                kv = None
                if vault_secrets is not None:
                    kv = kvtest.KeyVault(tmp, self.cert, self.key, secrets=vault_secrets,
                                         imds_log=imds.log_path)
                    emulators.append(kv)
                run.subst["%{ca}"] = self.ca
                if case.lines("config"):
                    run.subst["%{config}"] = sandbox.write_config(
                        "".join(run.expand(line) + "\n" for line in case.lines("config")))
                self.execute(run, sandbox, imds, kv, vault_secrets or [])
            finally:
                for emu in emulators:
                    emu.stop()

    @staticmethod
    def vault_secrets(setup):
        """The vault's secrets as keyvault.py takes them (exp=+N is N s from now)."""
        if "vault" not in setup:
            return None
        now = int(time.time())
        return [re.sub(r"exp=\+(\d+)", lambda m: "exp=%d" % (now + int(m.group(1))), s)
                for s in setup["vault"].split()]

    def execute(self, run, sandbox, imds, kv, vault_secrets):
        case, setup = run.case, run.case.setup
        user = setup.get("user", "azuser")
        keyinit = setup.get("keyinit", "force revoke")
        inspect = setup.get("inspect", "yes") == "yes"
        prefix = SESSIONS[setup.get("session", "login")]
        if "fail_calloc" in setup:
            shim = os.path.join(harness.top_builddir, "tests", "pam", ".libs", "fail_calloc.so")
            prefix = ["env", "LD_PRELOAD=" + shim, "AZID_FAIL_CALLOC=%s" % setup["fail_calloc"]] + prefix
        args = [run.expand(a) for a in case.lines("options")]
        keylog = os.path.join(sandbox.tmp, "keylog") if setup.get("sslkeylogfile") == "yes" else None
        cleanup = ""
        if "keyring=user" in args:
            # The user keyring outlives the test: remove what this case stored.
            cleanup = 'for k in $(keyctl rlist @u 2>/dev/null); do ' \
                      'case "$(keyctl rdescribe "$k" 2>/dev/null)" in user\\;*\\;azid:*) ' \
                      'keyctl unlink "$k" @u >/dev/null ;; esac; done'
        r = sandbox.run(args, user=user, keyinit=None if keyinit == "none" else keyinit,
                        plain=setup.get("stack") == "plain",
                        during=pamtest.INSPECT + INSPECT_USER if inspect else None,
                        after=AFTER + cleanup if inspect else None, prefix=prefix,
                        deny_keys=setup.get("deny_keys"), deny_uid_restore=setup.get("deny_uid_restore") == "yes",
                        netns=setup.get("network") == "none",
                        fake_dmi=setup.get("network") == "none", child_end=setup.get("child_end") == "yes",
                        env_extra={"SSLKEYLOGFILE": keylog} if keylog else None)
        if keylog:
            self.assertFalse(os.path.exists(keylog), "root created SSLKEYLOGFILE")
        run.result = r
        issued = [e for e in imds.requests() if e["access_token"]] if imds else []
        kv_requests = kv.requests() if kv else []
        values = [s.split("=", 1)[1].split(",")[0] for s in vault_secrets]
        if os.environ.get("AZID_PAM_CASES_SHOW"):
            self.show(case, r, imds, kv_requests)

        # No token or secret value ever reaches a log line.
        for line in r.all_logs:
            for e in issued:
                self.assertNotIn(e["access_token"], line)
            for v in values:
                if v:
                    self.assertNotIn(v, line)

        self.check_run(run, r)
        if inspect:
            self.check_keys(run, r, issued, vault_secrets)
        self.check_requests(run, imds, kv_requests, r)
        self.check_output(run, r)

    def check_run(self, run, r):
        stack_plain = run.case.setup.get("stack") == "plain"
        inspect = run.case.setup.get("inspect", "yes") == "yes"
        wanted = run.case.lines("run")
        if not any(w.startswith("open_session ") for w in wanted):
            raise ValueError("%s: [run] must give open_session" % run.case.path)
        for line in wanted:
            m = re.fullmatch(r"([a-z_]+) (=|<) (\S+)", line)
            if not m:
                raise ValueError("%s: [run] line not understood: %s" % (run.case.path, line))
            step, op, value = m.groups()
            self.assertIn(step, r.steps, r)
            if op == "<":
                self.assertLess(int(r.steps[step]), int(value), r)
            else:
                if value == "PAM_IGNORE" and not stack_plain:
                    value = pamtest.IGNORED
                self.assertEqual(r.steps[step], value, "%s: %r" % (step, r))
        if inspect:
            self.assertEqual(r.steps.get("during"), "0", r)
            self.assertEqual(r.steps.get("after"), "0", r)

    def wanted_keys(self, run, section):
        """{description: {attribute: value}} from a keys section."""
        out = {}
        for line in run.case.lines(section):
            parts = line.split()
            attrs = dict(re.fullmatch(r"([a-z]+)(<=|=)(\S+)", p).group(1, 3) for p in parts[1:])
            out[run.expand(parts[0])] = attrs
        return out

    def check_keys(self, run, r, issued, vault_secrets):
        uid = pamtest.USERS.get(run.case.setup.get("user", "azuser"), 0)
        wanted = self.wanted_keys(run, "keys")
        self.assertEqual(sorted(r.keys), sorted(wanted), r)
        tokens = {}
        for e in issued:  # the last token issued for a resource is the one kept
            tokens[e["query"]["resource"][0]] = e
        secrets = {"azid:secret:%s/%s" % (VAULT_HOST, s.split("=", 1)[0]): s.split("=", 1)[1].split(",")[0]
                   for s in vault_secrets}
        now = int(time.time())
        for desc, attrs in wanted.items():
            key = r.keys[desc]
            self.assertEqual((key["uid"], key["gid"], key["perm"]), (uid, uid, "2f010000"), desc)
            left = pamtest.timeout_seconds(key["timeout"])
            self.assertIsNotNone(left, desc)
            self.assertGreater(left, 0, desc)
            if desc.startswith("azid:token:"):
                entry = tokens[desc[len("azid:token:"):]]
                self.assertEqual(key["value"], entry["access_token"], desc)
                self.assertLessEqual(left, entry["expires_on"] - 60 - now + 1, desc)
            else:
                self.assertEqual(key["value"], secrets[desc], desc)
                vault = tokens["https://vault.azure.net"]
                self.assertLessEqual(left, vault["expires_on"] - 60 - now + 1, desc)
            if "timeout" in attrs:
                self.assertLessEqual(left, int(attrs["timeout"]), desc)
        # Each key holds its own token.
        values = [k["value"] for k in r.keys.values()]
        self.assertEqual(len(values), len(set(values)), r)

        seen_user = {}
        for line in r.stdout.splitlines():
            if line.startswith("UKEY "):
                _, serial, desc, digest = line.split(" ", 3)
                seen_user[desc] = (int(serial), digest)
        if run.case.lines("user keys"):
            wanted_user = self.wanted_keys(run, "user keys")
            self.assertEqual(sorted(seen_user), sorted(wanted_user), r.stdout)
            for desc in wanted_user:
                token = tokens[desc[len("azid:token:"):]]["access_token"]
                self.assertEqual(seen_user[desc][1], hashlib.sha256(token.encode()).hexdigest(), desc)
        # What close left behind: the same keys, by serial.
        left = {}
        for line in r.stdout.splitlines():
            if line.startswith("LEFT "):
                _, ring, serial, desc = line.split(" ", 3)
                left.setdefault(ring, []).append((desc, int(serial)))
        self.assertEqual(sorted(left.get("@s", [])),
                         sorted((d, r.keys[d]["serial"]) for d in self.wanted_keys(run, "keys after close")),
                         r.stdout)
        if run.case.lines("user keys after close"):
            self.assertEqual(sorted(left.get("@u", [])),
                             sorted((d, seen_user[d][0]) for d in self.wanted_keys(run, "user keys after close")),
                             r.stdout)

    def check_requests(self, run, imds, kv_requests, r):
        got = imds.requests() if imds else []
        asked = []
        wanted = {}
        for line in run.case.lines("requests"):
            m = re.fullmatch(r"([a-z]+) = (.*)", line)
            if not m:
                raise ValueError("%s: [requests] line not understood: %s" % (run.case.path, line))
            if m.group(1) == "asked":
                asked.append(m.group(2))
            else:
                wanted[m.group(1)] = m.group(2)
        if asked:
            # Which identity each resource was asked with (order-insensitive).
            seen = []
            for e in got:
                ids = ["%s=%s" % (k, e["query"][k][0]) for k in ("client_id", "object_id", "msi_res_id")
                       if k in e["query"]]
                seen.append(" ".join([e["query"]["resource"][0]] + (ids or ["system-assigned"])))
            self.assertEqual(sorted(seen), sorted(asked), got)
        for field, value in wanted.items():
            if field == "count":
                self.assertEqual(len(got), int(value), got)
            elif field == "statuses":
                self.assertEqual([e["status"] for e in got], [int(v) for v in value.split()], got)
            elif field == "resources":
                self.assertEqual([e["query"]["resource"][0] for e in got], value.split(), got)
            else:
                raise ValueError("%s: unknown [requests] field %s" % (run.case.path, field))
        for field, value in run.case.pairs("vault requests", r"([a-z]+) = (.*)").items():
            if field == "count":
                self.assertEqual(len(kv_requests), int(value), kv_requests)
            elif field == "auth":
                self.assertEqual([e["auth"] for e in kv_requests], value.split(), kv_requests)
            elif field == "tokens":
                # Each request carried the token stored under that key.
                self.assertEqual([e["token_sha256"] for e in kv_requests],
                                 [hashlib.sha256(r.keys[d]["value"].encode()).hexdigest() for d in value.split()])
            else:
                raise ValueError("%s: unknown [vault requests] field %s" % (run.case.path, field))

    def check_output(self, run, r):
        """The module's log, line by line: "SEVERITY text", the text exact or
        /regex/ (searched); "..." stands for any number of lines."""
        wanted = run.case.lines("output")
        seen = ["%s %s" % line for line in r.logs]

        def line_matches(want, got):
            severity, _, text = want.partition(" ")
            got_severity, _, got_text = got.partition(" ")
            if severity != got_severity:
                return False
            if len(text) > 1 and text.startswith("/") and text.endswith("/"):
                return re.search(run.expand(text[1:-1], regex=True), got_text) is not None
            return run.expand(text) == got_text

        def match(i, j):
            if i == len(wanted):
                return j == len(seen)
            if wanted[i] == "...":
                return any(match(i + 1, k) for k in range(j, len(seen) + 1))
            return j < len(seen) and line_matches(wanted[i], seen[j]) and match(i + 1, j + 1)

        if not match(0, 0):
            self.fail("%s: log lines differ\nwanted:\n  %s\nseen:\n  %s"
                      % (run.case.name, "\n  ".join(wanted), "\n  ".join(seen)))

    @staticmethod
    def show(case, r, imds, kv_requests):
        print("\n--- %s: what it saw" % case.name)
        print("[run]\n" + "".join("    %s = %s\n" % kv for kv in r.steps.items()))
        print("[keys]\n" + "".join("    %s %d\n" % (d, k["serial"]) for d, k in r.keys.items()))
        if imds:
            print("[requests] %r" % [(e["status"], e["query"].get("resource")) for e in imds.requests()])
        print("[vault requests] %r" % [e.get("auth") for e in kv_requests])
        print("[output]\n" + "".join("    %s %s\n" % line for line in r.logs))
        print(r.stdout)


def add_tests():
    cases = all_cases()
    names = {c.name for c in cases}
    for case in cases:
        def test(self, case=case):
            self.run_case(case)
        test.__doc__ = case.name
        setattr(Cases, "test_" + re.sub(r"\W", "_", case.name), test)

    def test_every_case_has_a_debug_twin(self):
        """X and X-debug differ in the debug argument and the output only."""
        by_name = {c.name: c for c in cases}
        for case in cases:
            twin = case.name[:-len("-debug")] if case.name.endswith("-debug") else case.name + "-debug"
            self.assertIn(twin, names, "%s has no twin %s" % (case.name, twin))
            debug = by_name[max(case.name, twin, key=len)]
            self.assertIn("debug", debug.lines("options"), debug.name)
            self.assertEqual(case.twin_view(), by_name[twin].twin_view(), case.name)
    Cases.test_every_case_has_a_debug_twin = test_every_case_has_a_debug_twin


add_tests()

if __name__ == "__main__":
    pamtest.require_root()
    kvtest.enter_network_namespace()
    harness.main()
