# SPDX-License-Identifier: MIT
"""The measuring half of bench/run; runs inside its namespaces (see there).

Every figure is measured in this one run, its variants interleaved round
by round (so that the load of the shared machine falls on all of them
alike), and reported as the median and the interquartile range.  Writes
REPORT.md and PNG plots into $BENCH_OUT.
"""

import contextlib
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

SMOKE = os.environ["BENCH_SMOKE"] == "1"
OUT = os.environ["BENCH_OUT"]
TMP = os.environ["E2E_TMP"]
BUILD = os.environ["top_builddir"]
IMDS_LOG = os.path.join(TMP, "imds.log")
SYSLOG = os.path.join(TMP, "syslog")  # the namespace's /dev/log (tests/e2e/lib.sh)
EMULATOR = os.path.join(os.environ["top_srcdir"], "tests", "emulator", "imds.py")
SSH_PORT = os.environ["E2E_SSH_PORT"]
IMDS = "http://169.254.169.254"
RESOURCE = "https://management.azure.com/"
TOKEN_URL = "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s" % (
    IMDS, urllib.parse.quote(RESOURCE, safe=""))
TOKEN_PATH = "/metadata/identity/oauth2/token"
USER = "alice"
MODULE = os.path.join(BUILD, ".libs", "pam_azid.so")
PAM_RUN = os.path.join(BUILD, "tests", "pam", "pam_run")
CURL_GET = os.path.join(BUILD, "bench", "curl_get")
BROKER_RTT = os.path.join(BUILD, "bench", "broker_rtt")
PEAK_RSS = os.path.join(BUILD, "bench", "peak_rss")
AZIDD = os.path.join(BUILD, "azidd", "azidd")
HAVE_BROKER = os.access(AZIDD, os.X_OK)
BROKER_SOCKET = "/run/azid/azidd.sock"
TIMEOUT = 2  # pam_azid's timeout= and the profile script's curl --max-time (seconds)

# How many of each: (full run, smoke).
# Figure 1: azid and curl run every round, the SDK (a quarter of a second
# a run) every SDK_EVERY-th.  The medians of 15 runs of azid or of curl
# move by more than the two differ (bench/README.md), hence 45.
ROUNDS_ONESHOT, SDK_EVERY = (2, 1) if SMOKE else (45, 3)
# Then each of them this many times under bench/peak_rss, untimed.
RSS_ONESHOT = 1 if SMOKE else 5
ROUNDS_SESSION, CYCLES_SESSION = (2, 3) if SMOKE else (10, 20)
ROUNDS_LOGIN = 2 if SMOKE else 10
BURSTS = [1, 3] if SMOKE else [1, 10, 50, 200]
DEAD_LOGINS = 2 if SMOKE else 4
MANY_SESSIONS = 20 if SMOKE else 10000
CALLGRIND_CYCLES = (2, 4) if SMOKE else (3, 8)
# Milliseconds of idle before each timed session open and each bare GET of
# figure 2: logins do not follow each other within microseconds.
IDLE_MS = 5
# azidd: cached-token requests (clients x each), and the entries it holds.
BROKER_CLIENTS, BROKER_REQUESTS = (2, 50) if SMOKE else (3, 333334)
BROKER_ENTRIES = 64 if SMOKE else 10000
FEW_SESSIONS = 10

SDK_SNIPPET = """
from azure.identity import ManagedIdentityCredential
print(ManagedIdentityCredential().get_token("https://management.azure.com/.default").token)
"""
# What an admin puts in /etc/profile.d without azid: each login shell asks IMDS.
PROFILE_SCRIPT = """\
AZURE_ACCESS_TOKEN=$(curl -sf --noproxy '*' --max-time %d -H 'Metadata: true' '%s' |
    sed -n 's/.*"access_token": *"\\([^"]*\\)".*/\\1/p')
export AZURE_ACCESS_TOKEN
""" % (TIMEOUT, TOKEN_URL)
PROFILE = os.path.join(TMP, "azure-token.sh")


# ---- running things -----------------------------------------------------------

class Run:
    def __init__(self, rc, out, err, elapsed):
        self.rc, self.out, self.err, self.elapsed = rc, out, err, elapsed


def spawn(argv, env=None, timeout=120):
    """Runs argv; its wall time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        p.wait()
        elapsed = time.monotonic() - start
        killer.cancel()
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   elapsed)


def must(run, what):
    if run.rc != 0:
        raise SystemExit("bench: %s failed (exit %d): %s" % (what, run.rc, run.err.strip()[-2000:]))
    return run


def peak_rss(argv, what, env=None, timeout=120):
    """Runs argv under bench/peak_rss (why: there); the Run, which must
    succeed, and argv's peak RSS in KiB.  Its wall time includes
    peak_rss's own start-up."""
    with tempfile.NamedTemporaryFile(dir=TMP, prefix="peak_rss.") as f:
        run = must(spawn([PEAK_RSS, f.name] + argv, env=env, timeout=timeout), what)
        return run, int(f.read())


