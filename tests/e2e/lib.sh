# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# A throwaway "Azure VM" for end-to-end runs, shared by tests/e2e/test_sshd.sh
# and scripts/demo: a real sshd on 127.0.0.1 with pam_azid in its session
# stack, the IMDS emulator at 169.254.169.254:80, a Key Vault emulator
# (HTTPS, throwaway CA) answering as v1.vault.azure.net, and test users
# alice and bob, all inside private mount, network and PID namespaces.
# The host is never changed: every file sshd, PAM and the users see is a
# bind mount or a tmpfs of this namespace, and the namespace (every process
# in it) dies when its first process exits.
#
# Use from bash, as root:
#   . tests/e2e/lib.sh                  # needs top_srcdir, top_builddir
#   e2e_prepare "$resources" "$pam_args"  # host side: temp dir, users, keys, configs
#   e2e_enter "$0" --inside             # runs "$0 --inside" in the namespaces
# and in that inner run:
#   e2e_ns_up; e2e_start_emulator; e2e_start_keyvault; e2e_start_sshd
#   e2e_ssh alice 'keyctl show @s'
# e2e_prepare sets a trap that removes the temp dir; callers with their own
# EXIT trap call e2e_cleanup from it.

: "${top_srcdir:?tests/e2e/lib.sh needs top_srcdir}" "${top_builddir:?tests/e2e/lib.sh needs top_builddir}"

E2E_SSH_PORT=2222
E2E_IMDS_ADDR=169.254.169.254
E2E_AZURE_ASSET_TAG=7783-7084-3265-9085-8269-3286-77
E2E_USERS=${E2E_USERS:-"alice bob"}
E2E_VAULT_HOST=v1.vault.azure.net
E2E_SECRET_NAME=db
E2E_SECRET_URL=https://$E2E_VAULT_HOST/secrets/$E2E_SECRET_NAME
# Bounds of every wait loop below: tries x 0.05 s.
E2E_WAIT_TRIES=200
# Bound of one ssh login (seconds), should a login hang.
E2E_SSH_LIMIT=30
# Most concurrent logins e2e_burst starts (sshd's MaxStartups allows them).
E2E_BURST_MAX=200

# The interpreter itself, resolved once: python3 may be a slow wrapper
# (pyenv shims) and the run starts it a dozen times.
: "${E2E_PYTHON:=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)}"
export E2E_PYTHON

e2e_fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# The tests' assertions: ok DESCRIPTION COMMAND... counts a failure in
# $failures (the test's exit status), it does not stop the test.
failures=0
ok() {
    local what=$1
    shift
    if "$@"; then
        echo "ok - $what"
    else
        echo "FAIL - $what"
        failures=$((failures + 1))
    fi
}
# X Y: the number X is below Y.
below() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x < y) }'; }

# Seconds (two decimals) since $1, an earlier $EPOCHREALTIME.
e2e_elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# The median of the numbers given.
e2e_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The host files a test must not change.
e2e_host_state() {
    find /etc/pam.d /etc/passwd /etc/group /etc/shadow /etc/nsswitch.conf /etc/ld.so.cache /etc/ssh \
        -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum
    ls -l /etc/azid.conf 2>&1 || true
}
# Processes whose command line names the temp dir (sshd, emulator, ...).
e2e_processes_naming() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *"$1"* ]] && echo "${p#/proc/}: $cmd"
    done
    return 0
}

# True when this machine lets us create the namespaces the run needs.
e2e_can_unshare() {
    [ "$(id -u)" = 0 ] || return 1
    command -v unshare >/dev/null && command -v ip >/dev/null || return 1
    unshare --mount --net --pid --fork --mount-proc \
        sh -c 'mount --make-rprivate / && ip link set lo up' >/dev/null 2>&1
}

