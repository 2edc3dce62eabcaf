#!/usr/bin/env bash
# Long runs and distributed sweeps (issue 14): `--sample` aggregates timeseries.csv and
# decisions.csv (one row per interval, the lowest and highest step beside the means) without
# changing a KPI, and `auto` samples past 200000 steps; the progress line names its phases and
# `--quiet` keeps quiet; a run that fails still ends events.log and kpis.json says which phase
# failed; `sweep --plan` + the job list run by xargs -P2 + `sweep --collect` gives the same
# sweep.csv, byte for byte, as the same sweep run locally (with --seeds and two parameters,
# whose plots draw one series per value of the other).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
S=scenarios/reference-site.json
run() { "$DERSIM" run --transport inproc --no-plots --no-report --set 'duration="2h"' --set 'expect={}' "$@" $S; }

# --sample 1m: 120 rows a file, min/max columns, the same KPIs as at full rate
run --quiet --out "$tmp/full" > /dev/null
run --quiet --sample 1m --out "$tmp/s1m" > /dev/null
[ "$(tail -n +2 "$tmp/s1m/timeseries.csv" | wc -l)" -eq 120 ] || fail "timeseries.csv: not 120 rows"
[ "$(tail -n +2 "$tmp/s1m/decisions.csv" | wc -l)" -eq 120 ] || fail "decisions.csv: not 120 rows"
head -1 "$tmp/s1m/timeseries.csv" | grep -q ',ticks,grid_w_min,grid_w_max,battery_w_min,battery_w_max,' \
  || fail "timeseries.csv header: $(head -1 "$tmp/s1m/timeseries.csv")"
head -1 "$tmp/s1m/decisions.csv" | grep -q ',cycles,clamped_cycles,grid_w_min,grid_w_max,raw_w_min,raw_w_max$' \
  || fail "decisions.csv header: $(head -1 "$tmp/s1m/decisions.csv")"
diff <(grep -v digest_outputs "$tmp/full/kpis.json") <(grep -v digest_outputs "$tmp/s1m/kpis.json") \
  || fail "--sample changed a KPI"
python3 - "$tmp/full/timeseries.csv" "$tmp/s1m/timeseries.csv" <<'PY' || fail "a sampled row is not its minute"
import csv, sys
full = list(csv.DictReader(open(sys.argv[1])))
row = list(csv.DictReader(open(sys.argv[2])))[30]           # the minute ending at 1860 s
minute = [r for r in full if 1800 < float(r["time_s"]) <= 1860]
g = [float(r["grid_w"]) for r in minute]
assert float(row["time_s"]) == 1860 and int(row["ticks"]) == 60, row
assert abs(float(row["grid_w"]) - sum(g) / 60) < 0.002, (row["grid_w"], sum(g) / 60)
assert float(row["grid_w_min"]) == min(g) and float(row["grid_w_max"]) == max(g), row
PY
# auto: every step up to 200000 steps, 1-minute rows beyond (56 h at 1 s = 201600 steps)
"$DERSIM" run --transport inproc --quiet --no-baseline --no-optimum --no-plots --no-report \
  --set 'duration="56h"' --set 'expect={}' --out "$tmp/auto" $S > /dev/null
[ "$(tail -n +2 "$tmp/auto/timeseries.csv" | wc -l)" -eq 3360 ] || fail "auto: not 1-minute rows"

# the progress line: phases and an ETA with --progress, nothing with --quiet
run --progress --out "$tmp/p" > /dev/null 2> "$tmp/p.err"
tr '\r' '\n' < "$tmp/p.err" | grep -q '^reference-site: run .*ETA' || fail "no run phase: $(cat "$tmp/p.err")"
tr '\r' '\n' < "$tmp/p.err" | grep -q '^reference-site: done in' || fail "no end line"
run --progress --quiet --out "$tmp/q" > /dev/null 2> "$tmp/q.err"
! grep -q 'ETA' "$tmp/q.err" || fail "--quiet printed progress"

# a failing phase: events.log ends with run_failed, kpis.json names the phase
rc=0; DERLOOP_HEADEND_BIN=/nonexistent "$DERSIM" run --transport inproc --quiet --no-plots \
  --no-report --out "$tmp/fail" tests/data/headend/dispatch-loop.json > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "failing run: exit $rc"
grep -q 'event=run_failed error="headend: cannot start /nonexistent' "$tmp/fail/events.log" \
  || fail "events.log: $(cat "$tmp/fail/events.log")"
python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); assert k["failure"]["phase"] == "run", k["failure"]' \
  "$tmp/fail/kpis.json" || fail "kpis.json does not name the failed phase"

# a sweep planned, run by xargs -P2 and collected == the same sweep run here
args=(--seeds 2 --set gateway.params.kp=0.3,0.6 --set gateway.params.deadband_w=20,80
      --set 'duration="30m"' --set 'expect={}' $S)
"$DERSIM" sweep -j 2 --out "$tmp/local" "${args[@]}" > "$tmp/local.out"
"$DERSIM" sweep --plan "$tmp/jobs" --out "$tmp/dist" "${args[@]}" > "$tmp/plan.out"
[ "$(wc -l < "$tmp/jobs")" -eq 8 ] || fail "job list: $(wc -l < "$tmp/jobs") lines, want 8"
tr '\n' '\0' < "$tmp/jobs" | xargs -0 -P2 -n1 sh -c
"$DERSIM" sweep --collect "$tmp/dist" > "$tmp/collect.out"
cmp "$tmp/local/sweep.csv" "$tmp/dist/sweep.csv" || fail "collected sweep.csv differs from the local one"
head -1 "$tmp/local/sweep.csv" | grep -q '^combo,gateway.params.kp,gateway.params.deadband_w,status,seeds,net_cost,net_cost_sd,' \
  || fail "sweep.csv header: $(head -1 "$tmp/local/sweep.csv")"
grep -q '^best (min net_cost): run 000[0-3] .* sd=.* over 2 seeds (' "$tmp/local.out" || fail "best line: $(cat "$tmp/local.out")"
diff <(grep '^best' "$tmp/local.out") <(grep '^best' "$tmp/collect.out") || fail "best lines differ"
grep -q "index 1 skip 1 using 1:2:3 with yerrorlines .*title \"gateway.params.deadband_w=80\"" \
  "$tmp/local/plots/param0.gp" || fail "param0.gp: no series per value of the other parameter"
echo "long runs: sampling, progress, failed phase, plan/collect OK"