class Server:
    """A server process of the run (self.proc, its stderr in self.stderr),
    stopped on leaving its with block."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.stderr.close()


class Emulator(Server):
    """The IMDS emulator at 169.254.169.254:80, logging to IMDS_LOG; with
    limits, IMDS's limits on (5 requests in flight, 20 a second, 429 beyond).
    They are on for the bursts only: elsewhere the figures are the cost of
    one request, and a benchmark asks faster than one VM's logins would."""

    def __init__(self, limits=False):
        port_file = os.path.join(TMP, "bench-imds.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.stderr = open(os.path.join(TMP, "bench-imds.stderr"), "a")
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--bind", "169.254.169.254", "--port", "80",
                                      "--port-file", port_file, "--log", IMDS_LOG, "--lifetime", "3600"]
                                     + (["--limits"] if limits else []), stderr=self.stderr)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("bench: the IMDS emulator did not start (%s)" % self.stderr.name)
            time.sleep(0.05)


class Broker(Server):
    """azidd on its default socket (pam_azid's broker=auto finds it), with
    an empty policy file (root's key requests carry their own settings),
    started with an empty cache; on CPU 0 alone with pin.  It logs as its
    unit runs it, to syslog only ($E2E_TMP/syslog): --stderr would write
    each audit line to a file as well, on the reply's path."""

    def __init__(self, pin=False):
        os.makedirs(os.path.dirname(BROKER_SOCKET), exist_ok=True)
        if os.path.exists(BROKER_SOCKET):
            os.unlink(BROKER_SOCKET)
        self.stderr = open(os.path.join(TMP, "bench-azidd.stderr"), "a")
        self.proc = subprocess.Popen((["taskset", "-c", "0"] if pin else []) +
                                     [AZIDD, "--socket", BROKER_SOCKET, "--config",
                                      os.path.join(TMP, "etc", "azid.conf")], stderr=self.stderr)
        deadline = time.monotonic() + 10
        while True:
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(BROKER_SOCKET)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: azidd did not start (%s, %s)"
                                     % (SYSLOG, self.stderr.name))
                time.sleep(0.02)
            finally:
                probe.close()

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def key_request(resources, uid):
    """What pam_azid asks azidd at a login: the user's shared keys."""
    return ("azid1 key user=%s uid=%d %s timeout=30\n"
            % (USER, uid, " ".join("resource=" + r for r in resources))).encode()


def ask_broker(line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    try:
        s.connect(BROKER_SOCKET)
        s.sendall(line)
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out.decode(errors="replace")
            out += data
    finally:
        s.close()


def user_uid():
    return int(subprocess.check_output(["id", "-u", USER]))


def syslog_lines():
    with open(SYSLOG, errors="replace") as f:
        return f.read().splitlines()


def imds_log():
    with open(IMDS_LOG, encoding="utf-8") as f:
        return [e for e in (json.loads(line) for line in f if line.strip()) if e["path"] == TOKEN_PATH]


def imds_requests():
    return len(imds_log())


def set_faults(faults):
    req = urllib.request.Request(IMDS + "/_emulator/faults", data=json.dumps(faults).encode(), method="POST")
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()


def charged_keys(uid):
    with open("/proc/key-users") as f:
        for line in f:
            fields = line.split()
            if fields[0] == "%d:" % uid:
                return int(fields[2].split("/")[0])
    return 0


def settle_keys(uid, limit=20.0):
    """Waits (bounded) until the kernel has collected the keys of the user's
    closed sessions, so that one figure does not inherit another's quota."""
    deadline = time.monotonic() + limit
    last, steady = -1, 0
    while time.monotonic() < deadline and steady < 10:
        now = charged_keys(uid)
        steady = steady + 1 if now == last else 0
        last = now
        time.sleep(0.05)


# ---- statistics and cells -------------------------------------------------------

def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], statistics.median(xs), xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[1], q[2]


def fmt_time(seconds):
    if seconds < 0.001:
        return "%.0f µs" % (seconds * 1e6)
    if seconds < 1:
        return "%.1f ms" % (seconds * 1e3)
    return "%.2f s" % seconds


def cell(xs, unit=fmt_time):
    lo, med, hi = quartiles(xs)
    return "%s (%s–%s)" % (unit(med), unit(lo), unit(hi))


def ratio(a, b):
    return "%.2f×" % (statistics.median(a) / statistics.median(b))


# ---- the figures ----------------------------------------------------------------

def rotated(order, r):
    """order as round r runs it: each variant goes first in turn."""
    return order[r % len(order):] + order[:r % len(order)]


def oneshot():
    """Figure 1: one token, one process, as a script gets it."""
    peers = {
        "azid": ["azid", "fetch", "--resource", RESOURCE],
        "curl": ["curl", "-sf", "--noproxy", "*", "-H", "Metadata: true", TOKEN_URL],
        "sdk": ["/usr/bin/python3", "-c", SDK_SNIPPET],
    }
    env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST=IMDS)
    times = {k: [] for k in peers}
    rss = {k: [] for k in peers}

    def token(run, name):
        if "eyJ" not in run.out:
            raise SystemExit("bench: %s printed no token" % name)

    for r in range(ROUNDS_ONESHOT):
        order = [k for k in peers if k != "sdk" or r % SDK_EVERY == 0]
        for name in rotated(order, r):
            run = must(spawn(peers[name], env=env), name)
            token(run, name)
            times[name].append(run.elapsed)
    order = list(peers)
    for r in range(RSS_ONESHOT):
        for name in rotated(order, r):
            run, kib = peak_rss(peers[name], name, env=env)
            token(run, name)
            rss[name].append(kib)
    instr = {name: callgrind(peers[name]) for name in ("azid", "curl")}
    return {"times": times, "rss": rss, "instr": instr, "az": az_cli(env)}


