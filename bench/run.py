#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azid's benchmark: what a login and a script pay for azid, measured.

    bench/run.py [BUILD_DIR]      (as root; BUILD_DIR defaults to ./build)

Everything runs against the IMDS emulator on 127.0.0.1 (no other network).
It measures
  - `azid fetch`: wall time of the whole command, token printed;
  - a PAM session (pam_start, open with two resources, close, pam_end) in
    one long-lived process, as sshd's monitor does it: time per session and
    the process's peak RSS after many sessions;
  - how far past its budget a fetch ends when the endpoint hangs or
    drip-feeds (SPEC: never more than 0.5 s);
  - heap peak (valgrind massif) and instructions (callgrind, repeatable
    whatever the machine's load) of one `azid fetch`.
The report goes to stdout and to BUILD_DIR/bench-report.md.
"""

import os
import resource
import re
import statistics
import subprocess
import sys
import time

top_srcdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(top_srcdir, "build"))
os.environ["top_srcdir"] = top_srcdir
os.environ["top_builddir"] = build
sys.path.insert(0, os.path.join(top_srcdir, "tests", "lib"))
sys.path.insert(0, os.path.join(top_srcdir, "tests", "pam"))
import harness  # noqa: E402
import pamtest  # noqa: E402

FETCH_RUNS = 40
PAM_SESSIONS = 300
BUDGET_RUNS = 3
RESOURCES = ["resource=https://vault.azure.net", "resource=https://management.azure.com/"]


def azid_binary():
    """The real azid binary (not libtool's wrapper script), and its environment."""
    return os.path.join(build, ".libs", "azid"), {"LD_LIBRARY_PATH": os.path.join(build, ".libs")}


def ms(seconds):
    return "%.1f ms" % (seconds * 1000)


def fetch_latency(emu):
    binary, env = azid_binary()
    times = []
    for _ in range(FETCH_RUNS):
        r = harness.run([binary, "fetch", "--endpoint", emu.url], env=env)
        if r.returncode != 0:
            sys.exit("azid fetch failed: " + r.stderr)
        times.append(r.elapsed)
    times.sort()
    return [("azid fetch, %d runs: median" % FETCH_RUNS, ms(statistics.median(times))),
            ("azid fetch: 90th percentile", ms(times[int(len(times) * 0.9) - 1])),
            ("azid fetch: slowest", ms(times[-1]))]


def pam_sessions(tmp, emu):
    with pamtest.Sandbox(tmp) as sandbox:
        before = os.times()
        r = sandbox.run(["endpoint=" + emu.url] + RESOURCES, cycles=PAM_SESSIONS, timeout=600)
        if r.steps.get("open_session[PAM_SUCCESS]") != str(PAM_SESSIONS):
            sys.exit("PAM sessions failed: %r" % r)
        after = os.times()
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        return [("PAM session with 2 tokens (open+close), %d in one process: wall per session" % PAM_SESSIONS,
                 ms(r.elapsed / PAM_SESSIONS)),
                ("PAM session: CPU per session (module, libpam, emulator excluded)",
                 ms(cpu / PAM_SESSIONS)),
                ("PAM: peak RSS of the process after %d sessions" % PAM_SESSIONS, "%d KiB" % rss_kb)]


def budget_overshoot(emu):
    binary, env = azid_binary()
    rows = []
    for fault, timeout in (("hang", 1.0), ("hang", 2.0), ("drip", 2.0)):
        over = []
        for _ in range(BUDGET_RUNS):
            emu.set_faults([fault] * 10)
            r = harness.run([binary, "fetch", "--endpoint", emu.url, "--timeout", str(timeout)], env=env)
            if r.returncode == 0:
                sys.exit("azid fetch succeeded against a %s fault" % fault)
            over.append(r.elapsed - timeout)
        rows.append(("endpoint %s, --timeout %g: time past the budget (worst of %d)" % (fault, timeout, BUDGET_RUNS),
                     ms(max(over))))
    emu.set_faults([])
    return rows


def valgrind_figures(tmp, emu):
    binary, env = azid_binary()
    out = os.path.join(tmp, "massif.out")
    harness.run(["valgrind", "--tool=massif", "--massif-out-file=" + out, binary, "fetch", "--endpoint", emu.url],
                env=env, timeout=120)
    with open(out) as f:
        peak = max(int(m) for m in re.findall(r"mem_heap_B=(\d+)", f.read()))
    cg = os.path.join(tmp, "callgrind.out")
    r = harness.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg, binary, "fetch",
                     "--endpoint", emu.url], env=env, timeout=120)
    instr = re.search(r"Collected : (\d+)", r.stderr).group(1)
    return [("azid fetch: heap peak (massif)", "%d KiB" % (peak // 1024)),
            ("azid fetch: instructions (callgrind)", "{:,}".format(int(instr)))]


def main():
    if os.geteuid() != 0:
        sys.exit("bench/run.py needs root (PAM sessions store keys for a test user in a mount namespace)")
    if not os.path.exists(os.path.join(build, ".libs", "azid")):
        sys.exit("no build in %s: run ./scripts/check (or build there) first" % build)
    rows = []
    with harness.TempDir() as tmp, harness.Emulator(tmp) as emu:
        rows += fetch_latency(emu)
        rows += pam_sessions(tmp, emu)
        rows += budget_overshoot(emu)
        rows += valgrind_figures(tmp, emu)
    uname = os.uname()
    lines = ["# azid benchmark, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "",
             "Machine: %s %s, %d cores. Endpoint: the IMDS emulator on 127.0.0.1." %
             (uname.sysname, uname.release, os.cpu_count()), "",
             "| measure | result |", "|---|---|"]
    lines += ["| %s | %s |" % row for row in rows]
    report = "\n".join(lines) + "\n"
    with open(os.path.join(build, "bench-report.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
