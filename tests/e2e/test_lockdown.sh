#!/bin/bash
# SPDX-License-Identifier: MIT
#
# azid lockdown with real nftables, in the private network namespace of
# tests/e2e/lib.sh (the IMDS emulator at 169.254.169.254:80 on its
# loopback; every nft call of this test runs in that namespace, never on
# the host's ruleset).  What an admin and the users see:
#   - before: any user gets a token straight from IMDS;
#   - on: an unprivileged user's connection is reset in under 1 s, and
#     `azid fetch` says it is the lockdown and points to `azid token`;
#     root, the broker's user (_azid), a lockdown_allow user and a member of
#     a lockdown_allow @group still get tokens;
#   - logins: a user the policy grants a token (but the lockdown refuses)
#     still finds it in his login and gets it from `azid token` and from
#     README's Python SDK credential; a user granted nothing gets nothing;
#   - on twice leaves the same ruleset; a config change is applied by the
#     next on, and status tells when the rules lag behind the config;
#   - refusals: not root, nft missing, a config the CLI refuses (nothing
#     changes); an unknown name is a warning and stays refused;
#   - doctor says on or off, whom it lets through, and names the process of
#     a refused user holding a connection to the endpoint (an agent);
#   - forwarded traffic: a "container" namespace joined to this one by a
#     veth pair, routed through it to an endpoint beyond it (a third
#     namespace, as IMDS is beyond an Azure VM), is refused until its
#     address is in lockdown_allow;
#   - off: direct access again, no azid table left, another table's rule
#     untouched.
# Needs root, namespaces and nft; skips (77) otherwise.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir
# shellcheck source=tests/e2e/lib.sh
. "$top_srcdir/tests/e2e/lib.sh"

R1=https://management.azure.com/
REFUSE_LIMIT=1   # seconds: SPEC's "at once" (a reset takes well under 1 ms)
CTR_ADDR=10.9.0.2

# ---- assertions (ok, below: lib.sh) ---------------------------------------------
file_has() { grep -qF -- "$2" "$1"; }
file_lacks() { ! grep -qF -- "$2" "$1"; }
# CODE CMD...: CMD exits with CODE.
exit_is() {
    local want=$1 rc=0
    shift
    "$@" || rc=$?
    [ "$rc" = "$want" ]
}

# USER CMD...: runs CMD as USER (uid, primary and supplementary groups).
as_user() {
    local u=$1
    shift
    if [ "$u" = root ]; then "$@"; else setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"; fi
}
# USER: azid fetch as USER; its token in $E2E_TMP/out/USER.token, stderr in .err.
fetch_as() {
    as_user "$1" azid fetch -r "$R1" --timeout 3 >"$E2E_TMP/out/$1.token" 2>"$E2E_TMP/out/$1.err"
}
# FILE: a token IMDS issued, followed by a newline.
issued_token() {
    local t
    t=$(cat "$1") && printf '%s' "$t" >"$1.raw" && cmp -s "$1" <(printf '%s\n' "$t") &&
        e2e_logs issued "$E2E_EMU_LOG" "$R1" "$1.raw"
}
# USER: USER gets a token IMDS issued.
served() { fetch_as "$1" && issued_token "$E2E_TMP/out/$1.token"; }
# USER: a plain TCP client of USER (no azid) is refused: connection reset.
tcp_refused() {
    as_user "$1" bash -c 'exec 3<>/dev/tcp/169.254.169.254/80' 2>"$E2E_TMP/out/$1.tcp" && return 1
    grep -q 'Connection refused' "$E2E_TMP/out/$1.tcp"
}
ruleset() { nft list ruleset; }
# USER: starts a process of USER holding a connection to the endpoint, as
# an agent using IMDS does; its pid in $HOLDER.
hold_connection() {
    setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups \
        bash -c 'exec 3<>/dev/tcp/169.254.169.254/80 && exec sleep 60' &
    HOLDER=$!
    e2e_wait_for bash -c "readlink /proc/$HOLDER/fd/3 | grep -q socket" ||
        e2e_fail "$1 could not connect to 169.254.169.254:80"
}
doctor() { azid doctor --config "$CONF" --pam-dir "$E2E_TMP/pam.d" >"$E2E_TMP/doctor" 2>&1 || true; }
lockdown() { azid lockdown "$@" --config "$CONF"; }
# The config pam_azid and azid lockdown read: lockdown_allow = $1, and a
# token for bob, whom the lockdown refuses.
set_allow() { printf 'lockdown_allow = %s\nMatch user bob\nresource = %s\n' "$1" "$R1" >"$CONF"; }

