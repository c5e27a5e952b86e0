# SPDX-License-Identifier: MIT
"""pam_azid through the real libpam, for tests/pam/test_*.py.

Sandbox(tmp) prepares a private world for tests/pam/pam_run:
  - throwaway users in copies of /etc/passwd, /etc/group, /etc/shadow,
  - a syslog socket this process reads (pam_syslog's lines are asserted),
  - PAM stack files in a directory given to pam_start_confdir.
Sandbox.run() starts pam_run under `unshare --mount` where those copies are
bind-mounted over /etc and /dev is a small tmpfs whose /dev/log is the
socket: nothing of the host changes.

The stack it writes is
    session optional pam_keyinit.so force revoke     (keyinit=...)
    session [success=done ignore=ignore default=die] pam_azid.so ARGS
    session required pam_debug.so open_session=no_module_data close_session=no_module_data
so the overall result tells what pam_azid returned: PAM_SUCCESS (success),
PAM_NO_MODULE_DATA (it returned PAM_IGNORE), PAM_SESSION_ERR (failure).  With
plain=True pam_azid is listed `optional` alone, as in a real stack.
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "lib"))
import harness  # noqa: E402

USERS = {"azuser": 54400, "azother": 54401, "azquota": 54402}
SEVERITY = {0: "EMERG", 1: "ALERT", 2: "CRIT", 3: "ERR", 4: "WARNING", 5: "NOTICE", 6: "INFO", 7: "DEBUG"}
LOG_AUTHPRIV = 10
IGNORED = "PAM_NO_MODULE_DATA"  # what the probe stack makes of pam_azid's PAM_IGNORE

# Run as the user after session open: every azid key in the session keyring
# (possessed, as the login shell sees it), with its description, value and
# /proc/keys timeout column.
INSPECT = r"""
for k in $(keyctl rlist @s); do
  d=$(keyctl rdescribe "$k" 2>/dev/null) || continue
  case "$d" in
  user\;*\;azid:*)
    printf 'KEY %s %s\n' "$k" "$d"
    printf 'VALUE %s %s\n' "$k" "$(keyctl pipe "$k")"
    printf 'TIMEOUT %s %s\n' "$k" "$(awk -v s="$(printf %08x "$k")" '$1 == s {print $4}' /proc/keys)"
    ;;
  esac
done
"""


# AZID_PAM_VALGRIND=1 (scripts/check's valgrind stage) runs every pam_run
# under valgrind's memcheck; a run with an error or a leak fails its test.
# Runs that preload a shim or install a seccomp filter are left out: both
# replace what valgrind itself relies on.
VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
            "--track-fds=no", "--num-callers=30"]


def valgrind_wanted(prefix, deny_keys, deny_uid_restore):
    return (os.environ.get("AZID_PAM_VALGRIND") == "1" and not deny_keys and not deny_uid_restore
            and not any("LD_PRELOAD=" in p or p == "valgrind" for p in prefix))


def module_path():
    return os.environ.get("PAM_AZID_MODULE") or os.path.join(harness.top_builddir, ".libs", "pam_azid.so")


def pam_run_path():
    return os.path.join(harness.top_builddir, "tests", "pam", "pam_run")


def require_root():
    if os.geteuid() != 0:
        harness.skip("needs root (mount namespace, keys stored for other uids)")
    for tool in ("unshare", "keyctl", "mount"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            harness.skip("%s not installed" % tool)
    if not os.path.exists(module_path()):
        harness.skip("%s not built" % module_path())
    r = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if r.returncode != 0:
        harness.skip("cannot create a mount namespace: %s" % r.stderr.decode().strip())


def timeout_seconds(column):
    """/proc/keys' timeout column ("perm", "39s", "58m") in seconds."""
    if column == "perm":
        return None
    m = re.fullmatch(r"(\d+)([smhdw])", column)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


class Result:
    def __init__(self, proc, logs, elapsed):
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.returncode = proc.returncode
        self.elapsed = elapsed  # the whole sandboxed run
        self.logs = logs  # [(severity, text after "pam_azid(service:session): ")]
        self.all_logs = []
        self.steps = {}
        self.keys = {}
        for line in proc.stdout.splitlines():
            m = re.fullmatch(r"([a-z_]+(?:\[[A-Z_]+\])?)=(\S+)", line)
            if m:
                self.steps[m.group(1)] = m.group(2)
                continue
            parts = line.split(" ", 2)
            if parts[0] == "KEY":
                typ, uid, gid, perm, desc = parts[2].split(";", 4)
                self.keys[desc] = {"serial": int(parts[1]), "uid": int(uid), "gid": int(gid), "perm": perm}
            elif parts[0] in ("VALUE", "TIMEOUT"):
                for k in self.keys.values():
                    if k["serial"] == int(parts[1]):
                        k[parts[0].lower()] = parts[2] if len(parts) > 2 else ""

    def lines(self, severity=None):
        return [t for s, t in self.logs if severity is None or s == severity]

    def __repr__(self):
        return "steps=%r keys=%r logs=%r stderr=%r" % (self.steps, list(self.keys), self.logs, self.stderr)


