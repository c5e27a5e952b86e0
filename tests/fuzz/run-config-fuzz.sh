#!/bin/sh
# Builds the config-parser fuzzer (tests/fuzz/fuzz_config.c) with clang's
# libFuzzer, ASan and UBSan straight from the sources, and runs it.
#
#   tests/fuzz/run-config-fuzz.sh [SECONDS]     (default 60)
#
# Needs clang with the libFuzzer runtime (Debian: clang-14 libclang-rt-14-dev);
# exits 77 without it.  The corpus and any crash, leak or timeout input are
# kept in $AZID_FUZZ_DIR (default /tmp/azid-fuzz-config) so runs accumulate;
# reproduce one with: <build dir>/fuzz_config <file>.
set -eu

seconds=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${AZID_FUZZ_DIR:-/tmp/azid-fuzz-config}
cc=${CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "run-config-fuzz: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 77
fi
work=$(mktemp -d /tmp/azid-fuzz-build.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# config.c and error.c expect the configure-generated config.h.
cat >"$work/config.h" <<'H'
#define _GNU_SOURCE 1
#define PACKAGE_VERSION "fuzz"
H
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (int)(d && n) * 0; }' \
    >"$work/probe.c"
if ! "$cc" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>/dev/null; then
    echo "run-config-fuzz: $cc cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)" >&2
    exit 77
fi

"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$work" -I"$src/libazid" -DAZID_CONFIG_PATH='"/etc/azid.conf"' \
    "$src/tests/fuzz/fuzz_config.c" "$src/libazid/config.c" "$src/libazid/error.c" \
    -o "$work/fuzz_config"

mkdir -p "$out/corpus"
cp "$src/doc/azid.conf.example" "$out/corpus/example"
sed -n 's/^#\([a-zM]\)/\1/p' "$src/doc/azid.conf.example" >"$out/corpus/example-uncommented"
printf 'resource = https://vault.azure.net\nMatch group dba\nsecret = https://kv.vault.azure.net/secrets/db-pw/0a1b\nclient_id = x\nMatch all\ntimeout = 2.5\n' \
    >"$out/corpus/match"
printf 'timeout=2.5\nMatch user alice,bob\r\nendpoint http://[::1]:8080\r\nkeyring=user\n' \
    >"$out/corpus/argument-crlf"

cat >"$work/dict" <<'D'
"resource"
"secret"
"client_id"
"object_id"
"msi_res_id"
"timeout"
"endpoint"
"source"
"keyring"
"fail"
"config"
"ca_file"
"debug"
"Match"
"user"
"group"
"all"
"alice"
"dba"
" = "
"="
"#"
"\x0d\x0a"
"https://"
"http://"
".vault.azure.net"
".managedhsm.azure.net"
"/secrets/"
"[::1]"
":65535"
"300.0001"
"0.001"
"yes"
"no"
D

"$work/fuzz_config" -max_total_time="$seconds" -max_len=8192 -timeout=5 \
    -dict="$work/dict" -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus"
