#!/usr/bin/env bash
# Runs the unit tests and every integration test, each in its own process with a time limit,
# and ends with the line `N passed, N failed` (unit tests counted one by one).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
pass=0 fail=0
failed_names=()

echo "== unit tests"
out=$(timeout 600 "$BUILD/bin/unit-tests" 2>&1); rc=$?
echo "$out" | grep -vE '^\s*$' | tail -n 40
# CUnit's summary: "tests  <total> <ran> <passed> <failed> <inactive>"
read -r _ _ ran upass ufail _ < <(echo "$out" | grep -E '^\s+tests\s' | head -1)
ran=${ran:-0} upass=${upass:-0} ufail=${ufail:-0}
if [ "$rc" -ne 0 ] && [ "$ufail" -eq 0 ]; then ufail=1; failed_names+=("unit-tests (exit $rc)"); fi
[ "$ufail" -gt 0 ] && failed_names+=("unit-tests: $ufail failed")
pass=$((pass + upass)); fail=$((fail + ufail))

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
    pass=$((pass + 1)); echo "PASS $name (${secs}s)"
  else
    fail=$((fail + 1)); failed_names+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"
    sed 's/^/    | /' "/tmp/derloop-$name.log" | tail -n 40
  fi
done

echo
for n in "${failed_names[@]+"${failed_names[@]}"}"; do echo "failed: $n"; done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
