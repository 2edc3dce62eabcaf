#!/usr/bin/env bash
# Calibration (der-sim fit, issue 13): a field record made from a run with known parameters
# (the NetZero incident: meter refresh 3 s, battery latency 2 s), sampled at 10 s like a field
# export; the scenario perturbed (1 s, 500 ms); the fit must find the true values, the same way
# twice, and write a scenario whose replay matches the record. Bad --param specs are refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
I=scenarios/incidents/netzero-oscillation.json

"$DERSIM" run --transport inproc --quiet --no-plots --no-report --no-baseline --out "$tmp/truth" "$I" > /dev/null
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; print "time,grid_w,soc,battery_w"; next }
         ($1 % 10) == 0 { print $1 "," $c["grid_w"] "," $c["soc"] "," $c["battery_w"] }' \
  "$tmp/truth/timeseries.csv" > "$tmp/field.csv"
[ "$(wc -l < "$tmp/field.csv")" -eq 361 ] || fail "field.csv: $(wc -l < "$tmp/field.csv") lines"
sed 's/"refresh": "3s"/"refresh": "1s"/; s/"latency": "2s"/"latency": "500ms"/' "$I" > "$tmp/perturbed.json"
grep -q '"refresh": "1s"' "$tmp/perturbed.json" && grep -q '"latency": "500ms"' "$tmp/perturbed.json" \
  || fail "perturbation did not apply"

fit() {
  "$DERSIM" fit "$tmp/perturbed.json" --field "$tmp/field.csv" -q --refine 3 \
    --param 'sites[0].assets[0].refresh=1s:5s:5' --param 'sites[0].assets[1].response.latency=0s:4s:5' "$@"
}
fit --out "$tmp/fitted.json" > "$tmp/fit1.out" || fail "fit: $(cat "$tmp/fit1.out")"
grep -q '^best after 35 runs: cost=[0-9.e-]* sites\[0\].assets\[0\].refresh=3000ms sites\[0\].assets\[1\].response.latency=2000ms$' \
  "$tmp/fit1.out" || fail "not the true values: $(cat "$tmp/fit1.out")"
fit > "$tmp/fit2.out"
[ "$(head -2 "$tmp/fit1.out")" = "$(head -2 "$tmp/fit2.out")" ] || fail "two fits differ"

"$DERSIM" run --transport inproc --quiet --no-plots --no-report --no-baseline --out "$tmp/fitted" \
  "$tmp/fitted.json" > "$tmp/fitted.out" || fail "fitted scenario: $(cat "$tmp/fitted.out")"
/usr/bin/python3 - "$tmp/fitted/kpis.json" <<'PY' || fail "the fitted replay does not match its record"
import json, sys
k = json.load(open(sys.argv[1]))["kpis"]
assert k["field_grid_rmse_w"] < 1 and k["field_grid_corr"] > 0.999, k
assert abs(k["field_replay_osc_amplitude_w"] - k["field_osc_amplitude_w"]) < 1, k
PY

# the oscillation target finds the gain
"$DERSIM" fit "$I" --set gateway.params.kp=0.5 --field "$tmp/field.csv" -q --target oscillation \
  --param 'gateway.params.kp=0.5:2.5:5' > "$tmp/osc.out"
grep -q 'gateway.params.kp=1.5$' "$tmp/osc.out" || fail "oscillation target: $(cat "$tmp/osc.out")"

for bad in 'gateway.params.kp' 'gateway.params.kp=2:1' 'gateway.params.kp=1s:5' 'gateway.params.kp=0:1:0'; do
  rc=0; "$DERSIM" fit "$I" --field "$tmp/field.csv" --param "$bad" 2> "$tmp/bad.err" > /dev/null || rc=$?
  [ "$rc" -eq 2 ] && grep -q '^der-sim fit: ' "$tmp/bad.err" || fail "accepted --param $bad"
done
echo "fit: ok"
