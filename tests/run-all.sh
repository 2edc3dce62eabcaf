#!/usr/bin/env bash
# The regression suite: the unit tests, every integration test (each in its own process with a
# time limit), then every scenario in scenarios/ with its expectations (`der-sim run
# --transport inproc --quiet`, one test per scenario), a summary table, and the closing line
# `N passed, N failed` (unit tests counted one by one).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
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
[ "$ufail" -gt 0 ] && failed_names+=("unit-tests: $ufail failed")
pass=$((pass + upass)); fail=$((fail + ufail))
summary+=("unit-tests ($upass/$ran)|$([ "$ufail" -eq 0 ] && echo PASS || echo FAIL)|$(( $(date +%s) - start ))")

echo "== integration tests"
for t in tests/integration/test_*.sh tests/integration/test_*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  start=$(date +%s)
  case "$t" in
    *.py) timeout 300 /usr/bin/python3 "$t" > "/tmp/derloop-$name.log" 2>&1 ;;
    *)    timeout 300 bash "$t" > "/tmp/derloop-$name.log" 2>&1 ;;
  esac
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); echo "PASS $name (${secs}s)"; summary+=("$name|PASS|$secs")
  else
    fail=$((fail + 1)); failed_names+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"
    summary+=("$name|FAIL|$secs")
    sed 's/^/    | /' "/tmp/derloop-$name.log" | tail -n 40
  fi
done

echo "== scenarios"
# Every scenario runs with its expectations; der-sim exits 1 when one fails. Outputs go to a
# scratch directory (plots and report included, so a failure leaves a page to look at).
scen_out=${SCENARIO_OUT:-$(mktemp -d /tmp/derloop-scenarios.XXXXXX)}
for s in scenarios/*.json; do
  [ -e "$s" ] || continue
  name="scenario $(basename "$s" .json)"
  dir="$scen_out/$(basename "$s" .json)"
  start=$(date +%s)
  timeout 300 "$BUILD/bin/der-sim" run --transport inproc --quiet --out "$dir" "$s" \
    > "$dir.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
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
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
