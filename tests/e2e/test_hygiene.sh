#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Secret hygiene, end to end: real ssh logins with pam_azid's `debug` on
# (two tokens and a Key Vault secret), every azid command run by the user
# and by root, in process (no broker) and then through a real azidd (bob's
# login, `azid token` after its key is gone, `azid status`), then a search
# of everything that run produced for the token and secret values:
#   - the syslog capture (pam_azid's debug lines and azidd's audit lines
#     included), sshd's log, azidd's stderr;
#   - stdout and stderr of every command that is not asked for a value;
#   - /proc/PID/environ and /proc/PID/cmdline of every process of the
#     namespace while a login is open (sshd, the session's processes, azidd;
#     the test's own, which made the values up, excepted), and of every
#     azidd fetcher seen during bob's login (the emulator answers slowly,
#     so that one lives long enough to be seen);
#   - every file under /tmp, /run and /var written during the run (the
#     namespace's /run is its own tmpfs; /tmp and /var are the host's, and
#     only what changed since the run started is read), the run's own
#     records of the emulators excepted.
# The debug and audit lines must be in the capture, so that an empty
# capture cannot pass.  Needs root and namespaces; skips (77) otherwise.
# shellcheck disable=SC2016  # bash -c '...' snippets get their values as arguments
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

R1=https://management.azure.com/
R2=https://vault.azure.net
# The policy azidd answers `azid token` from (the module's arguments grant
# only the logins).
export E2E_AZID_CONF="Match user bob
resource = $R1
"

# The commands a user runs in the login.  Those asked for a value write
# stdout to *.value (not searched: it holds the value by design); every
# other output is searched.
session_runs_every_command() {
    cat <<EOF
o=$E2E_TMP/out/\$(id -un)
run() { n=\$1; shift; "\$@" >\$o/\$n.out 2>\$o/\$n.err; echo \$? >\$o/\$n.rc; }
value() { n=\$1; shift; "\$@" >\$o/\$n.value 2>\$o/\$n.err; echo \$? >\$o/\$n.rc; }
value token azid token '$R1'
value token_json azid token --json '$R2'
value secret azid secret '$E2E_SECRET_NAME'
value fetch azid fetch --resource '$R1'
value fetch_json azid fetch --json --resource '$R2'
run list azid list
run list_json azid list --json
run doctor azid doctor
run status azid status
run lockdown azid lockdown status
run help azid --help
run version azid --version
run token_absent azid token https://absent.example/
run secret_absent azid secret absent
touch \$o/ready
for i in \$(seq 200); do [ -e \$o/release ] && exit 0; sleep 0.1; done
exit 3
EOF
}

# bob's commands through the broker: his login's token key removed, `azid
# token` gets it back from azidd; the status commands.
session_through_broker() {
    cat <<EOF
o=$E2E_TMP/out/\$(id -un)
run() { n=\$1; shift; "\$@" >\$o/\$n.out 2>\$o/\$n.err; echo \$? >\$o/\$n.rc; }
value() { n=\$1; shift; "\$@" >\$o/\$n.value 2>\$o/\$n.err; echo \$? >\$o/\$n.rc; }
run unlink keyctl unlink '%user:azid:token:$R1' @s
value token azid token '$R1'
run status azid status
run status_json azid status --json
touch \$o/ready
for i in \$(seq 200); do [ -e \$o/release ] && exit 0; sleep 0.1; done
exit 3
EOF
}

# Copies environ and cmdline of every azidd fetcher alive now into DIR
# (once: a copy made as it exited may be empty, then it is made again).
snapshot_fetchers() {
    local dir=$1 c p
    for c in $(grep -laF -e --fetcher /proc/[0-9]*/cmdline 2>/dev/null); do
        p=${c%/cmdline}
        [ -s "$dir/${p#/proc/}.cmdline" ] && continue
        cat "$p/environ" >"$dir/${p#/proc/}.environ" 2>/dev/null || true
        cat "$p/cmdline" >"$dir/${p#/proc/}.cmdline" 2>/dev/null || true
    done
}

# Copies environ and cmdline of every process into DIR but the test's own
# (this script, the emulators: their environment carries E2E_TMP and the
# secret the test made up).
snapshot_processes() {
    local dir=$1 p
    mkdir -p "$dir"
    for p in /proc/[0-9]*; do
        grep -qaF "E2E_TMP=$E2E_TMP" "$p/environ" 2>/dev/null && continue
        cat "$p/environ" >"$dir/${p#/proc/}.environ" 2>/dev/null || true
        cat "$p/cmdline" >"$dir/${p#/proc/}.cmdline" 2>/dev/null || true
    done
}

