#!/usr/bin/env bash
# The regression suite: the unit tests, every integration test (each in its own process with a
# time limit), then every scenario in scenarios/ with its expectations (`der-sim run
# --transport inproc --quiet`, one test per scenario), a summary table, and the closing line
# `N passed, N failed` (unit tests counted one by one).
#
# Logs: each integration test's output and each scenario's outputs go to a directory of this
# run, made by mktemp under $TMPDIR (so two runs never share one). Its path is printed at the
# start. It is removed when every test passed, and kept when one failed (the failed tests'
# logs and reports are there) or when KEEP_LOGS=1. SCENARIO_OUT=DIR puts the scenario outputs
# in DIR instead (never removed).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
logs=$(mktemp -d -t derloop-tests.XXXXXX) || { echo "run-all: mktemp failed" >&2; exit 1; }
echo "logs: $logs"
pass=0 fail=0
failed_names=()
summary=()

echo "== unit tests"
start=$(date +%s)
out=$(timeout 600 "$BUILD/bin/unit-tests" 2>&1); rc=$?
echo "$out" | grep -vE '^\s*$' | tail -n 40
# CUnit's summary: "tests  <total> <ran> <passed> <failed> <inactive>"
read -r _ _ ran upass ufail _ < <(echo "$out" | grep -E '^\s+tests\s' | head -1)
ran=${ran:-0} upass=${upass:-0} ufail=${ufail:-0}
if [ "$rc" -ne 0 ] && [ "$ufail" -eq 0 ]; then ufail=1; failed_names+=("unit-tests (exit $rc)"); fi
# An empty suite list (a broken generated build/gen/unit_suites.h) must not pass as "0 failed".
if [ "$ran" -eq 0 ] && [ "$ufail" -eq 0 ]; then ufail=1; failed_names+=("unit-tests ran no test"); fi
[ "$ufail" -gt 0 ] && failed_names+=("unit-tests: $ufail failed")
pass=$((pass + upass)); fail=$((fail + ufail))
summary+=("unit-tests ($upass/$ran)|$([ "$ufail" -eq 0 ] && echo PASS || echo FAIL)|$(( $(date +%s) - start ))")

echo "== integration tests"
for t in tests/integration/test_*.sh tests/integration/test_*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  start=$(date +%s)
  case "$t" in
    *.py) timeout 300 /usr/bin/python3 "$t" > "$logs/$name.log" 2>&1 ;;
    *)    timeout 300 bash "$t" > "$logs/$name.log" 2>&1 ;;
  esac
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); echo "PASS $name (${secs}s)"; summary+=("$name|PASS|$secs")
  else
    fail=$((fail + 1)); failed_names+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"
    summary+=("$name|FAIL|$secs")
    sed 's/^/    | /' "$logs/$name.log" | tail -n 40
    echo "    | log: $logs/$name.log"
  fi
done

echo "== scenarios"
# Every scenario runs with its expectations; der-sim exits 1 when one fails. Outputs go to a
# directory of this run (plots and report included, so a failure leaves a page to look at).
scen_out=${SCENARIO_OUT:-$logs/scenarios}
mkdir -p "$scen_out"
# scenarios/incidents/ holds the regression scenarios of field incidents (docs/incidents.md).
# Scenarios are independent, CPU-bound and deterministic, so they run SCENARIO_JOBS at a time
# (default: the number of cores); results are collected and printed in file order afterwards.
jobs=${SCENARIO_JOBS:-$(nproc 2>/dev/null || echo 1)}
run_scenario() { # $1 scenario file, $2 output dir; leaves $2.rc and $2.secs
  local t0 rc
  t0=$(date +%s)
  timeout 300 "$BUILD/bin/der-sim" run --transport inproc --quiet --out "$2" "$1" > "$2.log" 2>&1
  rc=$?
  echo $(( $(date +%s) - t0 )) > "$2.secs"
  echo "$rc" > "$2.rc"
}
scen_files=()
for s in scenarios/*.json scenarios/incidents/*.json; do
  [ -e "$s" ] || continue
  scen_files+=("$s")
  rel=${s#scenarios/}
  dir="$scen_out/$(echo "${rel%.json}" | tr / -)"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  run_scenario "$s" "$dir" &
done
wait
for s in "${scen_files[@]+"${scen_files[@]}"}"; do
  rel=${s#scenarios/}
  name="scenario ${rel%.json}"
  dir="$scen_out/$(echo "${rel%.json}" | tr / -)"
  rc=$(cat "$dir.rc" 2>/dev/null || echo 99)
  secs=$(cat "$dir.secs" 2>/dev/null || echo 0)
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); echo "PASS $name (${secs}s)"; summary+=("$name|PASS|$secs")
  else
    fail=$((fail + 1)); failed_names+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"
    summary+=("$name|FAIL|$secs")
    grep -E 'FAIL|error|der-sim run:' "$dir.log" | sed 's/^/    | /' | tail -n 20
    echo "    | report: $dir/report.html"
  fi
done

echo
echo "== summary"
printf '%-44s %-6s %8s\n' "test" "result" "seconds"
for row in "${summary[@]}"; do
  IFS='|' read -r n r sec <<< "$row"
  printf '%-44s %-6s %8s\n' "$n" "$r" "$sec"
done
echo
for n in "${failed_names[@]+"${failed_names[@]}"}"; do echo "failed: $n"; done
if [ "$fail" -eq 0 ] && [ "${KEEP_LOGS:-0}" != 1 ]; then
  rm -rf "$logs"
else
  echo "logs kept in $logs"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
