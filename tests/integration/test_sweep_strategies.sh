#!/usr/bin/env bash
# `der-sim sweep` on each strategy's main parameter(s): for every strategy scenario a short sweep
# (10 h to a day of simulated time, 2-3 values, -j 2) whose sweep.csv has one row per combination, the swept
# column with its values in grid order, the KPI columns, and whose main KPI moves the way the
# physics says between the values (a lower peak limit, a lower peak; a higher reserve, a higher
# SoC; ...). Then the failures: an out-of-range value, an unknown parameter and an unknown path
# make the sweep exit 1, before any run starts, with a message naming the combination, the
# parameter and the value; JSON values with commas are one value each.
# The commands are the ones in docs/reports.md, "Sweeping a strategy".
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# sweep NAME SCENARIO PATH=V1,V2... [PATH=V...]: runs the sweep into $tmp/NAME and checks the
# table: exit 0, one row per combination, each swept column with its values in grid order (the
# first --set varies slowest), no run without KPIs, the main KPI columns present.
sweep() {
  local name=$1 scen=scenarios/$2.json; shift 2
  local args=() s
  for s in "$@"; do args+=(--set "$s"); done
  local rc=0 t0=$EPOCHREALTIME
  "$DERSIM" sweep "$scen" "${args[@]}" -j 2 --out "$tmp/$name" > "$tmp/$name.out" 2> "$tmp/$name.err" \
    || rc=$?
  echo "  $name: $* ($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
  [ "$rc" -eq 0 ] || fail "$name: sweep exit $rc: $(cat "$tmp/$name.out" "$tmp/$name.err")"
  # the expected grid: every combination of the multi-valued --set, first slowest
  local grid=("") g v vals
  for s in "$@"; do
    case "${s#*=}" in *,*) ;; *) continue ;; esac
    local next=()
    for g in "${grid[@]}"; do
      IFS=, read -r -a vals <<< "${s#*=}"
      for v in "${vals[@]}"; do next+=("$g,$v"); done
    done
    grid=("${next[@]}")
  done
  python3 - "$tmp/$name/sweep.csv" "${#grid[@]}" "$@" "--" "${grid[@]}" <<'EOF' || fail "$name: sweep.csv"
import csv, sys
path, rows, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sets, grid = rest[:rest.index("--")], rest[rest.index("--") + 1:]
swept = [s.split("=", 1)[0] for s in sets if "," in s.split("=", 1)[1]]
with open(path, newline="") as f:
    r = list(csv.reader(f))
head, body = r[0], r[1:]
def bad(msg):
    print(f"{path}: {msg}", file=sys.stderr)
    sys.exit(1)
if head[:len(swept) + 2] != ["combo", *swept, "status"]:
    bad(f"header starts {head[:len(swept) + 2]}, want combo, {swept}, status")
for k in ("net_cost", "peak_import_15m_kw", "self_consumption_ratio", "battery_throughput_kwh",
          "soc_max"):
    if k not in head:
        bad(f"no KPI column {k}")
if len(body) != rows:
    bad(f"{len(body)} rows, want {rows}")
for i, row in enumerate(body):
    got = "," + ",".join(row[1:1 + len(swept)])
    if row[0] != str(i) or got != grid[i]:
        bad(f"row {i}: combo {row[0]} values {got}, want {i} {grid[i]}")
    if row[len(swept) + 1] not in ("pass", "fail"):
        bad(f"row {i}: status {row[len(swept) + 1]}")
    if row[head.index("net_cost")] == "":
        bad(f"row {i}: no net_cost")
EOF
  grep -q "^table=$tmp/$name/sweep.csv$" "$tmp/$name.out" || fail "$name: no table= line"
}

# trend NAME KPI DIR ROW...: the KPI over the given rows (combination indices, default all) is
# monotone: up (non-decreasing, last > first), down (non-increasing, last < first), or up= /
# down= (monotone, possibly flat).
trend() {
  local name=$1 kpi=$2 dir=$3; shift 3
  python3 - "$tmp/$name/sweep.csv" "$kpi" "$dir" "$@" <<'EOF' || fail "$name: $kpi should go $dir"
import csv, sys
path, kpi, d, rows = sys.argv[1], sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4:]]
with open(path, newline="") as f:
    r = list(csv.reader(f))
c = r[0].index(kpi)
body = r[1:]
v = [float(body[i][c]) for i in (rows or range(len(body)))]
up = d.startswith("up")
ok = all((b >= a) if up else (b <= a) for a, b in zip(v, v[1:]))
if not d.endswith("="):
    ok = ok and ((v[-1] > v[0]) if up else (v[-1] < v[0]))
print(f"  {path.split('/')[-2]}: {kpi} {'rises' if up else 'falls'}: {v} {'ok' if ok else 'WRONG'}")
sys.exit(0 if ok else 1)
EOF
}

