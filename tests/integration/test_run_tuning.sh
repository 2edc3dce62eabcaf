#!/usr/bin/env bash
# Tuning (issue 4): `der-sim compare` writes a side-by-side report of two runs, `der-sim sweep`
# runs a grid of values in parallel child processes and names the best combination; the table
# lists the combinations in grid order whatever order the children finish in.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
S=tests/data/expect/short-ok.json

"$DERSIM" run $S --transport inproc --quiet --out "$tmp/r1" > /dev/null
"$DERSIM" run $S --transport inproc --quiet --set gateway.params.kp=0.1 --out "$tmp/r2" > /dev/null
"$DERSIM" compare --out "$tmp/cmp" "$tmp/r1" "$tmp/r2" > "$tmp/cmp.out"
grep -q "^report=$tmp/cmp/compare.html$" "$tmp/cmp.out" || fail "compare: $(cat "$tmp/cmp.out")"
grep -q '<section id="kpis">' "$tmp/cmp/compare.html" || fail "no KPI table"
grep -q 'data:image/png;base64,' "$tmp/cmp/compare.html" || fail "no overlaid plot"
[ "$(grep -c '^net_cost,' "$tmp/cmp/compare.csv")" -eq 1 ] || fail "compare.csv"
rc=0; "$DERSIM" compare --out "$tmp/cmp2" "$tmp/r1" "$tmp/nope" 2> "$tmp/cmp2.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'kpis.json' "$tmp/cmp2.err" || fail "compare accepts a missing run"

"$DERSIM" sweep $S --set gateway.params.kp=0.1,0.5,0.9 --set gateway.params.deadband_w=20,100 \
  -j 2 --optimise self_sufficiency_ratio --out "$tmp/sw" > "$tmp/sw.out"
grep -q '^best (max self_sufficiency_ratio): run 00' "$tmp/sw.out" || fail "no best line: $(cat "$tmp/sw.out")"
[ "$(tail -n +2 "$tmp/sw/sweep.csv" | wc -l)" -eq 6 ] || fail "sweep.csv rows"
cut -d, -f1-3 "$tmp/sw/sweep.csv" | tail -n +2 | tr '\n' ' ' | grep -q '^0,0.1,20 1,0.1,100 2,0.5,20 3,0.5,100 4,0.9,20 5,0.9,100 $' \
  || fail "combination order: $(cut -d, -f1-3 "$tmp/sw/sweep.csv")"
grep -q 'data:image/png;base64,' "$tmp/sw/sweep.html" || fail "no KPI plot in sweep.html"
[ -s "$tmp/sw/plots/param0.png" ] && [ -s "$tmp/sw/plots/param1.svg" ] || fail "sweep plots"
rc=0; "$DERSIM" sweep $S --set gateway.params.kp=0.1,0.2 --optimise no_such_kpi --out "$tmp/sw2" \
  2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "sweep accepts an unknown KPI"
echo "compare and sweep: ok"
