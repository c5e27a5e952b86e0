#!/bin/bash
# Installs the built packages the way an admin does ("apt-get install
# ./x.deb ..."), checks what they put where (the _azid account and
# azidd.socket enabled too), logs a user in through the installed PAM stack
# in-process and then through the installed azidd, purges them and checks
# that nothing is left (the _azid account is kept, as Debian does).
#
# Everything happens in a throwaway copy of this machine: an overlay of /
# (upper layer on a tmpfs) in private mount and network namespaces, entered
# with chroot.  The machine's own /etc/pam.d and dpkg database are never
# written (checked byte for byte at the end).  The network namespace has
# only a loopback device, so the installation is shown to need nothing but
# the .debs and packages already installed, and the login talks to the IMDS
# emulator on 127.0.0.1 inside it.
#
# Usage (root): tests/packaging/test_install.sh DIR
#   DIR holds the .debs of one build (tests/packaging/build_debs.sh DIR).
# Exit: 0 pass, 1 fail, 77 skipped (not root, no namespaces or overlayfs).
set -euo pipefail

packages=(libpam-azid libazid0 libazid-dev azid azidd)
inside=/tmp/azid-pkgtest # the test's own files in the throwaway root

skip() { echo "test_install: SKIP: $*"; exit 77; }
die() { echo "test_install: FAIL: $*" >&2; exit 1; }

# ---- on the machine: snapshot, run the rest in namespaces, compare ----------
host_phase() {
    local debdir=${1:?usage: test_install.sh DIR-WITH-DEBS} src tmp rc=0 p
    [ "$(id -u)" = 0 ] || skip "needs root (namespaces, overlayfs, chroot)"
    for p in unshare chroot ip; do
        command -v "$p" >/dev/null || skip "$p is not installed"
    done
    debdir=$(cd "$debdir" 2>/dev/null && pwd) || die "no directory $1"
    for p in "${packages[@]}"; do
        compgen -G "$debdir/${p}_*.deb" >/dev/null || die "no ${p}_*.deb in $debdir"
    done
    src=$(cd "$(dirname "$0")/../.." && pwd)
    unshare --mount --net true 2>/dev/null ||
        skip "cannot create mount and network namespaces (unshare -mn failed)"

    local before after
    before=$(host_state)
    tmp=$(mktemp -d /tmp/azid-pkgtest.XXXXXX)
    AZID_PKGTEST_PHASE=namespace unshare --mount --net --propagation private \
        "$0" "$tmp" "$src" "$debdir" || rc=$?
    rmdir "$tmp"
    after=$(host_state)
    if [ "$before" != "$after" ]; then
        diff <(echo "$before") <(echo "$after") >&2 || true
        die "files of the machine itself changed (above); the test must only touch its throwaway root"
    fi
    [ "$rc" != 0 ] || echo "test_install: the machine's /etc/pam.d, dpkg status and user database are unchanged"
    exit "$rc"
}

# Checksums of what an installation (and the test's throwaway user) on the
# real root would change.
host_state() {
    (cd / && find etc/pam.d -type f -print0 | sort -z | xargs -0 sha256sum)
    sha256sum /var/lib/dpkg/status /var/lib/pam/seen /etc/passwd /etc/group /etc/shadow
    ls -l /etc/azid.conf 2>&1 || true
}

# ---- in the namespaces: build the throwaway root ---------------------------
namespace_phase() {
    local tmp=$1 src=$2 debdir=$3 root
    mount -t tmpfs -o mode=0755 azid-pkgtest "$tmp"
    mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
    root=$tmp/root
    mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$root" ||
        skip "cannot mount an overlay of / (overlayfs missing?)"
    # Host's /dev, /proc and /sys as they are; a private /run, so nothing
    # (pam_systemd, dbus) reaches the machine's services.
    mount --rbind /dev "$root/dev"
    mount --rbind /proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=0755 run "$root/run"
    ip link set lo up

    mkdir -p "$root$inside/debs" "$root$inside/src/debian" "$root$inside/src/tests" \
        "$root$inside/src/doc"
    for p in "${packages[@]}"; do cp "$debdir/${p}"_*.deb "$root$inside/debs/"; done
    cp -a "$src/debian/tests" "$root$inside/src/debian/"
    cp -a "$src/tests/emulator" "$root$inside/src/tests/"
    cp "$src/doc/azid.conf.example" "$root$inside/src/doc/"
    cp "$0" "$root$inside/test_install.sh"
    mkdir "$root$inside/changes"
    mount --bind -o ro "$tmp/upper" "$root$inside/changes"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive AZID_PKGTEST_PHASE=root \
        /bin/bash "$inside/test_install.sh"
}