def az_cli(env):
    """az account get-access-token needs an `az login --identity` first: try
    it, and keep what it says."""
    cfg = tempfile.mkdtemp(prefix="az.", dir=TMP)
    run = spawn(["az", "login", "--identity", "--allow-no-subscriptions", "--only-show-errors"],
                env=dict(env, AZURE_CONFIG_DIR=cfg, AZURE_CORE_COLLECT_TELEMETRY="no"), timeout=120)
    lines = [x.strip() for x in (run.err + run.out).splitlines() if x.strip()]
    # The exception at the end of its traceback, else its first error line.
    errors = ([x for x in lines if re.match(r"[\w.]+(Error|Exception)\b", x)][-1:] or
              [x for x in lines if x.startswith("ERROR")] or lines[-1:] or [""])
    return {"rc": run.rc, "said": errors[0], "elapsed": run.elapsed,
            "requests": imds_requests()}


def write_stack(path, azid_args=None):
    lines = ["auth     required pam_deny.so", "account  required pam_unix.so",
             "session  required pam_unix.so", "session  optional pam_keyinit.so force revoke"]
    if azid_args is not None:
        lines.append("session  optional %s config=%s/etc/azid.conf resource=%s timeout=%d %s"
                     % (MODULE, TMP, RESOURCE, TIMEOUT, azid_args))
    lines.append("password required pam_deny.so")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# The session stacks bench/run compares (for pam_run and for sshd).
STACKS = {"none": None, "cold": "broker=off"}
if HAVE_BROKER:
    STACKS["warm"] = "broker=" + BROKER_SOCKET


def sessions():
    """Figure 2: pam_open_session in one long-lived process, as sshd's
    monitor or a display manager runs it."""
    confdir = os.path.join(TMP, "bench-pam")
    os.makedirs(confdir, exist_ok=True)
    for name, args in STACKS.items():
        write_stack(os.path.join(confdir, name), args)
    opens = {k: [] for k in list(STACKS) + ["libcurl", "libcurl_back_to_back"]
             + (["broker_rtt"] if HAVE_BROKER else [])}
    firsts = {k: [] for k in STACKS}
    cycles = {k: [] for k in STACKS}
    line = key_request([RESOURCE], user_uid()) if HAVE_BROKER else None
    with Broker() if HAVE_BROKER else contextlib.nullcontext():
        if HAVE_BROKER:
            # `warm` is a cache hit from its first session on.
            reply = ask_broker(line)
            if not re.search(r"^key .* serial=\d+", reply, re.M):
                raise SystemExit("bench: azidd did not serve %s: %s" % (USER, reply))
        return session_rounds(confdir, opens, firsts, cycles, line)


def session_rounds(confdir, opens, firsts, cycles, line):
    """line: the key request of the warm stack's logins, which broker_rtt
    makes alone."""
    for r in range(ROUNDS_SESSION):
        for name in list(opens):
            if name.startswith("libcurl"):
                idle = 0 if name == "libcurl_back_to_back" else IDLE_MS
                run = must(spawn([CURL_GET, TOKEN_URL, str(CYCLES_SESSION), str(idle)]), "curl_get")
                us = [int(x) for x in re.findall(r"^get_us=(\d+)$", run.out, re.M)]
            elif name == "broker_rtt":
                run = must(spawn([BROKER_RTT, BROKER_SOCKET, line.decode().rstrip("\n"), str(CYCLES_SESSION),
                                  str(IDLE_MS)]),
                           "broker_rtt")
                us = [int(x) for x in re.findall(r"^rtt_us=(\d+)$", run.out, re.M)]
            else:
                logged = syslog_lines()
                run = must(spawn([PAM_RUN, "--confdir", confdir, "--service", name, "--user", USER,
                                  "--cycles", str(CYCLES_SESSION), "--times", "--idle", str(IDLE_MS),
                                  "--no-settle"]),
                           "pam_run " + name)
                if "open_session[PAM_SUCCESS]=%d" % CYCLES_SESSION not in run.out:
                    raise SystemExit("bench: sessions of stack %s failed: %s" % (name, run.out))
                # pam_azid is optional in the stack and says nothing when all
                # went well: a line means an open that stored nothing (the
                # user's key quota, say), which would be timed as a fast one.
                said = [x for x in syslog_lines()[len(logged):] if "pam_azid" in x]
                if said:
                    raise SystemExit("bench: pam_azid logged during the timed opens of stack %s: %s"
                                     % (name, said[0]))
                us = [int(x) for x in re.findall(r"^open_us=(\d+)$", run.out, re.M)]
                cycles[name] += [int(x) / 1e6 for x in re.findall(r"^cycle_us=(\d+)$", run.out, re.M)[1:]]
                # The first of each process is the one an sshd login pays
                # (a process per connection); in-process libazid also loads
                # libcurl there.
                firsts[name].append(us[0] / 1e6)
            # Steady state is the rest.
            opens[name] += [u / 1e6 for u in us[1:]]
    return {"opens": opens, "firsts": firsts, "cycles": cycles, "instr": session_instructions(confdir)}


