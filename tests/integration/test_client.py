#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""libazid's client API driven directly (ctypes on the built libazid.so)
against the emulator: the budget spans requests, a request after it is spent
fails at once, resolve/endpoint report what will be asked, errors carry the
HTTP status, tokens already obtained are handed out again without a request
until a setting changes or they near expiry."""

import ctypes
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402

AZID_OK, AZID_ERR_ARGUMENT, AZID_ERR_UNREACHABLE, AZID_ERR_TIMEOUT, AZID_ERR_HTTP = 0, 1, 5, 6, 7
AZID_SOURCE_IMDS, AZID_SOURCE_ARC = 1, 2
AZID_IDENTITY_SYSTEM, AZID_IDENTITY_CLIENT_ID = 0, 1
VAULT = b"https://vault.azure.net"
AZID_GLOBAL_NO_TLS = 0x1


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("http_status", ctypes.c_long), ("message", ctypes.c_char * 512)]


def load():
    path = os.path.join(harness.top_builddir, ".libs", "libazid.so.0")
    if not os.path.exists(path):
        harness.skip("%s not built" % path)
    lib = ctypes.CDLL(path)
    lib.azid_client_new.restype = ctypes.c_void_p
    lib.azid_client_free.argtypes = [ctypes.c_void_p]
    for name in ("azid_client_set_endpoint",):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Error)]
    lib.azid_client_set_source.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(Error)]
    lib.azid_client_set_identity.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                             ctypes.POINTER(Error)]
    lib.azid_client_set_timeout_ms.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.POINTER(Error)]
    lib.azid_client_resolve_source.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                               ctypes.POINTER(Error)]
    lib.azid_client_endpoint.argtypes = [ctypes.c_void_p]
    lib.azid_client_endpoint.restype = ctypes.c_char_p
    lib.azid_client_get_token.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.POINTER(Error)]
    lib.azid_token_value.argtypes = [ctypes.c_void_p]
    lib.azid_token_value.restype = ctypes.c_char_p
    lib.azid_token_expires_on.argtypes = [ctypes.c_void_p]
    lib.azid_token_expires_on.restype = ctypes.c_int64
    lib.azid_token_free.argtypes = [ctypes.c_void_p]
    lib.azid_global_init.argtypes = [ctypes.c_uint, ctypes.POINTER(Error)]
    return lib


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lib = load()

    def setUp(self):
        self._tmp = harness.TempDir()
        self.tmp = self._tmp.__enter__()
        self.client = self.lib.azid_client_new()
        self.err = Error()

    def tearDown(self):
        self.lib.azid_client_free(self.client)
        self._tmp.__exit__(None, None, None)

    def get_token(self, resource=b"https://vault.azure.net"):
        tok = ctypes.c_void_p()
        start = time.monotonic()
        st = self.lib.azid_client_get_token(self.client, resource, ctypes.byref(tok), ctypes.byref(self.err))
        elapsed = time.monotonic() - start
        value = None
        if st == AZID_OK:
            value = self.lib.azid_token_value(tok).decode()
            self.lib.azid_token_free(tok)
        else:
            self.assertFalse(tok.value)
        return st, value, elapsed

    def test_budget_spans_requests(self):
        with harness.Emulator(self.tmp, faults=["hang-all"]) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            self.lib.azid_client_set_timeout_ms(self.client, 1500, ctypes.byref(self.err))
            st, _, first = self.get_token()
            self.assertEqual(st, AZID_ERR_TIMEOUT, self.err.message)
            self.assertLess(first, 1.5 + 1.5)
            st, _, second = self.get_token()
            self.assertEqual(st, AZID_ERR_TIMEOUT)
            self.assertIn(b"time budget was already spent by earlier requests", self.err.message)
            self.assertLess(second, 0.2)
            self.assertEqual(self.err.http_status, 0)

    def test_token_then_http_error(self):
        with harness.Emulator(self.tmp, identities=["client_id=C1,object_id=O1,msi_res_id=R1"]) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            st, value, _ = self.get_token()
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertEqual(value, emu.requests()[0]["access_token"])
            self.lib.azid_client_set_identity(self.client, AZID_IDENTITY_CLIENT_ID, b"C2", ctypes.byref(self.err))
            st, _, _ = self.get_token()
            self.assertEqual(st, AZID_ERR_HTTP)
            self.assertEqual(self.err.http_status, 400)
            self.assertIn(b"Identity not found", self.err.message)

    def test_global_init_refuses_a_change_after_the_first_request(self):
        """azid_global_init is for a process's start (test_secret.py runs
        it there): once a request loaded libcurl, asking for another setting
        is refused and changes nothing, while restating the one in effect
        succeeds."""
        with harness.Emulator(self.tmp) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            self.assertEqual(self.get_token()[0], AZID_OK, self.err.message)
        self.assertEqual(self.lib.azid_global_init(0, ctypes.byref(self.err)), AZID_OK, self.err.message)
        self.assertEqual(self.lib.azid_global_init(AZID_GLOBAL_NO_TLS, ctypes.byref(self.err)),
                         AZID_ERR_ARGUMENT)
        self.assertEqual(self.err.message, b"azid_global_init after this process's first request "
                                           b"loaded libcurl; call it before that")
        # An https request is still sent (and finds nothing listening).
        self.lib.azid_client_set_endpoint(self.client, b"https://127.0.0.1:9", ctypes.byref(self.err))
        self.lib.azid_client_set_timeout_ms(self.client, 500, ctypes.byref(self.err))
        self.assertIn(self.get_token()[0], (AZID_ERR_UNREACHABLE, AZID_ERR_TIMEOUT), self.err.message)
        self.assertNotIn(b"AZID_GLOBAL_NO_TLS", self.err.message)

    def resources_asked(self, emu):
        return [(e["query"]["resource"][0], e["query"].get("client_id", [None])[0]) for e in emu.requests()]

    def test_tokens_kept_per_resource(self):
        with harness.Emulator(self.tmp, identities=["system", "client_id=C1,object_id=O1,msi_res_id=R1"]) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            st, first, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            # The first copy was freed (and wiped) by get_token; the client
            # hands out another copy of the same token.
            self.assertEqual(self.get_token(VAULT)[:2], (AZID_OK, first))
            self.assertEqual(self.resources_asked(emu), [("https://vault.azure.net", None)])
            # Another resource (the trailing slash makes it one) is asked for.
            st, other, _ = self.get_token(VAULT + b"/")
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertNotEqual(other, first)
            self.assertEqual(self.get_token(VAULT)[:2], (AZID_OK, first))
            self.assertEqual(len(emu.requests()), 2)
            # Another identity: a new token, then kept for that identity.
            self.lib.azid_client_set_identity(self.client, AZID_IDENTITY_CLIENT_ID, b"C1", ctypes.byref(self.err))
            st, user, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertNotIn(user, (first, other))
            self.assertEqual(self.get_token(VAULT)[:2], (AZID_OK, user))
            self.assertEqual(self.resources_asked(emu)[2:], [("https://vault.azure.net", "C1")])
            # Back to the system identity: the token of C1 is not handed out.
            self.lib.azid_client_set_identity(self.client, AZID_IDENTITY_SYSTEM, None, ctypes.byref(self.err))
            st, system, _ = self.get_token(VAULT)
            self.assertNotIn(system, (first, user))
            # Setting the endpoint (even the same one) drops them too.
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            st, again, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertNotEqual(again, system)
            self.assertEqual(self.resources_asked(emu)[3:], [("https://vault.azure.net", None)] * 2)

    def test_token_near_expiry_not_kept(self):
        # 30 s left is inside AZID_EXPIRY_SKEW_S (60): too short to hand out again.
        with harness.Emulator(self.tmp, lifetime=30) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            st, first, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            st, second, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertNotEqual(first, second)
            self.assertEqual(len(emu.requests()), 2)

    def test_failure_not_kept(self):
        with harness.Emulator(self.tmp, faults=["400"]) as emu:
            self.lib.azid_client_set_endpoint(self.client, emu.url.encode(), ctypes.byref(self.err))
            self.assertEqual(self.get_token(VAULT)[0], AZID_ERR_HTTP)
            st, value, _ = self.get_token(VAULT)
            self.assertEqual(st, AZID_OK, self.err.message)
            self.assertEqual(value, emu.requests()[-1]["access_token"])
            self.assertEqual(len(emu.requests()), 2)

    def test_resolve_and_endpoint(self):
        src = ctypes.c_int(-1)
        self.assertEqual(self.lib.azid_client_set_endpoint(self.client, b"http://127.0.0.1:9", ctypes.byref(self.err)),
                         AZID_OK)
        self.assertEqual(self.lib.azid_client_resolve_source(self.client, ctypes.byref(src), ctypes.byref(self.err)),
                         AZID_OK)
        self.assertEqual(src.value, AZID_SOURCE_IMDS)
        self.assertEqual(self.lib.azid_client_endpoint(self.client), b"http://127.0.0.1:9/metadata/identity/oauth2/token")
        self.lib.azid_client_set_source(self.client, AZID_SOURCE_ARC, ctypes.byref(self.err))
        self.lib.azid_client_resolve_source(self.client, ctypes.byref(src), ctypes.byref(self.err))
        self.assertEqual(src.value, AZID_SOURCE_ARC)
        self.assertEqual(self.lib.azid_client_set_endpoint(self.client, b"http://h/x", ctypes.byref(self.err)),
                         AZID_ERR_ARGUMENT)
        self.assertIn(b"no path, query or fragment", self.err.message)
        # a rejected endpoint leaves the previous one in place
        self.assertEqual(self.lib.azid_client_endpoint(self.client), b"http://127.0.0.1:9/metadata/identity/oauth2/token")


class FreedMemoryTest(unittest.TestCase):
    """`azid fetch` (libazid.so) with tests/pam/free_scan.c preloaded: no
    heap block freed while the token was fetched, parsed and printed holds
    it (libcurl's buffers, jansson's strings, libazid's own).  Not in the
    ASan stage: the sanitizer's runtime must come first."""

    def test_no_unwiped_token_in_freed_memory(self):
        shim = os.path.join(harness.top_builddir, "tests", "pam", ".libs", "free_scan.so")
        if not os.path.exists(shim):
            self.skipTest("%s not built" % shim)
        token = "eyJ0eXAiOiJKV1QifQ.cli-freescan-" + os.urandom(24).hex()
        with harness.TempDir() as tmp:
            log = os.path.join(tmp, "scan.log")
            with harness.Emulator(tmp, faults=['field:access_token="%s"' % token]) as emu:
                for extra in ([], ["--json"]):
                    emu.set_faults(['field:access_token="%s"' % token])
                    # The program itself, not libtool's wrapper: a shell
                    # would copy the environment, which names the token.
                    r = harness.run([os.path.join(harness.top_builddir, ".libs", "azid"), "fetch",
                                     "--endpoint", emu.url] + extra,
                                    env={"LD_PRELOAD": shim, "AZID_FREE_SCAN": token,
                                         "AZID_FREE_SCAN_LOG": log,
                                         "LD_LIBRARY_PATH": os.path.join(harness.top_builddir, ".libs")})
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn(token, r.stdout)
            with open(log) as f:
                lines = f.read().splitlines()
        scanned = [l for l in lines if l.startswith("scanned ")]
        self.assertEqual(len(scanned), 2, lines)
        self.assertTrue(all(int(l.split()[1]) > 500 for l in scanned), lines)
        self.assertEqual([l for l in lines if l.startswith("copy of value")], [])


class SetuidTest(unittest.TestCase):
    """libazid inside a set-user-id program (su is one): the caller's
    environment must not steer libcurl."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to make a set-user-id copy")
        self._tmp = harness.TempDir()
        self.tmp = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        if os.statvfs(self.tmp).f_flag & os.ST_NOSUID:
            self.skipTest("%s is mounted nosuid" % self.tmp)
        os.chmod(self.tmp, 0o755)
        self.prog = os.path.join(self.tmp, "token_get")
        shutil.copy(os.path.join(harness.top_builddir, "tests", "integration", "token_get"), self.prog)
        os.chown(self.prog, 0, 0)
        os.chmod(self.prog, 0o4755)

    def run_as_nobody(self, endpoint, env, *extra):
        return subprocess.run([self.prog, endpoint, "https://vault.azure.net", "2000"] + list(extra),
                              env=env,
                              user=65534, group=65534, extra_groups=[], capture_output=True,
                              text=True, timeout=20)

    def test_sslkeylogfile_refused(self):
        keylog = os.path.join(self.tmp, "keylog")
        with harness.Emulator(self.tmp) as emu:
            r = self.run_as_nobody(emu.url, {"PATH": "/usr/bin:/bin"})
            self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
            r = self.run_as_nobody(emu.url, {"PATH": "/usr/bin:/bin", "SSLKEYLOGFILE": keylog})
            self.assertFalse(os.path.exists(keylog), "root created the caller's SSLKEYLOGFILE")
            self.assertEqual(r.returncode, 1)
            self.assertIn("system: IMDS %s/metadata/identity/oauth2/token: refusing to use libcurl in "
                          "a set-user-id program whose caller set SSLKEYLOGFILE" % emu.url, r.stdout)
            self.assertEqual(len(emu.requests()), 1)

    def test_ca_file_read_with_the_effective_ids(self):
        # su is set-user-id root: a CA bundle only root may read is as
        # readable to it as to sshd (issue 9 finding 10; access(2) asked the
        # real uid).
        ca = os.path.join(self.tmp, "ca.pem")
        with open(ca, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n")
        os.chmod(ca, 0o600)
        with harness.Emulator(self.tmp) as emu:
            r = self.run_as_nobody(emu.url, {"PATH": "/usr/bin:/bin"}, ca)
            self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
            r = self.run_as_nobody(emu.url, {"PATH": "/usr/bin:/bin"}, ca + ".missing")
            self.assertEqual(r.returncode, 1)
            self.assertIn("argument: cannot read CA file %s.missing: No such file" % ca, r.stdout)
            self.assertEqual(len(emu.requests()), 1)


if __name__ == "__main__":
    harness.main()
