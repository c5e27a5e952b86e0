# SPDX-License-Identifier: MIT
"""Runs the azid command as a throwaway user with its own session keyring.

    import clitest
    clitest.enter_namespace()            # re-exec in a private mount namespace
    with clitest.Sandbox() as box:
        r = box.session([clitest.add_key("azid:token:R", token, 3600),
                         clitest.run("token", "R")])
        assert r[0].stdout == token + "\\n"

The test re-executes itself in a private mount namespace (and, with
network=True, a network namespace holding only its loopback), adds the user
to bind-mounted copies of /etc/passwd and /etc/group (the host's files are
never touched; etc_file() adds others, such as /etc/azid.conf, through an
overlay), and copies the azid binary and libazid.so into a directory the
user can read.  Each session() is one `keyctl session -` of that user:
keys are added there with keyctl exactly as pam_azid adds them (user type,
possessor view/read/write/search/setattr + owner view, a timeout), their
payloads passed on stdin, never on argv or in the environment.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

USER = "azidcli"
UID = GID = 61874
NAMESPACE_MARK = "AZID_CLI_TEST_IN_NAMESPACE"
KEY_PERM = "0x2f010000"  # what pam_azid sets (keyring.md §2)
# The user runs the system's python3: the test's own may sit in root's home.
USER_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

# Runs as the throwaway user inside its session: reads the steps (JSON) on
# stdin, prints the results of the "run" steps (JSON) on stdout.
SESSION_RUNNER = r'''
import json, os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
env = {"PATH": here + ":/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LD_LIBRARY_PATH": here}
results = []
if sys.argv[1:] == ["--like-pam-keyinit"]:
    # pam_keyinit's session keyrings link the user keyring; azid checks that.
    subprocess.run(["keyctl", "link", "@u", "@s"], check=True, env=env)
for step in json.load(sys.stdin):
    if "add" in step:
        ring = "@s"
        if step["persistent"]:
            # Linked into the session only while the key is set up, as
            # pam_azid does: later sessions do not possess it.
            ring = subprocess.run(["keyctl", "get_persistent", "@s"], check=True, capture_output=True,
                                  env=env).stdout.decode().strip()
        r = subprocess.run(["keyctl", "padd", "user", step["add"], ring],
                           input=step["payload"].encode(), capture_output=True, env=env)
        if r.returncode:
            sys.exit("keyctl padd %s: %s" % (step["add"], r.stderr.decode()))
        serial = r.stdout.decode().strip()
        subprocess.run(["keyctl", "setperm", serial, step["perm"]], check=True, env=env)
        if step["timeout"]:
            subprocess.run(["keyctl", "timeout", serial, str(step["timeout"])], check=True, env=env)
        if step["persistent"]:
            subprocess.run(["keyctl", "unlink", ring, "@s"], check=True, env=env)
    elif "sleep" in step:
        time.sleep(step["sleep"])
    else:
        argv = [os.path.join(here, "azid")] + step["azid"] if "azid" in step else step["argv"]
        start = time.monotonic()
        r = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        results.append({"rc": r.returncode, "stdout": r.stdout.decode("utf-8", "replace"),
                        "stderr": r.stderr.decode("utf-8", "replace"),
                        "elapsed": time.monotonic() - start})
json.dump(results, sys.stdout)
'''


def enter_namespace(network=False):
    """Re-executes the running test in a private mount namespace (plus a
    network namespace with its loopback up when network is true), or skips
    when that is impossible.  Returns only inside the namespace."""
    if os.environ.get(NAMESPACE_MARK) == "1":
        if network:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    if os.geteuid() != 0:
        harness.skip("needs root for namespaces and a throwaway user")
    flags = ["--mount", "--propagation", "private"] + (["--net"] if network else [])
    probe = subprocess.run(["unshare"] + flags + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        harness.skip("cannot create a private namespace: %s" % probe.stderr.strip())
    env = dict(os.environ)
    env[NAMESPACE_MARK] = "1"
    argv = ["unshare"] + flags + [sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:]
    sys.stdout.flush()
    os.execvpe("unshare", argv, env)


class Result:
    def __init__(self, d):
        self.rc = d["rc"]
        self.stdout = d["stdout"]
        self.stderr = d["stderr"]
        self.elapsed = d["elapsed"]

    def __repr__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.stdout, self.stderr)


def add_key(description, payload, timeout=3600, persistent=False):
    """A step adding a key as pam_azid does; timeout 0 = none; persistent:
    into the user's persistent keyring (keyring=persistent), not @s."""
    return {"add": description, "payload": payload, "timeout": timeout, "perm": KEY_PERM,
            "persistent": persistent}


