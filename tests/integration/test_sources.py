#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Source detection and the non-IMDS protocols, end to end through
`azid fetch`, inside private mount and network namespaces: the Azure DMI
asset tag (IMDS at 169.254.169.254 on the namespace's own loopback), the Arc
agent and its key-file challenge, App Service, Cloud Shell and workload
identity from their environment variables."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402
import kvtest  # noqa: E402

INNER = "AZID_TEST_SOURCES_IN_NAMESPACE"
DMI_TAG = "/sys/class/dmi/id/chassis_asset_tag"
AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"
ARC_AGENT = "/opt/azcmagent/bin/himds"
ARC_TOKEN_DIR = "/var/opt/azcmagent/tokens"
# The contract is budget + 0.5 s; the rest absorbs a loaded test machine.
SLACK = 1.5
SOURCE_ENV = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
              "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")

# Run in a child: a 0.3 s request to a name the silent resolver never
# answers, libazid unloaded at once, then past the lookup's 1 s timeout.
UNLOAD_WHILE_RESOLVING = """
import ctypes, _ctypes, sys, time
lib = ctypes.CDLL(sys.argv[1])
lib.azid_client_new.restype = ctypes.c_void_p
for name in ("azid_client_free", "azid_client_set_endpoint", "azid_client_set_timeout_ms",
             "azid_client_get_token"):
    getattr(lib, name).argtypes = None
client = ctypes.c_void_p(lib.azid_client_new())
lib.azid_client_set_endpoint(client, b"http://imds.azid-test.example", None)
lib.azid_client_set_timeout_ms(client, ctypes.c_long(300), None)
token = ctypes.c_void_p()
status = lib.azid_client_get_token(client, b"https://vault.azure.net", ctypes.byref(token), None)
print("timeout" if status == 6 else "status %d" % status, flush=True)
lib.azid_client_free(client)
handle = lib._handle
del lib
_ctypes.dlclose(handle)
time.sleep(2)
print("survived", flush=True)
"""