# Polls "$@" every 0.05 s until it succeeds; fails after E2E_WAIT_TRIES tries.
e2e_wait_for() {
    local i
    for ((i = 0; i < E2E_WAIT_TRIES; i++)); do
        "$@" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# A uid (and gid) free on the host, so that the kernel's per-uid keyrings
# and key quota of the test users are nobody else's.  $1: first candidate.
e2e_free_id() {
    local id=$1
    while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null; do
        id=$((id + 1))
    done
    echo "$id"
}

# Host side.  $1: resources for pam_azid (space-separated), $2: any further
# module arguments; pam_azid also gets secret=$E2E_SECRET_URL (whose value,
# random per run, is $E2E_SECRET_VALUE; not when E2E_NO_SECRET=1) and the CA
# of the Key Vault emulator.  Creates E2E_TMP with everything the namespace
# mounts.  The users' uids are the first free ones from $E2E_UID_BASE
# (default 62100): tests that may run at the same time take different
# bases, as the kernel's keyrings and key quotas of a uid are global.
e2e_prepare() {
    local resources=$1 extra_args=$2 module user uid next=${E2E_UID_BASE:-62100} sshd_line r pki
    module=$top_builddir/.libs/pam_azid.so
    [ -f "$module" ] || e2e_fail "$module is not built; run make first"
    [ -z "${E2E_TMP:-}" ] || e2e_fail "already inside a run ($E2E_TMP); not nesting another"
    E2E_TMP=$(mktemp -d /tmp/azid-e2e.XXXXXX)
    trap e2e_cleanup EXIT
    trap 'exit 143' TERM INT HUP
    # The users' sessions run commands from here; traversable, not writable.
    chmod 755 "$E2E_TMP"
    export E2E_TMP
    mkdir -p "$E2E_TMP"/{etc,etc-overlay,pam.d,ssh,home,keys,run}

    # passwd/group/shadow seen in the namespace: root, sshd's privilege
    # separation user, and the test users (no password: public key only).
    sshd_line=$(getent passwd sshd || echo 'sshd:x:65534:65534::/run/sshd:/usr/sbin/nologin')
    printf 'root:x:0:0:root:/root:/bin/bash\n%s\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
        "$sshd_line" >"$E2E_TMP/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$E2E_TMP/etc/group"
    printf 'root:*:19000:0:99999:7:::\n' >"$E2E_TMP/etc/shadow"
    for user in $E2E_USERS; do
        uid=$(e2e_free_id "$next")
        next=$((uid + 1))
        printf '%s:x:%s:%s:azid e2e %s:%s:/bin/bash\n' "$user" "$uid" "$uid" "$user" \
            "$E2E_TMP/home/$user" >>"$E2E_TMP/etc/passwd"
        printf '%s:x:%s:\n' "$user" "$uid" >>"$E2E_TMP/etc/group"
        printf '%s:*:19000:0:99999:7:::\n' "$user" >>"$E2E_TMP/etc/shadow"
        ssh-keygen -q -t ed25519 -N '' -C "$user@azid-e2e" -f "$E2E_TMP/keys/$user"
        mkdir -p "$E2E_TMP/home/$user/.ssh"
        cp "$E2E_TMP/keys/$user.pub" "$E2E_TMP/home/$user/.ssh/authorized_keys"
        chmod 700 "$E2E_TMP/home/$user/.ssh"
        chown -R "$uid:$uid" "$E2E_TMP/home/$user"
    done
    chmod 640 "$E2E_TMP/etc/shadow"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$E2E_TMP/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "$E2E_VAULT_HOST" >"$E2E_TMP/etc/hosts"

    # Key Vault: a server certificate for *.vault.azure.net from a throwaway
    # CA (tests/lib/kvtest.py), and a secret value no log may ever show.
    pki=$("$E2E_PYTHON" -B - "$top_srcdir/tests/lib" "$E2E_TMP" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import kvtest
pki = kvtest.Pki(sys.argv[2])
print(" ".join(pki.server("ca", ["*.vault.azure.net"]) + (pki.ca("ca")[0],)))
EOF
) || e2e_fail "could not make the Key Vault test certificates (openssl)"
    read -r E2E_KV_CERT E2E_KV_KEY E2E_KV_CA <<<"$pki"
    E2E_SECRET_VALUE=e2e-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    export E2E_KV_CERT E2E_KV_KEY E2E_KV_CA E2E_SECRET_VALUE
    # pam_azid reads no host config: an explicit one, $E2E_AZID_CONF or
    # empty, which is also /etc/azid.conf inside the namespace.
    printf '# azid e2e\n%s' "${E2E_AZID_CONF:-}" >"$E2E_TMP/etc/azid.conf"
    chmod 644 "$E2E_TMP/etc/azid.conf"

    # The PAM stack: public-key logins only (auth denies everything else),
    # then the keyring pam_azid needs, then pam_azid itself.
    local args=""
    for r in $resources; do args+=" resource=$r"; done
    [ "${E2E_NO_SECRET:-0}" = 1 ] || args+=" secret=$E2E_SECRET_URL ca_file=$E2E_KV_CA"
    cat >"$E2E_TMP/pam.d/sshd" <<EOF
auth     required pam_deny.so
account  required pam_unix.so
session  required pam_unix.so
session  optional pam_keyinit.so force revoke
session  optional $module config=$E2E_TMP/etc/azid.conf$args $extra_args
password required pam_deny.so
EOF
    printf 'auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\npassword required pam_deny.so\n' \
        >"$E2E_TMP/pam.d/other"

    ssh-keygen -q -t ed25519 -N '' -f "$E2E_TMP/ssh/host_ed25519_key"
    # Known in advance, so that concurrent logins do not all write it.
    printf '[127.0.0.1]:%s %s\n' "$E2E_SSH_PORT" "$(cut -d' ' -f1,2 "$E2E_TMP/ssh/host_ed25519_key.pub")" \
        >"$E2E_TMP/known_hosts"
    # MaxStartups: sshd drops unauthenticated connections beyond 10 by
    # default; e2e_burst opens up to E2E_BURST_MAX at once.
    cat >"$E2E_TMP/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1:$E2E_SSH_PORT
MaxStartups $((E2E_BURST_MAX + 10))
HostKey $E2E_TMP/ssh/host_ed25519_key
PidFile none
UsePAM yes
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $E2E_USERS
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
LogLevel VERBOSE
EOF
    e2e_stage_cli
}

# The azid command for the test users, and azidd.  libtool's wrappers in
# the build tree are for the build's owner, so stage a real install of the
# library and the programs (make install-... DESTDIR=; the rest of `make
# install` is not needed here) and, inside the namespace, lay its bin/,
# sbin/ and lib/ over /usr/local/bin, /usr/local/sbin and /usr/local/lib
# (read-only overlays) with a private ld.so.cache: the users run `azid`
# from the default PATH exactly as after a package install, with no
# LD_LIBRARY_PATH.
e2e_stage_cli() {
    local bin sbin lib
    [ -x "$top_builddir/azid" ] || e2e_fail "$top_builddir/azid is not built; run make first"
    # A make of its own, not a job of the make check that may be running us.
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top_builddir" install-libLTLIBRARIES install-binPROGRAMS \
        install-sbinPROGRAMS DESTDIR="$E2E_TMP/stage" >"$E2E_TMP/stage.log" 2>&1 ||
        e2e_fail "staging azid into $E2E_TMP/stage failed: $(tail -n 5 "$E2E_TMP/stage.log")"
    bin=$(find "$E2E_TMP/stage" -path '*/bin/azid' -type f | head -n 1)
    sbin=$(find "$E2E_TMP/stage" -path '*/sbin/azidd' -type f | head -n 1)
    lib=$(find "$E2E_TMP/stage" -name 'libazid.so.0' | head -n 1)
    if [ -z "$bin" ] || [ -z "$sbin" ] || [ -z "$lib" ]; then
        e2e_fail "staging installed no bin/azid, sbin/azidd or libazid.so.0 (see $E2E_TMP/stage.log)"
    fi
    ln -s "$(dirname "$bin")" "$E2E_TMP/stage/bindir"
    ln -s "$(dirname "$sbin")" "$E2E_TMP/stage/sbindir"
    ln -s "$(dirname "$lib")" "$E2E_TMP/stage/libdir"
}

# Ends the namespace if it still runs, removes the temp dir; safe to call
# more than once.
e2e_cleanup() {
    if [ -n "${E2E_NS_PID:-}" ] && kill -0 "$E2E_NS_PID" 2>/dev/null; then
        kill -KILL "$E2E_NS_PID" 2>/dev/null   # unshare; --kill-child takes the rest
        wait "$E2E_NS_PID" 2>/dev/null || true
    fi
    if [ -n "${E2E_TMP:-}" ] && [ -d "$E2E_TMP" ]; then
        rm -rf "$E2E_TMP"
    fi
}

# Runs `bash "$@"` in new mount, network and PID namespaces and returns its
# exit status.  Every process of the namespace dies when it ends, when
# unshare dies (--kill-child kills the namespace's init, `timeout`), or
# after $E2E_NS_LIMIT seconds.
e2e_enter() {
    local rc=0
    unshare --mount --net --pid --fork --mount-proc --kill-child -- \
        timeout -s KILL "${E2E_NS_LIMIT:-120}" bash "$@" &
    E2E_NS_PID=$!
    wait "$E2E_NS_PID" || rc=$?
    E2E_NS_PID=
    return "$rc"
}

# ---- inside the namespaces ---------------------------------------------------

# Makes this namespace the throwaway VM.
e2e_ns_up() {
    local d
    mount --make-rprivate /
    ip link set lo up
    ip addr add "$E2E_IMDS_ADDR/32" dev lo

    # /run: sshd's privilege separation directory, utmp; nothing of the host.
    mount -t tmpfs -o mode=755 e2e-run /run
    mkdir -m 755 /run/sshd
    # Login records some code paths write; keep them in the temp dir.
    for d in /var/log/wtmp /var/log/btmp /var/log/lastlog; do
        if [ -f "$d" ]; then
            : >"$E2E_TMP/run/${d##*/}"
            mount --bind "$E2E_TMP/run/${d##*/}" "$d"
        fi
    done

    # /etc: an overlay whose writes stay in this namespace, so that files
    # the host lacks (/etc/azid.conf, read by azidd and the CLI) can exist.
    mount -t tmpfs -o mode=700 e2e-etc "$E2E_TMP/etc-overlay"
    mkdir "$E2E_TMP/etc-overlay/upper" "$E2E_TMP/etc-overlay/work"
    mount -t overlay -o "lowerdir=/etc,upperdir=$E2E_TMP/etc-overlay/upper,workdir=$E2E_TMP/etc-overlay/work" \
        e2e-etc /etc
    : >/etc/azid.conf
    # Users, PAM stack, name service, azid's policy: the test's copies.
    for d in passwd group shadow nsswitch.conf hosts azid.conf; do
        mount --bind "$E2E_TMP/etc/$d" "/etc/$d"
    done
    mount --bind "$E2E_TMP/pam.d" /etc/pam.d

    e2e_ns_dev
    e2e_ns_dmi
    # On an Arc-enabled host pam_azid would pick the Arc agent over IMDS.
    if [ -d /opt/azcmagent ]; then
        mount -t tmpfs -o mode=755 e2e-noarc /opt/azcmagent
    fi

    # The staged azid (see e2e_stage_cli).
    mount -t overlay -o "lowerdir=$E2E_TMP/stage/bindir:/usr/local/bin" e2e-bin /usr/local/bin
    mount -t overlay -o "lowerdir=$E2E_TMP/stage/sbindir:/usr/local/sbin" e2e-sbin /usr/local/sbin
    mount -t overlay -o "lowerdir=$E2E_TMP/stage/libdir:/usr/local/lib" e2e-lib /usr/local/lib
    printf '/usr/local/lib\ninclude /etc/ld.so.conf\n' >"$E2E_TMP/ld.so.conf"
    ldconfig -X -f "$E2E_TMP/ld.so.conf" -C "$E2E_TMP/ld.so.cache"
    mount --bind "$E2E_TMP/ld.so.cache" /etc/ld.so.cache
}

# A private /dev with the usual nodes and a /dev/log socket that collects
# syslog (pam_azid logs through pam_syslog) into $E2E_TMP/syslog.
e2e_ns_dev() {
    local n
    mount -t tmpfs -o mode=755,nosuid e2e-dev /dev
    while read -r n major minor; do
        mknod -m 666 "/dev/$n" c "$major" "$minor"
    done <<'EOF'
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
EOF
    mkdir -m 755 /dev/pts
    mkdir -m 1777 /dev/shm
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 e2e-devpts /dev/pts
    ln -s pts/ptmx /dev/ptmx
    ln -s /proc/self/fd /dev/fd
    ln -s /proc/self/fd/0 /dev/stdin
    ln -s /proc/self/fd/1 /dev/stdout
    ln -s /proc/self/fd/2 /dev/stderr
    : >"$E2E_TMP/syslog"
    "$E2E_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[2], "w").close()
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' "$E2E_TMP/syslog" "$E2E_TMP/syslog.ready" &
    e2e_wait_for test -e "$E2E_TMP/syslog.ready" || e2e_fail "the /dev/log collector did not start"
}

# Makes the namespace look like an Azure VM to pam_azid's auto-detection:
# the DMI chassis asset tag Azure sets (SPEC "Off Azure").  /sys/class/dmi
# is covered by a tmpfs, or /sys/class when this machine has no DMI at all
# (nothing in the namespace needs the rest of /sys/class).
e2e_ns_dmi() {
    local where=/sys/class
    [ -d /sys/class/dmi ] && where=/sys/class/dmi
    mount -t tmpfs -o mode=755 e2e-dmi "$where"
    mkdir -p /sys/class/dmi/id
    e2e_set_asset_tag "$E2E_AZURE_ASSET_TAG"
    echo 'Microsoft Corporation' >/sys/class/dmi/id/sys_vendor
    echo 'Virtual Machine' >/sys/class/dmi/id/product_name
}

e2e_set_asset_tag() { echo "$1" >/sys/class/dmi/id/chassis_asset_tag; }

# Starts the emulator at 169.254.169.254:80; "$@" are extra emulator options.
e2e_start_emulator() {
    E2E_EMU_LOG=$E2E_TMP/imds.log
    "$E2E_PYTHON" "$top_srcdir/tests/emulator/imds.py" --bind "$E2E_IMDS_ADDR" --port 80 \
        --port-file "$E2E_TMP/imds.port" --log "$E2E_EMU_LOG" "$@" 2>"$E2E_TMP/imds.stderr" &
    e2e_wait_for test -s "$E2E_TMP/imds.port" ||
        e2e_fail "the emulator did not start: $(cat "$E2E_TMP/imds.stderr")"
}

# Starts the Key Vault emulator as https://$E2E_VAULT_HOST (127.0.0.1:443).
# It accepts only bearer tokens the IMDS emulator issued for the vault
# audience (--imds-log), so start it after e2e_start_emulator.
e2e_start_keyvault() {
    E2E_KV_LOG=$E2E_TMP/keyvault.log
    "$E2E_PYTHON" "$top_srcdir/tests/emulator/keyvault.py" --bind 127.0.0.1 --port 443 \
        --port-file "$E2E_TMP/keyvault.port" --log "$E2E_KV_LOG" --imds-log "$E2E_EMU_LOG" \
        --cert "$E2E_KV_CERT" --key "$E2E_KV_KEY" --secret "$E2E_SECRET_NAME=$E2E_SECRET_VALUE" \
        2>"$E2E_TMP/keyvault.stderr" &
    e2e_wait_for test -s "$E2E_TMP/keyvault.port" ||
        e2e_fail "the Key Vault emulator did not start: $(cat "$E2E_TMP/keyvault.stderr")"
}

# Replaces the emulator's fault queue: e2e_set_faults '["hang", "hang"]'.
e2e_set_faults() {
    "$E2E_PYTHON" - "$1" <<'EOF' || e2e_fail "could not set emulator faults $1"
import sys, urllib.request
req = urllib.request.Request("http://169.254.169.254/_emulator/faults", data=sys.argv[1].encode(),
                             method="POST", headers={"Content-Type": "application/json"})
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()
EOF
}

# Starts sshd (foreground mode in the background, logging to
# $E2E_TMP/sshd.log) and waits until it accepts connections.  Its
# environment is the bare one of a service, plus proxy variables pointing
# nowhere: pam_azid runs inside sshd, and SPEC says the identity endpoint
# is never reached through an environment proxy.
e2e_start_sshd() {
    local sshd
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    "$sshd" -t -f "$E2E_TMP/ssh/sshd_config" || e2e_fail "sshd rejects $E2E_TMP/ssh/sshd_config"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        http_proxy=http://127.0.0.9:9 HTTPS_PROXY=http://127.0.0.9:9 ALL_PROXY=http://127.0.0.9:9 \
        "$sshd" -D -e -f "$E2E_TMP/ssh/sshd_config" 2>"$E2E_TMP/sshd.log" &
    e2e_wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$E2E_SSH_PORT" ||
        e2e_fail "sshd did not start listening: $(cat "$E2E_TMP/sshd.log")"
}

# Starts the broker as its unit does: /usr/local/sbin/azidd (staged) as
# root with a service's bare environment, listening on the socket of SPEC
# (/run/azid/azidd.sock, in this namespace's /run) and logging to syslog
# ($E2E_TMP/syslog); its stderr goes to $E2E_TMP/azidd.log.  Returns once
# it accepts connections (a killed one leaves its socket file behind).
e2e_start_broker() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /usr/local/sbin/azidd \
        </dev/null >>"$E2E_TMP/azidd.log" 2>&1 &
    E2E_BROKER_PID=$!
    e2e_wait_for "$E2E_PYTHON" -c 'import socket; socket.socket(socket.AF_UNIX).connect("/run/azid/azidd.sock")' ||
        e2e_fail "azidd did not listen on /run/azid/azidd.sock: $(tail -n 5 "$E2E_TMP/azidd.log")"
}

