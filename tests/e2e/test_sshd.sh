#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End to end: real ssh logins into a real sshd whose PAM session stack runs
# pam_azid, on a namespace that looks like an Azure VM (DMI asset tag, IMDS
# emulator at 169.254.169.254:80 on its loopback).  What a user sees:
#   - the login shell reads the exact tokens IMDS issued and the Key Vault
#     secret from its session keyring (keyctl pipe %user:azid:token:R), and
#     `azid token`/`azid secret`/`azid list` agree; the keys are the user's,
#     with the permissions and timeouts of SPEC;
#   - another user cannot read it, nor can the same uid outside the login;
#     logout removes it;
#   - off Azure (other asset tag) a login makes no request and stores nothing;
#   - with IMDS hanging, the login still completes within the timeout= budget
#     and stores nothing;
#   - no token or secret value appears in syslog or sshd's log;
#   - afterwards nothing is left on the host.
# Needs root and namespaces (unshare); skips (77) otherwise.
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
TIMEOUT=2        # pam_azid timeout= (seconds)
LIFETIME=600     # token lifetime the emulator issues (seconds)
HANG_LIMIT=8     # a login with IMDS hanging must return within this (seconds)

# ---- assertions (ok, below: lib.sh) ---------------------------------------------

e2e_logs_says() { e2e_logs "$@" >/dev/null; }   # a yes/no question to logs.py
# FILE VALUE: FILE holds exactly VALUE.
file_is() { cmp -s "$1" <(printf '%s' "$2"); }
# FILE STRING...: FILE contains every STRING.
file_has_all() {
    local f=$1 x
    shift
    for x in "$@"; do grep -qF -- "$x" "$f" || return 1; done
}

# A key description from keyctl rdescribe, "type;uid;gid;perm;description".
desc_field() { cut -d';' -f"$2" "$1" 2>/dev/null; }
# SPEC: possessor view/read/search, owner view only, group and other nothing.
perm_is_spec() {
    local hex p
    hex=$(desc_field "$1" 4) && [[ $hex =~ ^[0-9a-f]{8}$ ]] || return 1
    p=$((16#$hex))
    (( (p >> 24 & 0x0b) == 0x0b && (p >> 16 & 0xff) == 0x01 && (p & 0xffff) == 0 ))
}
# The key's remaining time in /proc/keys ("9m", "59s") is at most LIFETIME.
timeout_within_lifetime() {
    local t
    t=$(awk '{ print $4 }' "$1" | head -n 1)
    case $t in
        *s) [ "${t%s}" -le "$LIFETIME" ] ;;
        *m) [ "${t%m}" -le $((LIFETIME / 60)) ] ;;
        *) false ;;
    esac
}
uid_of() { id -u "$1"; }
# USER CMD...: runs CMD as USER's uid and gid, but not in USER's login (it
# does not possess that login's session keyring).
as_user_outside_login() {
    local u
    u=$(uid_of "$1")
    shift
    setpriv --reuid="$u" --regid="$u" --clear-groups "$@"
}
# USER SERIAL: the owner may view the key, not read it (SPEC permissions).
owner_views_but_cannot_read() {
    as_user_outside_login "$1" keyctl rdescribe "$2" >/dev/null &&
        ! as_user_outside_login "$1" keyctl pipe "$2" >/dev/null 2>&1
}
# USER SERIAL: the key no longer exists (removed, or revoked with its keyring).
key_gone() { ! as_user_outside_login "$1" keyctl rdescribe "$2" >/dev/null 2>&1; }

# ---- inside the namespaces -----------------------------------------------------
# Commands the users' login shells run: they write what they read into
# $E2E_TMP/out/USER, where the test compares it with the emulator's log.
session_reads_keys() {
    cat <<EOF
set -e
o=$E2E_TMP/out/\$(id -un)
keyctl pipe '%user:azid:token:$R1' >\$o/token1
keyctl pipe '%user:azid:token:$R2' >\$o/token2
keyctl pipe '%user:azid:secret:$E2E_VAULT_HOST/$E2E_SECRET_NAME' >\$o/secret
keyctl rdescribe '%user:azid:token:$R1' >\$o/desc1
keyctl search @s user 'azid:token:$R1' >\$o/serial1
keyctl rdescribe @s >\$o/session
grep ' azid:token:' /proc/keys >\$o/proc_keys
azid token '$R1' >\$o/cli_token1
azid secret '$E2E_SECRET_NAME' >\$o/cli_secret
azid list >\$o/cli_list
azid list --json >\$o/cli_list_json
EOF
}