def callgrind(argv, toggles=()):
    """Instructions argv runs (only inside the functions toggles names, if any)."""
    out = os.path.join(TMP, "callgrind.out")
    extra = ["--collect-atstart=no"] + ["--toggle-collect=%s" % t for t in toggles] if toggles else []
    run = must(spawn(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + extra + argv,
                     timeout=600), "callgrind " + argv[0])
    return int(re.search(r"Collected : (\d+)", run.err).group(1))


def session_instructions(confdir):
    """Instructions of one session in steady state: the difference between
    runs of CALLGRIND_CYCLES[1] and CALLGRIND_CYCLES[0] sessions, per session."""
    a, b = CALLGRIND_CYCLES
    per = lambda f: (f(b) - f(a)) / (b - a)  # noqa: E731
    result = {}
    for name in STACKS:
        argv = lambda n: [PAM_RUN, "--confdir", confdir, "--service", name, "--user", USER,  # noqa: E731
                          "--cycles", str(n)]
        result[name] = {"open": per(lambda n: callgrind(argv(n), ["pam_open_session"])),
                        "first": callgrind(argv(1), ["pam_open_session"]),
                        "cycle": per(lambda n: callgrind(argv(n), ["pam_start_confdir", "pam_open_session",
                                                                   "pam_close_session", "pam_end"]))}
    result["libcurl"] = {"open": per(lambda n: callgrind([CURL_GET, TOKEN_URL, str(n)]))}
    return result