# Files holding a value: PATTERNS is a file of fixed strings (grep -F -f).
files_with_values() {
    local patterns=$1
    shift
    grep -rlaF -f "$patterns" -- "$@" 2>/dev/null || true
}

inside() {
    local o alice_pid bob_pid ob patterns leaked changed n
    trap 'echo "FAIL - unexpected error at line $LINENO"; e2e_dump_logs' ERR
    touch "$E2E_TMP/started" # what changed after this is the run's

    e2e_ns_up
    e2e_start_emulator
    e2e_start_keyvault
    e2e_start_sshd
    install -d -m 700 -o alice -g alice "$E2E_TMP/out/alice"
    o=$E2E_TMP/out/alice

    e2e_ssh alice "$(session_runs_every_command)" >"$E2E_TMP/alice.out" 2>"$E2E_TMP/alice.err" &
    alice_pid=$!
    e2e_wait_for test -e "$o/ready" || cat "$E2E_TMP/alice.out" "$E2E_TMP/alice.err"
    ok "alice's login ran every command" test -e "$o/ready"
    snapshot_processes "$E2E_TMP/proc"
    touch "$o/release"
    wait "$alice_pid" || true
    # root's commands (root has no login here: its keyring commands fail).
    mkdir -p "$E2E_TMP/out/root"
    for n in doctor status list token secret; do
        case $n in
            doctor | status | list) azid "$n" >"$E2E_TMP/out/root/$n.out" 2>"$E2E_TMP/out/root/$n.err" || true ;;
            token) azid token "$R1" >"$E2E_TMP/out/root/$n.out" 2>"$E2E_TMP/out/root/$n.err" || true ;;
            secret) azid secret "$E2E_SECRET_NAME" >"$E2E_TMP/out/root/$n.out" 2>"$E2E_TMP/out/root/$n.err" || true ;;
        esac
    done
    azid fetch --resource "$R1" >"$E2E_TMP/out/root/fetch.value" 2>"$E2E_TMP/out/root/fetch.err" || true

    # The broker path: bob's login and commands through a real azidd, its
    # first request to IMDS answered slowly so that its fetcher is seen.
    e2e_start_broker
    ob=$E2E_TMP/out/bob
    install -d -m 700 -o bob -g bob "$ob"
    mkdir "$E2E_TMP/fetchers"
    e2e_set_faults '["slow:1.5"]'
    e2e_ssh bob "$(session_through_broker)" >"$E2E_TMP/bob.out" 2>"$E2E_TMP/bob.err" &
    bob_pid=$!
    for ((n = 0; n < E2E_WAIT_TRIES; n++)); do
        [ -e "$ob/ready" ] && break
        snapshot_fetchers "$E2E_TMP/fetchers"
        sleep 0.05
    done
    [ -e "$ob/ready" ] || cat "$E2E_TMP/bob.out" "$E2E_TMP/bob.err"
    ok "bob's login ran azid token and azid status through the broker" test -e "$ob/ready"
    snapshot_processes "$E2E_TMP/proc-broker"
    touch "$ob/release"
    wait "$bob_pid" || true

    # The values: every token IMDS issued (a piece of each, so that a
    # truncated copy counts too), each whole, and the secret.
    patterns=$E2E_TMP/patterns
    {
        e2e_logs pieces "$E2E_EMU_LOG"
        printf '%s\n' "$E2E_SECRET_VALUE"
    } >"$patterns"
    n=$(e2e_logs count "$E2E_EMU_LOG" issued)
    ok "IMDS issued tokens to the logins and commands ($n)" [ "$n" -ge 4 ]
    ok "the values to look for are known ($(wc -l <"$patterns") patterns)" [ "$(wc -l <"$patterns")" -ge 5 ]
    ok "the values are where they were asked for (azid token, secret, fetch print them)" \
        [ "$(files_with_values "$patterns" "$o"/token.value "$o"/secret.value "$o"/fetch.value | wc -l)" = 3 ]
    ok "the user's commands ran (token, secret, fetch exit 0)" \
        bash -c 'for n in token token_json secret fetch fetch_json list; do [ "$(cat "$0/$n.rc")" = 0 ] || exit 1; done' "$o"

    # The capture is not empty: pam_azid's debug lines are in it.
    ok "syslog holds pam_azid's debug lines for alice (tokens and the secret)" \
        bash -c 'grep -q "pam_azid.*(user alice) got a token for" "$0" &&
                 grep -q "pam_azid.*(user alice) got secret" "$0" &&
                 grep -q "pam_azid.*(user alice) stored azid:secret:" "$0"' "$E2E_TMP/syslog"
    ok "sshd's log names alice's session" grep -q "alice" "$E2E_TMP/sshd.log"
    ok "the process snapshot has alice's shell and sshd" \
        bash -c 'grep -lqa "^sshd: alice" "$0"/*.cmdline && ls "$0"/*.environ >/dev/null' "$E2E_TMP/proc"

    # Through the broker: bob's login linked its keys, azidd audited what it
    # issued (the tokens, the secret, the value `azid token` asked for).
    ok "syslog holds pam_azid's debug lines for bob (the broker's keys linked)" \
        grep -q "pam_azid.*(user bob) linked the broker's shared key" "$E2E_TMP/syslog"
    ok "syslog holds azidd's audit lines for bob (his tokens, his secret, azid token's value)" \
        bash -c 'grep -q "azidd.*issued token: user bob .* resource $1, .*shared key" "$0" &&
                 grep -q "azidd.*issued token: user bob .* resource $2, .*shared key" "$0" &&
                 grep -q "azidd.*issued secret: user bob .*shared key" "$0" &&
                 grep -q "azidd.*issued token: user bob .* resource $1, .*value to the caller" "$0"' \
        "$E2E_TMP/syslog" "$R1" "$R2"
    ok "bob's azid token, with its key gone, printed a token IMDS issued (from the broker)" \
        bash -c '[ "$(cat "$0/unlink.rc")" = 0 ] && [ "$(cat "$0/token.rc")" = 0 ] &&
                 [ -n "$(grep -laF -f "$1" "$0/token.value")" ]' "$ob" "$patterns"
    ok "bob's azid status and azid status --json exit 0" \
        bash -c '[ "$(cat "$0/status.rc")" = 0 ] && [ "$(cat "$0/status_json.rc")" = 0 ]' "$ob"
    ok "the process snapshot has azidd, and a fetcher was seen ($(grep -la -e --fetcher "$E2E_TMP/fetchers"/*.cmdline 2>/dev/null | wc -l))" \
        bash -c 'grep -lqa "^/usr/local/sbin/azidd" "$0"/*.cmdline && grep -lqa -e --fetcher "$1"/*.cmdline' \
        "$E2E_TMP/proc-broker" "$E2E_TMP/fetchers"
    leaked=$(files_with_values "$patterns" "$E2E_TMP/azidd.log" "$E2E_TMP/bob.err" "$ob"/*.out "$ob"/*.err)
    ok "no value in azidd's stderr, ssh's stderr or bob's commands' outputs but azid token's${leaked:+: $leaked}" \
        [ -z "$leaked" ]
    leaked=$(files_with_values "$patterns" "$E2E_TMP/proc-broker" "$E2E_TMP/fetchers")
    ok "no value in the environ or cmdline of azidd, its fetchers or any process of bob's login${leaked:+: $leaked}" \
        [ -z "$leaked" ]

    leaked=$(files_with_values "$patterns" "$E2E_TMP/syslog" "$E2E_TMP/sshd.log" "$E2E_TMP/alice.err")
    ok "no value in syslog, sshd's log or ssh's stderr${leaked:+: $leaked}" [ -z "$leaked" ]
    leaked=$(files_with_values "$patterns" "$o"/*.out "$o"/*.err "$E2E_TMP/out/root"/*.out \
        "$E2E_TMP/out/root"/*.err)
    ok "no value in any command's stderr, nor in the stdout of those not asked for one${leaked:+: $leaked}" \
        [ -z "$leaked" ]
    leaked=$(files_with_values "$patterns" "$E2E_TMP/proc")
    ok "no value in any process's environ or cmdline${leaked:+: $leaked}" [ -z "$leaked" ]

    # Files written since the run started, but the run's own records.
    changed=$E2E_TMP/changed
    find /tmp /run /var -xdev -type f -newer "$E2E_TMP/started" ! -path "$E2E_TMP/*" -print0 \
        2>/dev/null >"$changed" || true
    find "$E2E_TMP/run" -type f -print0 >>"$changed"
    leaked=$(xargs -0 -r grep -laF -f "$patterns" -- <"$changed" 2>/dev/null || true)
    ok "no value in the files written under /tmp, /run, /var ($(tr -cd '\0' <"$changed" | wc -c) files)${leaked:+: $leaked}" \
        [ -z "$leaked" ]

    if [ "$failures" -gt 0 ]; then
        e2e_dump_logs
        exit 1
    fi
    exit 0
}

outside() { e2e_outside "$R1 $R2" "timeout=5 debug" sshd ssh ssh-keygen keyctl python3; }

if [ "${1:-}" = --inside ]; then inside; else outside; fi