# login_finds_token USER FILE: USER logs in; FILE gets has-key or no-key, as
# the session keyring holds R1's token or not (or ssh's error).
login_finds_token() {
    e2e_ssh "$1" "keyctl search @s user 'azid:token:$R1' >/dev/null 2>&1 && echo has-key || echo no-key" \
        >"$2" 2>&1 || true
}

inside() {
    local o_alice o_bob t0 alice_pid login_time off_time hang_time serial before log_lines leaked i u
    trap 'echo "FAIL - unexpected error at line $LINENO"; e2e_dump_logs' ERR

    e2e_ns_up
    e2e_start_emulator --lifetime "$LIFETIME"
    e2e_start_keyvault
    e2e_start_sshd
    for u in $E2E_USERS; do
        install -d -m 700 -o "$u" -g "$u" "$E2E_TMP/out/$u"
    done
    o_alice=$E2E_TMP/out/alice
    o_bob=$E2E_TMP/out/bob

    # 1. alice logs in and, while her login stays open, bob logs in too.
    e2e_ssh alice "$(session_reads_keys)
touch \$o/ready
for i in \$(seq 200); do [ -e \$o/release ] && exit 0; sleep 0.1; done
exit 3" >"$E2E_TMP/alice.out" 2>&1 &
    alice_pid=$!
    e2e_wait_for test -e "$o_alice/ready" || { cat "$E2E_TMP/alice.out"; }
    ok "alice's login session ran" test -e "$o_alice/ready"
    ok "alice's shell reads the $R1 token IMDS issued" e2e_logs_says issued "$E2E_EMU_LOG" "$R1" "$o_alice/token1"
    ok "alice's shell reads the $R2 token IMDS issued" e2e_logs_says issued "$E2E_EMU_LOG" "$R2" "$o_alice/token2"
    ok "alice's shell reads the Key Vault secret $E2E_SECRET_URL" file_is "$o_alice/secret" "$E2E_SECRET_VALUE"
    ok "the token requests went straight to 169.254.169.254 the IMDS way (no endpoint=, proxy variables ignored)" \
        e2e_logs_says imds-shaped "$E2E_EMU_LOG"
    ok "Key Vault was asked with a token IMDS issued for the vault audience" \
        e2e_logs_says vault-authorized "$E2E_KV_LOG"
    ok "the key is alice's (uid)" [ "$(desc_field "$o_alice/desc1" 2)" = "$(uid_of alice)" ]
    ok "the key is alice's (gid)" [ "$(desc_field "$o_alice/desc1" 3)" = "$(uid_of alice)" ]
    ok "key permissions: possessor view/read/search, owner view, nothing else" perm_is_spec "$o_alice/desc1"
    ok "the key lives in a session keyring owned by alice" \
        [ "$(desc_field "$o_alice/session" 1)" = keyring -a "$(desc_field "$o_alice/session" 2)" = "$(uid_of alice)" ]
    ok "the key expires no later than the token ($(awk '{print $4}' "$o_alice/proc_keys" | head -n 1))" \
        timeout_within_lifetime "$o_alice/proc_keys"
    ok "alice's 'azid token $R1' prints the same token (and a newline)" \
        file_is "$o_alice/cli_token1" "$(cat "$o_alice/token1")"$'\n'
    ok "alice's 'azid secret $E2E_SECRET_NAME' prints the secret (and a newline)" \
        file_is "$o_alice/cli_secret" "$E2E_SECRET_VALUE"$'\n'
    ok "alice's 'azid list' names both resources and the secret" \
        file_has_all "$o_alice/cli_list" "$R1" "$R2" "$E2E_VAULT_HOST/$E2E_SECRET_NAME"
    ok "alice's 'azid list' names three keys" [ "$(grep -c . "$o_alice/cli_list")" = 3 ]
    ok "alice's 'azid list' shows no value" \
        bash -c '! grep -qF -e "$(cat "$0")" -e "$E2E_SECRET_VALUE" "$1"' "$o_alice/token1" "$o_alice/cli_list"
    ok "every key expires before its token, by at most a small skew ('azid list --json')" \
        e2e_logs_says expiry "$E2E_EMU_LOG" "$o_alice/cli_list_json"

    serial=$(cat "$o_alice/serial1" 2>/dev/null || echo 0)
    ok "alice's uid outside her login sees the key but cannot read it" \
        owner_views_but_cannot_read alice "$serial"

    t0=$EPOCHREALTIME
    e2e_ssh bob "$(session_reads_keys)
keyctl pipe $serial >\$o/stolen 2>\$o/stolen.err || echo \$? >\$o/steal_failed" \
        >"$E2E_TMP/bob.out" 2>&1 || cat "$E2E_TMP/bob.out"
    login_time=$(e2e_elapsed_since "$t0")
    ok "bob's shell reads a $R1 token IMDS issued" e2e_logs_says issued "$E2E_EMU_LOG" "$R1" "$o_bob/token1"
    ok "bob's token is not alice's" bash -c '! cmp -s "$0" "$1"' "$o_bob/token1" "$o_alice/token1"
    ok "bob's key is bob's" [ "$(desc_field "$o_bob/desc1" 2)" = "$(uid_of bob)" ]
    ok "bob cannot read alice's key by its serial ($serial): permission denied" \
        bash -c '[ -e "$0/steal_failed" ] && ! [ -s "$0/stolen" ] && grep -q "Permission denied" "$0/stolen.err"' \
        "$o_bob"
    ok "bob's keyring search does not find alice's key" \
        [ "$(cat "$o_bob/serial1" 2>/dev/null)" != "$serial" ]

    touch "$o_alice/release"
    for ((i = 0; i < 100; i++)); do kill -0 "$alice_pid" 2>/dev/null || break; sleep 0.1; done
    ok "alice's login ended normally" wait "$alice_pid"
    ok "after alice logs out her key is gone (revoked or removed)" e2e_wait_for key_gone alice "$serial"

    # 2. Off Azure (no Azure asset tag): no request, no key.
    before=$(e2e_logs count "$E2E_EMU_LOG")
    e2e_set_asset_tag "None"
    t0=$EPOCHREALTIME
    login_finds_token bob "$E2E_TMP/offazure.out"
    off_time=$(e2e_elapsed_since "$t0")
    e2e_set_asset_tag "$E2E_AZURE_ASSET_TAG"
    ok "off Azure the login gets no key" grep -qx no-key "$E2E_TMP/offazure.out"
    ok "off Azure the login sends no request" [ "$(e2e_logs count "$E2E_EMU_LOG")" = "$before" ]

    # 3. IMDS hangs: the login completes within the budget, without a key.
    e2e_set_faults "[$(printf '"hang",%.0s' $(seq 49))\"hang\"]"
    log_lines=$(wc -l <"$E2E_TMP/syslog")
    t0=$EPOCHREALTIME
    login_finds_token alice "$E2E_TMP/hang.out"
    hang_time=$(e2e_elapsed_since "$t0")
    e2e_set_faults '[]'
    ok "with IMDS hanging the login still runs the command" grep -qx no-key "$E2E_TMP/hang.out"
    ok "with IMDS hanging the login returns in $hang_time s (< $HANG_LIMIT s, timeout=$TIMEOUT)" \
        below "$hang_time" "$HANG_LIMIT"
    ok "the hanging endpoint was tried" [ "$(e2e_logs count "$E2E_EMU_LOG" hang)" -ge 1 ]
    tail -n +"$((log_lines + 1))" "$E2E_TMP/syslog" | grep 'pam_azid' >"$E2E_TMP/hang.syslog" || true
    ok "pam_azid logged the failure, naming alice" grep -q 'alice' "$E2E_TMP/hang.syslog"
    grep -v -e 'setting:' -e ': entry' -e ': exit' "$E2E_TMP/hang.syslog" | sed 's/^<[0-9]*>/# syslog: /' || true

    leaked=$(e2e_logs leaks "$E2E_EMU_LOG" "$E2E_TMP/syslog" "$E2E_TMP/sshd.log")
    ok "no token or secret value appears in syslog or sshd's log${leaked:+: $leaked}" [ -z "$leaked" ]

    echo "# bob's login (two tokens and a secret fetched, keys read, logout): $login_time s;" \
        "off-Azure login: $off_time s; login with IMDS hanging (timeout=$TIMEOUT): $hang_time s"
    e2e_inside_end
}

# ---- on the host -----------------------------------------------------------------
outside() { e2e_outside "$R1 $R2" "timeout=$TIMEOUT debug" sshd ssh ssh-keygen keyctl python3 setpriv; }

# One top-level command, so that nothing after it can run by mistake (bash
# resumes at the next top-level command after an expansion error).
if [ "${1:-}" = --inside ]; then inside; else outside; fi
