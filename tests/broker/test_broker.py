#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azidd, a real broker process, against the IMDS emulator on 127.0.0.1 and
the real kernel keyring: what callers get on its socket, what pam_azid
stores through it (real libpam, tests/pam/pamtest.py's sandbox), and what
the endpoint sees (the emulator's request log).  Root only."""

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "pam"))
import pamtest  # noqa: E402
from pamtest import harness  # noqa: E402

VAULT = "https://vault.azure.net"
MGMT = "https://management.azure.com/"
NOBODY = 65534
# The interpreter an unprivileged uid can run (not one under /root).
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def setUpModule():
    # The root-owned keys this file makes (the stand-in broker's) go into a
    # session keyring of its own: make's is shared by every test running at
    # the same time, and root's user keyring is linked into the sessions of
    # tests/unit/test_keyring, which store and read keys of these names.
    if ctypes.CDLL("libkeyutils.so.1").keyctl_join_session_keyring(None) < 0:
        raise OSError("cannot join a session keyring of this test's own")


def as_nobody(code, *args, timeout=30):
    """Runs Python code as uid/gid 65534 in a fresh session keyring."""
    argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
            "keyctl", "session", "-", PYTHON, "-c", code] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


# A client of the socket, for as_nobody: sends argv[2] (with escapes) to the
# socket argv[1], ends its side when argv[3] is "half", prints the reply.
ASK = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
if sys.argv[3:] == ["half"]:
    s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode("utf-8", "replace"))