# cell NAME ROW KPI: one value of sweep.csv
cell() {
  python3 - "$tmp/$1/sweep.csv" "$2" "$3" <<'EOF'
import csv, sys
with open(sys.argv[1], newline="") as f:
    r = list(csv.reader(f))
print(r[1 + int(sys.argv[2])][r[0].index(sys.argv[3])])
EOF
}

echo "== one sweep per strategy"
# peak_shaving: a lower import limit gives a lower (15-minute) peak and costs more battery energy
sweep peak peak-shaving gateway.params.import_limit_w=5000,6000,8000 duration=14h
trend peak peak_import_15m_kw up
trend peak battery_discharge_kwh down

# time_of_use: a better round-trip efficiency makes more cycles worth it: more discharge, lower cost
sweep tou time-of-use gateway.params.eta_round_trip=0.6,0.75,0.9 duration=1d
trend tou battery_discharge_kwh up
trend tou net_cost down

# self_consumption: a higher export limit curtails less PV: more export, less self-consumed share
sweep selfc self-consumption gateway.params.export_limit_w=1000,4000,8000 duration=16h
trend selfc energy_export_kwh up
trend selfc self_consumption_ratio down

# arbitrage, two parameters: a higher min_spread never trades more (at either budget); a higher
# daily cycle budget never sells less, and the sales stay within the budget (20 kWh battery, one
# day or less)
sweep arb arbitrage gateway.params.min_spread=0.03,0.3 gateway.params.cycles_per_day=0.5,2 \
  duration=20h
trend arb battery_throughput_kwh down 0 2
trend arb battery_throughput_kwh down 1 3
trend arb battery_discharge_kwh up 0 1
trend arb battery_discharge_kwh up= 2 3
for row in 0 2; do
  d=$(cell arb "$row" battery_discharge_kwh)
  awk -v d="$d" 'BEGIN { exit !(d <= 0.5 * 20 + 0.05) }' || fail "arb row $row: $d kWh sold over a 0.5 cycle budget"
done

# backup_power: the battery recharges (from PV) to its reserve and holds it for the 19:00-23:00
# outage: a higher reserve, a higher SoC (within the recharge band of the reserve) and less load
# shed while islanded
sweep backup backup-power gateway.params.reserve_soc=0.3,0.5,0.8
trend backup soc_max up
trend backup unserved_energy_kwh down
for row in 0 1 2; do
  r=$(echo 0.3 0.5 0.8 | cut -d' ' -f$((row + 1)))
  s=$(cell backup "$row" soc_max)
  awk -v r="$r" -v s="$s" 'BEGIN { exit !(s <= r + 0.01 && s >= r - 0.03) }' \
    || fail "backup row $row: soc_max $s for reserve_soc $r"
done

# grid_services: a larger FCR power answers the same frequency deviations with more energy
sweep grid grid-services gateway.params.fcr_power_w=0,1500,3000 duration=10h
trend grid battery_throughput_kwh up
trend grid soc_min down

# ev_charging: a larger start margin waits for more surplus: less PV into the cars, more import
sweep ev ev-charging gateway.params.start_margin_w=0,1500,3000 duration=18h
trend ev energy_import_kwh up
trend ev self_consumption_ratio down

# boiler: a higher surplus threshold heats less from PV: more export, lower self-consumption
sweep boiler boiler-pv gateway.params.start_surplus_w=300,1500,3000 duration=20h
trend boiler energy_export_kwh up
trend boiler self_consumption_ratio down
trend boiler boiler_energy_kwh down

# net_zero on the slow site (2 s latency), as a PI without its feed-forward (ff_gain 0, whose
# steps the gains barely move): more proportional gain overshoots and oscillates; more
# integral gain (in the stable range) settles the load step sooner
sweep nzkp netzero-latency-tuned gateway.params.kp=0.2,1.0,1.5 gateway.params.ff_gain=0
trend nzkp step_overshoot_pct up
trend nzkp step_residual_rms_w up
sweep nzki netzero-latency-tuned gateway.params.ki_per_s=0.01,0.03,0.1 gateway.params.ff_gain=0
trend nzki step_settling_s down

# stacked: time_of_use under a backup reserve and a peak limit; the peak limit (the second
# constraint's parameter) bounds the peak the stack lets through
sweep stacked stacked 'gateway.constraints[1].params.import_limit_w=5000,6000,8000' duration=1d
trend stacked peak_import_15m_kw up
trend stacked battery_discharge_kwh down

# --optimise names the best combination: the lowest peak is the lowest limit
# (3.7 kW, the scenario's own limit, passes its expectations on the scenario's day; 8 kW does not)
"$DERSIM" sweep scenarios/peak-shaving.json --set gateway.params.import_limit_w=3700,8000 \
  -j 2 --optimise peak_import_15m_kw --out "$tmp/best" > "$tmp/best.out"