# Kills the broker (SIGKILL: no chance to clean up, as in a crash).
e2e_kill_broker() {
    kill -KILL "$E2E_BROKER_PID" 2>/dev/null || true
    wait "$E2E_BROKER_PID" 2>/dev/null || true
}

# Black-holes the IMDS address (packets to it vanish, as off Azure or
# with a dead endpoint) with nftables in this network namespace, and
# restores it.
e2e_blackhole_imds() {
    nft -f - <<EOF || e2e_fail "nft could not black-hole $E2E_IMDS_ADDR"
table inet e2e_blackhole {
    chain out { type filter hook output priority 0; ip daddr $E2E_IMDS_ADDR drop; }
}
EOF
}
e2e_restore_imds() { nft delete table inet e2e_blackhole || e2e_fail "nft could not restore $E2E_IMDS_ADDR"; }

# e2e_ssh USER COMMAND: one real login of USER running COMMAND (stdout and
# stderr pass through; the exit status is the command's, 124 when the login
# took longer than E2E_SSH_LIMIT).
e2e_ssh() {
    local user=$1
    shift
    timeout -k 2 "$E2E_SSH_LIMIT" ssh -F /dev/null -p "$E2E_SSH_PORT" -i "$E2E_TMP/keys/$user" \
        -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
        -o UserKnownHostsFile="$E2E_TMP/known_hosts" -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes -o LogLevel=ERROR -o ConnectTimeout="$E2E_SSH_LIMIT" \
        "$user@127.0.0.1" "$@" </dev/null
}