def run(*args):
    """A step running azid with args."""
    return {"azid": list(args)}


def run_argv(*argv):
    """A step running any command (sh -c ...) with azid's environment."""
    return {"argv": list(argv)}


def sleep(seconds):
    return {"sleep": seconds}


class Sandbox:
    """The throwaway user and a directory it can read holding azid."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="azid-cli.")
        self.mounts = []
        self.etc_overlay = False
        try:
            os.chmod(self.dir, 0o755)
            libs = os.path.join(harness.top_builddir, ".libs")
            shutil.copy(os.path.join(libs, "azid"), os.path.join(self.dir, "azid"))
            shutil.copy(os.path.join(libs, "libazid.so.0"), os.path.join(self.dir, "libazid.so.0"))
            with open(os.path.join(self.dir, "session.py"), "w") as f:
                f.write(SESSION_RUNNER)
            for path in os.listdir(self.dir):
                os.chmod(os.path.join(self.dir, path), 0o755)
            self._add_user("/etc/passwd", "%s:x:%d:%d:azid CLI test:/nonexistent:/usr/sbin/nologin\n"
                           % (USER, UID, GID))
            self._add_user("/etc/group", "%s:x:%d:\n" % (USER, GID))
        except BaseException:
            self.close()
            raise

    def _add_user(self, etc_file, line):
        copy = os.path.join(self.dir, os.path.basename(etc_file))
        with open(etc_file) as f:
            content = f.read()
        with open(copy, "w") as f:
            f.write(content + ("" if content.endswith("\n") or not content else "\n") + line)
        os.chmod(copy, 0o644)
        self.mount("--bind", copy, etc_file)

    def mount(self, *args):
        """mount(8) inside the test's namespace, undone by close()."""
        subprocess.run(["mount"] + list(args), check=True)
        self.mounts.append(args[-1])

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o644):
        """A root-owned file in the sandbox; returns its path."""
        path = self.path(name)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def etc_file(self, name, text, mode=0o644):
        """Makes /etc/NAME a root-owned file holding text, inside the
        test's namespace only: the first call lays an overlay over /etc
        whose writes land in a tmpfs of the sandbox (the host's /etc is
        never written), and binds the user's passwd and group over it
        again.  Returns the path."""
        if not self.etc_overlay:
            layers = self.path("etc-overlay")
            os.mkdir(layers)
            self.mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", layers)
            for d in ("upper", "work"):
                os.mkdir(os.path.join(layers, d))
            self.mount("-t", "overlay", "overlay", "-o", "lowerdir=/etc,upperdir=%s/upper,workdir=%s/work"
                       % (layers, layers), "/etc")
            self.etc_overlay = True
            for etc_file in ("/etc/passwd", "/etc/group"):
                self.mount("--bind", self.path(os.path.basename(etc_file)), etc_file)
        path = os.path.join("/etc", name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def session(self, steps, keyring=True):
        """Runs the steps as the user, in a new session keyring of its own
        that links its user keyring, as pam_keyinit makes them (keyring=False:
        in the caller's, which the user does not own).
        Returns the Results of the run steps."""
        argv = ["setpriv", "--reuid", str(UID), "--regid", str(GID), "--init-groups"]
        if keyring:
            argv += ["keyctl", "session", "-"]
        argv += [USER_PYTHON, self.path("session.py")] + (["--like-pam-keyinit"] if keyring else [])
        r = subprocess.run(argv, input=json.dumps(steps), capture_output=True, text=True,
                           timeout=120, cwd="/")
        if r.returncode != 0:
            raise RuntimeError("session as %s failed (%d): %s" % (USER, r.returncode, r.stderr))
        return [Result(d) for d in json.loads(r.stdout)]

    def azid(self, *args, keyring=True):
        """One azid run as the user; its Result."""
        return self.session([run(*args)], keyring=keyring)[0]

    def close(self):
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", target], check=False)
        self.mounts = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