"""


def audit_lines(broker):
    return [l for l in broker.log() if "issued token:" in l]


class BrokerTest(unittest.TestCase):
    def setUp(self):
        pamtest.require_root()
        for tool in ("setpriv", "keyctl"):
            if subprocess.run(["which", tool], capture_output=True).returncode != 0:
                harness.skip("%s not installed" % tool)
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        # Unprivileged clients reach the socket below it.
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        self.tmpdir.__exit__(None, None, None)

    def start(self, config="", faults=None, lifetime=None, identities=None):
        self.emu = harness.Emulator(self.tmp, faults=faults, lifetime=lifetime, identities=identities)
        self.addCleanup(self.emu.stop)
        self.broker = harness.Broker(self.tmp, config.replace("@URL@", self.emu.url))
        self.addCleanup(self.broker.stop)

    def key_request(self, user="nobody", resources=(VAULT,), extra=""):
        line = "azid1 key user=%s uid=%d %s endpoint=%s timeout=5%s\n" % (
            user, NOBODY if user == "nobody" else 0, " ".join("resource=" + r for r in resources), self.emu.url, extra)
        return self.broker.request(line)

    def sandbox(self):
        box = pamtest.Sandbox(os.path.join(self.tmp, "pam"))
        self.addCleanup(box.__exit__)
        return box.__enter__()

    def pam_args(self, resource=VAULT):
        return ["resource=" + resource, "endpoint=" + self.emu.url, "broker=" + self.broker.socket, "debug"]

    # ---- pam_azid through the broker -------------------------------------

    def test_login_links_the_shared_key_and_a_second_login_makes_no_request(self):
        self.start()
        self.assertEqual(os.stat(self.broker.socket).st_mode & 0o7777, 0o666, "anyone may ask")
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        first = box.run(self.pam_args())
        self.assertEqual(first.steps.get("open_session"), "PAM_SUCCESS", first)
        key = first.keys["azid:token:" + VAULT]
        self.assertEqual(self.emu.requests()[0]["access_token"], key["value"])
        # Root's key, shared: readable by the login's processes (possessor),
        # linkable and refreshable by root (owner), nothing for anyone else.
        self.assertEqual((key["uid"], key["gid"], key["perm"]), (0, 0, "0b350000"))
        self.assertIn("linked the broker's shared key %d" % key["serial"], " ".join(first.lines("DEBUG")))

        second = box.run(self.pam_args())
        self.assertEqual(second.keys["azid:token:" + VAULT]["serial"], key["serial"])
        self.assertEqual(second.keys["azid:token:" + VAULT]["value"], key["value"])
        self.assertEqual(len(self.emu.requests()), 1, "the second login was served from the cache")

        audits = audit_lines(self.broker)
        self.assertEqual(len(audits), 2, audits)
        for line in audits:
            self.assertIn("user azuser (uid %d), identity system, resource %s, expires " % (
                pamtest.USERS["azuser"], VAULT), line)
            self.assertNotIn(key["value"][:40], line)

        # The user's processes outside that login see nothing.
        r = subprocess.run(["setpriv", "--reuid=%d" % pamtest.USERS["azuser"], "--regid=%d" % pamtest.USERS["azuser"],
                            "--clear-groups", "keyctl", "session", "-", "keyctl", "pipe", str(key["serial"])],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)

    def test_a_shared_key_root_revoked_is_made_anew_at_the_next_login(self):
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        first = box.run(self.pam_args())
        old = first.keys["azid:token:" + VAULT]["serial"]
        subprocess.run(["keyctl", "revoke", str(old)], check=True)
        second = box.run(self.pam_args())
        self.assertEqual(second.steps.get("open_session"), "PAM_SUCCESS", second)
        key = second.keys["azid:token:" + VAULT]
        self.assertNotEqual(key["serial"], old, "the revoked key was handed out again")
        self.assertEqual(key["value"], self.emu.requests()[0]["access_token"])
        self.assertEqual(len(self.emu.requests()), 1, "the token came from the cache")
        self.assertEqual(len(audit_lines(self.broker)), 2)

    def test_a_key_refreshed_for_another_identity_is_written_again_for_this_one(self):
        # One user, one resource, two identities: one key name.  Keys live
        # 10 s here (70 s tokens less the 60 s skew): refreshed after 5 s.
        self.start(lifetime=70, identities=["client_id=X,object_id=OX,msi_res_id=RX",
                                            "client_id=Y,object_id=OY,msi_res_id=RY"])

        def serial(reply):
            return int(re.search(r"^key .* serial=(\d+)", reply, re.M).group(1))

        def fetched(identity):
            return len([line for line in self.broker.log()
                        if "new token for %s (identity client_id=%s)" % (VAULT, identity) in line])

        first = serial(self.key_request(extra=" client_id=X"))
        # X's key goes; Y's login gets a new key of that name, which X's
        # refresh then writes its own token into, 2.5 s before Y's refresh.
        subprocess.run(["keyctl", "revoke", str(first)], check=True)
        time.sleep(2.5)
        second = serial(self.key_request(extra=" client_id=Y"))
        self.assertNotEqual(second, first)
        deadline = time.monotonic() + 20
        while fetched("X") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual((fetched("X"), fetched("Y")), (2, 1), "X's token refreshed, Y's not yet")
        third = serial(self.key_request(extra=" client_id=Y"))
        # Root owns the key: linked into its session, it may read it.
        value = subprocess.run(["keyctl", "session", "-", "sh", "-c",
                                "keyctl link %d @s && keyctl pipe %d" % (third, third)],
                               capture_output=True, text=True, check=True).stdout
        y_tokens = [e["access_token"] for e in self.emu.requests()
                    if e["query"].get("client_id") == ["Y"] and e["status"] == 200]
        self.assertEqual(value, y_tokens[-1], "Y's login got the token of identity X")

    def test_the_broker_lets_go_of_keys_no_session_holds(self):
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        r = box.run(self.pam_args(), during='keyctl pipe %user:azid:token:' + VAULT + ' >/dev/null; echo held=$?')
        self.assertIn("held=0", r.stdout, r)
        self.assertIn(" keys=1\n", "\n".join(self.broker.status()) + "\n")
        # The session closed (pam_keyinit revoked its keyring); after the
        # grace period the broker's own link is the last one: dropped.
        deadline = time.monotonic() + 30
        while " keys=0" not in " ".join(self.broker.status()) and time.monotonic() < deadline:
            time.sleep(1)
        self.assertIn(" keys=0", " ".join(self.broker.status()))

    def test_neither_a_login_the_broker_serves_nor_azidd_loads_libcurl(self):
        # libcurl and the libraries it brings are mapped only where a request
        # is made: in azidd's fetcher, not in the login nor in azidd.
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        r = box.run(self.pam_args(), prefix=["env", "LD_DEBUG=files"])
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        self.assertEqual(r.keys["azid:token:" + VAULT]["value"], self.emu.requests()[0]["access_token"])
        self.assertIn("linked the broker's shared key", " ".join(r.lines("DEBUG")))
        self.assertNotIn("file=%s [0];  generating link map" % harness.LIBCURL_SONAME, r.stderr)
        with open("/proc/%d/maps" % self.broker.proc.pid) as f:
            self.assertNotIn("/" + harness.LIBCURL_SONAME, f.read())
        # The same login without the broker makes its request itself.
        self.broker.stop()
        r = box.run(self.pam_args(), prefix=["env", "LD_DEBUG=files"])
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        self.assertIn("file=%s [0];  generating link map" % harness.LIBCURL_SONAME, r.stderr)

    def test_without_a_broker_the_module_works_in_process(self):
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        self.broker.stop()  # its socket file stays: connecting is refused
        r = box.run(self.pam_args())
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        key = r.keys["azid:token:" + VAULT]
        self.assertEqual(key["uid"], pamtest.USERS["azuser"], "the module's own key, the user's")
        self.assertEqual(key["value"], self.emu.requests()[0]["access_token"])
        self.assertIn("working in-process", " ".join(r.lines("DEBUG")))
        self.assertLess(r.elapsed, 10)

    def test_a_hung_broker_costs_a_login_one_second_then_the_module_works_in_process(self):
        self.start(faults=["slow:3"])
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        self.broker.proc.send_signal(signal.SIGSTOP)
        try:
            r = box.run(self.pam_args())
        finally:
            self.broker.proc.send_signal(signal.SIGCONT)
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        self.assertEqual(r.keys["azid:token:" + VAULT]["uid"], pamtest.USERS["azuser"], "the module's own key")
        self.assertIn("said nothing within 1.0 s; working in-process", " ".join(r.lines("DEBUG")))
        # 1 s for the broker, 3 s for the slow endpoint: within the 5 s budget.
        self.assertLess(int(r.steps["open_ms"]), 5500)

    def test_a_broker_that_refuses_the_whole_request_leaves_the_work_to_the_module(self):
        # A broker of another version: nothing else answers "error" to a
        # well-formed request from root, so a stand-in on a socket plays it.
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        path = os.path.join(self.tmp, "other-version.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(4)
        self.addCleanup(server.close)

        def serve():
            conn, _ = server.accept()
            conn.recv(8192)
            conn.sendall(b"error status=argument message=field ca_file= is not part of a key request\nend\n")
            conn.close()

        threading.Thread(target=serve, daemon=True).start()
        args = [a for a in self.pam_args() if not a.startswith("broker=")] + ["broker=" + path]
        r = box.run(args)
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        self.assertEqual(r.keys["azid:token:" + VAULT]["uid"], pamtest.USERS["azuser"], "the module's own key")
        self.assertIn("(user azuser) the broker refused the request (field ca_file= is not part of a key request); "
                      "working in-process", r.lines("INFO"))

    def test_a_reply_that_does_not_answer_the_request_is_not_linked_from(self):
        # azidd answers each item once, in order; a stand-in plays a broker
        # that does not, naming real root-owned keys the module could link.
        self.start()
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        other = "https://other.example/"

        def root_key(description):
            serial = subprocess.run(["keyctl", "padd", "user", description, "@s"], input="stand-in",
                                    capture_output=True, text=True, check=True).stdout.strip()
            self.addCleanup(subprocess.run, ["keyctl", "unlink", serial, "@s"], capture_output=True)
            subprocess.run(["keyctl", "setperm", serial, "0x3f3f0000"], check=True)
            return int(serial)

        def line(resource, serial):
            return "key resource=%s serial=%d expires_on=%d\n" % (resource, serial, time.time() + 3600)

        vault_key, other_key = root_key("azid:token:" + VAULT), root_key("azid:token:" + other)
        secret_key = root_key("azid:secret:kv.vault.azure.net/db")
        cases = {
            "more lines than items": ([VAULT], line(VAULT, vault_key) * 6),
            "a resource not asked for": ([VAULT], line(other, other_key)),
            "an item left out": ([VAULT, MGMT], line(VAULT, vault_key)),
            "a secret's key for a token": ([VAULT], line(VAULT, secret_key).replace(
                " serial=", " secret=https://kv.vault.azure.net/secrets/db vault_host=kv.vault.azure.net name=db "
                            "serial=")),
        }
        path = os.path.join(self.tmp, "stand-in.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(4)
        self.addCleanup(server.close)
        for name, (resources, reply) in cases.items():
            with self.subTest(name):
                def serve():
                    conn, _ = server.accept()
                    conn.recv(8192)
                    conn.sendall((reply + "end\n").encode())
                    conn.close()

                threading.Thread(target=serve, daemon=True).start()
                args = ["resource=" + r for r in resources] + ["endpoint=" + self.emu.url, "broker=" + path, "debug"]
                r = box.run(args)
                self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
                self.assertEqual(sorted(r.keys), sorted("azid:token:" + x for x in resources), r)
                for x in resources:
                    self.assertEqual(r.keys["azid:token:" + x]["uid"], pamtest.USERS["azuser"], "the module's own key")
                self.assertIn("(user azuser) the broker's reply does not answer the request item by item "
                              "(%d lines for %d items); working in-process (is azidd from the same azid version?)"
                              % (reply.count("\n"), len(resources)), r.lines("ERR"))

    def test_a_session_open_past_half_the_lifetime_sees_the_new_token_in_its_key(self):
        # Keys live until 60 s before the token's expiry: 30 s here, so the
        # broker refreshes after 15 s.  The session reads its key until it
        # changes (at most 28 s: before the first token's key expires).
        self.start(lifetime=90)
        os.makedirs(os.path.join(self.tmp, "pam"))
        box = self.sandbox()
        key = "%user:azid:token:" + VAULT
        during = ('first=$(keyctl pipe %s); echo "$first"; i=0; '
                  'while [ $i -lt 28 ] && [ "$(keyctl pipe %s)" = "$first" ]; do sleep 1; i=$((i+1)); done; '
                  'keyctl pipe %s; echo' % (key, key, key))
        r = box.run(self.pam_args(), during=during)
        self.assertEqual(r.steps.get("open_session"), "PAM_SUCCESS", r)
        values = [l for l in r.stdout.splitlines() if l.startswith("eyJ")]
        tokens = [e["access_token"] for e in self.emu.requests()]
        self.assertEqual(len(values), 2, r)
        self.assertEqual(values[0], tokens[0])
        self.assertGreaterEqual(len(tokens), 2, "refreshed")
        self.assertEqual(values[1], tokens[1], "the session's key holds the refreshed token")
        self.assertTrue(any("new token for " + VAULT in l for l in self.broker.log()))

    def test_socket_activation_as_azidd_socket_does_it(self):
        tool = "/usr/bin/systemd-socket-activate"
        if not os.access(tool, os.X_OK):
            self.skipTest("systemd-socket-activate is not installed")
        self.emu = harness.Emulator(self.tmp)
        self.addCleanup(self.emu.stop)
        path = os.path.join(self.tmp, "activated.sock")
        err = open(os.path.join(self.tmp, "activated.err"), "w")
        self.addCleanup(err.close)
        proc = subprocess.Popen([tool, "-l", path, os.path.join(harness.top_builddir, "azidd", "azidd"),
                                 "--config", os.path.join(self.tmp, "none.conf"), "--stderr"],
                                stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The first connection starts azidd, which takes the socket passed.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(path)
        s.sendall(("azid1 key user=nobody uid=%d resource=%s endpoint=%s timeout=5\n"
                   % (NOBODY, VAULT, self.emu.url)).encode())
        out = b""
        while not out.endswith(b"end\n"):
            data = s.recv(65536)
            if not data:
                break
            out += data
        s.close()
        self.assertIn(b"key resource=%s serial=" % VAULT.encode(), out)
        with open(err.name) as f:
            self.assertIn("listening on the socket systemd passed", f.read())

    # ---- the cache ---------------------------------------------------------

    def test_concurrent_callers_share_one_request(self):
        self.start(faults=["slow:1.5"])
        replies = [None] * 25

        def ask(i):
            replies[i] = self.key_request()

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(replies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        serials = {re.search(r"serial=(\d+)", r).group(1) for r in replies if r and "serial=" in r}
        self.assertEqual(len(serials), 1, replies)
        self.assertEqual(len(self.emu.requests()), 1, "25 callers, one request")
        status = " ".join(self.broker.status())
        self.assertIn("requests=1 ", status)
        self.assertIn("served=25 ", status)

    def test_many_tokens_at_once_stay_within_imds_limits(self):
        # IMDS's limits enforced: 5 in flight, 20 a second, 429 beyond.
        # 30 different tokens, each request taking 0.3 s, wanted at once.
        self.emu = harness.Emulator(self.tmp, faults=["slow:0.3"] * 30, extra_args=["--limits"])
        self.addCleanup(self.emu.stop)
        self.broker = harness.Broker(self.tmp)
        self.addCleanup(self.broker.stop)
        resources = ["https://r%d.example/" % i for i in range(30)]
        t = time.monotonic()
        reply = self.key_request(resources=resources)
        elapsed = time.monotonic() - t
        self.assertEqual(reply.count("\nkey resource=") + reply.startswith("key resource="), 30, reply)
        log = self.emu.requests()
        self.assertEqual(len(log), 30)
        self.assertEqual([e for e in log if e["status"] != 200], [], "none throttled")
        # 5 at a time, 0.3 s each: at least 6 rounds.
        self.assertGreater(elapsed, 1.5)
        self.assertIn("requests=30 throttled=0 ", " ".join(self.broker.status()))

    def test_retry_after_holds_back_every_caller(self):
        self.start(faults=["429:retry-after=3"])
        line = "azid1 key user=nobody uid=65534 resource=%s endpoint=%s timeout=2\n"
        first = self.broker.request(line % (VAULT, self.emu.url))
        self.assertIn("status=http", first)
        self.assertIn("HTTP 429", first)
        # Another token, another entry: it waits out the Retry-After too.
        t = time.monotonic()
        other = self.broker.request(line % (MGMT, self.emu.url))
        self.assertIn("key resource=%s serial=" % MGMT, other)
        self.assertGreater(time.monotonic() - t, 2.0)
        self.assertEqual(len(self.emu.requests()), 2)
        self.assertIn("throttled=1 ", " ".join(self.broker.status()))
        self.assertTrue(any("HTTP 429 with Retry-After: no request for 3.0 s" in l for l in self.broker.log()))

    def test_retry_after_holds_back_every_caller_while_the_fetcher_waits_it_out(self):
        # A budget that outlasts the Retry-After: the fetcher that got the 429
        # waits it out, and the hold starts when the 429 comes.
        self.start(faults=["429:retry-after=3"])
        line = "azid1 key user=nobody uid=65534 resource=%s endpoint=%s timeout=5\n"
        replies = {}
        t = threading.Thread(target=lambda: replies.update(vault=self.broker.request(line % (VAULT, self.emu.url))))
        t.start()
        held = "HTTP 429 with Retry-After: no request for 3.0 s"
        deadline = time.monotonic() + 5
        while not any(held in l for l in self.broker.log()):
            self.assertLess(time.monotonic(), deadline, self.broker.log())
            time.sleep(0.02)
        start = time.monotonic()
        other = self.broker.request(line % (MGMT, self.emu.url))
        self.assertIn("key resource=%s serial=" % MGMT, other)
        self.assertGreater(time.monotonic() - start, 2.0, "held back until the Retry-After was over")
        t.join(10)
        self.assertIn("key resource=%s serial=" % VAULT, replies.get("vault", ""), "the first fetcher waited it out")
        self.assertEqual(len(self.emu.requests()), 3)
        self.assertIn("throttled=1 ", " ".join(self.broker.status()))

    def test_failures_are_cached_for_negative_cache_seconds(self):
        self.start(config="negative_cache = 3\n")
        start = time.monotonic()
        first = self.key_request(extra=" client_id=no-such-id")
        self.assertIn("fail resource=%s status=http message=" % VAULT, first)
        self.assertIn("Identity not found", first)
        again = self.key_request(extra=" client_id=no-such-id")
        self.assertIn("Identity not found", again)
        self.assertEqual(len(self.emu.requests()), 1, "the second caller got the cached failure")
        hits = [l for l in self.broker.log() if "(from the negative cache, " in l]
        self.assertEqual(len(hits), 1, self.broker.log())
        self.assertIn("nothing issued to user nobody (uid 65534) for resource %s" % VAULT, hits[0])
        self.assertIn("negative_hits=1 ", " ".join(self.broker.status()))
        status = [l for l in self.broker.status() if l.startswith("negative ")]
        self.assertEqual(len(status), 1, status)
        self.assertIn("identity=client_id=no-such-id resource=%s" % VAULT, status[0])
        self.assertTrue(any("negative cache for 3.0 s" in l for l in self.broker.log()), self.broker.log())
        time.sleep(max(0, 3.2 - (time.monotonic() - start)))
        self.key_request(extra=" client_id=no-such-id")
        self.assertEqual(len(self.emu.requests()), 2, "asked again once the entry expired")

    def test_an_unreachable_endpoint_is_cached_too(self):
        self.start()
        port = self.emu.port
        self.emu.stop()
        line = "azid1 key user=nobody uid=65534 resource=%s endpoint=http://127.0.0.1:%d timeout=2\n" % (VAULT, port)
        t = time.monotonic()
        first = self.broker.request(line)
        took = time.monotonic() - t
        self.assertIn("status=unreachable", first)
        t = time.monotonic()
        again = self.broker.request(line)
        self.assertLess(time.monotonic() - t, took / 2, "answered from the negative cache")
        self.assertIn("status=unreachable", again)
        self.assertEqual(sum("callers get this failure from the negative cache" in l
                             for l in self.broker.log()), 1)

    def test_a_token_that_expires_within_the_skew_is_a_failure_answered_at_once(self):
        # Keys end 60 s before the token: a 30 s token cannot be handed out,
        # and its callers must not wait for one that never comes.
        self.start(lifetime=30)
        t = time.monotonic()
        reply = self.key_request()
        self.assertLess(time.monotonic() - t, 10)
        self.assertRegex(reply, r"(?m)^fail resource=%s status=response message=the endpoint's token expires in "
                                r"(29|30) s, within the 60 s before expiry in which azid hands no token out\n"
                         % re.escape(VAULT))
        self.assertEqual(len(self.emu.requests()), 1)

    def test_a_429_is_given_to_callers_until_its_retry_after_ends_not_for_negative_cache(self):
        self.start(faults=["429:retry-after=1"])
        line = "azid1 key user=nobody uid=65534 resource=%s endpoint=%s timeout=1\n" % (VAULT, self.emu.url)
        first = self.broker.request(line)
        self.assertIn("HTTP 429", first)
        self.assertTrue(any("callers get this failure from the negative cache for 1.0 s" in l
                            for l in self.broker.log()), self.broker.log())
        time.sleep(1.5)
        again = self.broker.request(line)
        self.assertIn("key resource=%s serial=" % VAULT, again)
        self.assertEqual(len(self.emu.requests()), 2, "asked again once the Retry-After was over")

    def fetchers(self):
        """The pids of the broker's fetchers, once named (privileges dropped)."""
        # unshare and sh exec azidd: the harness's process is the broker.
        r = subprocess.run(["pgrep", "-P", str(self.broker.proc.pid), "-x", "azidd-fetcher"],
                           capture_output=True, text=True)
        return [int(pid) for pid in r.stdout.split()]

    def fetcher_status(self):
        """/proc/PID/status of the fetcher of a key request (the emulator
        must answer slowly), as a dict."""
        t = threading.Thread(target=self.key_request)
        t.start()
        status = None
        deadline = time.monotonic() + 5
        while status is None and time.monotonic() < deadline:
            for pid in self.fetchers():
                try:
                    with open("/proc/%s/status" % pid) as f:
                        text = f.read()
                except FileNotFoundError:
                    continue
                if "Name:\tazidd-fetcher\n" in text:
                    try:
                        with open("/proc/%s/limits" % pid) as f:
                            core = [l for l in f if l.startswith("Max core file size")]
                        owner = os.stat("/proc/%s/mem" % pid).st_uid
                    except FileNotFoundError:
                        continue
                    # Not /proc/PID/status's own fields: the core limit and
                    # the owner of /proc/PID/mem (root when not dumpable).
                    status = text + "CoreLimit:\t%s\nProcOwner:\t%d\n" % (
                        " ".join(core[0].split()[4:6]), owner)
            time.sleep(0.05)
        t.join()
        self.assertIsNotNone(status, "saw the fetcher")
        return dict(l.split(":\t", 1) for l in status.splitlines() if ":\t" in l)

    def test_the_fetcher_runs_without_capabilities(self):
        self.start(faults=["slow:2"])
        fields = self.fetcher_status()
        self.assertEqual(fields["Uid"].split(), ["0"] * 4, "no _azid here: uid 0")
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            self.assertEqual(int(fields[cap], 16), 0, "%s: %s" % (cap, fields[cap]))
        self.assertEqual(fields["NoNewPrivs"].strip(), "1")
        # A crash while it holds a token leaves no core file on disk.
        self.assertEqual(fields["CoreLimit"], "0 0")

    def with_azid_account(self):
        """The argv prefix of a broker in a private mount namespace whose user
        database has _azid, as the Debian package makes it."""
        etc = os.path.join(self.tmp, "etc")
        os.makedirs(etc)
        for name, line in (("passwd", "_azid:x:61999:61999::/nonexistent:/usr/sbin/nologin"),
                           ("group", "_azid:x:61999:")):
            with open("/etc/" + name) as f:
                text = f.read()
            with open(os.path.join(etc, name), "w") as f:
                f.write(text + line + "\n")
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0/passwd" /etc/passwd && mount --bind "$0/group" /etc/group && exec "$@"', etc]

    def test_the_fetcher_runs_as__azid_when_that_account_exists(self):
        self.emu = harness.Emulator(self.tmp, faults=["slow:2"])
        self.addCleanup(self.emu.stop)
        self.broker = harness.Broker(self.tmp, argv_prefix=self.with_azid_account())
        self.addCleanup(self.broker.stop)
        fields = self.fetcher_status()
        self.assertEqual(fields["Uid"].split(), ["61999"] * 4)
        self.assertEqual(fields["Gid"].split(), ["61999"] * 4)
        self.assertEqual(fields["Groups"].strip(), "")
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            self.assertEqual(int(fields[cap], 16), 0, "%s: %s" % (cap, fields[cap]))
        self.assertEqual(fields["NoNewPrivs"].strip(), "1")
        self.assertEqual(fields["CoreLimit"], "0 0")
        # Not dumpable: _azid's other processes can neither ptrace it nor
        # read its memory.
        self.assertEqual(fields["ProcOwner"].strip(), "0")

    def test_with_its_units_capabilities_the_broker_stops_a_stuck_fetcher(self):
        # The capabilities azidd.service leaves it; its fetcher runs as _azid,
        # another uid, and is stopped here as one stuck in NSS would hang.
        with open(os.path.join(harness.top_srcdir, "azidd", "azidd.service.in")) as f:
            caps = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M).group(1).split()
        bounding = "-all," + ",".join("+" + c[len("CAP_"):].lower() for c in caps)
        self.emu = harness.Emulator(self.tmp, faults=["slow:10"])
        self.addCleanup(self.emu.stop)
        self.broker = harness.Broker(self.tmp, argv_prefix=self.with_azid_account()
                                     + ["setpriv", "--bounding-set", bounding])
        self.addCleanup(self.broker.stop)
        replies = []
        line = "azid1 key user=nobody uid=%d resource=%s endpoint=%s timeout=1\n" % (NOBODY, VAULT, self.emu.url)
        t = threading.Thread(target=lambda: replies.append(self.broker.request(line)))
        t.start()
        deadline = time.monotonic() + 5
        while not self.fetchers() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(len(self.fetchers()), 1, "saw the fetcher")
        fetcher = self.fetchers()[0]
        self.assertEqual(os.stat("/proc/%d" % fetcher).st_uid, 61999)
        os.kill(fetcher, signal.SIGSTOP)
        t.join(20)
        self.assertFalse(t.is_alive(), "the broker answered")
        self.assertIn("the fetcher failed (crashed, killed, or a malformed reply)", replies[0])
        self.assertIn("counters ", " ".join(self.broker.status()), "and goes on serving")

    def test_started_by_hand_under_a_strict_umask_anyone_may_still_connect(self):
        # The default socket, in a private /run; root's umask 077.
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t tmpfs azid-run /run && umask 077 && exec "$@"', "sh"]
        proc = subprocess.Popen(prefix + [os.path.join(harness.top_builddir, "azidd", "azidd"), "--config",
                                          os.path.join(self.tmp, "none.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        inside = ["nsenter", "-t", str(proc.pid), "-m"]
        deadline = time.monotonic() + 10
        while subprocess.run(inside + ["test", "-S", "/run/azid/azidd.sock"]).returncode != 0:
            self.assertLess(time.monotonic(), deadline, "azidd made its socket")
            time.sleep(0.05)
        mode = subprocess.run(inside + ["stat", "-c", "%a", "/run/azid", "/run/azid/azidd.sock"],
                              capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(mode, ["755", "666"])
        r = subprocess.run(inside + ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                                     PYTHON, "-c", ASK, "/run/azid/azidd.sock", "azid1 status\\n"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("counters ", r.stdout, r.stderr)

    # ---- token requests: policy by peer uid ----------------------------------

    def test_token_request_gets_what_policy_grants_the_caller_and_nothing_else(self):
        self.start(config="endpoint = @URL@\nMatch user nobody\n  resource = %s\n" % VAULT)
        r = as_nobody(ASK, self.broker.socket, "azid1 token resource=%s\\n" % MGMT)
        self.assertIn("error status=argument message=%s is not granted to user nobody by %s" % (
            MGMT, self.broker.config_path), r.stdout)
        self.assertEqual(self.emu.requests(), [], "a refused request never reaches the endpoint")
        r = as_nobody(ASK, self.broker.socket, "azid1 token resource=%s\\n" % VAULT)
        token = self.emu.requests()[0]["access_token"]
        self.assertIn("token resource=%s expires_on=" % VAULT, r.stdout)
        self.assertIn(" value=%s\n" % token, r.stdout)
        # A key request (a named user, shared keys) is root's.
        r = as_nobody(ASK, self.broker.socket, "azid1 key user=root uid=0 resource=%s\\n" % VAULT)
        self.assertIn("error status=argument message=key requests are for root", r.stdout)

    # ---- the azid command ------------------------------------------------------

    def azid_as_nobody(self, script, like_pam_keyinit=True):
        """Runs a shell script as uid 65534 in a fresh session keyring
        (linking the user keyring as pam_keyinit's do, unless told not to),
        with the test broker's directory as /run/azid (a private mount
        namespace): azid finds it at the default socket."""
        link = "keyctl link @u @s >/dev/null && " if like_pam_keyinit else ""
        setup = 'mount -t tmpfs azid-run /run && mkdir /run/azid && mount --bind "$1" /run/azid && ' \
                'exec setpriv --reuid=%d --regid=%d --clear-groups keyctl session - sh -c "%s$2"' \
                % (NOBODY, NOBODY, link)
        env = dict(os.environ, AZID=harness.azid())
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh",
                               self.broker.dir, script], capture_output=True, text=True, timeout=60, env=env)

    def test_azid_token_asks_the_broker_when_the_key_is_gone(self):
        self.start(config="endpoint = @URL@\nMatch user nobody\n  resource = %s\n" % VAULT)
        r = self.azid_as_nobody('"$AZID" token %s; echo rc=$?; "$AZID" token --json %s; '
                                'keyctl rdescribe %%user:azid:token:%s' % (VAULT, VAULT, VAULT))
        token = self.emu.requests()[0]["access_token"]
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], token, r)
        self.assertEqual(lines[1], "rc=0")
        self.assertIn('"access_token":"%s"' % token, lines[2], "the second call read the kept key")
        self.assertRegex(lines[3], r"^user;%d;%d;2f010000;azid:token:%s$" % (NOBODY, NOBODY, re.escape(VAULT)))
        self.assertEqual(len(self.emu.requests()), 1)

        r = self.azid_as_nobody('"$AZID" token %s' % MGMT)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(r.stdout, "")
        self.assertIn("azid token: no token for %s in your keyring, and the broker refused: %s is not granted to "
                      "user nobody" % (MGMT, MGMT), r.stderr)
        self.assertEqual(len(self.emu.requests()), 1, "the endpoint was not asked")

    def test_azid_token_keeps_no_key_in_a_keyring_not_a_logins(self):
        # pam_azid's rule for the CLI too: a session keyring that does not
        # link the user keyring is no per-login one; the token is printed only.
        self.start(config="endpoint = @URL@\nMatch user nobody\n  resource = %s\n" % VAULT)
        r = self.azid_as_nobody('"$AZID" token %s; echo rc=$?; keyctl search @s user azid:token:%s '
                                '2>/dev/null; echo search=$?' % (VAULT, VAULT), like_pam_keyinit=False)
        token = self.emu.requests()[0]["access_token"]
        self.assertEqual(r.stdout.splitlines(), [token, "rc=0", "search=1"], r)
        self.assertIn("azid token: got a token from the broker but did not keep it: the session keyring "
                      "is not a per-login keyring of uid %d" % NOBODY, r.stderr)
        self.assertEqual([l for l in r.stderr.splitlines() if l.startswith("azid")],
                         [r.stderr.splitlines()[-1]], "one line from azid")

    def test_azid_token_says_the_broker_answered_when_its_endpoint_is_unreachable(self):
        # The broker forwards the endpoint's status, "unreachable": that is
        # its answer, not a missing broker (an admin told "no broker" would
        # go and start the one that is running).
        self.start(config="endpoint = http://127.0.0.1:9\ntimeout = 1\nMatch user nobody\n"
                          "  resource = %s\n" % VAULT)
        r = self.azid_as_nobody('"$AZID" token %s; echo rc=$?; "$AZID" token %s; echo rc=$?' % (VAULT, VAULT))
        self.assertEqual(r.stdout, "rc=1\nrc=1\n", r)
        lines = [l for l in r.stderr.splitlines() if l.startswith("azid")]
        self.assertEqual(len(lines), 2, r)
        for line in lines:
            self.assertTrue(line.startswith("azid token: no token for %s in your keyring, and the broker "
                                            "could not get one: IMDS http://127.0.0.1:9/" % VAULT), line)
            self.assertNotIn("no broker", line)
        self.assertIn("negative_hits=1 ", " ".join(self.broker.status()), "the second answer was the cached failure")

    def test_a_user_granted_nothing_gets_nothing(self):
        self.start(config="endpoint = @URL@\nMatch user someone-else\n  resource = %s\n" % VAULT)
        r = self.azid_as_nobody('"$AZID" token %s' % VAULT)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("is not granted to user nobody", r.stderr)
        self.assertEqual(self.emu.requests(), [])

    def test_azid_status_shows_the_cache_and_never_a_value(self):
        self.start(config="negative_cache = 30\n")
        self.key_request()
        self.key_request(extra=" client_id=no-such-id")
        r = self.azid_as_nobody('"$AZID" status; echo rc=$?; "$AZID" status --json')
        token = self.emu.requests()[0]["access_token"]
        self.assertNotIn(token[:30], r.stdout)
        text, _, js = r.stdout.partition("rc=0\n")
        self.assertIn("broker /run/azid/azidd.sock\n", text, r)
        self.assertRegex(text, r"token     system %s expires in 59m \d+s, refresh in 2\dm \d+s, 1 key \(%s\)"
                         % (re.escape(VAULT), re.escape(self.emu.url)))
        self.assertRegex(text, r"negative  client_id=no-such-id %s for \d+s more: http: .*Identity not found"
                         % re.escape(VAULT))
        # The failing caller itself is no hit of the negative cache.
        self.assertIn("requests 2, throttled 0, served 1, negative hits 0, refreshes 0, in flight 0, queued 0", text)
        import json
        status = json.loads(js)
        self.assertEqual(status["socket"], "/run/azid/azidd.sock")
        self.assertEqual([(t["identity"], t["resource"], t["keys"]) for t in status["tokens"]], [("system", VAULT, 1)])
        self.assertEqual(status["tokens"][0]["expires_on"], self.emu.requests()[0]["expires_on"])
        self.assertEqual([n["identity"] for n in status["negative"]], ["client_id=no-such-id"])
        self.assertEqual((status["requests"], status["served"], status["throttled"]), (2, 1, 0))

        r = self.azid_as_nobody('"$AZID" doctor')
        self.assertRegex(r.stdout, r"\nok    broker: azidd answers at /run/azid/azidd.sock: 2 request\(s\) sent to the "
                                   r"endpoint, 0 throttled, 1 token\(s\) served")

        self.broker.stop()
        r = self.azid_as_nobody('"$AZID" status')
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("azid status: no broker answers at /run/azid/azidd.sock", r.stderr)
        r = self.azid_as_nobody('"$AZID" doctor')
        # It removed its socket on the way out.
        self.assertIn("\nwarn  broker: no broker at /run/azid/azidd.sock: No such file or directory; logins "
                      "work without it", r.stdout)

    # ---- bad input -------------------------------------------------------------

    def test_bad_requests_get_an_error_and_others_are_still_served(self):
        self.start()
        sock = self.broker.socket
        cases = [
            ("garbage\\n", 'request does not start with "azid1"'),
            ("azid1 fly resource=x\\n", 'unknown request "fly"'),
            ("azid1 token resource=a b\\n", "is not KEY=VALUE"),
            ("azid1 token\\x01 resource=x\\n", "control character"),
            ("x" * 9000, "larger than 8192 bytes"),
            ("azid1 tok", "ended before its newline"),
        ]
        for data, expect in cases:
            r = as_nobody(ASK, sock, data, "half")
            self.assertIn("error status=", r.stdout, (data[:30], r))
            self.assertIn(expect, r.stdout, (data[:30], r))

        # Slow clients: connections that never finish their line, more than
        # one uid may hold; meanwhile root is served at once.
        slow = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                                 PYTHON, "-c", r"""
import socket, sys, time
conns = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    try:
        s.sendall(b"azid1 sta")
    except OSError:
        pass  # one the broker turned away at once
    conns.append(s)
print("open", flush=True)
got = []
first_timeout = None
for s in conns:
    s.settimeout(10)
    try:
        text = s.recv(4096).decode() or "closed"
    except ConnectionResetError:
        text = "closed"
    if "no complete request" in text and first_timeout is None:
        first_timeout = time.time()
    got.append(text)
print("first_timeout=%f" % first_timeout)
print("\n".join(got))
""", sock], stdout=subprocess.PIPE, text=True)
        self.assertEqual(slow.stdout.readline().strip(), "open")
        served = self.key_request()
        served_at = time.time()
        self.assertIn("key resource=%s serial=" % VAULT, served)
        out = slow.communicate(timeout=20)[0]
        # Served while the slow ones were still held (they are cut off after 2 s).
        first_timeout = float(re.search(r"first_timeout=([\d.]+)", out).group(1))
        self.assertLess(served_at, first_timeout)
        # The broker turns away what one uid holds beyond 32 connections.
        self.assertEqual(out.count("the broker is busy") + out.count("closed"), 8, out)
        self.assertEqual(out.count("no complete request line in time"), 32, out)
        self.assertTrue(self.broker.alive())
        self.assertIn("counters ", " ".join(self.broker.status()))


if __name__ == "__main__":
    harness.main()