# e2e_burst USER N DIR COMMAND: N (at most E2E_BURST_MAX) concurrent
# logins of USER, all started at once; login I runs COMMAND with $1 = I,
# its output goes to DIR/I.out and its exit status (e2e_ssh's) to DIR/I.rc.
# Returns when every login has ended, each within E2E_SSH_LIMIT.  The ssh
# clients stand for other machines: they run at a low priority (nice 10), so
# that the VM's side (sshd, PAM, the broker) gets the CPU it would have.
e2e_burst() {
    local user=$1 n=$2 dir=$3 cmd=$4 i pids=()
    [ "$n" -le "$E2E_BURST_MAX" ] || e2e_fail "e2e_burst: $n logins is more than $E2E_BURST_MAX"
    for ((i = 1; i <= n; i++)); do
        (
            renice -n 10 -p "$BASHPID" >/dev/null
            rc=0
            e2e_ssh "$user" "set -- $i; $cmd" >"$dir/$i.out" 2>&1 || rc=$?
            echo "$rc" >"$dir/$i.rc"
        ) &
        pids+=("$!")
    done
    wait "${pids[@]}" || true
}

# Prints the logs of sshd, syslog (PAM) and the emulator's requests, for
# a failure report.
e2e_dump_logs() {
    local f
    for f in sshd.log syslog azidd.log imds.stderr keyvault.stderr keyvault.log; do
        [ -s "$E2E_TMP/$f" ] || continue
        echo "---- $f"
        tail -n 40 "$E2E_TMP/$f"
    done
    if [ -s "$E2E_TMP/imds.log" ]; then
        echo "---- IMDS emulator requests"
        e2e_logs show "$E2E_TMP/imds.log"
    fi
}