def memory():
    """Figure 6: what a process that ran many sessions holds, and what one
    session allocates."""
    confdir = os.path.join(TMP, "bench-pam")
    rss = {}
    for n in (FEW_SESSIONS, MANY_SESSIONS):
        run, rss[n] = peak_rss([PAM_RUN, "--confdir", confdir, "--service", "cold", "--user", USER,
                                "--cycles", str(n)], "pam_run %d sessions" % n, timeout=3600)
        if "open_session[PAM_SUCCESS]=%d" % n not in run.out:
            raise SystemExit("bench: %d sessions: %s" % (n, run.out))
    allocs = {}
    for name in ("none", "cold"):
        run = must(spawn(["valgrind", "--tool=memcheck", "--leak-check=no", PAM_RUN, "--confdir", confdir,
                          "--service", name, "--user", USER], timeout=300), "valgrind pam_run " + name)
        m = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes", run.err)
        allocs[name] = (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")))
    result = {"rss": rss, "allocs": allocs}
    if HAVE_BROKER:
        result["broker"] = broker_throughput()
        result["entries"] = broker_entries()
    return result


def hammer(line, n):
    """A client: n requests, one connection each, as logins make them."""
    for _ in range(n):
        if not ask_broker(line).rstrip().endswith("end"):
            raise SystemExit("bench: azidd did not answer a cached key request")


def broker_throughput():
    """azidd alone on CPU 0, clients elsewhere, every request a cache hit:
    requests a second, and requests per second of azidd's own CPU time
    (which the machine's load does not change)."""
    line = key_request([RESOURCE], user_uid())
    with Broker(pin=True) as broker:
        ask_broker(line)
        rss_first = broker.rss_kib()
        cpu = broker.cpu_seconds()
        start = time.monotonic()
        procs = [multiprocessing.Process(target=hammer, args=(line, BROKER_REQUESTS))
                 for _ in range(BROKER_CLIENTS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit("bench: a client of azidd failed")
        wall = time.monotonic() - start
        cpu = broker.cpu_seconds() - cpu
        rss_last = broker.rss_kib()
    n = BROKER_CLIENTS * BROKER_REQUESTS
    # None: too few requests for the kernel's CPU accounting (ticks).
    return {"n": n, "per_s": n / wall, "per_cpu_s": n / cpu if cpu >= 0.1 else None,
            "rss": (rss_first, rss_last)}


def broker_entries():
    """azidd's RSS empty and holding BROKER_ENTRIES tokens (one resource
    each; its rate guard lets 20 requests a second reach IMDS)."""
    uid = user_uid()
    resources = ["https://r%05d.bench.example" % i for i in range(BROKER_ENTRIES)]
    with Broker() as broker:
        empty = broker.rss_kib()
        start = time.monotonic()
        for i in range(0, len(resources), 32):
            reply = ask_broker(key_request(resources[i:i + 32], uid))
            if "error" in reply.split("\n", 1)[0] or not reply.rstrip().endswith("end"):
                raise SystemExit("bench: azidd did not fill: %s" % reply[:300])
        full = broker.rss_kib()
        status = ask_broker(b"azid1 status\n")
        return {"empty": empty, "full": full,
                "entries": sum(1 for x in status.splitlines() if x.startswith("token ")),
                "fill": time.monotonic() - start}


def ssh(user, command):
    return ["timeout", "-k", "2", "120", "ssh", "-F", "/dev/null", "-p", SSH_PORT, "-i",
            os.path.join(TMP, "keys", user), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "UserKnownHostsFile=%s/known_hosts" % TMP,
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=60", "%s@127.0.0.1" % user, command]


# A login: the stack sshd uses, and the command that tells whether the
# login has a token (it prints "token" or "no-token").
LOGINS = {
    "none": (None, "true"),
    "azid": ("broker=off", "keyctl search @s user 'azid:token:%s' >/dev/null" % RESOURCE),
    "curl": (None, '. %s; [ -n "$AZURE_ACCESS_TOKEN" ]' % PROFILE),
}
if HAVE_BROKER:
    LOGINS["broker"] = ("broker=" + BROKER_SOCKET, LOGINS["azid"][1])


def use_login(name):
    write_stack("/etc/pam.d/sshd", LOGINS[name][0])
    return ssh(USER, "if %s; then echo token; else echo no-token; fi" % LOGINS[name][1])


def has_token(run, name):
    must(run, "ssh login (%s)" % name)
    if name != "none" and run.out.strip() != "token":
        raise SystemExit("bench: a single %s login got no token: %s" % (name, run.out + run.err))
    return run


def logins():
    """Figure 3: a whole ssh login, key exchange to logout."""
    with open(PROFILE, "w") as f:
        f.write(PROFILE_SCRIPT)
    os.chmod(PROFILE, 0o644)
    times = {k: [] for k in LOGINS}
    uid = user_uid()
    with Broker() if HAVE_BROKER else contextlib.nullcontext():
        for r in range(ROUNDS_LOGIN):
            for name in LOGINS:
                settle_keys(uid, 2)
                times[name].append(has_token(spawn(use_login(name)), name).elapsed)
    return times


def with_broker(name):
    """A fresh azidd (empty cache) for the broker's variant, else nothing."""
    return Broker() if name == "broker" else contextlib.nullcontext()


# The variants of the bursts and the dead endpoint.
VARIANTS = ["azid", "broker", "curl"] if HAVE_BROKER else ["azid", "curl"]


def bursts():
    """Figure 4: N logins of one user at once."""
    uid = user_uid()
    result = {}
    for name in VARIANTS:
        result[name] = []
        for n in BURSTS:
            settle_keys(uid)
            argv = use_login(name)
            before = len(imds_log())
            start = time.monotonic()
            with with_broker(name):
                procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True) for _ in range(n)]
                said = [p.communicate() for p in procs]
            ok = sum(1 for out, _ in said if out.strip() == "token")
            no_token = sum(1 for out, _ in said if out.strip() == "no-token")
            failed = sorted({err.strip().splitlines()[-1] if err.strip() else "exit %d" % p.returncode
                             for p, (out, err) in zip(procs, said) if out.strip() not in ("token", "no-token")})
            result[name].append({"n": n, "ok": ok, "no_token": no_token, "failed": n - ok - no_token,
                                 "why": failed, "requests": len(imds_log()) - before,
                                 "throttled": sum(1 for e in imds_log()[before:] if e.get("throttled")),
                                 "elapsed": time.monotonic() - start})
    return result


def dead_endpoint():
    """Figure 5: IMDS accepts connections and never answers."""
    result = {}
    for name in VARIANTS:
        set_faults(["hang"] * 1000)
        with with_broker(name):
            result[name] = [spawn(use_login(name)).elapsed for _ in range(DEAD_LOGINS)]
    set_faults([])
    return result


# ---- the report ---------------------------------------------------------------------

NAMES = {"azid": "azid, no broker", "broker": "azid with azidd", "curl": "curl profile script",
         "sdk": "Python SDK"}


def plots(f1, f4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = list(f1["times"])
    ax.boxplot([[t * 1e3 for t in f1["times"][k]] for k in keys],
               labels=["azid fetch" if k == "azid" else NAMES[k].split()[0] for k in keys])
    ax.set_yscale("log")
    ax.set_ylabel("ms, one token (log scale)")
    ax.set_title("One-shot token, process start to token printed")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "oneshot.png"), dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in f4.items():
        ns = [r["n"] for r in rows]
        a1.plot(ns, [r["ok"] for r in rows], marker="o", label=NAMES[name])
        a2.plot(ns, [r["requests"] for r in rows], marker="o", label=NAMES[name])
    a1.plot(BURSTS, BURSTS, linestyle=":", color="grey", label="every login")
    for a, what in ((a1, "logins with a token"), (a2, "requests to IMDS (429s included)")):
        a.set_xscale("log")
        a.set_xlabel("concurrent logins of one user")
        a.set_ylabel(what)
        a.set_xticks(BURSTS)
        a.set_xticklabels([str(n) for n in BURSTS])
    a1.legend()
    fig.suptitle("Login bursts, IMDS limits on (5 in flight, 20 a second)")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "burst.png"), dpi=100)
    plt.close(fig)


