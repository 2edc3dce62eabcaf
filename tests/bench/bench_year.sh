#!/usr/bin/env bash
# A year of the reference site at its 1 s step, in process, end to end: the run, the baseline
# (in parallel), the optimum (in 14-day chunks), the plots and report.html, with the default
# `--sample auto` (5-minute rows for a year). Prints the wall time, the CPU time, the peak RSS
# and the size of the output directory, against the targets of issue 14: under 2 minutes and
# under 200 MB (a `MISS` line and exit 3 when one is missed, as tests/bench/bench.h does).
# DAYS=N runs N days instead (the targets are then scaled by N / 365).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DAYS=${DAYS:-365}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$BUILD/bin/der-sim" run --transport inproc \
  --quiet --optimum-budget 10m --set "duration=\"${DAYS}d\"" --out "$tmp/out" \
  scenarios/reference-site.json > "$tmp/run.out" 2> "$tmp/run.err"
rc=$?
if [ ! -s "$tmp/out/kpis.json" ] || ! grep -q '^digest ' "$tmp/run.out"; then
  echo "bench_year: der-sim run failed (exit $rc)"; cat "$tmp/run.err"; exit 1
fi
# the last line: GNU time puts "Command exited with non-zero status 1" first when an
# expectation failed (a day's bounds do not all fit a year)
read -r wall user sys rss_kb < <(tail -1 "$tmp/time")
mb=$(du -sk "$tmp/out" | awk '{printf "%.1f", $1 / 1024}')
ticks=$(sed -n 's/^ticks=\([0-9]*\) .*/\1/p' "$tmp/run.out")
opt=$(python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); print("savings_vs_optimal_pct=%s cost_reduction_pct=%s" % (k["vs_baseline"].get("savings_vs_optimal_pct"), k["vs_baseline"].get("cost_reduction_pct")))' "$tmp/out/kpis.json")
target_s=$(awk -v d="$DAYS" 'BEGIN{printf "%.1f", 120 * d / 365}')
target_mb=$(awk -v d="$DAYS" 'BEGIN{printf "%.1f", 200 * d / 365}')
printf 'year days=%d steps=%s wall_s=%.1f cpu_s=%.1f us_per_step_cpu=%.2f peak_rss_mb=%.0f output_mb=%s %s\n' \
  "$DAYS" "$ticks" "$wall" "$(echo "$user + $sys" | bc -l)" \
  "$(echo "($user + $sys) * 1000000 / (2 * $ticks)" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" "$mb" "$opt"
miss=0
if awk -v a="$wall" -v b="$target_s" 'BEGIN{exit !(a > b)}'; then
  echo "MISS bench_year: wall_s = $wall (target < $target_s)"; miss=1
fi
if awk -v a="$mb" -v b="$target_mb" 'BEGIN{exit !(a >= b)}'; then
  echo "MISS bench_year: output_mb = $mb (target < $target_mb)"; miss=1
fi
[ "$miss" -eq 0 ] || exit 3