# Ends the inside run of a test script: 1, after the logs, when an
# assertion failed; else 0.
e2e_inside_end() {
    if [ "$failures" -gt 0 ]; then
        e2e_dump_logs
        exit 1
    fi
    exit 0
}

# The host side of a test script: skips (77) without root or namespaces,
# fails without one of the TOOLs, runs "$0 --inside" in namespaces made
# with e2e_prepare RESOURCES ARGS, then checks that the run left nothing
# on the host.  e2e_outside RESOURCES ARGS TOOL...
e2e_outside() {
    local resources=$1 args=$2 tool host_before start tmp rc=0 leftover
    shift 2
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root (sshd, namespaces, bind mounts)"
        exit 77
    fi
    if ! e2e_can_unshare; then
        echo "SKIP: cannot create mount+network+PID namespaces here (unshare -m -n -p);" \
            "not falling back to the host network"
        exit 77
    fi
    for tool in "$@"; do
        command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null ||
            e2e_fail "$tool is missing (Debian: openssh-server openssh-client keyutils python3 util-linux nftables)"
    done
    host_before=$(e2e_host_state)

    start=$EPOCHREALTIME
    e2e_prepare "$resources" "$args"
    tmp=$E2E_TMP
    e2e_enter "$0" --inside || rc=$?

    leftover=$(e2e_processes_naming "$tmp")
    e2e_cleanup
    ok "no process of the run is left on the host${leftover:+: $leftover}" [ -z "$leftover" ]
    ok "the temp dir is removed" [ ! -e "$tmp" ]
    ok "the host's /etc/pam.d, passwd, group, shadow, ssh, ld.so.cache, azid.conf are unchanged" \
        [ "$(e2e_host_state)" = "$host_before" ]
    echo "# total: $(e2e_elapsed_since "$start") s"
    [ "$rc" = 0 ] && [ "$failures" = 0 ]
}

# Questions about the emulators' logs: tests/e2e/logs.py.
e2e_logs() { "$E2E_PYTHON" "$top_srcdir/tests/e2e/logs.py" "$@"; }