# The Python credential of README.md ("Close IMDS to everyone else"), run
# by a user's session: prints the token it gets for $R1's scope.
sdk_script() {
    sed -n '/^   ```python$/,/^   ```$/p' "$top_srcdir/README.md" | sed '1d;$d;s/^   //'
    printf 't = AzidCredential().get_token("%s.default")\nassert isinstance(t.expires_on, int)\nprint(t.token)\n' "$R1"
}

# ---- the container and the endpoint beyond the VM ---------------------------------
# ctr (CTR_ADDR) --veth-- this namespace (the VM, forwarding) --veth-- fabric
# (169.254.169.254 on its loopback, a second emulator).  No link to the host.
forward_up() {
    ip netns add fabric
    ip netns add ctr
    ip link add vm-fab type veth peer name fab-vm netns fabric
    ip link add vm-ctr type veth peer name ctr-vm netns ctr
    ip addr add 10.8.0.1/30 dev vm-fab
    ip addr add 10.9.0.1/24 dev vm-ctr
    ip link set vm-fab up
    ip link set vm-ctr up
    ip netns exec fabric sh -ec "ip link set lo up; ip addr add $E2E_IMDS_ADDR/32 dev lo
        ip addr add 10.8.0.2/30 dev fab-vm; ip link set fab-vm up; ip route add 10.9.0.0/24 via 10.8.0.1"
    ip netns exec ctr sh -ec "ip link set lo up; ip addr add $CTR_ADDR/24 dev ctr-vm
        ip link set ctr-vm up; ip route add default via 10.9.0.1"
    echo 1 >/proc/sys/net/ipv4/ip_forward
    # The endpoint moves beyond the VM: reached through vm-fab from now on.
    kill "$EMU_PID"
    ip addr del "$E2E_IMDS_ADDR/32" dev lo
    ip route add "$E2E_IMDS_ADDR/32" via 10.8.0.2
    E2E_EMU_LOG=$E2E_TMP/imds-fabric.log
    ip netns exec fabric "$E2E_PYTHON" "$top_srcdir/tests/emulator/imds.py" --bind "$E2E_IMDS_ADDR" \
        --port 80 --port-file "$E2E_TMP/fabric.port" --log "$E2E_EMU_LOG" 2>"$E2E_TMP/fabric.stderr" &
    e2e_wait_for test -s "$E2E_TMP/fabric.port" ||
        e2e_fail "the fabric emulator did not start: $(cat "$E2E_TMP/fabric.stderr")"
}
# The container asks the endpoint (ip netns exec mounts a /sys without the
# namespace's Azure asset tag, hence --source imds): a token IMDS issued, or a fast reset.
ctr_served() {
    ip netns exec ctr azid fetch --source imds -r "$R1" --timeout 3 >"$E2E_TMP/out/ctr.token" 2>"$E2E_TMP/out/ctr.err" &&
        issued_token "$E2E_TMP/out/ctr.token"
}
ctr_refused() {
    ip netns exec ctr bash -c 'exec 3<>/dev/tcp/169.254.169.254/80' 2>"$E2E_TMP/out/ctr.tcp" && return 1
    grep -q 'Connection refused' "$E2E_TMP/out/ctr.tcp"
}

