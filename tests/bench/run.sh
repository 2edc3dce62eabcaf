#!/usr/bin/env bash
# `make bench`: runs every benchmark and prints its figures. A benchmark that misses one of its
# documented targets prints a `MISS <bench>: <figure> = <value> (target ...)` line and exits 3
# (tests/bench/bench.h); one that fails exits with another non-zero status. The figures are the
# product: every benchmark runs, then the MISS lines and failures are repeated at the end and
# the exit status is 1 when there was any.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
problems=()
note() { # name, exit status, output file
  local rc=$2
  if [ "$rc" -eq 3 ]; then
    while IFS= read -r l; do problems+=("$l"); done < <(grep '^MISS ' "$3")
    grep -q '^MISS ' "$3" || problems+=("MISS $1: exit status 3 without a MISS line")
  elif [ "$rc" -ne 0 ]; then
    problems+=("FAILED $1 (exit $rc)")
  fi
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for b in tests/bench/*.c; do
  [ -e "$b" ] || continue
  name=$(basename "$b" .c)
  echo "== $name"
  "$BUILD/bin/$name" | tee "$out"
  note "$name" "${PIPESTATUS[0]}" "$out"
done
for b in tests/bench/*.sh; do
  [ "$(basename "$b")" = run.sh ] && continue
  [ -e "$b" ] || continue
  name=$(basename "$b" .sh)
  echo "== $name"
  BUILD=$BUILD bash "$b" | tee "$out"
  note "$name" "${PIPESTATUS[0]}" "$out"
done
echo
if [ "${#problems[@]}" -gt 0 ]; then
  echo "== bench: ${#problems[@]} target(s) missed or benchmark(s) failed"
  printf '%s\n' "${problems[@]}"
  exit 1
fi
echo "== bench: every target met"
