# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by scripts/check and scripts/demo: the Debian packages azid needs
# and the one way to build it.  Source it from the top of the tree.

# shellcheck disable=SC2034  # the arrays are for the scripts that source this
# To build.
AZID_BUILD_DEPS=(autoconf automake libtool pkgconf make gcc
                 libpam0g-dev libcurl4-openssl-dev libssl-dev libjansson-dev libkeyutils-dev libcmocka-dev)
# For the end-to-end run (tests/e2e/lib.sh): sshd, PAM modules, namespaces.
AZID_E2E_DEPS=(python3 keyutils openssh-server openssh-client iproute2 util-linux
               libpam-modules libpam-runtime openssl nftables)
# For the rest of the test suite; python3-azure and azure-cli are the peers
# bench/run (its smoke run included) measures azid against, matplotlib
# draws its plots.
AZID_TEST_DEPS=(pamtester valgrind passwd python3-azure azure-cli python3-matplotlib)
# The clang builds: ASan+UBSan with clang's runtime, and libFuzzer.
AZID_CLANG_DEPS=(clang libclang-rt-14-dev)
# To build the Debian packages and check them (tests/packaging/).
AZID_DEB_DEPS=(build-essential debhelper dpkg-dev lintian)

# azid_install_missing PACKAGE...: apt-get installs those not installed yet.
azid_install_missing() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# azid_build DIR: regenerates the build system and builds from scratch in
# DIR, a path relative to the top of the tree (warnings are errors,
# installed paths of a Debian system).
azid_build() {
    local dir=$1 top=$PWD
    autoreconf -fi
    rm -rf "$dir"
    mkdir "$dir"
    (cd "$dir" && "$top/configure" --enable-werror --prefix=/usr --sysconfdir=/etc >/dev/null)
    make -C "$dir" -j"$(nproc)"
}
