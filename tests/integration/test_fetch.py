#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`azid fetch` against the IMDS emulator on 127.0.0.1: what a user sees
(stdout, the one stderr line, the exit code, how long it took) and what
IMDS sees (the emulator's request log)."""

import ctypes
import ctypes.util
import email.utils
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402

# Source-selecting variables a developer's shell might carry.
CLEAN_ENV = {name: None for name in (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY")}
# Deadlines are asserted loosely: the contract is budget + 0.5 s; the
# extra second absorbs a loaded test machine.
SLACK = 1.5


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RawServer:
    """A TCP listener on 127.0.0.1 for what the emulator cannot do: each
    connection gets serve(conn) in its own thread; closed on exit."""

    def __init__(self, serve=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        self.accepted = 0
        if serve:
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def slow_headers(conn):
    """Reads the request, then sends a status line and headers that never end."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    for _ in range(60):
        conn.sendall(b"X-Slow: 1\r\n")
        time.sleep(0.2)


def huge_without_length(conn):
    """Reads the request, then answers 200 with a body that only ends when
    the connection does: no Content-Length for libcurl to refuse up front."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(160):  # 10 MiB
        conn.sendall(chunk)


class FetchTest(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.TempDir()
        self.tmp = self._tmp.__enter__()
        self.emulators = []

    def tearDown(self):
        for emu in self.emulators:
            emu.stop()
        self._tmp.__exit__(None, None, None)

    def emulator(self, **kw):
        emu = harness.Emulator(self.tmp, **kw)
        self.emulators.append(emu)
        return emu

    def fetch(self, *args, endpoint=None, env=None, timeout=30):
        argv = [harness.azid(), "fetch"]
        if endpoint:
            argv += ["--endpoint", endpoint]
        full_env = dict(CLEAN_ENV)
        full_env.update(env or {})
        return harness.run(argv + list(args), env=full_env, timeout=timeout)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")

    def assert_fails(self, r, code, *fragments):
        """Exit code, exactly one stderr line 'azid fetch: ...' containing
        every fragment, nothing on stdout."""
        self.assertEqual(r.returncode, code, "stderr: %r" % r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        if code == 2:
            lines = lines[:1]  # usage errors add the usage line and a pointer to --help
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("azid fetch: "), lines[0])
        for f in fragments:
            self.assertIn(f, lines[0])
        return lines[0]

    # ---- success -------------------------------------------------------------

    def test_prints_the_token(self):
        emu = self.emulator()
        r = self.fetch(endpoint=emu.url)
        self.assert_ok(r)
        reqs = emu.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(r.stdout, reqs[0]["access_token"] + "\n")

    def test_without_libcurl_the_request_fails_naming_it(self):
        # libazid loads libcurl at the first request: where it cannot be
        # loaded (here an empty file in its place, in a private mount
        # namespace), the fetch fails at once with a line saying what to install.
        if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
            self.skipTest("needs root and unshare for a private mount namespace")
        ctypes.CDLL(harness.LIBCURL_SONAME)
        with open("/proc/self/maps") as f:
            paths = {l.split()[-1] for l in f if os.path.basename(l.split()[-1]).startswith(harness.LIBCURL_SONAME)}
        self.assertEqual(len(paths), 1, "where %s is mapped: %s" % (harness.LIBCURL_SONAME, paths))
        path = paths.pop()
        emu = self.emulator()
        r = harness.run(["unshare", "--mount", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', path,
                         harness.azid(), "fetch", "--endpoint", emu.url], env=dict(CLEAN_ENV))
        self.assert_fails(r, 1, "cannot load libcurl (", "install its package (libcurl4 on Debian)")
        self.assertEqual(emu.requests(), [])

    def test_plain_http_reads_no_openssl_config(self):
        """For an http:// endpoint `azid fetch` makes no TLS connection, so
        OpenSSL reads no configuration (AZID_GLOBAL_NO_TLS): root's system
        file, OPENSSLDIR/openssl.cnf, is a FIFO here (in a private mount
        namespace), and OpenSSL opening it shows as the writer's open
        returning.  The control: an https endpoint opens it."""
        if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
            self.skipTest("needs root and unshare for a private mount namespace")
        crypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
        crypto.X509_get_default_cert_area.restype = ctypes.c_char_p
        cnf = os.path.join(crypto.X509_get_default_cert_area().decode(), "openssl.cnf")
        if not os.path.exists(cnf):
            self.skipTest("%s does not exist to be replaced" % cnf)
        fifo = os.path.join(self.tmp, "openssl.cnf")
        os.mkfifo(fifo)

        def fetch_reading(endpoint):
            """(the fetch's result, whether it opened the config file)"""
            opened = threading.Event()

            def writer():
                fd = os.open(fifo, os.O_WRONLY)  # returns once a reader opens it
                opened.set()
                os.close(fd)  # the reader reads an empty file

            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            r = harness.run(["unshare", "--mount", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"',
                             fifo, cnf, harness.azid(), "fetch", "--endpoint", endpoint, "--timeout", "2"],
                            env=dict(CLEAN_ENV))
            # The reader waited for the writer's close, so an open is seen
            # by now.
            was = opened.is_set()
            # Releases a writer still waiting, however late it got there.
            deadline = time.monotonic() + 10
            while thread.is_alive() and time.monotonic() < deadline:
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
                thread.join(0.1)
            self.assertFalse(thread.is_alive(), "the FIFO's writer was not released")
            return r, was

        emu = self.emulator()
        r, read = fetch_reading(emu.url)
        self.assert_ok(r)
        self.assertEqual(r.stdout, emu.requests()[0]["access_token"] + "\n")
        self.assertFalse(read, "OpenSSL read %s for an http:// endpoint" % cnf)
        r, read = fetch_reading("https://127.0.0.1:9")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertTrue(read, "the control: OpenSSL reads %s for an https endpoint" % cnf)

    def test_json(self):
        emu = self.emulator(lifetime=1800)
        r = self.fetch("--json", "--resource", "https://vault.azure.net", endpoint=emu.url)
        self.assert_ok(r)
        self.assertEqual(len(r.stdout.splitlines()), 1)
        doc = json.loads(r.stdout)
        self.assertEqual(set(doc), {"access_token", "expires_on", "resource", "token_type"})
        self.assertEqual(doc["access_token"], emu.requests()[0]["access_token"])
        self.assertIsInstance(doc["expires_on"], int)
        self.assertEqual(doc["expires_on"], emu.requests()[0]["expires_on"])
        self.assertAlmostEqual(doc["expires_on"], time.time() + 1800, delta=60)
        self.assertEqual(doc["resource"], "https://vault.azure.net")
        self.assertEqual(doc["token_type"], "Bearer")

    def test_default_resource(self):
        emu = self.emulator()
        self.assert_ok(self.fetch(endpoint=emu.url))
        self.assertEqual(emu.requests()[0]["query"]["resource"], ["https://management.azure.com/"])

    # ---- request shape -----------------------------------------------------

    def test_request_shape(self):
        emu = self.emulator()
        # (a space is refused before any request: test_resource_refused_before_any_request)
        resource = "https://x.example/a%20b&client_id=evil#frag"
        self.assert_ok(self.fetch("--resource", resource, endpoint=emu.url))
        (req,) = emu.requests()
        self.assertEqual(req["method"], "GET")
        self.assertEqual(req["path"], "/metadata/identity/oauth2/token")
        self.assertEqual(req["headers"].get("metadata"), "true")
        self.assertNotIn("x-forwarded-for", req["headers"])
        # the resource arrives whole: its & and # injected nothing
        self.assertEqual(req["query"], {"api-version": ["2018-02-01"], "resource": [resource]})

    def test_selectors(self):
        emu = self.emulator(identities=["client_id=C1,object_id=O1,msi_res_id=/sub/s/rg/r/id/u1",
                                        "client_id=C2,object_id=O2,msi_res_id=/sub/s/rg/r/id/u2"])
        for option, name, value in (("--client-id", "client_id", "C2"),
                                    ("--object-id", "object_id", "O1"),
                                    ("--msi-res-id", "msi_res_id", "/sub/s/rg/r/id/u2")):
            with self.subTest(option=option):
                self.assert_ok(self.fetch(option, value, endpoint=emu.url))
                query = emu.requests()[-1]["query"]
                self.assertEqual(query[name], [value])
                self.assertEqual(set(query), {"api-version", "resource", name})

    def test_environment_proxy_ignored(self):
        emu = self.emulator()
        dead = "http://127.0.0.1:%d" % closed_port()
        env = {v: dead for v in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                 "all_proxy", "ALL_PROXY")}
        r = self.fetch(endpoint=emu.url, env=env)
        self.assert_ok(r)
        self.assertEqual(len(emu.requests()), 1)

    # ---- usage errors --------------------------------------------------------

    def test_usage_errors(self):
        emu = self.emulator()
        cases = [
            (["--client-id", "a", "--object-id", "b"], "--client-id and --object-id both name an identity"),
            (["--bogus"], "unknown option '--bogus'"),
            (["--timeout", "0"], "--timeout wants a positive number of seconds, not '0'"),
            (["--timeout", "soon"], "not 'soon'"),
            (["--source", "nowhere"], "unknown source 'nowhere'"),
            (["--endpoint", "http://127.0.0.1/metadata"], "no path, query or fragment"),
            (["--endpoint", "ftp://127.0.0.1"], "must start with http:// or https://"),
            (["extra"], "unexpected argument 'extra'"),
        ]
        for args, fragment in cases:
            with self.subTest(args=args):
                extra = [] if "--endpoint" in args else ["--endpoint", emu.url]
                r = self.fetch(*(extra + args))
                self.assert_fails(r, 2, fragment)
        self.assertEqual(emu.requests(), [])

    def test_resource_refused_before_any_request(self):
        # the module's rule (resource=a b is refused) and the kernel's limit
        # on azid:token:<resource> (4095 bytes), before IMDS is asked
        emu = self.emulator()
        cases = [
            ("a b", "has a space, control or non-ASCII character at offset 1"),
            ("", "the resource is empty"),
            ("https://x/" + "a" * 4075, "has 4085 characters; at most 4084 fit in the key description"),
        ]
        for resource, fragment in cases:
            with self.subTest(resource=resource[:20]):
                r = self.fetch("--endpoint", emu.url, "--resource", resource)
                self.assert_fails(r, 2, "--resource: ", fragment)
        self.assertEqual(emu.requests(), [])
        longest = "https://x/" + "a" * 4074
        r = self.fetch("--endpoint", emu.url, "--resource", longest)
        self.assert_ok(r)
        (req,) = emu.requests()
        self.assertEqual(req["query"]["resource"], [longest])

    def test_help(self):
        r = self.fetch("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--client-id", r.stdout)
        # What it takes from the config file, and what not.
        self.assertIn("  --config PATH        config file (default %s)\n" % harness.CONFIG_PATH, r.stdout)
        self.assertIn("its source=,\nendpoint=, timeout= and ca_file=, never its grants or identities", r.stdout)
        self.assertIn("default timeout= of the config file, else 5", r.stdout)

    # ---- status handling -----------------------------------------------------

    def test_400_not_retried(self):
        emu = self.emulator(faults=["400"])
        r = self.fetch(endpoint=emu.url)
        line = self.assert_fails(r, 3, "IMDS %s/metadata/identity/oauth2/token: HTTP 400" % emu.url,
                                 "emulated fault 400")
        self.assertEqual(len(emu.requests()), 1, line)
        self.assertLess(r.elapsed, 2)

    def test_transient_statuses_retried(self):
        for status in ("404", "410", "429", "500", "503"):
            with self.subTest(status=status):
                emu = self.emulator(faults=[status, status])
                r = self.fetch(endpoint=emu.url)
                self.assert_ok(r)
                reqs = emu.requests()
                self.assertEqual([q["status"] for q in reqs], [int(status), int(status), 200])
                self.assertEqual(r.stdout, reqs[-1]["access_token"] + "\n")
                emu.stop()

    def test_retry_after_honoured(self):
        emu = self.emulator(faults=["503:retry-after=2"])
        r = self.fetch(endpoint=emu.url)
        self.assert_ok(r)
        self.assertEqual(len(emu.requests()), 2)
        self.assertGreaterEqual(r.elapsed, 2.0)
        self.assertLess(r.elapsed, 2.0 + SLACK)

    def test_retry_after_http_date(self):
        # RFC 9110 HTTP-date, one-second resolution: 2 s ahead waits 1 to 2 s.
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        emu = self.emulator(faults=["503:retry-after=" + when])
        r = self.fetch(endpoint=emu.url)
        self.assert_ok(r)
        self.assertEqual(len(emu.requests()), 2)
        self.assertGreaterEqual(r.elapsed, 0.9)
        self.assertLess(r.elapsed, 2.0 + SLACK)

    def test_retry_after_past_budget_stops_at_once(self):
        emu = self.emulator(faults=["429:retry-after=30"])
        r = self.fetch("--timeout", "3", endpoint=emu.url)
        self.assert_fails(r, 3, "HTTP 429", "asked to retry after 30.0 s", "throttling")
        self.assertEqual(len(emu.requests()), 1)
        self.assertLess(r.elapsed, 1.5)

    def test_persistent_503_gives_up_within_budget(self):
        emu = self.emulator(faults=["503"] * 20)
        r = self.fetch("--timeout", "2", endpoint=emu.url)
        self.assert_fails(r, 3, "HTTP 503", "time budget", "try again later")
        self.assertGreaterEqual(len(emu.requests()), 3)
        self.assertLess(r.elapsed, 2 + SLACK)

    # ---- misbehaving endpoints -----------------------------------------------

    def assert_budget_kept(self, faults, timeout, *fragments, start_faults=None):
        emu = self.emulator(faults=start_faults or faults)
        r = self.fetch("--timeout", str(timeout), endpoint=emu.url, timeout=timeout + 20)
        line = self.assert_fails(r, 3, *fragments)
        print("  %s: timeout %s s -> %.2f s, %d requests: %s"
              % (faults, timeout, r.elapsed, len(emu.requests()), line))
        self.assertLess(r.elapsed, timeout + SLACK)
        return emu, r

    def test_hang_is_cut_off_and_retried(self):
        emu, r = self.assert_budget_kept(["hang-all"], 2, "no token within the 2.0 s time budget",
                                         "attempt cut off")
        self.assertGreaterEqual(r.elapsed, 1.9)
        self.assertGreaterEqual(len(emu.requests()), 2)

    def test_hang_then_answer(self):
        emu = self.emulator(faults=["hang"])
        r = self.fetch("--timeout", "5", endpoint=emu.url)
        self.assert_ok(r)
        self.assertEqual(len(emu.requests()), 2)
        self.assertLess(r.elapsed, 5 + SLACK)

    def test_hang_cut_off_within_a_one_second_budget(self):
        # SPEC: a single attempt never takes the whole budget, however small.
        emu = self.emulator(faults=["hang"])
        r = self.fetch("--timeout", "1", endpoint=emu.url)
        self.assert_ok(r)
        self.assertTrue(r.stdout.startswith("eyJ"), r.stdout[:20])
        self.assertEqual(len(emu.requests()), 2)
        self.assertLess(r.elapsed, 1 + SLACK)

    def test_drip(self):
        emu, r = self.assert_budget_kept(["drip"] * 10, 2, "no token within the 2.0 s time budget")
        self.assertGreaterEqual(r.elapsed, 1.9)

    def test_huge(self):
        emu, r = self.assert_budget_kept(["huge"], 3, "response larger than 65536 bytes")
        self.assertEqual(len(emu.requests()), 1)

    def test_reset_then_answer(self):
        emu = self.emulator(faults=["reset"])
        self.assert_ok(self.fetch(endpoint=emu.url))
        self.assertEqual(len(emu.requests()), 2)

    def test_reset_always(self):
        self.assert_budget_kept(["reset"] * 20, 2, "IMDS http://127.0.0.1:", "attempts")

    def raw_server(self, serve=None):
        server = RawServer(serve)
        self.addCleanup(server.close)
        return server

    def test_slow_headers(self):
        server = self.raw_server(slow_headers)
        url = "http://127.0.0.1:%d" % server.port
        r = self.fetch("--timeout", "2", endpoint=url, timeout=20)
        self.assert_fails(r, 3, "no token within the 2.0 s time budget", "attempt cut off")
        self.assertGreaterEqual(server.accepted, 2)  # cut off and retried
        self.assertLess(r.elapsed, 2 + SLACK)

    def test_huge_without_length(self):
        server = self.raw_server(huge_without_length)
        url = "http://127.0.0.1:%d" % server.port
        r = self.fetch("--timeout", "3", endpoint=url, timeout=20)
        self.assert_fails(r, 3, "IMDS %s/metadata/identity/oauth2/token: " % url,
                          "response larger than 65536 bytes")
        self.assertEqual(server.accepted, 1)
        self.assertLess(r.elapsed, 3 + SLACK)

    def test_tls_handshake_never_answered(self):
        # Connections are queued by the kernel but never accepted: TCP
        # connects, the TLS ClientHello gets no answer.
        server = self.raw_server()
        url = "https://127.0.0.1:%d" % server.port
        r = self.fetch("--timeout", "2", endpoint=url, timeout=20)
        self.assert_fails(r, 3, "IMDS %s/metadata/identity/oauth2/token" % url,
                          "no token within the 2.0 s time budget")
        self.assertLess(r.elapsed, 2 + SLACK)

    def test_connection_refused(self):
        url = "http://127.0.0.1:%d" % closed_port()
        r = self.fetch("--timeout", "1", endpoint=url)
        self.assert_fails(r, 3, "IMDS %s/metadata/identity/oauth2/token: " % url, "Couldn't connect to server", "attempts")
        self.assertLess(r.elapsed, 1 + SLACK)

    def test_bad_bodies(self):
        cases = [
            ("badjson", "HTTP 200 but response is not JSON"),
            ("truncated", "response is truncated"),
            ("field:expires_on=12", "token already expired (expires_on 12 is"),
            ('field:expires_on="soon"', "response field expires_on is not a decimal number"),
            ("nofield:access_token", "response has no access_token field"),
            ("field:access_token=null", "response field access_token is null, not a string"),
            ('field:access_token=""', "response has an empty access_token"),
            ('field:access_token="a b"', "printable ASCII"),
            ("nofield:expires_on", None),  # expires_in is enough
        ]
        for fault, fragment in cases:
            with self.subTest(fault=fault):
                emu = self.emulator(faults=[fault])
                r = self.fetch(endpoint=emu.url)
                if fragment is None:
                    self.assert_ok(r)
                else:
                    line = self.assert_fails(r, 3, fragment)
                    self.assertNotIn("eyJ", line)  # never a token in a message
                self.assertEqual(len(emu.requests()), 1)
                emu.stop()

    # ---- identities ------------------------------------------------------------

    def test_identity_not_found(self):
        emu = self.emulator(identities=["client_id=C1,object_id=O1,msi_res_id=R1"])
        r = self.fetch("--client-id", "C9", endpoint=emu.url)
        self.assert_fails(r, 3, "IMDS %s/metadata/identity/oauth2/token: HTTP 400 invalid_request: "
                                "Identity not found \u2014 the VM has no managed identity with that id; "
                                "assign one (az vm identity assign) or fix client_id=" % emu.url)
        self.assertEqual(len(emu.requests()), 1)

    def test_multiple_identities(self):
        emu = self.emulator(identities=["client_id=C1,object_id=O1,msi_res_id=R1",
                                        "client_id=C2,object_id=O2,msi_res_id=R2"])
        r = self.fetch(endpoint=emu.url)
        self.assert_fails(r, 3, "HTTP 400 invalid_request: Multiple user assigned identities exist",
                          "name one with client_id=, object_id= or msi_res_id=")
        self.assertEqual(len(emu.requests()), 1)

    def test_single_user_assigned_without_selector(self):
        emu = self.emulator(identities=["client_id=C1,object_id=O1,msi_res_id=R1"])
        self.assert_ok(self.fetch(endpoint=emu.url))

    # ---- off Azure -------------------------------------------------------------

    def test_off_azure_fails_fast(self):
        tag = "/sys/class/dmi/id/chassis_asset_tag"
        try:
            with open(tag) as f:
                if f.read().strip() == "7783-7084-3265-9085-8269-3286-77":
                    self.skipTest("this machine is an Azure VM")
        except OSError:
            pass
        if os.path.exists("/opt/azcmagent/bin/himds"):
            self.skipTest("this machine has the Arc agent")
        # (no config file: one with endpoint= would be used)
        absent = os.path.join(self.tmp, "absent.conf")
        r = self.fetch("--config", absent)
        self.assert_fails(r, 3, "not an Azure VM (no Azure asset tag in %s, no Arc agent); give --endpoint "
                                "URL (or endpoint= in %s) to use another token endpoint" % (tag, absent))
        self.assertLess(r.elapsed, 0.5)


if __name__ == "__main__":
    harness.main()
