# SPDX-License-Identifier: MIT
"""The measuring half of bench/run; runs inside its namespaces (see there).

Every figure is measured in this one run, its variants interleaved round
by round (so that the load of the shared machine falls on all of them
alike), and reported as the median and the interquartile range.  Writes
REPORT.md and PNG plots into $BENCH_OUT.
"""

import json
import os
import re
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
TIMEOUT = 2  # pam_azid's timeout= and the profile script's curl --max-time (seconds)

# How many of each: (full run, smoke).
ROUNDS_ONESHOT = 2 if SMOKE else 15
ROUNDS_SESSION, CYCLES_SESSION = (2, 3) if SMOKE else (10, 20)
ROUNDS_LOGIN = 2 if SMOKE else 10
BURSTS = [1, 3] if SMOKE else [1, 10, 50, 200]
DEAD_LOGINS = 2 if SMOKE else 4
MANY_SESSIONS = 20 if SMOKE else 10000
CALLGRIND_CYCLES = (2, 4) if SMOKE else (3, 8)
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
    def __init__(self, rc, out, err, elapsed, maxrss_kib):
        self.rc, self.out, self.err, self.elapsed, self.maxrss = rc, out, err, elapsed, maxrss_kib


def spawn(argv, env=None, timeout=120):
    """Runs argv; its wall time and its own peak RSS (wait4), not the sum of
    every child's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.monotonic() - start
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   elapsed, usage.ru_maxrss)


def must(run, what):
    if run.rc != 0:
        raise SystemExit("bench: %s failed (exit %d): %s" % (what, run.rc, run.err.strip()[-2000:]))
    return run


class Emulator:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.stderr.close()


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
    order = list(peers)
    for r in range(ROUNDS_ONESHOT):
        for name in order[r % len(order):] + order[:r % len(order)]:
            run = must(spawn(peers[name], env=env), name)
            if "eyJ" not in run.out:
                raise SystemExit("bench: %s printed no token" % name)
            times[name].append(run.elapsed)
            rss[name].append(run.maxrss)
    instr = {name: callgrind(peers[name]) for name in ("azid", "curl")}
    return {"times": times, "rss": rss, "instr": instr, "az": az_cli(env)}


def az_cli(env):
    """az account get-access-token needs an `az login --identity` first: try
    it, and keep what it says."""
    cfg = tempfile.mkdtemp(prefix="az.", dir=TMP)
    run = spawn(["az", "login", "--identity", "--allow-no-subscriptions", "--only-show-errors"],
                env=dict(env, AZURE_CONFIG_DIR=cfg, AZURE_CORE_COLLECT_TELEMETRY="no"), timeout=120)
    lines = [x.strip() for x in (run.err + run.out).splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ERROR")] or lines[-1:] or [""]
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


def sessions():
    """Figure 2: pam_open_session in one long-lived process, as sshd's
    monitor or a display manager runs it."""
    confdir = os.path.join(TMP, "bench-pam")
    os.makedirs(confdir, exist_ok=True)
    for name, args in STACKS.items():
        write_stack(os.path.join(confdir, name), args)
    opens = {k: [] for k in list(STACKS) + ["libcurl"]}
    cycles = {k: [] for k in STACKS}
    for r in range(ROUNDS_SESSION):
        for name in list(opens):
            if name == "libcurl":
                run = must(spawn([CURL_GET, TOKEN_URL, str(CYCLES_SESSION)]), "curl_get")
                us = [int(x) for x in re.findall(r"^get_us=(\d+)$", run.out, re.M)]
            else:
                run = must(spawn([PAM_RUN, "--confdir", confdir, "--service", name, "--user", USER,
                                  "--cycles", str(CYCLES_SESSION), "--times"]), "pam_run " + name)
                if "open_session[PAM_SUCCESS]=%d" % CYCLES_SESSION not in run.out:
                    raise SystemExit("bench: sessions of stack %s failed: %s" % (name, run.out))
                us = [int(x) for x in re.findall(r"^open_us=(\d+)$", run.out, re.M)]
                cycles[name] += [int(x) / 1e6 for x in re.findall(r"^cycle_us=(\d+)$", run.out, re.M)[1:]]
            # The first of each process also loads libcurl: steady state is
            # the rest.
            opens[name] += [u / 1e6 for u in us[1:]]
    return {"opens": opens, "cycles": cycles, "instr": session_instructions(confdir)}


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
        run = must(spawn([PAM_RUN, "--confdir", confdir, "--service", "cold", "--user", USER,
                          "--cycles", str(n)], timeout=3600), "pam_run %d sessions" % n)
        if "open_session[PAM_SUCCESS]=%d" % n not in run.out:
            raise SystemExit("bench: %d sessions: %s" % (n, run.out))
        rss[n] = run.maxrss
    allocs = {}
    for name in STACKS:
        run = must(spawn(["valgrind", "--tool=memcheck", "--leak-check=no", PAM_RUN, "--confdir", confdir,
                          "--service", name, "--user", USER], timeout=300), "valgrind pam_run " + name)
        m = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes", run.err)
        allocs[name] = (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")))
    return {"rss": rss, "allocs": allocs}


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
    uid = int(subprocess.check_output(["id", "-u", USER]))
    for r in range(ROUNDS_LOGIN):
        for name in LOGINS:
            settle_keys(uid, 2)
            times[name].append(has_token(spawn(use_login(name)), name).elapsed)
    return times


def bursts():
    """Figure 4: N logins of one user at once."""
    uid = int(subprocess.check_output(["id", "-u", USER]))
    result = {}
    for name in ("azid", "curl"):
        result[name] = []
        for n in BURSTS:
            settle_keys(uid)
            argv = use_login(name)
            before = len(imds_log())
            start = time.monotonic()
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
    for name in ("azid", "curl"):
        set_faults(["hang"] * 1000)
        result[name] = [spawn(use_login(name)).elapsed for _ in range(DEAD_LOGINS)]
    set_faults([])
    return result


# ---- the report ---------------------------------------------------------------------

def plots(f1, f2, f4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"azid": "azid (no broker)", "curl": "curl profile script", "sdk": "Python SDK"}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = list(f1["times"])
    ax.boxplot([[t * 1e3 for t in f1["times"][k]] for k in keys], labels=[names[k] for k in keys])
    ax.set_yscale("log")
    ax.set_ylabel("ms, one token (log scale)")
    ax.set_title("One-shot token, process start to token printed")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "oneshot.png"), dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, rows in f4.items():
        ns = [r["n"] for r in rows]
        a1.plot(ns, [r["ok"] for r in rows], marker="o", label=names[name])
        a2.plot(ns, [r["requests"] for r in rows], marker="o", label=names[name])
    a1.plot(BURSTS, BURSTS, linestyle=":", color="grey", label="all")
    for a, what in ((a1, "logins with a token"), (a2, "requests to IMDS")):
        a.set_xscale("log")
        a.set_xlabel("concurrent logins of one user")
        a.set_ylabel(what)
        a.set_xticks(BURSTS)
        a.set_xticklabels([str(n) for n in BURSTS])
    a1.legend()
    fig.suptitle("Login bursts")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "burst.png"), dpi=100)
    plt.close(fig)


def burst_failures(f4):
    said = []
    for name, rows in f4.items():
        why = sorted({w for r in rows for w in r["why"]})
        if why:
            said.append("%s: %s" % (name, ", ".join("`%s`" % w.replace("|", "/")[:160] for w in why)))
    return "; ".join(said) or "none failed"


def burst_cell(b):
    return "%d, %d, %d; %d req (%d throttled); %s" % (b["ok"], b["no_token"], b["failed"], b["requests"],
                                                   b["throttled"], fmt_time(b["elapsed"]))


def report(f1, f2, f3, f4, f5, f6, started, load_end):
    t, rss, instr, az = f1["times"], f1["rss"], f1["instr"], f1["az"]
    o, si = f2["opens"], f2["instr"]
    added = statistics.median(o["cold"]) - statistics.median(o["none"])
    kib = lambda k: "%d KiB" % k  # noqa: E731
    dash = "—"
    rows = [
        ("1. one-shot token, wall (%d runs each)" % ROUNDS_ONESHOT,
         cell(t["azid"]), cell(t["curl"]), cell(t["sdk"]), "not measured (note 1)", dash,
         "azid/curl %s; SDK/azid %s" % (ratio(t["azid"], t["curl"]), ratio(t["sdk"], t["azid"]))),
        ("1. one-shot token, peak RSS", cell(rss["azid"], kib), cell(rss["curl"], kib), cell(rss["sdk"], kib),
         dash, dash, "azid/curl %s" % ratio(rss["azid"], rss["curl"])),
        ("1. one-shot token, instructions (callgrind)", "{:,}".format(instr["azid"]),
         "{:,}".format(instr["curl"]), dash, dash, dash, "azid/curl %.2f×" % (instr["azid"] / instr["curl"])),
        ("2. session open in-process, cold (%d×%d)" % (ROUNDS_SESSION, CYCLES_SESSION - 1),
         cell(o["cold"]), "bare libcurl GET: " + cell(o["libcurl"]), dash, dash, cell(o["none"]),
         "added %s; added/libcurl GET %.2f×" % (fmt_time(added), added / statistics.median(o["libcurl"]))),
        ("2. session open in-process, cold: instructions (callgrind), steady state",
         "{:,.0f}".format(si["cold"]["open"]), "bare libcurl GET: {:,.0f}".format(si["libcurl"]["open"]), dash, dash,
         "{:,.0f}".format(si["none"]["open"]),
         "added/libcurl GET %.2f×" % ((si["cold"]["open"] - si["none"]["open"]) / si["libcurl"]["open"])),
        ("2. whole session in-process (pam_start to pam_end), cold", cell(f2["cycles"]["cold"]), dash, dash, dash,
         cell(f2["cycles"]["none"]), "added %s" % fmt_time(statistics.median(f2["cycles"]["cold"])
                                                        - statistics.median(f2["cycles"]["none"]))),
        ("2. whole session in-process, cold: instructions (callgrind), steady state",
         "{:,.0f}".format(si["cold"]["cycle"]), dash, dash, dash, "{:,.0f}".format(si["none"]["cycle"]),
         "added {:,.0f}".format(si["cold"]["cycle"] - si["none"]["cycle"])),
        ("2. session open, warm (broker cache hit)", "not measured (note 2)", dash, dash, dash, dash, dash),
        ("3. ssh login, key exchange to logout (%d each)" % ROUNDS_LOGIN, cell(f3["azid"]),
         "profile script: " + cell(f3["curl"]), dash, dash, cell(f3["none"]),
         "azid/none %s; curl/none %s" % (ratio(f3["azid"], f3["none"]), ratio(f3["curl"], f3["none"]))),
    ]
    for i, n in enumerate(BURSTS):
        a, c = f4["azid"][i], f4["curl"][i]
        rows.append(("4. burst of %d logins (IMDS limits on): with a token, without, login failed; "
                     "requests to IMDS; wall" % n, burst_cell(a), burst_cell(c), dash, dash, dash, dash))
    d = f5
    rows.append(("5. dead endpoint (hangs), timeout %d s: first login; later ones" % TIMEOUT,
                 "%s; %s" % (fmt_time(d["azid"][0]), cell(d["azid"][1:])),
                 "%s; %s" % (fmt_time(d["curl"][0]), cell(d["curl"][1:])), dash, dash, dash, dash))
    rows += [
        ("6. peak RSS of pam_run after %d / %d sessions" % (FEW_SESSIONS, MANY_SESSIONS),
         "%s / %s" % (kib(f6["rss"][FEW_SESSIONS]), kib(f6["rss"][MANY_SESSIONS])), dash, dash, dash, dash,
         "growth %d KiB" % (f6["rss"][MANY_SESSIONS] - f6["rss"][FEW_SESSIONS])),
        ("6. heap allocations of one session open+close, fresh process",
         "{:,} allocs, {:,} bytes".format(*f6["allocs"]["cold"]), dash, dash, dash,
         "{:,} allocs, {:,} bytes".format(*f6["allocs"]["none"]),
         "pam_azid adds {:,} allocs".format(f6["allocs"]["cold"][0] - f6["allocs"]["none"][0])),
        ("6. azidd holding 10,000 entries", "not measured (note 2)", dash, dash, dash, dash, dash),
    ]
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
        "round by round. `dash` = not applicable.".replace("`dash`", dash),
        "",
        "| figure | azid | curl | Python SDK | az CLI | without azid | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| %s |" % " | ".join(r) for r in rows]
    lines += [
        "",
        "![one-shot token](oneshot.png)",
        "",
        "![login bursts](burst.png)",
        "",
        "## Notes",
        "",
        "1. `az account get-access-token` works only after `az login --identity`, and that "
        "login lists the identity's subscriptions from Azure Resource Manager "
        "(https://management.azure.com) after getting its token from IMDS; there is no ARM "
        "in the namespace, so az cannot be pointed at the emulator without a fake ARM. "
        "`az login --identity --allow-no-subscriptions` here: exit %d after %s, %s; it said: `%s`."
        % (az["rc"], fmt_time(az["elapsed"]), "the emulator had logged %d token requests by then"
           % az["requests"], az["said"].replace("|", "/")[:300]),
        "2. The broker (azidd) is not on main yet: the warm session open, the bursts with "
        "the broker and azidd's memory and throughput are not measured.",
        "3. Figure 1: `azid fetch` and the Python SDK print the token; curl prints IMDS's "
        "JSON (extracting the token would add a process). Times include process start-up.",
        "4. Figure 2: times of pam_open_session only, in tests/pam/pam_run (one process, "
        "%d sessions per process, the first of each dropped: it also loads the module); the "
        "stack is pam_keyinit plus pam_azid with one resource (`cold`: no broker, a request "
        "to IMDS at each open). The bare libcurl GET is bench/curl_get.c, a new handle per "
        "GET in one process. `added` is cold minus the stack without pam_azid."
        % CYCLES_SESSION,
        "5. Figures 3-5: a real ssh login (public key) of one user to sshd on 127.0.0.1, "
        "running one command that checks for the token: `keyctl search` (azid), or the "
        "profile script sourced (curl: `%s`, run by the login shell as an admin would put it "
        "in /etc/profile.d). Burst: N logins started at once; `with a token` counts logins "
        "whose command succeeded; the user's kernel key quota (%s bytes by default) limits how "
        "many sessions can hold a token at once without the broker."
        % (PROFILE_SCRIPT.splitlines()[0][:60] + "…", open("/proc/sys/kernel/keys/maxbytes").read().strip()),
        "   Logins that failed said: %s." % burst_failures(f4),
        "6. Figure 6: RSS is the process's peak (wait4's ru_maxrss); allocations are "
        "valgrind's heap summary of one pam_run session (with and without pam_azid).",
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
    f1, f2, f3, f4, f5, f6 = figures
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    plots(f1, f2, f4)
    report(f1, f2, f3, f4, f5, f6, started, load_end)
    print("bench: wrote %s" % os.path.join(OUT, "REPORT.md"))


if __name__ == "__main__":
    main()