# ---- in the throwaway root: install, check, log in, purge, check -----------
failures=0
ok() { echo "ok: $*"; }
check() { # check DESCRIPTION COMMAND...: runs COMMAND, records the outcome
    local what=$1
    shift
    if "$@"; then ok "$what"; else echo "FAIL: $what" >&2; failures=$((failures + 1)); fi
}
elapsed() { echo "$(($(date +%s%N) / 1000000 - start_ms)) ms"; }

# Every file named *azid* the throwaway root has and the machine has not:
# the overlay's upper layer (read-only at $inside/changes) holds exactly
# what changed.  Whiteouts (deletions) are character devices, left out.
# Scanning the merged / instead would also see the machine's own files,
# which other work on the machine may change meanwhile.
azid_files() {
    find "$inside/changes" -xdev -path "$inside/changes$inside" -prune -o \
        -name '*azid*' ! -type c -printf '/%P\n' | sort
}
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
gone() { # purged: dpkg knows nothing, or only "not-installed"
    local s
    s=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 0
    case $s in *" not-installed") return 0 ;; *) return 1 ;; esac
}
nothing_left() {
    local left
    left=$(azid_files)
    [ -z "$left" ] || { printf 'left over: %s\n' "$left" >&2; return 1; }
}
scan_sees_installed() { [ "$(azid_files | grep -c -x -e /etc/azid.conf -e /usr/bin/azid)" = 2 ]; }
mode_of() { stat -c '%U:%G %a' "$1"; }
only_pam_sm_exported() {
    ! nm -D --defined-only "$1" | awk '{print $3}' | grep -v '^pam_sm_' | grep -q .
}
sets_nothing() { ! grep -q -v '^[[:space:]]*\(#\|$\)' "$1"; }
# _azid: a system account (uid below 1000), no login shell, no home.
system_account() {
    local entry uid shell home
    entry=$(getent passwd _azid) || return 1
    IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
    [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] && [ "$home" = /nonexistent ] &&
        getent group _azid >/dev/null
}
# What the throwaway root changed (see azid_files) holds no file of _azid.
owns_no_file() {
    local uid
    uid=$(id -u _azid) && [ -z "$(find "$inside/changes" -xdev -uid "$uid" -print -quit)" ]
}
# A login through the installed PAM stack (debian/tests/pam-session) while
# /usr/sbin/azidd runs, as root like its unit (no systemd in this root);
# pam-session checks the key is the broker's and `azid status` lists it.
login_through_broker() {
    local pid rc=0 tmpdir
    tmpdir=$(mktemp -d)
    /usr/sbin/azidd </dev/null >"$inside/azidd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        azid status >/dev/null 2>&1 && break
        sleep 0.1
    done
    (cd "$inside/src" && AUTOPKGTEST_TMP=$tmpdir debian/tests/pam-session) >"$inside/broker-session" 2>&1 || rc=$?
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$tmpdir"
    cat "$inside/broker-session"
    [ "$rc" = 0 ] && grep -q '^pam-session: PASS: .*, through azidd$' "$inside/broker-session"
}

