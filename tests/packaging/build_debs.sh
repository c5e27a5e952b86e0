#!/bin/bash
# Builds the Debian packages from a clean copy of this source tree and runs
# lintian on the result, as an admin or CI would before installing them.
#
# Usage: tests/packaging/build_debs.sh DIR
#   Copies the tree as a checkout holds it (no .git, no generated or built
#   files) to DIR/azid-VERSION, runs "dpkg-buildpackage -us -uc -b" there and
#   leaves the .debs, .buildinfo and .changes in DIR, the build log in
#   DIR/build.log and lintian's output in DIR/lintian.log.
#   DEB_BUILD_OPTIONS is passed through: scripts/check sets nocheck because
#   it has run the test suite on the same tree already (debian/README.source).
# Exit: 0 built and lintian clean (no error or warning), 1 otherwise.
set -euo pipefail

out=${1:?usage: build_debs.sh DIR}
src=$(cd "$(dirname "$0")/../.." && pwd)
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/azid-$version

rm -rf "$tree"
mkdir "$tree"
# What a checkout holds: tracked and new files, not what .gitignore names
# (autotools output, builds) nor scripts/check's build directory;
# dh_autoreconf regenerates what is needed.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$src" ls-files -z --cached --others --exclude-standard -- . ':(exclude)build' |
        tar -C "$src" --null --ignore-failed-read -T - -cf - 2>/dev/null
else
    tar -C "$src" --exclude=./.git --exclude=./build -cf - .
fi | tar -C "$tree" -xf -

start=$(date +%s)
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1; then
    tail -n 60 "$out/build.log" >&2
    echo "build_debs: FAIL: dpkg-buildpackage failed; full log in $out/build.log" >&2
    exit 1
fi
echo "build_debs: built in $(($(date +%s) - start)) s (DEB_BUILD_OPTIONS='${DEB_BUILD_OPTIONS:-}'):"
(cd "$out" && ls -1 ./*.deb)

# The build compared what libazid.so.0 exports with debian/libazid0.symbols
# (DPKG_GENSYMBOLS_CHECK_LEVEL=4); this compares that list with the
# functions <azid/azid.h> declares, so the ABI is exactly the header.
declared=$(grep -oE '\bazid_[a-z0-9_]+[[:space:]]*\(' "$tree/libazid/azid.h" | tr -d '( \t' | sort -u)
listed=$(sed -n 's/^ \(azid_[a-z0-9_]*\)@LIBAZID_0 .*/\1/p' "$tree/debian/libazid0.symbols" | sort)
if [ "$declared" != "$listed" ]; then
    diff <(echo "$declared") <(echo "$listed") >&2 || true
    echo "build_debs: FAIL: functions of libazid/azid.h (<) and debian/libazid0.symbols (>) differ" >&2
    exit 1
fi
echo "build_debs: libazid.so.0 exports the $(echo "$listed" | wc -l) functions of <azid/azid.h>, nothing else"

changes=$(echo "$out"/azid_"$version"_*.changes)
if ! lintian --fail-on error,warning --display-info "$changes" > "$out/lintian.log" 2>&1; then
    cat "$out/lintian.log" >&2
    echo "build_debs: FAIL: lintian reports errors or warnings" >&2
    exit 1
fi
echo "build_debs: lintian: no error or warning; its other output:"
grep -v '^running with root privileges' "$out/lintian.log" || echo "(none)"
