#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The emulator's IMDS limits (--limits) and token shape (--token-size),
which the broker's tests rely on: at most 5 token requests in flight and
20 started a second, every request beyond answered 429 with Retry-After and
logged as throttled; without --limits nothing is refused.  Only loopback."""

import http.client
import json
import os
import socket
import string
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402

TOKEN_PATH = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
# Sequential requests in one rate test; bounded attempts when the machine is
# too slow to send them within one second.
BURST = 40
ATTEMPTS = 3


def get(conn):
    """One token request on conn; returns (status, Retry-After, body)."""
    conn.request("GET", TOKEN_PATH, headers={"Metadata": "true"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    return resp.status, resp.getheader("Retry-After"), body


def hanging_request(port):
    """A token request sent on a raw socket and left unanswered (the
    emulator's "hang" fault holds it until the socket closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nMetadata: true\r\n\r\n" % TOKEN_PATH).encode())
    return s


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class LimitsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = harness.TempDir()
        self.dir = self.tmp.__enter__()

    def tearDown(self):
        self.tmp.__exit__(None, None, None)

    def burst(self, emu):
        """BURST sequential requests on one connection; returns the statuses,
        the Retry-After headers and the seconds they took."""
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        start = time.monotonic()
        answers = [get(conn) for _ in range(BURST)]
        elapsed = time.monotonic() - start
        conn.close()
        return answers, elapsed

    def test_twenty_a_second(self):
        for _ in range(ATTEMPTS):
            with harness.Emulator(self.dir, extra_args=["--limits"]) as emu:
                answers, elapsed = self.burst(emu)
                if elapsed >= 0.9:
                    continue  # the window slid during the burst: not a clean measurement
                statuses = [a[0] for a in answers]
                self.assertEqual(statuses, [200] * 20 + [429] * (BURST - 20), "in %.3f s" % elapsed)
                for status, retry_after, body in answers[20:]:
                    self.assertEqual(retry_after, "1")
                    self.assertEqual(body["error"], "too_many_requests")
                log = emu.requests()
                self.assertEqual(len(log), BURST)
                self.assertEqual(sum(1 for e in log if e["throttled"]), BURST - 20)
                self.assertTrue(all(e["status"] == 429 for e in log if e["throttled"]))
                self.assertFalse(any(e["access_token"] for e in log if e["throttled"]))
                # A second later the window has room again.
                time.sleep(1.1)
                conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
                self.assertEqual(get(conn)[0], 200)
                conn.close()
                return
        self.fail("could not send %d requests within 0.9 s in %d attempts" % (BURST, ATTEMPTS))

    def test_five_in_flight(self):
        with harness.Emulator(self.dir, faults=["hang"] * 5, extra_args=["--limits"]) as emu:
            held = [hanging_request(emu.port) for _ in range(5)]
            try:
                self.assertTrue(wait_until(lambda: len(emu.requests()) == 5), emu.requests())
                conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
                status, retry_after, body = get(conn)
                conn.close()
                self.assertEqual((status, retry_after), (429, "1"), body)
                self.assertTrue(emu.requests()[-1]["throttled"])
            finally:
                for s in held:
                    s.close()

            # The hung requests end when their clients go; then one is answered.
            def answered():
                c = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
                try:
                    return get(c)[0] == 200
                finally:
                    c.close()
            self.assertTrue(wait_until(answered, timeout=5.0), emu.requests())
            self.assertEqual([e["fault"] for e in emu.requests()][:5], ["hang"] * 5)

    def test_no_limits_by_default(self):
        with harness.Emulator(self.dir) as emu:
            answers, _ = self.burst(emu)
            self.assertEqual([a[0] for a in answers], [200] * BURST)
            self.assertFalse(any(e["throttled"] for e in emu.requests()))


class TokenSizeTest(unittest.TestCase):
    def test_size(self):
        allowed = set(string.ascii_letters + string.digits + "-_.")
        with harness.TempDir() as tmp, harness.Emulator(tmp, lifetime=240,
                                                        extra_args=["--token-size", "2560"]) as emu:
            conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
            bodies = [get(conn)[2] for _ in range(5)]
            conn.close()
            tokens = [b["access_token"] for b in bodies]
            self.assertEqual([len(t) for t in tokens], [2560] * 5)
            self.assertEqual(len(set(tokens)), 5, "every token is new")
            self.assertTrue(all(set(t) <= allowed and t.count(".") == 2 for t in tokens))
            self.assertEqual({b["expires_in"] for b in bodies}, {"240"})

    def test_too_small(self):
        r = harness.run([sys.executable, harness.EMULATOR, "--token-size", "20"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token-size must be at least", r.stderr)


if __name__ == "__main__":
    harness.main()
