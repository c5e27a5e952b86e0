#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azid_client_get_secret over real TLS: libazid (through the public API,
tests/integration/secret_get) gets a token from the IMDS emulator and reads
a secret from the Key Vault emulator at https://myvault.vault.azure.net,
which a test copy of /etc/hosts maps to 127.0.0.1 inside a private network
namespace.  Asserted: what the caller gets (value, expiry, message, status,
time taken) and what Key Vault saw (the request, the bearer token's hash
against the token IMDS issued, how many requests)."""

import hashlib
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402
import kvtest  # noqa: E402

VAULT = "myvault.vault.azure.net"
OTHER_VAULT = "othervault.vault.azure.net"
URL = "https://%s/secrets/db-password" % VAULT
VALUE = "correct horse battery staple"
KV_RESOURCE = "https://vault.azure.net"
# Deadlines are asserted loosely: the contract is budget + 0.5 s.
SLACK = 1.5
CLEAN_ENV = {name: None for name in (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Result:
    def __init__(self, proc, elapsed):
        self.returncode = proc.returncode
        self.stdout = proc.stdout  # bytes: the value, exactly
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.elapsed = elapsed
        self.info = {}
        if self.returncode == 0:
            for item in self.stderr.split():
                name, _, value = item.partition("=")
                self.info[name] = value


class SecretTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = harness.TempDir()
        cls.tmp = cls._tmp.__enter__()
        cls.pki = kvtest.Pki(cls.tmp)
        cls.ca = cls.pki.ca("main")[0]
        cls.cert, cls.key = cls.pki.server("main", ["*.vault.azure.net"])
        kvtest.map_hosts(cls.tmp, {"127.0.0.1": [VAULT], "127.0.0.2": [OTHER_VAULT]})

    @classmethod
    def tearDownClass(cls):
        cls._tmp.__exit__(None, None, None)

    def setUp(self):
        self.emulators = []

    def tearDown(self):
        for emu in self.emulators:
            emu.stop()

    def imds(self, **kw):
        emu = harness.Emulator(self.tmp, **kw)
        self.emulators.append(emu)
        return emu

    def vault(self, imds, secrets=("db-password=" + VALUE,), cert=None, key=None, **kw):
        kv = kvtest.KeyVault(self.tmp, cert or self.cert, key or self.key, secrets=secrets,
                             imds_log=imds.log_path, **kw)
        self.emulators.append(kv)
        return kv

    def get(self, imds, url=URL, ca="main", timeout_ms=5000, wrap=(), env=None, extra=()):
        ca_file = self.pki.ca(ca)[0] if ca else "-"
        argv = list(wrap) + [os.path.join(harness.top_builddir, "tests", "integration", "secret_get"),
                             imds.url, ca_file, url, str(timeout_ms)] + list(extra)
        env = dict({k: v for k, v in os.environ.items() if k not in CLEAN_ENV}, **(env or {}))
        start = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, env=env, timeout=timeout_ms / 1000 + 30)
        return Result(proc, time.monotonic() - start)

    def assert_ok(self, r, value=VALUE):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, value.encode())

    def assert_fails(self, r, status, *fragments):
        """Exit 1, nothing on stdout, one stderr line "status: message"
        containing every fragment and never the secret."""
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(status + ": "), lines[0])
        for f in fragments:
            self.assertIn(f, lines[0])
        self.assertNotIn(VALUE, lines[0])
        return lines[0]

    def vault_tokens(self, imds):
        """The tokens IMDS issued for Key Vault."""
        return [e["access_token"] for e in imds.requests() if e["query"].get("resource") == [KV_RESOURCE]]

    # ---- success ----------------------------------------------------------------

    def test_reads_the_secret_with_the_imds_token(self):
        imds = self.imds()
        kv = self.vault(imds)
        r = self.get(imds)
        self.assert_ok(r)
        (token,) = self.vault_tokens(imds)
        self.assertEqual(len(imds.requests()), 1)
        (req,) = kv.requests()
        self.assertEqual(req["auth"], "ok")
        self.assertEqual(req["auth_scheme"], "Bearer")
        self.assertEqual(req["token_sha256"], sha256(token))
        self.assertEqual(req["method"], "GET")
        self.assertEqual(req["path"], "/secrets/db-password")
        self.assertEqual(req["query"], {"api-version": ["7.4"]})
        self.assertEqual(req["headers"]["host"], VAULT)
        self.assertEqual(req["headers"]["accept"], "application/json")
        self.assertTrue(req["headers"]["user-agent"].startswith("azid/"))
        self.assertEqual(kv.tls_failures(), [])
        # no exp: the stored copy lives as long as the token
        self.assertEqual(r.info["vault_host"], VAULT)
        self.assertEqual(r.info["name"], "db-password")
        self.assertEqual(int(r.info["expires_on"]), imds.requests()[0]["expires_on"])

    def test_version(self):
        imds = self.imds()
        self.vault(imds, secrets=["db-password=old value,version=0a1b", "db-password=" + VALUE])
        self.assert_ok(self.get(imds, url=URL + "/0a1b"), "old value")
        self.assert_ok(self.get(imds))
        r = self.get(imds, url=URL + "/ffff")
        self.assert_fails(r, "http", "Key Vault %s/ffff: HTTP 404 SecretNotFound" % URL)

    def test_value_bytes_unchanged(self):
        value = "p@ss w\u00f6rd \"quoted\" back\\slash\ttab\nline2 \u20ac"
        imds = self.imds()
        self.vault(imds, secrets=["db-password=" + value])
        self.assert_ok(self.get(imds), value)

    # ---- expiry -----------------------------------------------------------------

    def test_secret_exp_earlier_than_token(self):
        exp = int(time.time()) + 600
        imds = self.imds()
        self.vault(imds, secrets=["db-password=%s,exp=%d" % (VALUE, exp)])
        r = self.get(imds)
        self.assert_ok(r)
        self.assertEqual(int(r.info["expires_on"]), exp)

    def test_secret_exp_later_than_token(self):
        imds = self.imds(lifetime=1800)
        self.vault(imds, secrets=["db-password=%s,exp=%d" % (VALUE, int(time.time()) + 86400)])
        r = self.get(imds)
        self.assert_ok(r)
        self.assertEqual(int(r.info["expires_on"]), imds.requests()[0]["expires_on"])

    def test_expired_secret_refused(self):
        imds = self.imds()
        self.vault(imds, secrets=["db-password=%s,exp=%d" % (VALUE, int(time.time()) - 10)])
        self.assert_fails(self.get(imds), "response", "Key Vault %s: HTTP 200 but the secret expired at" % URL,
                          "set a new version or extend its expiry")

    # ---- TLS -----------------------------------------------------------------------

    def assert_certificate_refused(self, r, kv, *fragments, handshakes_refused=None):
        """Refused once (retrying cannot help), and the token never left.
        libcurl checks the issuer during the handshake (the emulator sees
        it fail) and the host name after it."""
        line = self.assert_fails(r, "tls", "Key Vault %s: " % URL, *fragments)
        self.assertEqual(kv.requests(), [], line)
        self.assertLess(r.elapsed, 1.5)
        if handshakes_refused is not None:
            deadline = time.monotonic() + 2  # the emulator logs in its own thread
            while len(kv.tls_failures()) < handshakes_refused and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(len(kv.tls_failures()), handshakes_refused)

    def test_wrong_ca_refused(self):
        imds = self.imds()
        kv = self.vault(imds)
        self.assert_certificate_refused(self.get(imds, ca="unrelated"), kv,
                                        "SSL certificate problem: unable to get local issuer certificate "
                                        "(trusted: the system CA store and %s)" % self.pki.ca("unrelated")[0],
                                        handshakes_refused=1)

    def test_system_trust_alone_refuses_the_test_ca(self):
        imds = self.imds()
        kv = self.vault(imds)
        self.assert_certificate_refused(self.get(imds, ca=None), kv,
                                        "SSL certificate problem: unable to get local issuer certificate "
                                        "(trusted: the system CA store; add the issuer's CA with ca_file=)",
                                        handshakes_refused=1)

    def test_environment_never_changes_trust(self):
        """SPEC: a root process never lets an environment variable change
        libcurl's or OpenSSL's trust.  Each variable below names the test CA,
        which the system store does not hold: the certificate stays refused."""
        self.assertEqual(os.geteuid(), 0)
        for env in ({"SSL_CERT_FILE": self.pki.ca("main")[0]}, {"SSL_CERT_DIR": self.pki.trust_dir("main")},
                    {"CURL_CA_BUNDLE": self.pki.ca("main")[0]}):
            with self.subTest(env=env):
                imds = self.imds()
                kv = self.vault(imds)
                try:
                    self.assert_certificate_refused(self.get(imds, ca=None, env=env), kv,
                                                    "SSL certificate problem: unable to get local issuer "
                                                    "certificate (trusted: the system CA store; add")
                finally:
                    for emu in (kv, imds):  # the next vault takes the same address
                        emu.stop()
                        self.emulators.remove(emu)

    def test_openssl_conf_not_read_as_root(self):
        """OPENSSL_CONF would let a caller's environment (login -p) choose
        OpenSSL's providers, engines and TLS defaults in a root process.
        This one accepts only RSA signatures, and the vault's certificate is
        ECDSA: read, it would fail every handshake.  As root it is never read."""
        conf = os.path.join(self.tmp, "openssl-rsa-only.cnf")
        with open(conf, "w") as f:
            f.write("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n"
                    "[tls]\nSignatureAlgorithms = RSA+SHA256\n")
        imds = self.imds()
        kv = self.vault(imds)
        self.assert_ok(self.get(imds, env={"OPENSSL_CONF": conf}))
        self.assertEqual(len(kv.requests()), 1)

    def test_program_without_tls_sends_no_https(self):
        """A program that set libazid up with AZID_GLOBAL_NO_TLS (as
        `azid fetch` does for a plain-http endpoint) still gets the token
        over http, and never contacts the vault: TLS would run on an OpenSSL
        that read no configuration."""
        imds = self.imds()
        kv = self.vault(imds)
        self.assert_fails(self.get(imds, extra=("global=1",)), "argument",
                          "no https request in this program: it set libazid up without TLS "
                          "(azid_global_init with AZID_GLOBAL_NO_TLS); leave that flag out to "
                          "reach https endpoints")
        self.assertEqual(len(self.vault_tokens(imds)), 1)
        self.assertEqual(kv.requests(), [])

    def test_global_flags_replaced_or_refused_change_nothing(self):
        """A later azid_global_init replaces the flags (0 puts TLS back), and
        one with an unknown flag is refused whole, NO_TLS bit included: the
        secret is read over TLS both times."""
        for extra, said in ((("global=1", "global=0"), ""),
                            (("global=7",), "global: argument: azid_global_init: unknown flags 0x6 "
                                            "(libazid(3) lists the AZID_GLOBAL_ ones)\n")):
            with self.subTest(extra=extra):
                imds = self.imds()
                kv = self.vault(imds)
                r = self.get(imds, extra=extra)
                self.assert_ok(r)
                self.assertTrue(r.stderr.startswith(said + "vault_host="), r.stderr)
                self.assertEqual(len(kv.requests()), 1)
                for emu in (kv, imds):  # the next vault takes the same address
                    emu.stop()
                    self.emulators.remove(emu)

    def test_sslkeylogfile_refused_as_root(self):
        """libcurl would create $SSLKEYLOGFILE as root and write TLS keys
        into it: a root process refuses, and the file never appears."""
        keylog = os.path.join(self.tmp, "keylog")
        imds = self.imds()
        kv = self.vault(imds)
        r = self.get(imds, env={"SSLKEYLOGFILE": keylog})
        self.assert_fails(r, "system", "refusing to use libcurl as root while SSLKEYLOGFILE is set "
                                       "(libcurl would create that file and write TLS session keys into "
                                       "it); unset it")
        self.assertFalse(os.path.exists(keylog), "root created SSLKEYLOGFILE")
        self.assertEqual((imds.requests(), kv.requests()), ([], []))

    def test_certificate_for_another_name_refused(self):
        imds = self.imds()
        cert, key = self.pki.server("main", ["myvault.vault.azure.cn"])
        kv = self.vault(imds, cert=cert, key=key)
        self.assert_certificate_refused(self.get(imds), kv,
                                        "no alternative certificate subject name matches target host name "
                                        "'%s'" % VAULT)

    def test_ca_file_adds_to_the_system_trust(self):
        # /etc/ssl/certs replaced (in a nested mount namespace) by a store
        # holding only CA "system"; othervault's certificate comes from it.
        cert, key = self.pki.server("system", [OTHER_VAULT])
        trust = self.pki.trust_dir("system")
        imds = self.imds()
        self.vault(imds)
        other = self.vault(imds, cert=cert, key=key, bind="127.0.0.2",
                           secrets=["db-password=other " + VALUE])
        wrap = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/ssl/certs && exec "$@"', trust]
        other_url = "https://%s/secrets/db-password" % OTHER_VAULT
        self.assert_ok(self.get(imds, url=other_url, ca="main", wrap=wrap), "other " + VALUE)
        self.assert_ok(self.get(imds, url=other_url, ca=None, wrap=wrap), "other " + VALUE)
        self.assert_ok(self.get(imds, ca="main", wrap=wrap))
        self.assertEqual(len(other.requests()), 2)

    # ---- Key Vault's refusals ---------------------------------------------------------

    def assert_refused_once(self, kv_kw, status, *fragments, url=URL):
        imds = self.imds()
        kv = self.vault(imds, **kv_kw)
        r = self.get(imds, url=url)
        line = self.assert_fails(r, "http", *fragments)
        self.assertEqual(len(kv.requests()), 1, line)
        self.assertEqual(kv.requests()[0]["status"], status)
        self.assertLess(r.elapsed, 2)
        return line

    def test_missing_secret(self):
        self.assert_refused_once({"secrets": ["other=x"]}, 404,
                                 "Key Vault %s: HTTP 404 SecretNotFound: A secret with (name/version) = "
                                 "(db-password/) was not found" % URL,
                                 "the vault has no secret of that name (or version)")

    def test_forbidden(self):
        # With a long secret name, Key Vault's long text is cut short, never the hint.
        url = URL + "-" + "x" * 100
        line = self.assert_refused_once({"faults": ["403"]}, 403,
                                        "Key Vault %s: HTTP 403 Forbidden: Caller is not authorized to perform "
                                        "action on resource.  If role assignments" % url, url=url)
        self.assertTrue(line.endswith(" \u2014 grant the VM's identity 'get' on secrets (Key Vault Secrets User "
                                      "role or an access policy)"), line)

    def test_disabled_secret(self):
        self.assert_refused_once({"secrets": ["db-password=%s,enabled=false" % VALUE]}, 403,
                                 "Operation get is not allowed on a disabled secret.",
                                 "enable it in the vault")

    def test_wrong_audience(self):
        self.assert_refused_once({"resource": "https://vault.example"}, 401,
                                 "HTTP 401 Unauthorized: AKV10022: Invalid audience",
                                 "issued for the vault's audience")

    def test_redirect_not_followed(self):
        self.assert_refused_once({"faults": ["302"]}, 302, "Key Vault %s: HTTP 302" % URL)

    def test_transient_statuses_retried(self):
        for fault, status in (("503", 503), ("429:retry-after=1", 429), ("500", 500), ("reset", 0)):
            with self.subTest(fault=fault):
                imds = self.imds()
                kv = self.vault(imds, faults=[fault])
                self.assert_ok(self.get(imds))
                self.assertEqual([q["status"] for q in kv.requests()], [status, 200])
                self.assertEqual(len(self.vault_tokens(imds)), 1)
                for emu in (kv, imds):
                    emu.stop()

    def test_bad_bodies(self):
        cases = [
            ("badjson", "HTTP 200 but response is not a JSON object"),
            ("nofield:value", "HTTP 200 but response has no value field"),
            ('field:attributes={"enabled": true, "exp": "tomorrow"}',
             "attributes.exp is not a whole number of seconds"),
            ("huge", "response larger than 262144 bytes"),
        ]
        for fault, fragment in cases:
            with self.subTest(fault=fault):
                imds = self.imds()
                kv = self.vault(imds, faults=[fault])
                self.assert_fails(self.get(imds), "response", "Key Vault %s: " % URL, fragment)
                self.assertEqual(len(kv.requests()), 1)
                for emu in (kv, imds):
                    emu.stop()

    # ---- the time budget ---------------------------------------------------------------

    def test_hanging_vault_bounded_by_the_budget(self):
        imds = self.imds()
        kv = self.vault(imds, faults=["hang-all"])
        r = self.get(imds, timeout_ms=2000)
        self.assert_fails(r, "timeout", "Key Vault %s: no secret within the 2.0 s time budget" % URL)
        self.assertGreaterEqual(len(kv.requests()), 1)
        self.assertLess(r.elapsed, 2 + SLACK)

    def test_one_budget_for_token_and_secret(self):
        # IMDS hangs once (cut off after 1 s), then Key Vault hangs: the
        # whole call still ends with the 3 s budget.
        imds = self.imds(faults=["hang"])
        self.vault(imds, faults=["hang-all"])
        r = self.get(imds, timeout_ms=3000)
        self.assert_fails(r, "timeout", "Key Vault %s" % URL)
        self.assertEqual(len(imds.requests()), 2)
        self.assertLess(r.elapsed, 3 + SLACK)

    # ---- refused before any request -------------------------------------------------------

    def test_bad_url_sends_nothing(self):
        imds = self.imds()
        kv = self.vault(imds)
        for url in ("http://%s/secrets/db-password" % VAULT, "https://%s.evil.com/secrets/db-password" % VAULT,
                    "https://evilvault.azure.net/secrets/db-password", "https://%s/secrets/" % VAULT):
            with self.subTest(url=url):
                self.assert_fails(self.get(imds, url=url), "argument", "is not a Key Vault secret URL")
        self.assertEqual(imds.requests(), [])
        self.assertEqual(kv.requests(), [])

    def test_no_token_no_request(self):
        imds = self.imds(faults=["400"])
        kv = self.vault(imds)
        self.assert_fails(self.get(imds), "http",
                          "Key Vault %s: no token for https://vault.azure.net: IMDS %s/metadata/identity/oauth2/"
                          "token: HTTP 400" % (URL, imds.url))
        self.assertEqual(kv.requests(), [])


if __name__ == "__main__":
    kvtest.enter_network_namespace()
    harness.main()
