# SPDX-License-Identifier: MIT
"""Helpers for the Key Vault tests (standard library only, plus openssl(1)).

A test calls enter_network_namespace() first: it re-runs the test inside
`unshare --mount --net` (a private mount namespace and a network namespace
whose only device is loopback), or skips (77) when that is impossible.
Inside, map_hosts() bind-mounts a test copy over /etc/hosts so that vault
names resolve to 127.0.0.x, Pki makes a throwaway CA and server
certificates, and KeyVault runs tests/emulator/keyvault.py on port 443.

    kvtest.enter_network_namespace()
    with harness.TempDir() as tmp:
        pki = kvtest.Pki(tmp)
        kvtest.map_hosts(tmp, {"127.0.0.1": ["myvault.vault.azure.net"]})
        cert, key = pki.server("ca", ["*.vault.azure.net"])
        with harness.Emulator(tmp) as imds, \\
             kvtest.KeyVault(tmp, cert, key, secrets=["db=s3cret"], imds_log=imds.log_path) as kv:
            ...
"""

import os
import shutil
import subprocess
import sys
import tempfile

import harness

KEYVAULT = os.path.join(harness.top_srcdir, "tests", "emulator", "keyvault.py")
NAMESPACE_MARK = "AZID_KVTEST_IN_NAMESPACE"


def _have(tool):
    return shutil.which(tool) is not None


def enter_network_namespace():
    """Re-executes the calling script in a private mount + network namespace
    (loopback up) and exits with its status; returns when already inside."""
    if os.environ.get(NAMESPACE_MARK) == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    if os.geteuid() != 0:
        harness.skip("needs root (network and mount namespaces, port 443, bind mounts)")
    for tool in ("unshare", "ip", "openssl", "mount"):
        if not _have(tool):
            harness.skip("%s is not installed" % tool)
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        harness.skip("cannot create mount and network namespaces: %s" % probe.stderr.strip())
    env = dict(os.environ)
    env[NAMESPACE_MARK] = "1"
    argv = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable] + sys.argv
    sys.stdout.flush()
    sys.exit(subprocess.run(argv, env=env).returncode)


def map_hosts(tmpdir, mapping):
    """Bind-mounts a copy of /etc/hosts with mapping {address: [names]} over
    /etc/hosts (inside the private mount namespace only)."""
    path = os.path.join(tmpdir, "hosts")
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n")
        for address, names in mapping.items():
            f.write("%s %s\n" % (address, " ".join(names)))
    subprocess.run(["mount", "--bind", path, "/etc/hosts"], check=True)


class Pki:
    """Throwaway certificate authorities and server certificates (EC P-256)."""

    def __init__(self, tmpdir):
        self.dir = tempfile.mkdtemp(prefix="pki.", dir=tmpdir)
        self.cas = {}

    def _openssl(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))

    def ca(self, name):
        """(cert, key) paths of CA `name`, made on first use."""
        if name not in self.cas:
            cert = os.path.join(self.dir, name + ".crt")
            key = os.path.join(self.dir, name + ".key")
            self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj",
                          "/CN=azid test CA %s" % name,
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            self.cas[name] = (cert, key)
        return self.cas[name]

    def server(self, ca_name, names):
        """(cert, key) of a server certificate for DNS names, issued by ca_name."""
        ca_cert, ca_key = self.ca(ca_name)
        base = os.path.join(self.dir, "%s-%d" % (ca_name, len(os.listdir(self.dir))))
        csr, cert, key, ext = base + ".csr", base + ".crt", base + ".key", base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % ",".join("DNS:" + n for n in names))
            f.write("extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=%s" % names[0])
        self._openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                      "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def trust_dir(self, *ca_names):
        """A CA directory laid out as Debian's /etc/ssl/certs (hashed links
        and the ca-certificates.crt bundle) holding those CAs."""
        path = tempfile.mkdtemp(prefix="certs.", dir=self.dir)
        with open(os.path.join(path, "ca-certificates.crt"), "w") as bundle:
            for name in ca_names:
                shutil.copy(self.ca(name)[0], os.path.join(path, name + ".pem"))
                with open(self.ca(name)[0]) as f:
                    bundle.write(f.read())
        self._openssl("rehash", path)
        return path


class KeyVault(harness.Emulator):
    """Runs tests/emulator/keyvault.py (HTTPS) on bind:port; stop(), log(),
    stderr() as for the IMDS emulator.  requests() are the HTTP requests it
    saw, tls_failures() the handshakes that failed."""

    def __init__(self, tmpdir, cert, key, secrets=(), faults=(), imds_log=None, resource=None,
                 bind="127.0.0.1", port=443):
        self.dir = tempfile.mkdtemp(prefix="keyvault.", dir=tmpdir)
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self.stderr_path = os.path.join(self.dir, "stderr")
        argv = [sys.executable, KEYVAULT, "--bind", bind, "--port", str(port), "--port-file", self.port_file,
                "--log", self.log_path, "--cert", cert, "--key", key]
        for spec in secrets:
            argv += ["--secret", spec]
        for fault in faults:
            argv += ["--fault", fault]
        if imds_log:
            argv += ["--imds-log", imds_log]
        if resource:
            argv += ["--resource", resource]
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self.port = int(harness.wait_for_file(self.port_file, proc=self.proc))
        except Exception:
            self.stop()
            raise RuntimeError("Key Vault emulator did not start: %s" % self.stderr())
        self.url = "https://%s:%d" % (bind, self.port)

    def requests(self, path=None):
        return [e for e in self.log() if e.get("method") and (path is None or e["path"] == path)]

    def tls_failures(self):
        return [e for e in self.log() if not e.get("method")]