def enter_namespaces():
    """Re-runs this script in new mount + network namespaces where /sys/class,
    /opt and /var/opt are private tmpfs mounts; returns only inside them."""
    if os.environ.get(INNER):
        return
    if os.geteuid() != 0:
        harness.skip("needs root for mount and network namespaces")
    probe = subprocess.run(["unshare", "-mn", "true"], capture_output=True)
    if probe.returncode != 0:
        harness.skip("cannot create mount+network namespaces: %s" % probe.stderr.decode().strip())
    setup = ("set -e; mount --make-rprivate /; ip link set lo up; "
             "for d in /sys/class /opt /var/opt; do mount -t tmpfs -o mode=0755 tmpfs $d; done; "
             "mkdir -p /sys/class/dmi/id %s; exec \"$@\"" % ARC_TOKEN_DIR)
    env = dict(os.environ)
    env[INNER] = "1"
    r = subprocess.run(["unshare", "-mn", "sh", "-c", setup, "sh", sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class SourcesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = harness.TempDir()
        self.tmp = self._tmp.__enter__()
        self.emulators = []
        remove(DMI_TAG)
        remove(ARC_AGENT)

    def tearDown(self):
        for emu in self.emulators:
            emu.stop()
        self._tmp.__exit__(None, None, None)
        remove(DMI_TAG)
        remove(ARC_AGENT)

    def emulator(self, **kw):
        emu = harness.Emulator(self.tmp, **kw)
        self.emulators.append(emu)
        return emu

    def fetch(self, *args, env=None):
        full = {name: None for name in SOURCE_ENV}
        full.update(env or {})
        return harness.run([harness.azid(), "fetch"] + list(args), env=full)

    def assert_token(self, r, emu):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        issued = [e["access_token"] for e in emu.log() if e["access_token"]]
        self.assertEqual(len(issued), 1)
        self.assertEqual(r.stdout, issued[0] + "\n")

    def assert_error(self, r, code, *fragments):
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        if code == 2:
            lines = lines[:1]  # usage errors add the usage line and a pointer to --help
        self.assertEqual(len(lines), 1, r.stderr)
        line = lines[0]
        for f in fragments:
            self.assertIn(f, line)

    # ---- detection -------------------------------------------------------------

    def test_imds_detected_by_asset_tag(self):
        subprocess.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], check=True)
        try:
            write(DMI_TAG, AZURE_TAG + "\n")
            emu = self.emulator(bind="169.254.169.254", extra_args=["--port", "80"])
            r = self.fetch("--resource", "https://vault.azure.net")
            self.assert_token(r, emu)
            (req,) = emu.requests()
            self.assertEqual(req["headers"]["host"], "169.254.169.254")
            self.assertEqual(req["query"]["api-version"], ["2018-02-01"])
        finally:
            subprocess.run(["ip", "addr", "del", "169.254.169.254/32", "dev", "lo"])

    def test_other_asset_tag_is_not_azure(self):
        write(DMI_TAG, "No Asset Tag\n")
        r = self.fetch()
        self.assert_error(r, 3, "not an Azure VM")
        self.assertLess(r.elapsed, 0.5)

    def test_arc_agent_detected(self):
        write(DMI_TAG, AZURE_TAG + "\n")  # the agent wins over the tag
        write(ARC_AGENT, "#!/bin/sh\n", 0o755)
        emu = self.emulator(mode="arc", extra_args=["--port", "40342"])
        r = self.fetch()
        self.assert_token(r, emu)
        first, second = emu.requests()
        self.assertEqual(first["status"], 401)
        self.assertEqual(second["status"], 200)
        self.assertEqual(second["query"]["api-version"], ["2019-11-01"])
        self.assertEqual(second["headers"]["metadata"], "true")
        self.assertTrue(second["headers"]["authorization"].startswith("Basic "))
        self.assertNotIn("authorization", first["headers"])

    def test_arc_from_environment(self):
        emu = self.emulator(mode="arc")
        r = self.fetch(env={"IDENTITY_ENDPOINT": emu.url + "/metadata/identity/oauth2/token",
                            "IMDS_ENDPOINT": emu.url})
        self.assert_token(r, emu)

    def test_arc_refuses_user_assigned(self):
        emu = self.emulator(mode="arc")
        r = self.fetch("--source", "arc", "--endpoint", emu.url, "--client-id", "c")
        self.assert_error(r, 2, "client_id= is not supported by source arc")
        self.assertEqual(emu.requests(), [])

    def test_arc_key_outside_token_dir_refused(self):
        elsewhere = os.path.join(self.tmp, "keys")
        os.mkdir(elsewhere)
        emu = self.emulator(mode="arc", extra_args=["--arc-token-dir", elsewhere])
        r = self.fetch("--source", "arc", "--endpoint", emu.url)
        self.assert_error(r, 3, "Arc %s/metadata/identity/oauth2/token" % emu.url,
                          "not a .key file directly in /var/opt/azcmagent/tokens")
        self.assertEqual(len(emu.requests()), 1)

    def test_arc_key_only_for_a_listener_of_root_or_himds(self):
        # Port 40342 is unprivileged: a listener of uid 65534 challenges
        # root's request with a key file it wrote itself (the token
        # directory is opened up for it here); it must not get the key.
        work = tempfile.mkdtemp(prefix="azid-arc-nobody.")
        self.addCleanup(shutil.rmtree, work)
        os.chown(work, 65534, 65534)
        os.chmod(ARC_TOKEN_DIR, 0o1777)
        self.addCleanup(os.chmod, ARC_TOKEN_DIR, 0o755)
        port_file, log = os.path.join(work, "port"), os.path.join(work, "log.jsonl")
        proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 sys.executable, harness.EMULATOR, "--bind", "127.0.0.1",
                                 "--port", "40342", "--port-file", port_file, "--log", log,
                                 "--mode", "arc"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        harness.wait_for_file(port_file, proc=proc)
        r = self.fetch("--source", "arc")
        self.assert_error(r, 3, "Arc http://127.0.0.1:40342/metadata/identity/oauth2/token",
                          "the listener on 127.0.0.1:40342 belongs to uid 65534, not root or himds")
        with open(log) as f:
            (request,) = [json.loads(line) for line in f if line.strip()]
        self.assertNotIn("authorization", request["headers"])

    # ---- name resolution --------------------------------------------------------

    def silent_dns(self, options=""):
        """Points /etc/resolv.conf (in this mount namespace) at a resolver
        that swallows every query; returns a function telling whether it
        was asked."""
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.bind(("127.0.0.1", 53))
        self.addCleanup(dns.close)
        resolv = os.path.join(self.tmp, "resolv.conf")
        write(resolv, "nameserver 127.0.0.1\n" + options)
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        self.addCleanup(subprocess.run, ["umount", "/etc/resolv.conf"], check=True)

        def asked():
            dns.setblocking(False)
            try:
                return bool(dns.recv(4096))
            except BlockingIOError:
                return False
        return asked

    def test_dns_that_never_answers_keeps_the_budget(self):
        # getaddrinfo blocks for resolv.conf's timeouts (5 s, twice); the
        # attempt must still end with the budget, not when it gives up.
        asked = self.silent_dns()
        r = self.fetch("--endpoint", "http://imds.azid-test.example", "--timeout", "1")
        self.assertTrue(asked(), "the name was not looked up through the test's resolver")
        self.assert_error(r, 3, "IMDS http://imds.azid-test.example/metadata/identity/oauth2/token",
                          "no token within the 1.0 s time budget")
        self.assertLess(r.elapsed, 1 + SLACK)

    def test_unloaded_while_resolving(self):
        # The lookup cut off by the budget finishes in libcurl after the
        # call returned; a host that unloads the library (pam_end unloads
        # the module) meanwhile must not crash when the lookup returns.
        self.silent_dns("options timeout:1 attempts:1\n")
        r = subprocess.run([sys.executable, "-c", UNLOAD_WHILE_RESOLVING,
                            os.path.join(harness.top_builddir, ".libs", "libazid.so.0")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, "exit %d: %s" % (r.returncode, r.stderr))
        self.assertEqual(r.stdout, "timeout\nsurvived\n")

    # ---- App Service, Cloud Shell, workload identity ------------------------------

    def test_appservice(self):
        emu = self.emulator(mode="appservice", extra_args=["--secret", "s3cret"],
                            identities=["system", "client_id=C1,object_id=O1,msi_res_id=R1"])
        env = {"IDENTITY_ENDPOINT": emu.url + "/msi/token", "IDENTITY_HEADER": "s3cret"}
        self.assert_token(self.fetch(env=env), emu)
        req = emu.requests("/msi/token")[0]
        self.assertEqual(req["headers"]["x-identity-header"], "s3cret")
        self.assertEqual(req["query"]["api-version"], ["2019-08-01"])
        r = self.fetch("--object-id", "O1", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(emu.requests("/msi/token")[-1]["query"]["principal_id"], ["O1"])
        r = self.fetch(env=dict(env, IDENTITY_HEADER="wrong"))
        self.assert_error(r, 3, "App Service %s/msi/token: HTTP 401" % emu.url)

    def test_cloudshell(self):
        emu = self.emulator(mode="cloudshell")
        r = self.fetch("--resource", "https://vault.azure.net",
                       env={"MSI_ENDPOINT": emu.url + "/msi/token"})
        self.assert_token(r, emu)
        (req,) = emu.requests("/msi/token")
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["form"], {"resource": ["https://vault.azure.net"]})
        self.assertEqual(req["headers"]["metadata"], "true")

    def workload_emulator(self):
        """The workload emulator over HTTPS at https://localhost:PORT; (emu,
        url, CA file)."""
        pki = kvtest.Pki(self.tmp)
        cert, key = pki.server("ca", ["localhost"])
        emu = self.emulator(mode="workload", lifetime=600, extra_args=["--cert", cert, "--key", key])
        return emu, "https://localhost:%d" % emu.port, pki.ca("ca")[0]

    def test_workload(self):
        emu, url, ca = self.workload_emulator()
        assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln"
        token_file = os.path.join(self.tmp, "azure-identity-token")
        write(token_file, assertion + "\n")
        env = {"AZURE_TENANT_ID": "tenant-1", "AZURE_CLIENT_ID": "app-1",
               "AZURE_FEDERATED_TOKEN_FILE": token_file}
        start = time.time()
        r = self.fetch("--source", "workload", "--endpoint", url, "--ca-file", ca, "--json",
                       "--resource", "https://vault.azure.net", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertAlmostEqual(doc["expires_on"], start + 600, delta=30)
        (req,) = emu.requests("/tenant-1/oauth2/v2.0/token")
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["form"]["client_id"], ["app-1"])
        self.assertEqual(req["form"]["client_assertion"], [assertion])
        self.assertEqual(req["form"]["scope"], ["https://vault.azure.net/.default"])
        self.assertEqual(doc["access_token"], req["access_token"])

    def test_workload_without_token_file(self):
        env = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
               "AZURE_FEDERATED_TOKEN_FILE": os.path.join(self.tmp, "missing")}
        r = self.fetch("--source", "workload", "--endpoint", "https://127.0.0.1:9", env=env)
        self.assert_error(r, 1, "cannot read AZURE_FEDERATED_TOKEN_FILE")

    def test_workload_assertion_never_in_cleartext(self):
        # Issue 9 finding 9: no http endpoint=, and AZURE_AUTHORITY_HOST is
        # an https URL naming a host and nothing else.
        emu = self.emulator(mode="workload")
        token_file = os.path.join(self.tmp, "azure-identity-token")
        write(token_file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")
        env = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_FEDERATED_TOKEN_FILE": token_file}
        r = self.fetch("--source", "workload", "--endpoint", emu.url, env=env)
        self.assert_error(r, 2, "source workload sends its assertion (a credential) to endpoint=, "
                                "so it must be an https:// URL, not '%s'" % emu.url)
        host = emu.url.replace("http://", "")
        for authority, why in (("https://user@" + host, "must not contain user information"),
                               ("https://%s/?x=1" % host, "no path, query or fragment"),
                               ("https://%s/#f" % host, "no path, query or fragment"),
                               ("https://%s/adfs" % host, "no path, query or fragment")):
            with self.subTest(authority=authority):
                r = self.fetch(env=dict(env, AZURE_AUTHORITY_HOST=authority))
                self.assert_error(r, 2, "AZURE_AUTHORITY_HOST '%s'" % authority, why)
        self.assertEqual(emu.log(), [])


if __name__ == "__main__":
    enter_namespaces()
    harness.main()
