#!/usr/bin/env bash
# Incident regressions (issue 13, docs/incidents.md): the oscillation KPIs tell the incident from
# its fix. The incident scenario asserts that the fault reproduces; its fixed twin asserts it is
# gone, and the same fixed file with the incident's gains must fail its oscillation
# expectations (so the expectation can fail at all). Both transports give one digest.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
I=scenarios/incidents/netzero-oscillation.json
F=scenarios/incidents/netzero-oscillation-fixed.json
run() { "$DERSIM" run --quiet --no-plots --no-report --no-baseline "$@"; }

run --transport inproc --out "$tmp/inc" "$I" > "$tmp/inc.out" || fail "incident: $(cat "$tmp/inc.out")"
grep -q '^expect grid_osc_amplitude_w = .*PASS$' "$tmp/inc.out" || fail "no amplitude: $(cat "$tmp/inc.out")"
run --transport tcp --out "$tmp/inc-tcp" "$I" > "$tmp/inc-tcp.out"
[ "$(grep '^digest' "$tmp/inc.out")" = "$(grep '^digest' "$tmp/inc-tcp.out")" ] \
  || fail "tcp and inproc digests differ"

run --transport inproc --out "$tmp/fix" "$F" > "$tmp/fix.out" || fail "fix: $(cat "$tmp/fix.out")"
rc=0
run --transport inproc --out "$tmp/unfixed" --set gateway.params.kp=1.5 \
  --set gateway.params.ki_per_s=0.8 "$F" > "$tmp/unfixed.out" || rc=$?
[ "$rc" -eq 1 ] || fail "the fix's expectations pass with the incident's gains (exit $rc)"
grep -q '^expect grid_osc_amplitude_w = .*FAIL$' "$tmp/unfixed.out" || fail "$(cat "$tmp/unfixed.out")"
grep -q '^expect grid_osc_time_s = .*FAIL$' "$tmp/unfixed.out" || fail "$(cat "$tmp/unfixed.out")"
echo "incidents: ok"