inside() {
    local t0 t_tcp t_fetch t_ctr r1 r2 keep u o before azidd_pid bob_agent alice_agent
    trap 'echo "FAIL - unexpected error at line $LINENO"; e2e_dump_logs' ERR
    e2e_ns_up
    e2e_start_emulator
    EMU_PID=$!
    CONF=$E2E_TMP/etc/azid.conf
    install -d -m 755 "$E2E_TMP/out"
    for u in bob dave; do install -d -m 700 -o "$u" -g "$u" "$E2E_TMP/out/login-$u"; done
    sdk_script >"$E2E_TMP/sdk.py"
    chmod 644 "$E2E_TMP/sdk.py"

    ok "before lockdown, bob gets a token straight from IMDS" served bob
    lockdown status >"$E2E_TMP/status"
    ok "before lockdown, status says off" grep -q '^lockdown: off' "$E2E_TMP/status"

    # A table of the admin's own, which lockdown must leave alone.
    nft -f - <<'EOF'
table ip admin_keep {
	chain out {
		type filter hook output priority 10; policy accept;
		tcp dport 9 counter accept
	}
}
EOF
    keep=$(nft list table ip admin_keep)

    set_allow "alice,@imdsusers,nosuchuser"
    # doctor, lockdown off: who would be cut off.
    hold_connection bob
    bob_agent=$HOLDER
    hold_connection alice
    alice_agent=$HOLDER
    doctor
    grep -e '^ok *lockdown' -e 'IMDS users' "$E2E_TMP/doctor" || true
    ok "doctor, off: says lockdown is off" grep -q '^ok *lockdown: off' "$E2E_TMP/doctor"
    ok "doctor, off: warns that bob's process would be cut off" \
        grep -q "^warn *IMDS users: uid $(id -u bob) (bob): sleep (pid $bob_agent) .* 'azid lockdown on' would cut it off" "$E2E_TMP/doctor"
    ok "doctor, off: no warning for alice's process (lockdown_allow)" file_lacks "$E2E_TMP/doctor" "(pid $alice_agent)"
    ok "doctor: an unknown name in lockdown_allow is a warning naming it and the file" \
        grep -q "^warn *lockdown_allow: no user 'nosuchuser' here; nobody is let through for it; correct the name in $CONF\$" "$E2E_TMP/doctor"
    lockdown on >"$E2E_TMP/on.out" 2>"$E2E_TMP/on.err" || { cat "$E2E_TMP/on.err"; false; }
    cat "$E2E_TMP/on.out"
    ok "an unknown name in lockdown_allow is a warning naming it" file_has "$E2E_TMP/on.err" "nosuchuser"
    r1=$(ruleset)
    lockdown on >/dev/null 2>&1
    r2=$(ruleset)
    ok "on twice leaves the same ruleset" [ "$r1" = "$r2" ]
    nft list table inet azid | sed 's/^/# /'

    t0=$EPOCHREALTIME
    ok "bob's plain TCP connection to 169.254.169.254:80 is reset" tcp_refused bob
    t_tcp=$(e2e_elapsed_since "$t0")
    ok "the reset comes at once: $t_tcp s (< $REFUSE_LIMIT s)" below "$t_tcp" "$REFUSE_LIMIT"
    t0=$EPOCHREALTIME
    ok "bob's azid fetch fails (exit 3)" exit_is 3 fetch_as bob
    t_fetch=$(e2e_elapsed_since "$t0")
    ok "bob's azid fetch fails at once: $t_fetch s (< $REFUSE_LIMIT s)" below "$t_fetch" "$REFUSE_LIMIT"
    ok "bob's azid fetch names the lockdown" file_has "$E2E_TMP/out/bob.err" "azid lockdown is on"
    ok "bob's azid fetch points to azid token" file_has "$E2E_TMP/out/bob.err" "azid token"
    ok "nobody is refused too" tcp_refused nobody

    # Logins: pam_azid (root, in sshd) still gets what the policy grants.
    e2e_start_sshd
    o=$E2E_TMP/out/login-bob
    e2e_ssh bob "keyctl pipe '%user:azid:token:$R1' >$o/key; azid token '$R1' >$o/token
        azid fetch -r '$R1' >/dev/null 2>$o/fetch.err; echo \$? >$o/fetch.rc
        /usr/bin/python3 $E2E_TMP/sdk.py >$o/sdk 2>$o/sdk.err" || true
    ok "bob (granted $R1, refused by the lockdown): his login stored the token IMDS issued" \
        e2e_logs issued "$E2E_EMU_LOG" "$R1" "$o/key"
    ok "bob's azid token prints it" cmp -s "$o/token" <(cat "$o/key"; echo)
    ok "bob's azid fetch in his login is refused, naming the lockdown" \
        bash -c '[ "$(cat "$0/fetch.rc")" = 3 ] && grep -q "azid lockdown is on" "$0/fetch.err"' "$o"
    ok "bob's Python SDK credential of README.md gets the same token through azid token" \
        cmp -s "$o/sdk" "$o/token"
    [ -s "$o/sdk.err" ] && sed 's/^/# sdk: /' "$o/sdk.err"
    o=$E2E_TMP/out/login-dave
    e2e_ssh dave "azid token '$R1' >$o/token 2>$o/token.err; echo \$? >$o/token.rc
        keyctl search @s user 'azid:token:$R1' >/dev/null 2>&1 && echo has-key >$o/key || echo no-key >$o/key
        bash -c 'exec 3<>/dev/tcp/169.254.169.254/80' 2>$o/tcp" || true
    ok "dave (granted nothing): his login stored no token" grep -qx no-key "$o/key"
    ok "dave's azid token has nothing (exit 1)" bash -c '[ "$(cat "$0/token.rc")" = 1 ] && [ ! -s "$0/token" ]' "$o"
    ok "dave cannot ask IMDS himself either" grep -q 'Connection refused' "$o/tcp"

    # The broker: its fetcher runs as _azid, which the lockdown lets through.
    "$top_builddir/azidd/azidd" --stderr 2>"$E2E_TMP/azidd.log" &
    azidd_pid=$!
    e2e_wait_for test -S /run/azid/azidd.sock || e2e_fail "azidd did not start: $(cat "$E2E_TMP/azidd.log")"
    before=$(e2e_logs count "$E2E_EMU_LOG" issued)
    o=$E2E_TMP/out/login-bob
    e2e_ssh bob "keyctl pipe '%user:azid:token:$R1' >$o/broker-key
        keyctl invalidate \$(keyctl search @s user 'azid:token:$R1')
        azid token '$R1' >$o/broker-token 2>$o/broker-token.err" || true
    ok "with the broker, bob's login stored a token IMDS issued" \
        e2e_logs issued "$E2E_EMU_LOG" "$R1" "$o/broker-key"
    ok "the broker asked IMDS through the lockdown (as _azid)" \
        [ "$(e2e_logs count "$E2E_EMU_LOG" issued)" -gt "$before" ]
    ok "bob's key gone, azid token gets the token from the broker" \
        cmp -s "$o/broker-token" <(cat "$o/broker-key"; echo)
    o=$E2E_TMP/out/login-dave
    e2e_ssh dave "azid token '$R1' >$o/broker-token 2>$o/broker-token.err; echo \$? >$o/broker-token.rc" || true
    ok "with the broker, dave (granted nothing) still gets nothing" \
        bash -c '[ "$(cat "$0/broker-token.rc")" = 1 ] && [ ! -s "$0/broker-token" ]' "$o"
    kill "$azidd_pid"
    doctor
    ok "doctor, on: says lockdown is on, with the allowed uids" \
        grep -q "^ok *lockdown: on: 169.254.169.254:80 answers only uids 0 (root), $(id -u alice) (alice)" "$E2E_TMP/doctor"
    ok "doctor, on: warns that bob's process is refused" \
        grep -q "^warn *IMDS users: uid $(id -u bob) (bob): sleep (pid $bob_agent) .* lockdown refuses it" "$E2E_TMP/doctor"
    kill "$bob_agent" "$alice_agent"
    as_user bob azid doctor --config "$CONF" --pam-dir "$E2E_TMP/pam.d" >"$E2E_TMP/doctor" 2>&1 || true
    ok "doctor as bob: lockdown on, from the state file" \
        grep -q "^ok *lockdown: on: .* (as /run/azid-lockdown says; root reads the rules)" "$E2E_TMP/doctor"
    ok "root is served" served root
    ok "the broker's user _azid is served" served _azid
    ok "alice (lockdown_allow) is served" served alice
    ok "carol (member of @imdsusers) is served" served carol
    lockdown status >"$E2E_TMP/status"
    cat "$E2E_TMP/status"
    ok "status says on" grep -q '^lockdown: on' "$E2E_TMP/status"
    for u in root _azid alice carol; do
        ok "status lists $u's uid" file_has "$E2E_TMP/status" "$(id -u "$u") ($u)"
    done
    ok "status does not list bob" file_lacks "$E2E_TMP/status" "$(id -u bob) (bob)"
    ok "status says the rules match the config" file_lacks "$E2E_TMP/status" "config:"
    lockdown status --json >"$E2E_TMP/status.json"
    ok "status --json: the same uids, no source, config applied" file_has "$E2E_TMP/status.json" \
        "{\"lockdown\":\"on\",\"allowed_uids\":[$(printf '%s\n' 0 "$(id -u _azid)" "$(id -u alice)" "$(id -u carol)" |
            sort -n | paste -sd,)],\"allowed_sources\":[],\"config_applied\":true}"

    # A config change: status says the rules lag behind; on applies it.
    set_allow "@imdsusers"
    lockdown status >"$E2E_TMP/status"
    ok "after a config change status says to run on again" \
        grep -q "^config: .* now allows others; run 'azid lockdown on'" "$E2E_TMP/status"
    doctor
    ok "after a config change doctor says to run on again" \
        grep -q "^warn *lockdown: .* now allows others than the rules do; run 'azid lockdown on'" "$E2E_TMP/doctor"
    lockdown on >/dev/null
    ok "after on, alice (no longer allowed) is refused" tcp_refused alice
    ok "after on, carol is still served" served carol
    nft list set inet azid allowed_uids >"$E2E_TMP/set"
    ok "the stale rules of before are gone (on replaced the table)" file_lacks "$E2E_TMP/set" "$(id -u alice)"

    # Refusals, each leaving the rules as they were.
    r1=$(ruleset)
    ok "not root: lockdown on is refused (exit 1)" exit_is 1 as_user bob azid lockdown on 2>"$E2E_TMP/out/notroot.err"
    ok "not root: the message says root" file_has "$E2E_TMP/out/notroot.err" "only root"
    set_allow "alice"
    chmod 666 "$CONF"
    ok "an unsafe config: on fails (exit 1)" exit_is 1 lockdown on 2>"$E2E_TMP/out/unsafe.err"
    ok "an unsafe config: the message names the file" file_has "$E2E_TMP/out/unsafe.err" "$CONF"
    ok "an unsafe config: the message says nothing changed" file_has "$E2E_TMP/out/unsafe.err" "nothing changed"
    chmod 644 "$CONF"
    printf 'lockdown_allow = 10.0.0.0/99\n' >"$CONF"
    ok "a malformed lockdown_allow: on fails (exit 1)" exit_is 1 lockdown on 2>"$E2E_TMP/out/bad.err"
    ok "a malformed lockdown_allow: the message names the line" file_has "$E2E_TMP/out/bad.err" ":1: lockdown_allow"
    set_allow "alice"
    mount --bind /dev/null "$(command -v nft)"
    ok "nft missing: on fails (exit 1)" exit_is 1 lockdown on 2>"$E2E_TMP/out/nonft.err"
    umount "$(command -v nft)"
    ok "nft missing: the message says to install nftables" file_has "$E2E_TMP/out/nonft.err" "install the nftables package"
    ok "the refused commands changed no rule" [ "$(ruleset)" = "$r1" ]

    # The rules flushed behind azid's back (nftables.service restarting):
    # the state file stays, but azid fetch does not blame the lockdown.
    nft delete table inet azid
    ok "rules gone but state file left: bob's azid fetch is served" served bob
    doctor
    ok "rules gone but state file left: doctor says something removed them" \
        grep -q "^warn *lockdown: off, though /run/azid-lockdown says" "$E2E_TMP/doctor"
    set_allow "@imdsusers"
    lockdown on >/dev/null

    # Forwarded traffic: refused, then allowed by its source.
    forward_up
    ok "the endpoint beyond the VM: root is served through the route" served root
    ok "the endpoint beyond the VM: bob is refused" tcp_refused bob
    t0=$EPOCHREALTIME
    ok "forwarded: the container's connection is reset" ctr_refused
    t_ctr=$(e2e_elapsed_since "$t0")
    ok "forwarded: the reset comes at once: $t_ctr s (< $REFUSE_LIMIT s)" below "$t_ctr" "$REFUSE_LIMIT"
    set_allow "@imdsusers,10.9.0.77/24"
    lockdown on >/dev/null
    ok "forwarded: with 10.9.0.77/24 in lockdown_allow the container is served" ctr_served
    lockdown status >"$E2E_TMP/status"
    ok "status names the allowed source as nft keeps it (10.9.0.0/24)" \
        grep -qx 'forwarded traffic allowed from: 10.9.0.0/24' "$E2E_TMP/status"
    lockdown status --json >"$E2E_TMP/status.json"
    ok "status --json: the source, and the rules match the config" \
        file_has "$E2E_TMP/status.json" '"allowed_sources":["10.9.0.0/24"],"config_applied":true}'
    set_allow "@imdsusers,10.9.0.3"
    lockdown on >/dev/null
    ok "forwarded: another address allowed, the container is refused again" ctr_refused

    # Off.
    lockdown off >/dev/null
    ok "off: bob is served again" served bob
    ok "off: the container is served again" ctr_served
    nft list ruleset >"$E2E_TMP/ruleset"
    ok "off: no azid table or rule is left" file_lacks "$E2E_TMP/ruleset" azid
    ok "off: the admin's own table is untouched" [ "$(nft list table ip admin_keep)" = "$keep" ]
    lockdown status >"$E2E_TMP/status"
    ok "off: status says off" grep -q '^lockdown: off' "$E2E_TMP/status"
    ok "off: the state file is gone" [ ! -e /run/azid-lockdown ]
    ok "off twice is fine" lockdown off

    echo "# refusal: plain TCP $t_tcp s, azid fetch $t_fetch s"
    if [ "$failures" -gt 0 ]; then
        e2e_dump_logs
        exit 1
    fi
    exit 0
}