grep -q '^best (min peak_import_15m_kw): run 0000 gateway.params.import_limit_w=3700 ' "$tmp/best.out" \
  || fail "best: $(cat "$tmp/best.out")"
# ... but only among the runs that passed: with an expectation the lowest limit misses, the best
# is the other run, and sweep.csv names every KPI once
"$DERSIM" sweep scenarios/peak-shaving.json --set gateway.params.import_limit_w=5000,8000 \
  --set duration=14h --set 'expect={"peak_import_15m_kw": {"min": 5.5}}' \
  -j 2 --optimise peak_import_15m_kw --out "$tmp/bestpass" \
  > "$tmp/bestpass.out"
grep -q '^run 0000 .*: fail$' "$tmp/bestpass.out" || fail "bestpass: run 0000 should fail: $(cat "$tmp/bestpass.out")"
grep -q '^best (min peak_import_15m_kw): run 0001 ' "$tmp/bestpass.out" \
  || fail "bestpass: a failing run was chosen: $(cat "$tmp/bestpass.out")"
dups=$(head -n 1 "$tmp/bestpass/sweep.csv" | tr ',' '\n' | sort | uniq -d)
[ -z "$dups" ] || fail "sweep.csv repeats columns: $dups"

echo "== failures"
# expect_fail NAME WORDS... -- SWEEP ARGS: exit 1, and stderr holds every word
expect_fail() {
  local name=$1; shift
  local words=()
  while [ "$1" != -- ]; do words+=("$1"); shift; done
  shift
  local rc=0
  "$DERSIM" sweep "$@" -j 2 --out "$tmp/$name" > "$tmp/$name.out" 2> "$tmp/$name.err" || rc=$?
  [ "$rc" -eq 1 ] || fail "$name: exit $rc, want 1: $(cat "$tmp/$name.err")"
  local w
  for w in "${words[@]}"; do
    grep -qF -- "$w" "$tmp/$name.err" || fail "$name: no \"$w\" in: $(cat "$tmp/$name.err")"
  done
  echo "  $name: $(head -c 200 "$tmp/$name.err")"
}
# an out-of-range value, last or first: the check of every combination before any run (the
# gateway configuration as the run builds it) rejects it and names it; nothing runs
expect_fail neg-last 'fcr_power_w' 'got -1' 'run 0001 gateway.params.fcr_power_w=-1' \
  'no run started' -- \
  scenarios/grid-services.json --set gateway.params.fcr_power_w=1000,-1 --set duration=10m
[ ! -e "$tmp/neg-last/runs" ] && [ ! -e "$tmp/neg-last/sweep.csv" ] \
  || fail "neg-last: runs started for an invalid grid: $(ls -R "$tmp/neg-last")"
expect_fail neg-first 'reserve_soc' 'got 1.5' -- \
  scenarios/backup-power.json --set gateway.params.reserve_soc=1.5,0.5
# an unknown parameter, an unknown path, a bad scenario value after the first
expect_fail unknown-param 'run 0000 gateway.params.fcr_powr_w=1' 'unknown parameter' -- \
  scenarios/grid-services.json --set gateway.params.fcr_powr_w=1,2 --set duration=10m
expect_fail unknown-path 'gateway.paramz.fcr_power_w' 'no key "paramz"' -- \
  scenarios/grid-services.json --set gateway.paramz.fcr_power_w=1,2 --set duration=10m
expect_fail bad-duration 'duration=soon' 'duration' -- \
  scenarios/grid-services.json --set gateway.params.fcr_power_w=1000 --set duration=10m,soon

echo "== JSON values with commas"
# commas inside brackets and strings do not split values; sweep.csv quotes such fields
"$DERSIM" sweep scenarios/netzero-load-step.json -j 2 --out "$tmp/resp" --set \
  'sites[0].assets[1].response={"latency":"200ms","ramp_kw_per_s":10},{"latency":"3s","ramp_kw_per_s":1}' \
  > "$tmp/resp.out" 2>&1 || fail "resp: $(cat "$tmp/resp.out")"
python3 - "$tmp/resp/sweep.csv" <<'EOF' || fail "resp: $(cut -c1-120 "$tmp/resp/sweep.csv")"
import csv, sys
r = list(csv.reader(open(sys.argv[1], newline="")))
col = [row[1] for row in r[1:]]
assert col == ['{"latency":"200ms","ramp_kw_per_s":10}', '{"latency":"3s","ramp_kw_per_s":1}'], col
rms = r[0].index("step_residual_rms_w")
assert float(r[2][rms]) > float(r[1][rms]), "a slower battery should follow the load worse"
EOF
echo "sweep on every strategy: ok"
