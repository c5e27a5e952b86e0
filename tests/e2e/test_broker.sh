#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End to end with the broker (issue 10): a real azidd, a real sshd whose
# PAM stack runs pam_azid (broker=auto), and the IMDS emulator enforcing
# IMDS's limits (5 requests in flight, 20 a second, 429 beyond) and issuing
# 2.5 KB tokens that live 240 s, all in private namespaces (tests/e2e/lib.sh).
# What users and admins see:
#   - refresh in place: a session open past half the token's lifetime
#     finds a new token in the same key before the old one expires;
#   - a user granted nothing gets nothing, and nothing is asked for them;
#   - `azid token`: after its key is gone it gets a fresh token from the
#     broker; a resource the policy does not grant is refused and never
#     asked for;
#   - burst: 200 concurrent logins of one user all hold the token, with at
#     most one token request and none throttled;
#   - warm cache: 5 more logins make no request;
#   - dead endpoint (black-holed with nftables): the first login waits at
#     most its budget plus 0.5 s, the next ones finish within 0.25 s of a
#     login without pam_azid (medians of several);
#   - broker killed: logins complete within their budget (in-process);
#     restarted: logins get tokens from it again;
#   - no token text in any file under /run, /tmp, /var, /etc or /home.
# The refresh session starts first and is checked once the burst and the
# rest are done; the parts that kill the endpoint or the broker come last.
# Needs root, namespaces and nft; skips (77) otherwise.
# shellcheck disable=SC2016  # bash -c '...' snippets get their values as arguments
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir

R_BURST=https://management.azure.com/
R_REFRESH=https://storage.azure.com/
R_TOKEN=https://vault.azure.net
R_DEAD=https://database.windows.net/
R_DENIED=https://graph.microsoft.com/
LIFETIME=240      # token lifetime the emulator issues (seconds)
TOKEN_SIZE=2560   # bytes: seven such keys fill the default key quota
BUDGET=5          # pam_azid timeout= (seconds; the default)
BURST=200         # concurrent logins
WARM=5            # logins after the burst
SAMPLES=7         # logins per median
# alice: the burst; bob: the long session; carol: azid token; dave: granted
# nothing; erin: dead endpoint and broker failure.
export E2E_USERS="alice bob carol dave erin"
# uids of their own: the kernel's keyrings and key quotas of a uid are
# global, and test_sshd.sh (62100...) may run at the same time.
export E2E_UID_BASE=62300
export E2E_NO_SECRET=1
export E2E_AZID_CONF="Match user alice
resource = $R_BURST
Match user bob
resource = $R_REFRESH
Match user carol
resource = $R_TOKEN
Match user erin
resource = $R_DEAD
"
# The refresh waits for half the lifetime; everything else takes a minute
# or two on a busy machine.
export E2E_NS_LIMIT=540
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"
# A burst login on a busy two-core machine: sshd's key exchanges queue up.
E2E_BURST_LIMIT=150

e2e_logs_says() { e2e_logs "$@" >/dev/null; }   # a yes/no question to logs.py
requests_for() { e2e_logs count "$E2E_EMU_LOG" "resource=$1"; }
key_of() { printf '%%user:azid:token:%s' "$1"; }
# OUT: the command whose stdout went to OUT (its status to OUT.rc) exited 1
# and printed nothing.
refused() { [ "$(cat "$1.rc" 2>/dev/null)" = 1 ] && [ ! -s "$1" ]; }

# ---- inside the namespaces -----------------------------------------------------

# One login of USER running true; prints its seconds.
login_seconds() {
    local t0=$EPOCHREALTIME
    e2e_ssh "$1" true >/dev/null 2>&1 || true
    e2e_elapsed_since "$t0"
}
# The PAM stack with or without its pam_azid line (sshd reads it at each login).
use_pam() {
    if [ "$1" = with ]; then
        cp "$E2E_TMP/sshd.pam.with" "$E2E_TMP/pam.d/sshd.new"
    else
        grep -v pam_azid "$E2E_TMP/sshd.pam.with" >"$E2E_TMP/pam.d/sshd.new"
    fi
    mv "$E2E_TMP/pam.d/sshd.new" "$E2E_TMP/pam.d/sshd"
}