# ---- on the host -----------------------------------------------------------------
outside() {
    local tool rc=0 next=62200 uid u
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root (namespaces, nftables)"
        exit 77
    fi
    if ! e2e_can_unshare; then
        echo "SKIP: cannot create mount+network+PID namespaces here; not touching the host's network"
        exit 77
    fi
    for tool in nft setpriv python3; do
        command -v "$tool" >/dev/null || e2e_fail "$tool is missing (Debian: nftables util-linux python3)"
    done
    local host_rules
    host_rules=$(nft list ruleset 2>/dev/null | sha256sum)

    E2E_USERS="alice bob dave"
    e2e_prepare "" ""
    # What each user gets is the config file's (set_allow), no Key Vault.
    sed -i 's| secret=[^ ]*|| ; s| ca_file=[^ ]*||' "$E2E_TMP/pam.d/sshd"
    # The broker's user, a user in a lockdown_allow @group, nobody's group.
    printf 'imdsusers:x:%s:carol\n' "$(e2e_free_id 62190)" >>"$E2E_TMP/etc/group"
    for u in _azid carol; do
        uid=$(e2e_free_id "$next")
        next=$((uid + 1))
        printf '%s:x:%s:%s::/nonexistent:/usr/sbin/nologin\n' "$u" "$uid" "$uid" >>"$E2E_TMP/etc/passwd"
        printf '%s:x:%s:\n' "$u" "$uid" >>"$E2E_TMP/etc/group"
    done
    e2e_enter "$0" --inside || rc=$?
    e2e_cleanup
    ok "the host's ruleset is unchanged" [ "$(nft list ruleset 2>/dev/null | sha256sum)" = "$host_rules" ]
    [ "$rc" = 0 ] && [ "$failures" = 0 ]
}

if [ "${1:-}" = --inside ]; then inside; else outside; fi
