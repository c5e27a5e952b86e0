#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs a libFuzzer target of a build configured with --enable-fuzzing
# (tests/fuzz/README.md), or merges what runs found into the tree's corpus.
#
#   tests/fuzz/libfuzzer.sh run BUILD-DIR TARGET [LIBFUZZER-OPTION...]
#   tests/fuzz/libfuzzer.sh merge BUILD-DIR TARGET [LIBFUZZER-OPTION...]
#
# run: fuzzes from the seeds in tests/fuzz/corpus/TARGET/ (read only) and
# what earlier runs found in $AZID_FUZZ_DIR/TARGET/corpus (default
# /tmp/azid-fuzz); new inputs and any crash, leak or timeout input go
# there.  Exits as libFuzzer does: non-zero on a finding.
# merge: adds to tests/fuzz/corpus/TARGET/ the fewest inputs of
# $AZID_FUZZ_DIR/TARGET/corpus that bring the coverage the seeds lack (the
# named seeds stay; the new files are named by their SHA-1).
set -eu

usage() {
    echo "usage: $0 run|merge BUILD-DIR TARGET [LIBFUZZER-OPTION...]" >&2
    exit 2
}
[ $# -ge 3 ] || usage
mode=$1 build=$2 target=$3
shift 3
src=$(cd "$(dirname "$0")/../.." && pwd)
fuzzer=$build/tests/fuzz/fuzz_$target
seeds=$src/tests/fuzz/corpus/$target
work=${AZID_FUZZ_DIR:-/tmp/azid-fuzz}/$target
[ -x "$fuzzer" ] || { echo "$0: no $fuzzer (configure --enable-fuzzing; make fuzz-targets)" >&2; exit 2; }
[ -d "$seeds" ] || { echo "$0: no seed corpus $seeds" >&2; exit 2; }
mkdir -p "$work/corpus"

case $mode in
run)
    dict=$src/tests/fuzz/dict/$target.dict
    [ -f "$dict" ] && set -- -dict="$dict" "$@"
    exec "$fuzzer" -artifact_prefix="$work/" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 "$@" "$work/corpus" "$seeds"
    ;;
merge)
    "$fuzzer" -merge=1 -max_len=8192 "$@" "$seeds" "$work/corpus"
    echo "$seeds: $(ls "$seeds" | wc -l) files, $(cat "$seeds"/* | wc -c) bytes"
    ;;
*) usage ;;
esac
