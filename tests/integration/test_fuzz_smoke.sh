#!/usr/bin/env bash
# Smoke run of every libFuzzer harness (tests/fuzz/README.md): builds them with clang
# (FUZZ_OPT=-O0: the compile is most of this test's time) and runs each for FUZZ_SMOKE_S
# seconds (default 3) on its seeds and its regression inputs, in a scratch corpus. Fails when a
# harness does not build, or on any crash, leak, undefined behaviour or hang it finds.
# `make fuzz` (FUZZ_S=600) runs them for longer.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
if ! command -v clang-14 > /dev/null && ! command -v clang > /dev/null; then
  echo "FAIL: no clang (make deps installs it)"; exit 1
fi
mk=(-f Makefile)
grep -q 'tests/fuzz/fuzz.mk' Makefile || mk+=(-f tests/fuzz/fuzz.mk)
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/derloop-fuzz-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Not under the caller's make: its jobserver is not ours to share.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -j2 "${mk[@]}" \
       BUILD="$BUILD" FUZZ_OPT=-O0 fuzz-build > "$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log"
  echo "FAIL: the fuzz harnesses do not build"; exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
mkdir -p "$work/corpus"
FUZZ_CORPUS=$work/corpus bash tests/fuzz/run.sh "$BUILD/fuzz/O0" "${FUZZ_SMOKE_S:-3}"
rc=$?
echo "total $(( $(date +%s) - start )) s"
[ "$rc" -eq 0 ] && echo "PASS: every harness ran clean" || echo "FAIL: a harness found something"
exit $rc
