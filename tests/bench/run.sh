#!/usr/bin/env bash
# `make bench`: runs every benchmark and prints its figures. Nothing is asserted here.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
for b in tests/bench/*.c; do
  [ -e "$b" ] || continue
  name=$(basename "$b" .c)
  echo "== $name"
  "$BUILD/bin/$name" || echo "bench $name failed (exit $?)"
done
for b in tests/bench/*.sh; do
  [ "$(basename "$b")" = run.sh ] && continue
  [ -e "$b" ] || continue
  echo "== $(basename "$b" .sh)"
  BUILD=$BUILD bash "$b" || echo "bench $b failed (exit $?)"
done