def burst_failures(f4):
    said = []
    for name, rows in f4.items():
        why = sorted({w for r in rows for w in r["why"]})
        if why:
            said.append("%s: %s" % (NAMES[name], ", ".join("`%s`" % w.replace("|", "/")[:160] for w in why)))
    return "; ".join(said) or "none failed"


def burst_cell(b):
    return "%d, %d, %d; %d req (%d throttled); %s" % (b["ok"], b["no_token"], b["failed"], b["requests"],
                                                   b["throttled"], fmt_time(b["elapsed"]))


DASH = "—"
NO_BROKER = "not measured (note 2)"


def med(xs):
    return statistics.median(xs)


def instr(n):
    return "{:,.0f}".format(n)


def added_row(label, xs, show, added):
    """A figure-2 row of the stacks cold, warm (with azidd) and none, and
    what pam_azid adds to none: added(a, b) says a against b."""
    warm = HAVE_BROKER
    return (label, show(xs["cold"]), show(xs["warm"]) if warm else NO_BROKER, DASH, DASH, DASH, show(xs["none"]),
            "added %s; with azidd %s" % (added(xs["cold"], xs["none"]),
                                         added(xs["warm"], xs["none"]) if warm else DASH))


def table(f1, f2, f3, f4, f5, f6):
    """Rows: figure, azid, azid with azidd, curl, Python SDK, az, without azid, ratio."""
    t, rss, ins = f1["times"], f1["rss"], f1["instr"]
    o, fi, cyc, si = f2["opens"], f2["firsts"], f2["cycles"], f2["instr"]
    kib = lambda k: "%d KiB" % k  # noqa: E731
    warm = HAVE_BROKER
    cold_added = med(o["cold"]) - med(o["none"])
    rows = [
        ("1. one-shot token, wall (%d runs each, the SDK %d)" % (len(t["azid"]), len(t["sdk"])), cell(t["azid"]),
         DASH, cell(t["curl"]),
         cell(t["sdk"]), "not measured (note 1)", DASH,
         "azid/curl %s; SDK/azid %s" % (ratio(t["azid"], t["curl"]), ratio(t["sdk"], t["azid"]))),
        ("1. one-shot token, peak RSS", cell(rss["azid"], kib), DASH, cell(rss["curl"], kib),
         cell(rss["sdk"], kib), DASH, DASH, "azid/curl %s" % ratio(rss["azid"], rss["curl"])),
        ("1. one-shot token, instructions (callgrind)", instr(ins["azid"]), DASH, instr(ins["curl"]), DASH, DASH,
         DASH, "azid/curl %.2f×" % (ins["azid"] / ins["curl"])),
        ("2. session open in-process (%d×%d)" % (ROUNDS_SESSION, CYCLES_SESSION - 1), cell(o["cold"]),
         cell(o["warm"]) if warm else NO_BROKER, "bare libcurl GET: " + cell(o["libcurl"]), DASH, DASH,
         cell(o["none"]),
         "added: %s, %.2f× the GET; with azidd %s (a bare round trip to azidd: %s)" % (
             fmt_time(cold_added), cold_added / med(o["libcurl"]),
             fmt_time(med(o["warm"]) - med(o["none"])) if warm else DASH,
             cell(o["broker_rtt"]) if warm else DASH)),
        ("2. session open, instructions (callgrind)", instr(si["cold"]["open"]),
         instr(si["warm"]["open"]) if warm else NO_BROKER, "bare libcurl GET: " + instr(si["libcurl"]["open"]),
         DASH, DASH, instr(si["none"]["open"]),
         "added: %.2f× the GET; with azidd %s" % (
             (si["cold"]["open"] - si["none"]["open"]) / si["libcurl"]["open"],
             instr(si["warm"]["open"] - si["none"]["open"]) if warm else DASH)),
        added_row("2. first session open of a process, as each sshd login's (%d each)" % ROUNDS_SESSION,
                  fi, cell, lambda a, b: fmt_time(med(a) - med(b))),
        added_row("2. first session open, instructions (callgrind)",
                  {k: si[k]["first"] for k in STACKS}, instr, lambda a, b: instr(a - b)),
        added_row("2. whole session in-process (pam_start to pam_end)",
                  cyc, cell, lambda a, b: fmt_time(med(a) - med(b))),
        added_row("2. whole session, instructions (callgrind)",
                  {k: si[k]["cycle"] for k in STACKS}, instr, lambda a, b: instr(a - b)),
        ("3. ssh login, key exchange to logout (%d each)" % ROUNDS_LOGIN, cell(f3["azid"]),
         cell(f3["broker"]) if warm else NO_BROKER, "profile script: " + cell(f3["curl"]), DASH, DASH,
         cell(f3["none"]), "azid/none %s; curl/none %s" % (ratio(f3["azid"], f3["none"]),
                                                         ratio(f3["curl"], f3["none"]))),
    ]
    for i, n in enumerate(BURSTS):
        rows.append(("4. burst of %d logins: with a token, without, login failed; requests to IMDS; wall" % n,
                     burst_cell(f4["azid"][i]), burst_cell(f4["broker"][i]) if warm else NO_BROKER,
                     burst_cell(f4["curl"][i]), DASH, DASH, DASH, DASH))
    dead = lambda xs: "%s; %s" % (fmt_time(xs[0]), cell(xs[1:]))  # noqa: E731
    rows += [
        ("5. dead endpoint (hangs), timeout %d s: first login; the %d after" % (TIMEOUT, DEAD_LOGINS - 1),
         dead(f5["azid"]), dead(f5["broker"]) if warm else NO_BROKER, dead(f5["curl"]), DASH, DASH, DASH, DASH),
        ("6. peak RSS of pam_run after %d / %d sessions (no broker)" % (FEW_SESSIONS, MANY_SESSIONS),
         "%s / %s" % (kib(f6["rss"][FEW_SESSIONS]), kib(f6["rss"][MANY_SESSIONS])), DASH, DASH, DASH, DASH, DASH,
         "growth %d KiB" % (f6["rss"][MANY_SESSIONS] - f6["rss"][FEW_SESSIONS])),
        ("6. heap allocations of one session open+close, fresh process",
         "{:,} allocs, {:,} bytes".format(*f6["allocs"]["cold"]), DASH, DASH, DASH, DASH,
         "{:,} allocs, {:,} bytes".format(*f6["allocs"]["none"]),
         "pam_azid adds {:,} allocs".format(f6["allocs"]["cold"][0] - f6["allocs"]["none"][0])),
    ]
    if warm:
        b, e = f6["broker"], f6["entries"]
        rows += [
            ("6. azidd: RSS empty / holding %d entries" % e["entries"], DASH,
             "%s / %s" % (kib(e["empty"]), kib(e["full"])), DASH, DASH, DASH, DASH,
             "%.0f bytes an entry (filled in %s)" % ((e["full"] - e["empty"]) * 1024 / max(e["entries"], 1),
                                                     fmt_time(e["fill"]))),
            ("6. azidd: cached-token (key) requests, %d clients × %d" % (BROKER_CLIENTS, BROKER_REQUESTS), DASH,
             "%.0f/s; %s per second of azidd's CPU" % (b["per_s"], per_cpu(b)), DASH, DASH, DASH, DASH, DASH),
            ("6. azidd: RSS after its first request / after the %s more" % "{:,}".format(b["n"]), DASH,
             "%s / %s" % (kib(b["rss"][0]), kib(b["rss"][1])), DASH, DASH, DASH, DASH,
             "growth %d KiB" % (b["rss"][1] - b["rss"][0])),
        ]
    else:
        rows.append(("6. azidd holding 10,000 entries; its requests a second", DASH, NO_BROKER,
                     DASH, DASH, DASH, DASH, DASH))
    return rows


