#!/usr/bin/env bash
# The determinism contract (docs/determinism.md): the reference scenario run twice gives the
# same digest, and the Modbus TCP and in-process transports give the same digest as well.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

digest() { sed -n 's/^digest sha256=//p' "$1"; }

"$DERSIM" run scenarios/reference-site.json --transport inproc --quiet --out "$tmp/a" > "$tmp/a.out"
"$DERSIM" run scenarios/reference-site.json --transport inproc --quiet --out "$tmp/b" > "$tmp/b.out"
"$DERSIM" run scenarios/reference-site.json --transport tcp --quiet --out "$tmp/c" > "$tmp/c.out"
a=$(digest "$tmp/a.out"); b=$(digest "$tmp/b.out"); c=$(digest "$tmp/c.out")
echo "inproc run 1: $a"
echo "inproc run 2: $b"
echo "tcp run:      $c"
[ -n "$a" ] || { echo "no digest printed" >&2; exit 1; }
if [ "$a" != "$b" ]; then
  echo "FAIL: two in-process runs differ" >&2
  diff <(head -c 200000 "$tmp/a/timeseries.csv") <(head -c 200000 "$tmp/b/timeseries.csv") | head -5 >&2
  exit 1
fi
if [ "$a" != "$c" ]; then
  echo "FAIL: tcp and inproc differ" >&2
  for f in timeseries.csv decisions.csv events.log; do
    cmp "$tmp/a/$f" "$tmp/c/$f" >&2 || true
  done
  exit 1
fi
# a different seed must change the outputs (the digest is not a constant)
"$DERSIM" run scenarios/reference-site.json --transport inproc --quiet --seed 43 --set duration=2h --set 'expect={}' \
  --out "$tmp/d" > "$tmp/d.out"
"$DERSIM" run scenarios/reference-site.json --transport inproc --quiet --set duration=2h --set 'expect={}' \
  --out "$tmp/e" > "$tmp/e.out"
[ "$(digest "$tmp/d.out")" != "$(digest "$tmp/e.out")" ] || { echo "FAIL: the seed does not reach the outputs" >&2; exit 1; }
echo "determinism: ok"