root_phase() {
    local ma start_ms debs=() p rules_before
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    start_ms=$(($(date +%s%N) / 1000000))
    check "no file named *azid* before the installation" test -z "$(azid_files)"
    # Rebuilding the whole man-db index takes most of an installation's
    # time and is of no use in a root that is thrown away.
    rm -f /var/lib/man-db/auto-update
    for p in "${packages[@]}"; do debs+=("$inside/debs/${p}"_*.deb); done
    rules_before=$(nft list ruleset 2>&1)

    # The network namespace has no route anywhere: apt can only use the
    # .debs and packages already installed.  (--no-download would say the
    # same, but apt 2.6 then fails on local .debs: "Pathname to install is
    # not absolute".)
    apt-get install -y "${debs[@]}" > "$inside/install.log" 2>&1 ||
        { cat "$inside/install.log" >&2; die "apt-get install of the .debs failed (see above)"; }
    echo "installed with apt-get install ./*.deb, no network: $(elapsed)"
    for p in "${packages[@]}"; do check "$p is installed" installed "$p"; done

    check "the module is at /usr/lib/$ma/security/pam_azid.so, from libpam-azid" \
        sh -c "dpkg -S /usr/lib/$ma/security/pam_azid.so | grep -q '^libpam-azid:'"
    check "pam_azid.so exports nothing but pam_sm_*" \
        only_pam_sm_exported "/usr/lib/$ma/security/pam_azid.so"
    check "no libtool archive is installed" \
        test -z "$(dpkg -L "${packages[@]}" | grep '\.la$')"
    check "the pam-auth-update profile is /usr/share/pam-configs/azid" \
        test -f /usr/share/pam-configs/azid
    check "installing enabled the module in common-session (pam-auth-update --package)" \
        grep -q '^session[[:space:]]\+optional[[:space:]]\+pam_azid\.so' /etc/pam.d/common-session
    check "/etc/azid.conf is root:root 0644" test "$(mode_of /etc/azid.conf)" = "root:root 644"
    check "/etc/azid.conf is a conffile of libpam-azid" \
        sh -c "dpkg-query -W -f='\${Conffiles}' libpam-azid | grep -q '^ /etc/azid.conf '"
    check "/etc/azid.conf is doc/azid.conf.example" cmp /etc/azid.conf "$inside/src/doc/azid.conf.example"
    check "/etc/azid.conf sets nothing (only comments)" sets_nothing /etc/azid.conf
    for p in man8/pam_azid.8 man5/azid.conf.5 man1/azid.1 man3/libazid.3 man8/azidd.8; do
        check "man page $p" test -s "/usr/share/man/$p.gz"
    done
    check "man pam_azid finds the page" sh -c 'man -w pam_azid | grep -q pam_azid.8'
    check "azid --version names 0.1.0" sh -c 'azid --version | grep -q "0\.1\.0"'
    check "azid-lockdown.service is shipped, in the azid package" \
        sh -c "dpkg -L azid | grep -q '/systemd/system/azid-lockdown.service\$'"
    check "azid-lockdown.service is disabled" \
        sh -c '[ "$(systemctl is-enabled azid-lockdown.service 2>&1)" = disabled ]'
    check "systemd-analyze verify accepts azid-lockdown.service" \
        systemd-analyze verify --man=no azid-lockdown.service
    check "no link enables azid-lockdown.service" \
        test -z "$(find /etc/systemd/system -name azid-lockdown.service)"
    check "installing changed no firewall rule (this namespace's ruleset)" \
        test "$(nft list ruleset 2>&1)" = "$rules_before"

    check "but not in common-session-noninteractive (cron, sudo)" \
        sh -c '! grep -q pam_azid /etc/pam.d/common-session-noninteractive'

    # The autopkgtests, run against this installation from the source tree.
    local t tmpdir rc
    for t in build-against-lib pam-session; do
        tmpdir=$(mktemp -d)
        rc=0
        (cd "$inside/src" && AUTOPKGTEST_TMP=$tmpdir "debian/tests/$t") || rc=$?
        rm -rf "$tmpdir"
        if [ "$rc" = 77 ]; then
            echo "skip: autopkgtest $t (it says why above)"
        else
            check "autopkgtest $t" test "$rc" = 0
        fi
    done
    check "azidd is /usr/sbin/azidd, from azidd" sh -c "dpkg -S /usr/sbin/azidd | grep -q '^azidd:'"
    check "installing created the system account _azid (systemd-sysusers)" system_account
    check "installing enabled azidd.socket" sh -c 'systemctl is-enabled azidd.socket | grep -qx enabled'
    check "azidd.socket is wanted by sockets.target" test -L /etc/systemd/system/sockets.target.wants/azidd.socket
    check "azidd.service is not enabled itself (the socket starts it)" \
        sh -c '! systemctl is-enabled azidd.service | grep -qx enabled'
    check "a login through the installed PAM stack is served by azidd (azid status lists its token)" \
        login_through_broker
    check "the autopkgtests left the profile enabled as they found it" \
        grep -q pam_azid /etc/pam.d/common-session
    check "the scan for left-over files sees the installed ones" scan_sees_installed
    echo "installed and checked: $(elapsed)"

    apt-get purge -y "${packages[@]}" > "$inside/purge.log" 2>&1 ||
        { cat "$inside/purge.log" >&2; die "apt-get purge failed (see above)"; }
    for p in "${packages[@]}"; do check "$p is purged" gone "$p"; done
    check "no pam_azid line is left in /etc/pam.d/common-*" \
        sh -c '! grep -l pam_azid /etc/pam.d/common-*'
    check "pam-auth-update forgot the profile" sh -c '! grep -qx azid /var/lib/pam/seen'
    check "/etc/azid.conf is gone" test ! -e /etc/azid.conf
    check "azidd.socket is no longer enabled" test ! -e /etc/systemd/system/sockets.target.wants/azidd.socket
    check "the _azid account is kept, as Debian keeps system users (debian/azidd.README.Debian)" system_account
    check "and owns no file" owns_no_file
    check "no package owns a file named *azid*" sh -c '! dpkg -S "*azid*" 2>/dev/null'
    check "no file named *azid* is left anywhere" nothing_left
    echo "install, checks, login and purge: $(elapsed)"

    [ "$failures" = 0 ] || die "$failures check(s) failed"
    echo "test_install: PASS"
}

case ${AZID_PKGTEST_PHASE:-host} in
    host) host_phase "$@" ;;
    namespace) namespace_phase "$@" ;;
    root) root_phase ;;
    *) die "unknown AZID_PKGTEST_PHASE" ;;
esac
