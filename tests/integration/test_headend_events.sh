#!/usr/bin/env bash
# headend_outage and headend_freeze events (docs/scenario-format.md) in lockstep runs with the
# headend in the loop: the stream cut through the relay and the headend stopped, dispatches of
# the span delivered when it ends with their TTL run in simulated time (one expires), telemetry
# beyond the gateway's queue dropped; the same digest run after run and on both transports; bad
# events refused with the field named.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
T=scenarios/incidents/dispatch-after-ttl.json
run() { "$DERSIM" run --quiet --no-plots --no-report --no-baseline "$@"; }
digest() { sed -n 's/^digest sha256=//p' "$1"; }

run --transport inproc --out "$tmp/a" "$T" > "$tmp/a.out" || fail "$(cat "$tmp/a.out")"
run --transport inproc --out "$tmp/b" "$T" > "$tmp/b.out"
run --transport tcp --out "$tmp/c" "$T" > "$tmp/c.out"
[ "$(digest "$tmp/a.out")" = "$(digest "$tmp/b.out")" ] && [ "$(digest "$tmp/a.out")" = "$(digest "$tmp/c.out")" ] \
  || fail "digests differ: $(digest "$tmp/a.out") $(digest "$tmp/b.out") $(digest "$tmp/c.out")"
ev=$tmp/a/events.log
for line in 't=301.000 event=headend_outage duration_s=300.000' \
            't=601.000 event=headend_outage_end telemetry_dropped=0' \
            't=601.000 site=ttl event=dispatch_late delay_s=240.000 result=expired' \
            't=601.000 site=ttl event=dispatch_late delay_s=180.000 result=applied' \
            't=721.000 event=headend_freeze duration_s=120.000' \
            't=841.000 site=ttl event=dispatch_late delay_s=60.000 result=applied'; do
  grep -qxF "$line" "$ev" || fail "no line '$line' in events.log: $(grep headend "$ev")"
done
# the late setpoints hold from the span's end; the freeze's 2000 W one ends with its TTL counted
# from its event (13m + 5m), not from its delivery
grep -q '^ttl,840000,.*bat-1=2500.000@manual' "$tmp/a/decisions.csv" || fail "2500 W not held"
grep -q '^ttl,1080000,.*bat-1=2000.000@manual' "$tmp/a/decisions.csv" || fail "2000 W not held"
grep -q '^ttl,1081000,.*bat-1=[-0-9.]*@optimisation' "$tmp/a/decisions.csv" || fail "2000 W held past its TTL"

S=scenarios/incidents/headend-outage-spool.json
run --transport inproc --out "$tmp/s" "$S" > "$tmp/s.out" || fail "$(cat "$tmp/s.out")"
grep -qxF 't=39601.000 event=headend_outage_end telemetry_dropped=176' "$tmp/s/events.log" \
  || fail "spool: $(grep headend "$tmp/s/events.log")"

# refusals, with the field named
sed 's/"headend": {},//' "$T" > "$tmp/nohe.json"
rc=0; run --transport inproc --out "$tmp/x" "$tmp/nohe.json" 2> "$tmp/x.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q 'events\[1\].type: needs the headend in the loop' "$tmp/x.err" || fail "no headend: $(cat "$tmp/x.err")"
sed 's/"at": "12m", "type": "headend_freeze"/"at": "9m", "type": "headend_freeze"/' "$T" > "$tmp/overlap.json"
rc=0; run --transport inproc --out "$tmp/y" "$tmp/overlap.json" 2> "$tmp/y.err" || rc=$?
[ "$rc" -ne 0 ] && grep -q 'events\[4\].at: overlaps the headend outage or freeze of events\[1\]' "$tmp/y.err" \
  || fail "overlap: $(cat "$tmp/y.err")"
echo "headend events: ok"