def per_cpu(b):
    return "%.0f" % b["per_cpu_s"] if b["per_cpu_s"] else "(too few to time)"


def targets(f1, f2, f6):
    """The issue's targets, met or not, from this run's figures."""
    t, ins, o, si = f1["times"], f1["instr"], f2["opens"], f2["instr"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    fetch = med(t["azid"]) / med(t["curl"])
    cold = (med(o["cold"]) - med(o["none"])) / med(o["libcurl"])
    lines = ["| target | this run | |", "|---|---|---|",
             "| `azid fetch` ≤ 1.0× curl | %.2f× wall, %.2f× instructions | %s |"
             % (fetch, ins["azid"] / ins["curl"], verdict(fetch <= 1.0)),
             "| cold session open ≤ 1.3× a bare libcurl GET | added %.2f× wall, %.2f× instructions | %s |"
             % (cold, (si["cold"]["open"] - si["none"]["open"]) / si["libcurl"]["open"], verdict(cold <= 1.3))]
    if HAVE_BROKER:
        warm = med(o["warm"]) - med(o["none"])
        lines += ["| warm session open < 100 µs added | %s (a bare round trip to azidd alone: %s) | %s |"
                  % (fmt_time(warm), fmt_time(med(o["broker_rtt"])), verdict(warm < 100e-6)),
                  "| azidd ≥ 20,000 cached-token requests/s on one core | %.0f/s wall, %s per CPU-second | %s |"
                  % (f6["broker"]["per_s"], per_cpu(f6["broker"]),
                     verdict((f6["broker"]["per_cpu_s"] or 0) >= 20000))]
    else:
        lines += ["| warm session open < 100 µs added | %s | |" % NO_BROKER,
                  "| azidd ≥ 20,000 cached-token requests/s on one core | %s | |" % NO_BROKER]
    return lines


def report(figures, started, load_end):
    f1, f2, f3, f4, f5, f6 = figures
    az = f1["az"]
    un = os.uname()
    lines = [
        "# azid benchmark: results of the last full `bench/run`" if not SMOKE else
        "# azid benchmark: SMOKE run (a few samples; the numbers mean nothing)",
        "",
        "Run %s–%s UTC on %s %s, %d cores; load average at the start %s, at the end %s. "
        "Endpoint: the IMDS emulator (tests/emulator/imds.py, Python) at 169.254.169.254:80 "
        "inside a private network namespace; sshd, users and azid staged as in tests/e2e."
        % (time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)), time.strftime("%H:%M", time.gmtime()),
           un.sysname, un.release, os.cpu_count(), os.environ["BENCH_LOADAVG"], load_end),
        "",
        "Cells: median (interquartile range). Variants of one figure were run interleaved, "
        "round by round. %s = not applicable. Instruction counts (callgrind) do not depend on "
        "the machine's load; times do." % DASH,
        "",
        "| figure | azid | azid with azidd | curl | Python SDK | az CLI | without azid | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| %s |" % " | ".join(r) for r in table(*figures)]
    lines += ["", "## Targets", ""] + targets(f1, f2, f6)
    lines += [
        "",
        "![one-shot token](oneshot.png)",
        "",
        "![login bursts](burst.png)",
        "",
        "## Notes",
        "",
        "1. `az account get-access-token` works only after `az login --identity`, and that "
        "login, after getting a token from IMDS, reads the tenant from the token's claims "
        "(the emulator's tokens are random, not signed Entra JWTs with a `tid`) and lists the "
        "identity's subscriptions from Azure Resource Manager (https://management.azure.com), "
        "which the namespace does not have: az cannot be pointed at the emulator without a "
        "fake ARM and Entra-shaped tokens. "
        "`az login --identity --allow-no-subscriptions` here: exit %d after %s, the emulator "
        "had logged %d token requests by then; it said: `%s`."
        % (az["rc"], fmt_time(az["elapsed"]), az["requests"], az["said"].replace("|", "/")[:300]),
        "2. " + ("azidd runs from this build: `azid with azidd` is pam_azid with `broker=` its "
                 "socket, each variant of figures 4 and 5 starting with an empty cache." if HAVE_BROKER else
                 "This build has no broker (azidd): its figures are not measured."),
        "3. Figure 1: `azid fetch` and the Python SDK print the token; curl prints IMDS's "
        "JSON (extracting the token would add a process). Times include process start-up. "
        "Peak RSS is from runs of their own under bench/peak_rss (note 6), %d of each, not timed."
        % RSS_ONESHOT,
        "4. Figure 2: tests/pam/pam_run, %d sessions per process; the first of each (the "
        "one an sshd login, a process per connection, pays; without azidd it also loads "
        "libcurl) has rows of its own, the steady state is the rest. The stack is pam_keyinit "
        "plus pam_azid with one resource (`azid`: broker=off, a request to IMDS at every open; "
        "with azidd: a cache hit). `open` is pam_open_session alone, `whole session` pam_start "
        "to pam_end (libpam loads the modules there, and unloads those that do not keep "
        "themselves loaded). The bare libcurl GET is bench/curl_get.c, a new handle per GET in "
        "one process; the bare round trip to azidd is bench/broker_rtt.c, the key request "
        "of a login (a connection, the request line, the reply) without pam_azid's checks "
        "around it. Each open (after its pam_start), each GET and each round trip follows %d ms "
        "of idle (`pam_run --idle --no-settle`, `curl_get URL N %d`, `broker_rtt SOCKET REQUEST N %d`); "
        "back to back, as the process, the emulator and the caches stay warm as they never "
        "are for a login, a GET took %s. Instructions: the "
        "difference between runs of %d and %d sessions, per session; the first session's, a "
        "run of one. `added` is against the stack without pam_azid."
        % ((CYCLES_SESSION, IDLE_MS, IDLE_MS, IDLE_MS, cell(f2["opens"]["libcurl_back_to_back"]))
           + CALLGRIND_CYCLES),
        "5. Figures 3-5: a real ssh login (public key) of one user to sshd on 127.0.0.1, "
        "running one command that checks for the token: `keyctl search` (azid), or the "
        "profile script sourced (curl: `%s`, run by the login shell as an admin would put it "
        "in /etc/profile.d). Bursts: N logins started at once, the emulator enforcing IMDS's "
        "limits (429 with Retry-After beyond 5 in flight or 20 a second); without the broker "
        "the user's kernel key quota (%s bytes by default) also limits how many sessions can "
        "hold a token at once." % (PROFILE_SCRIPT.splitlines()[0][:60] + "…",
                                  open("/proc/sys/kernel/keys/maxbytes").read().strip()),
        "   Logins that failed said: %s." % burst_failures(f4),
        "6. Figures 1 and 6: a process's RSS is its peak, the ru_maxrss that bench/peak_rss.c "
        "gets from wait4 after a real fork (a child that Python's subprocess starts with vfork "
        "reports at least bench.py's own RSS); azidd's is its VmRSS; allocations are "
        "valgrind's heap summary of one pam_run session. azidd's requests: "
        "azidd alone on CPU 0, clients (Python, one connection a request, as pam_azid makes "
        "them) on the other core; its own CPU time gives the rate one core sustains.",
        "",
    ]
    with open(os.path.join(OUT, "REPORT.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    started = time.time()
    figures = []
    for figure in (oneshot, sessions, logins, bursts, dead_endpoint, memory):
        start = time.monotonic()
        with Emulator(limits=figure is bursts):
            figures.append(figure())
        print("bench: %s took %.0f s" % (figure.__name__, time.monotonic() - start), flush=True)
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    plots(figures[0], figures[3])
    report(figures, started, load_end)
    print("bench: wrote %s" % os.path.join(OUT, "REPORT.md"))


if __name__ == "__main__":
    main()