class Sandbox:
    def __init__(self, tmp):
        self.tmp = tmp
        self.etc = os.path.join(tmp, "etc")
        self.confdir = os.path.join(tmp, "pam.d")
        os.makedirs(self.etc)
        os.makedirs(self.confdir)
        self._write_accounts()
        self.log_path = os.path.join(tmp, "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.log_path)
        self.sock.settimeout(0.1)
        self.received = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.sock.close()

    def _write_accounts(self):
        passwd = ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"]
        group = ["root:x:0:", "nogroup:x:65534:"]
        shadow = ["root:*:19000:0:99999:7:::", "nobody:*:19000:0:99999:7:::"]
        for name, uid in USERS.items():
            passwd.append("%s:x:%d:%d:azid test:/nonexistent:/bin/sh" % (name, uid, uid))
            group.append("%s:x:%d:" % (name, uid))
            shadow.append("%s:*:19000:0:99999:7:::" % name)
        for fname, lines in (("passwd", passwd), ("group", group), ("shadow", shadow)):
            with open(os.path.join(self.etc, fname), "w") as f:
                f.write("\n".join(lines) + "\n")
        os.chmod(os.path.join(self.etc, "shadow"), 0o640)

    def _listen(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append(data.decode("utf-8", "replace"))

    def drain(self):
        """Waits until no datagram arrived for a moment; returns and clears them."""
        last = -1
        while True:
            with self._lock:
                n = len(self.received)
            if n == last:
                break
            last = n
            time.sleep(0.15)
        with self._lock:
            out, self.received = self.received, []
        return out

    def write_config(self, text, name="azid.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def stack(self, args, keyinit="force revoke", plain=False, service="azid-test"):
        lines = []
        if keyinit is not None:
            lines.append("session optional pam_keyinit.so %s" % keyinit)
        if plain:
            lines.append("session optional %s %s" % (module_path(), " ".join(args)))
        else:
            lines.append("session [success=done ignore=ignore default=die] %s %s" % (module_path(), " ".join(args)))
            lines.append("session required pam_debug.so open_session=no_module_data close_session=no_module_data")
        with open(os.path.join(self.confdir, service), "w") as f:
            f.write("\n".join(lines) + "\n")

    def run(self, args, user="azuser", keyinit="force revoke", plain=False, during=INSPECT, after=None,
            cycles=None, prefix=(), deny_keys=None, fake_dmi=False, netns=False, child_end=False, timeout=120,
            deny_uid_restore=False, env_extra=None):
        """Writes the stack, runs pam_run in the sandbox, returns a Result.
        env_extra: variables added to pam_run's environment (the host
        process's, which the module sees)."""
        self.stack(args, keyinit=keyinit, plain=plain)
        setup = [
            "set -e",
            'mount --bind "$T/etc/passwd" /etc/passwd',
            'mount --bind "$T/etc/group" /etc/group',
            'mount --bind "$T/etc/shadow" /etc/shadow',
            "mount -t tmpfs -o mode=755 azid-test-dev /dev",
            "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5",
            "mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9",
            'ln -s "$T/log.sock" /dev/log',
        ]
        if fake_dmi and os.path.exists("/sys/class/dmi/id/chassis_asset_tag"):
            with open(os.path.join(self.tmp, "asset_tag"), "w") as f:
                f.write("No Asset Tag\n")
            setup.append('mount --bind "$T/asset_tag" /sys/class/dmi/id/chassis_asset_tag')
        setup.append('exec "$@"')
        memcheck = valgrind_wanted(prefix, deny_keys, deny_uid_restore)
        vg_log = os.path.join(self.tmp, "valgrind.log")
        argv = list(prefix) + (VALGRIND + ["--log-file=" + vg_log] if memcheck else []) + \
            [pam_run_path(), "--confdir", self.confdir, "--user", user]
        if during and not cycles:
            argv += ["--during", during]
        if after:
            argv += ["--after", after]
        if cycles:
            argv += ["--cycles", str(cycles)]
        if deny_keys:
            argv += ["--deny-keys", deny_keys]
        if child_end:
            argv += ["--child-end"]
        if deny_uid_restore:
            argv += ["--deny-uid-restore"]
        ns = ["unshare", "--mount", "--propagation", "private"] + (["--net"] if netns else [])
        full = ns + ["/bin/sh", "-c", "\n".join(setup), "sh"] + argv
        env = {k: v for k, v in os.environ.items()
               if k not in ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
                            "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE")}
        env["T"] = self.tmp
        env.update(env_extra or {})
        start = time.monotonic()
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env)
        elapsed = time.monotonic() - start
        raw = self.drain()
        logs, all_logs = [], []
        for msg in raw:
            m = re.match(r"<(\d+)>.*?: (pam_azid\([^)]*\)): (.*)$", msg, re.S)
            all_logs.append(msg)
            if m:
                pri = int(m.group(1))
                if pri >> 3 != LOG_AUTHPRIV:
                    raise AssertionError("pam_azid logged with facility %d: %s" % (pri >> 3, msg))
                logs.append((SEVERITY[pri & 7], m.group(3)))
        result = Result(proc, logs, elapsed)
        result.all_logs = all_logs
        if memcheck:
            with open(vg_log) as f:
                report = f.read()
            os.unlink(vg_log)
            if proc.returncode == 99 or "ERROR SUMMARY: 0 errors" not in report and report.strip():
                raise AssertionError("valgrind memcheck found errors in pam_run:\n" + report)
        return result


class SandboxTest(unittest.TestCase):
    """A test with a Sandbox (self.sandbox, in self.tmp) and an IMDS
    emulator (self.emu) of its own."""

    def setUp(self):
        self.tmpdir = harness.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.sandbox = Sandbox(self.tmp)
        self.emu = harness.Emulator(self.tmp)

    def tearDown(self):
        self.emu.stop()
        self.sandbox.__exit__(None, None, None)
        self.tmpdir.__exit__(None, None, None)
