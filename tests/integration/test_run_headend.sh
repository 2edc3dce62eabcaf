#!/usr/bin/env bash
# The headend in the lockstep loop (docs/scenario-format.md): dispatch events go through the
# real der-headend (POST /dispatch, the gRPC stream, the gateway's uplink) and the digest is the
# same run after run, on both transports, and without the headend (events applied directly).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$BUILD/bin/der-sim
S=tests/data/headend/dispatch-loop.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
digest() { sed -n 's/^digest sha256=//p' "$1"; }

"$DERSIM" run "$S" --transport inproc --quiet --out "$tmp/a" > "$tmp/a.out"
"$DERSIM" run "$S" --transport inproc --quiet --out "$tmp/b" > "$tmp/b.out"
"$DERSIM" run "$S" --transport tcp --quiet --out "$tmp/c" > "$tmp/c.out"
grep -v '"headend"' "$S" > "$tmp/direct.json"
"$DERSIM" run "$tmp/direct.json" --transport inproc --quiet --out "$tmp/d" > "$tmp/d.out"
a=$(digest "$tmp/a.out") b=$(digest "$tmp/b.out") c=$(digest "$tmp/c.out") d=$(digest "$tmp/d.out")
printf 'headend inproc: %s\nheadend inproc: %s\nheadend tcp:    %s\ndirect inproc:  %s\n' "$a" "$b" "$c" "$d"
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "FAIL: digests differ" >&2; exit 1; }
# without the headend the scenario file differs (its hash is in events.log's first line and in
# kpis.json), so compare the outputs themselves
cmp "$tmp/a/timeseries.csv" "$tmp/d/timeseries.csv" && cmp "$tmp/a/decisions.csv" "$tmp/d/decisions.csv" \
  && cmp <(tail -n +2 "$tmp/a/events.log") <(tail -n +2 "$tmp/d/events.log") \
  || { echo "FAIL: the outputs differ with and without the headend" >&2; exit 1; }
# the dispatches reached the batteries at manual priority
grep -q 'event=dispatch target=asset asset=bat-2 power_w=-1500.000' "$tmp/a/events.log" || { echo "FAIL: no asset dispatch in events.log" >&2; exit 1; }
grep -q 'bat-2=-1500.000@manual' "$tmp/a/decisions.csv" || { echo "FAIL: bat-2 never at -1500 W (manual)" >&2; exit 1; }
grep -q 'bat-1=[0-9.]*@manual;bat-2=[0-9.]*@manual' "$tmp/a/decisions.csv" || { echo "FAIL: no site split at manual priority" >&2; exit 1; }
# no headend left behind
sleep 0.2
if pgrep -f "der-headend.*--db :memory:" > /dev/null; then echo "FAIL: der-headend left running" >&2; exit 1; fi
echo "headend in the loop: ok"
