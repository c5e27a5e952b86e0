# SPDX-License-Identifier: MIT
"""Helpers shared by azid's Python tests (standard library only).

    import os, sys
    sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "lib"))
    import harness

    with harness.TempDir() as tmp, harness.Emulator(tmp, faults=["503"]) as emu:
        r = harness.run([harness.azid(), "fetch", "--endpoint", emu.url])
        assert r.returncode == 0 and r.stdout.strip() == emu.log()[-1]["access_token"]

top_srcdir / top_builddir come from the environment (automake exports them)
and default to the checkout this file lives in.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SKIP = 77

top_srcdir = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
top_builddir = os.environ.get("top_builddir") or top_srcdir
EMULATOR = os.path.join(top_srcdir, "tests", "emulator", "imds.py")


def config_define(name):
    """A string that configure defined in the build's config.h, or None."""
    try:
        with open(os.path.join(top_builddir, "config.h")) as f:
            m = re.search(r'^#define %s "([^"]*)"$' % name, f.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


# The libcurl libazid loads at its first request (libazid/http.c).
LIBCURL_SONAME = config_define("LIBCURL_SONAME")


def makefile_variable(name):
    """A variable of the build's Makefile as make expands ${...} in it, or
    None."""
    try:
        with open(os.path.join(top_builddir, "Makefile")) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^%s = (.*)$" % re.escape(name), text, re.M)
    if not m:
        return None
    return re.sub(r"\$[{(](\w+)[})]", lambda v: makefile_variable(v.group(1)) or "", m.group(1))


# Where the programs read the config file by default (AZID_CONFIG_PATH,
# Makefile.am): /etc/azid.conf only when configured --sysconfdir=/etc.
CONFIG_PATH = (makefile_variable("sysconfdir") or "/etc") + "/azid.conf"


def azid():
    """The azid command of the build tree (libtool's wrapper script)."""
    return os.path.join(top_builddir, "azid")


def skip(reason):
    """Ends the test as skipped (automake's exit code 77) with a reason."""
    print("SKIP: %s" % reason)
    sys.exit(SKIP)


class TempDir:
    """A private temporary directory, removed on exit."""

    def __init__(self, prefix="azid-test."):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def run(argv, timeout=30, env=None, input=None, clear_env=False):
    """Runs argv with a timeout; returns a CompletedProcess (text stdout and
    stderr) with an extra attribute `elapsed` in seconds.  env entries are
    added to (or, with clear_env, replace) the current environment; a value
    of None removes the variable."""
    full = {} if clear_env else dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    start = time.monotonic()
    r = subprocess.run(argv, env=full, input=input, capture_output=True, text=True, timeout=timeout)
    r.elapsed = time.monotonic() - start
    return r


def wait_for_file(path, timeout=10.0, proc=None):
    """Waits until path exists and is non-empty; returns its contents."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="utf-8") as f:
                data = f.read()
            if data:
                return data
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %d before writing %s" % (proc.returncode, path))
        time.sleep(0.02)
    raise TimeoutError("%s did not appear within %.1f s" % (path, timeout))


def stop_process(proc):
    """SIGTERM, then SIGKILL after 5 s; waits for it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Emulator:
    """Runs tests/emulator/imds.py on a free port.

    Emulator(tmpdir, identities=None, faults=None, lifetime=None, mode=None,
             bind="127.0.0.1", extra_args=(), argv_prefix=())
    argv_prefix runs it through another command (e.g. ["ip", "netns",
    "exec", NS]).  Attributes: port, url ("http://127.0.0.1:PORT"),
    log_path.  Methods: log(), requests(), set_faults(list), stop()."""

    def __init__(self, tmpdir, identities=None, faults=None, lifetime=None, mode=None,
                 bind="127.0.0.1", extra_args=(), argv_prefix=()):
        self.dir = tempfile.mkdtemp(prefix="emulator.", dir=tmpdir)
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.bind = bind
        argv = list(argv_prefix) + [sys.executable, EMULATOR, "--bind", bind,
                                    "--port-file", self.port_file, "--log", self.log_path]
        for spec in identities or []:
            argv += ["--identity", spec]
        for fault in faults or []:
            argv += ["--fault", fault]
        if lifetime is not None:
            argv += ["--lifetime", str(lifetime)]
        if mode is not None:
            argv += ["--mode", mode]
        argv += list(extra_args)
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self.port = int(wait_for_file(self.port_file, proc=self.proc))
        except Exception:
            self.stop()
            raise RuntimeError("emulator did not start: %s" % self.stderr())
        host = "[%s]" % bind if ":" in bind else bind
        self.url = "http://%s:%d" % (host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)
        self._stderr.close()

    def log(self):
        """Every request so far, as the list of the log's JSON objects."""
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def requests(self, path="/metadata/identity/oauth2/token"):
        """The logged requests to path (default: the IMDS token path)."""
        return [e for e in self.log() if e["path"] == path]

    def set_faults(self, faults):
        """Replaces the fault queue at run time (POST /_emulator/faults)."""
        req = urllib.request.Request(self.url + "/_emulator/faults", data=json.dumps(faults).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=5) as resp:
            return json.loads(resp.read())


class Broker:
    """Runs the build tree's azidd on a private socket.

    Broker(tmpdir, config_text="", env=None)  (config_text: the azid.conf it
    reads, written root-owned 0644 into tmpdir).  Attributes: socket,
    config_path.  Methods: request(line) -> reply text, status() -> list of
    reply lines, log() -> its log lines so far, stop()."""

    def __init__(self, tmpdir, config_text="", argv_prefix=()):
        self.dir = tempfile.mkdtemp(prefix="azidd.", dir=tmpdir)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "azidd.sock")
        self.config_path = os.path.join(self.dir, "azid.conf")
        self.write_config(config_text)
        self.stderr_path = os.path.join(self.dir, "stderr")
        self._stderr = open(self.stderr_path, "w")
        argv = list(argv_prefix) + [os.path.join(top_builddir, "azidd", "azidd"), "--socket", self.socket,
                                    "--config", self.config_path, "--stderr"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._stderr)
        import socket as socketmod
        deadline = time.monotonic() + 10
        while True:
            # Listening, not just bound: the file appears before listen().
            probe = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
            try:
                probe.connect(self.socket)
                break
            except OSError:
                pass
            finally:
                probe.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("azidd did not start: %s" % "\n".join(self.log()))
            time.sleep(0.02)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o644)

    def request(self, line, timeout=30):
        """Sends one request (bytes or text, sent as given) and returns the
        whole reply as text."""
        import socket as socketmod
        s = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.socket)
            s.sendall(line if isinstance(line, bytes) else line.encode())
            out = b""
            while True:
                data = s.recv(65536)
                if not data:
                    return out.decode("utf-8", "replace")
                out += data
        finally:
            s.close()

    def status(self):
        return self.request("azid1 status\n").splitlines()

    def log(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        self._stderr.close()


def main():
    """unittest.main() that exits 0 on success, 1 on failure and 77 when every
    test was skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    result = prog.result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