# bob's session: reads its key, then watches it (bounded) until it holds
# another token, and records when and in which key.
long_session() {
    cat <<EOF
o=$E2E_TMP/out/bob
keyctl search @s user 'azid:token:$R_REFRESH' >\$o/serial0
keyctl pipe '$(key_of "$R_REFRESH")' >\$o/token0
touch \$o/ready
for i in \$(seq $((LIFETIME + 30))); do
    keyctl pipe '$(key_of "$R_REFRESH")' >\$o/token.now 2>/dev/null || true
    if [ -s \$o/token.now ] && ! cmp -s \$o/token.now \$o/token0; then
        date +%s >\$o/changed_at
        mv \$o/token.now \$o/token1
        keyctl search @s user 'azid:token:$R_REFRESH' >\$o/serial1
        exit 0
    fi
    sleep 1
done
exit 3
EOF
}

inside() {
    local o t0 bob_pid before burst_time n i plain=() dead=() first p50_plain p50_dead
    local after_kill restart_before pieces found
    trap 'echo "FAIL - unexpected error at line $LINENO"; e2e_dump_logs' ERR

    e2e_ns_up
    e2e_start_emulator --limits --lifetime "$LIFETIME" --token-size "$TOKEN_SIZE"
    e2e_start_broker
    e2e_start_sshd
    for u in $E2E_USERS; do
        install -d -m 700 -o "$u" -g "$u" "$E2E_TMP/out/$u"
    done
    cp "$E2E_TMP/pam.d/sshd" "$E2E_TMP/sshd.pam.with"

    # 1. bob's long session starts first; it is checked at the end.
    E2E_SSH_LIMIT=$((LIFETIME + 60)) e2e_ssh bob "$(long_session)" >"$E2E_TMP/bob.out" 2>&1 &
    bob_pid=$!
    e2e_wait_for test -e "$E2E_TMP/out/bob/ready" || cat "$E2E_TMP/bob.out"

    # 2. dave is granted nothing.
    before=$(e2e_logs count "$E2E_EMU_LOG")
    o=$E2E_TMP/out/dave
    e2e_ssh dave "azid list >$o/list; azid token '$R_BURST' >$o/token 2>$o/token.err; echo \$? >$o/token.rc" \
        >"$E2E_TMP/dave.out" 2>&1 || cat "$E2E_TMP/dave.out"
    ok "dave, granted nothing, has no key (azid list shows none)" \
        bash -c '[ -e "$0" ] && ! grep -q "://" "$0"' "$o/list"
    ok "dave's 'azid token $R_BURST' fails (exit 1) and prints nothing" refused "$o/token"
    ok "dave's 'azid token' says why on stderr: $(head -n 1 "$o/token.err" 2>/dev/null)" [ -s "$o/token.err" ]
    ok "nothing was asked of the endpoint for dave" [ "$(e2e_logs count "$E2E_EMU_LOG")" = "$before" ]

    # 3. carol's `azid token`: a key that is gone, a resource not granted.
    o=$E2E_TMP/out/carol
    e2e_ssh carol "keyctl pipe '$(key_of "$R_TOKEN")' >$o/login_token
keyctl unlink '$(key_of "$R_TOKEN")' @s
keyctl search @s user 'azid:token:$R_TOKEN' >/dev/null 2>&1 && touch $o/still_there
azid token '$R_TOKEN' >$o/token 2>$o/token.err; echo \$? >$o/token.rc
keyctl pipe '$(key_of "$R_TOKEN")' >$o/key_again
azid token '$R_DENIED' >$o/denied 2>$o/denied.err; echo \$? >$o/denied.rc" \
        >"$E2E_TMP/carol.out" 2>&1 || cat "$E2E_TMP/carol.out"
    ok "carol's login got her $R_TOKEN token" e2e_logs_says issued "$E2E_EMU_LOG" "$R_TOKEN" "$o/login_token"
    ok "carol's key was gone from her session" [ ! -e "$o/still_there" ]
    ok "then 'azid token $R_TOKEN' succeeds" [ "$(cat "$o/token.rc" 2>/dev/null)" = 0 ]
    ok "and prints a token IMDS issued for $R_TOKEN (and a newline)" \
        bash -c 'head -c -1 "$1" >"$1.raw" && "$E2E_PYTHON" "$0" issued "$2" "$3" "$1.raw"' \
        "$top_srcdir/tests/e2e/logs.py" "$o/token" "$E2E_EMU_LOG" "$R_TOKEN"
    ok "and stores it in her keyring again" cmp -s "$o/key_again" "$o/token.raw"
    ok "'azid token $R_DENIED' (not granted) fails (exit 1), printing nothing" refused "$o/denied"
    ok "it says why on stderr: $(head -n 1 "$o/denied.err" 2>/dev/null)" [ -s "$o/denied.err" ]
    ok "the endpoint was never asked for $R_DENIED" [ "$(requests_for "$R_DENIED")" = 0 ]

    # 4. The burst: BURST concurrent logins of alice.
    o=$E2E_TMP/out/alice
    t0=$EPOCHREALTIME
    E2E_SSH_LIMIT=$E2E_BURST_LIMIT e2e_burst alice "$BURST" "$o" \
        "keyctl pipe '$(key_of "$R_BURST")' >$o/\$1.token 2>$o/\$1.err"
    burst_time=$(e2e_elapsed_since "$t0")
    n=$(cd "$o" && e2e_logs holders "$E2E_EMU_LOG" "$R_BURST" $(seq -f '%g.token' "$BURST"))
    ok "all $BURST concurrent logins of alice hold the token IMDS issued ($n do; $burst_time s)" \
        [ "$n" = "$BURST" ]
    ok "the burst made at most 1 token request ($(requests_for "$R_BURST"))" [ "$(requests_for "$R_BURST")" -le 1 ]
    ok "none was throttled ($(e2e_logs count "$E2E_EMU_LOG" throttled))" \
        [ "$(e2e_logs count "$E2E_EMU_LOG" throttled)" = 0 ]
    if [ "$n" != "$BURST" ]; then
        echo "# the logins' exit statuses, what they printed, what pam_azid logged for alice:"
        sort "$o"/*.rc | uniq -c
        cat "$o"/*.err "$o"/*.out | sort | uniq -c | sort -rn | head
        grep -h 'pam_azid.*user alice' "$E2E_TMP/syslog" | sed 's/^<[0-9]*>[^:]*:[^:]*:[^:]*: //' | sort | uniq -c | head
    fi

    # 5. Warm cache: more logins, no request at all.
    before=$(e2e_logs count "$E2E_EMU_LOG")
    mkdir "$o/warm" && chown alice: "$o/warm"
    for ((i = 1; i <= WARM; i++)); do
        e2e_ssh alice "keyctl pipe '$(key_of "$R_BURST")' >$o/warm/$i.token" >/dev/null 2>&1 || true
    done
    n=$(cd "$o/warm" && e2e_logs holders "$E2E_EMU_LOG" "$R_BURST" $(seq -f '%g.token' "$WARM"))
    ok "$WARM more logins of alice hold the token ($n do)" [ "$n" = "$WARM" ]
    ok "and made no request at all" [ "$(e2e_logs count "$E2E_EMU_LOG")" = "$before" ]

    # 6. Refresh in place: bob's session, open past half the lifetime.
    o=$E2E_TMP/out/bob
    for ((i = 0; i < (LIFETIME + 60) * 10; i++)); do kill -0 "$bob_pid" 2>/dev/null || break; sleep 0.1; done
    ok "bob's session saw its key change" wait "$bob_pid"
    ok "it first held a token IMDS issued for $R_REFRESH" e2e_logs_says issued "$E2E_EMU_LOG" "$R_REFRESH" "$o/token0"
    ok "then a new one IMDS issued for $R_REFRESH" e2e_logs_says issued "$E2E_EMU_LOG" "$R_REFRESH" "$o/token1"
    ok "the new token came before the old one expired ($(cat "$o/changed_at" 2>/dev/null) < $(e2e_logs expires "$E2E_EMU_LOG" "$o/token0" 2>/dev/null))" \
        below "$(cat "$o/changed_at" 2>/dev/null || echo inf)" "$(e2e_logs expires "$E2E_EMU_LOG" "$o/token0" 2>/dev/null || echo 0)"
    ok "in the same key (updated in place: serial $(cat "$o/serial0" 2>/dev/null))" \
        bash -c '[ -s "$0/serial0" ] && cmp -s "$0/serial0" "$0/serial1"' "$o"

    # 7. Dead endpoint: a login without pam_azid is the reference.
    use_pam without
    for ((i = 0; i < 3; i++)); do plain+=("$(login_seconds erin)"); done
    use_pam with
    e2e_blackhole_imds
    first=$(login_seconds erin)
    for ((i = 0; i < SAMPLES; i++)); do
        use_pam without
        plain+=("$(login_seconds erin)")
        use_pam with
        dead+=("$(login_seconds erin)")
    done
    p50_plain=$(e2e_median "${plain[@]}")
    p50_dead=$(e2e_median "${dead[@]}")
    ok "dead endpoint: the first login took $first s, at most its budget ($BUDGET s) + 0.5 s more than one without pam_azid ($p50_plain s)" \
        below "$first" "$(awk -v b="$p50_plain" -v t="$BUDGET" 'BEGIN { print b + t + 0.5 }')"
    ok "the next ones take $p50_dead s (median of $SAMPLES), within 0.25 s of one without pam_azid ($p50_plain s, median of ${#plain[@]})" \
        below "$p50_dead" "$(awk -v b="$p50_plain" 'BEGIN { print b + 0.25 }')"
    e2e_restore_imds

    # 8. Broker failure: killed, logins still complete within their budget;
    #    restarted, logins get tokens from it again.
    o=$E2E_TMP/out/erin
    e2e_kill_broker
    t0=$EPOCHREALTIME
    e2e_ssh erin "keyctl pipe '$(key_of "$R_DEAD")' >$o/killed.token" >/dev/null 2>&1 || true
    after_kill=$(e2e_elapsed_since "$t0")
    ok "broker killed: erin's login took $after_kill s, within its budget ($BUDGET s + 0.5 s over $p50_plain s)" \
        below "$after_kill" "$(awk -v b="$p50_plain" -v t="$BUDGET" 'BEGIN { print b + t + 0.5 }')"
    ok "and holds a token IMDS issued (in-process)" e2e_logs_says issued "$E2E_EMU_LOG" "$R_DEAD" "$o/killed.token"
    e2e_start_broker
    e2e_ssh erin "keyctl pipe '$(key_of "$R_DEAD")' >$o/restarted.token" >/dev/null 2>&1 || true
    ok "broker restarted: erin's login holds a token IMDS issued" \
        e2e_logs_says issued "$E2E_EMU_LOG" "$R_DEAD" "$o/restarted.token"
    restart_before=$(requests_for "$R_DEAD")
    e2e_ssh erin "keyctl pipe '$(key_of "$R_DEAD")' >$o/again.token" >/dev/null 2>&1 || true
    ok "the next login gets the same token from the restarted broker, with no request" \
        bash -c 'cmp -s "$0" "$1" && [ "$2" = "$3" ]' "$o/restarted.token" "$o/again.token" \
        "$restart_before" "$(requests_for "$R_DEAD")"
    ok "'azid status' answers" azid status
    ok "no request of the whole run was throttled" [ "$(e2e_logs count "$E2E_EMU_LOG" throttled)" = 0 ]

    # 9. Nothing on disk: no piece of any issued token in any file (this
    #    namespace's view), but for the test's own records of them.
    pieces=$E2E_TMP/out/pieces
    e2e_logs pieces "$E2E_EMU_LOG" >"$pieces"
    found=$(grep -rlF -D skip -f "$pieces" /run /tmp /var /etc /home 2>/dev/null |
        grep -v -e "^$E2E_TMP/out/" -e "^$E2E_EMU_LOG\$" || true)
    ok "no token text in any file under /run, /tmp, /var, /etc or /home${found:+: $found}" [ -z "$found" ]
    ok "the search knows what to look for ($(grep -c . "$pieces") tokens)" [ -s "$pieces" ]

    echo "# burst of $BURST logins: $burst_time s; dead endpoint: first login $first s," \
        "then $p50_dead s (median) against $p50_plain s without pam_azid; broker killed: $after_kill s"
    azid status | sed 's/^/# azid status: /'
    e2e_inside_end
}

# ---- on the host -----------------------------------------------------------------
outside() { e2e_outside "" "timeout=$BUDGET" sshd ssh ssh-keygen keyctl python3 nft; }

# One top-level command, so that nothing after it can run by mistake (bash
# resumes at the next top-level command after an expansion error).
if [ "${1:-}" = --inside ]; then inside; else outside; fi
