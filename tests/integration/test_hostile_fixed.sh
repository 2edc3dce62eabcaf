#!/usr/bin/env bash
# Every finding of tests/hostile/FINDINGS.md that was fixed keeps its reproducer in
# tests/hostile/fixed/: each exits 0 now and would exit 1 with the bug back. They run here,
# one after another, each with a time limit; one failure fails the test.
set -u
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
fail=0
for t in tests/hostile/fixed/*.py tests/hostile/fixed/*.sh; do
  [ -e "$t" ] || continue
  start=$(date +%s)
  case "$t" in
    *.py) out=$(timeout 120 /usr/bin/python3 "$t" 2>&1) ;;
    *)    out=$(timeout 120 bash "$t" 2>&1) ;;
  esac
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "ok: $(basename "$t") ($(( $(date +%s) - start )) s): $(echo "$out" | tail -n 1)"
  else
    fail=1
    echo "FAIL: $(basename "$t") (exit $rc)"
    echo "$out" | tail -n 20 | sed 's/^/    | /'
  fi
done
exit $fail
