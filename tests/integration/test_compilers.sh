#!/usr/bin/env bash
# The determinism contract across compilers (docs/determinism.md): der-sim built with clang (in
# a scratch build directory, removed at exit) gives the same digest as the gcc build in $BUILD
# for every scenario in scenarios/ (in-process transport, as tests/integration/
# test_determinism.sh obtains digests). Only der-sim and its libraries are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GCC_SIM=$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
digest() { sed -n 's/^digest sha256=//p' "$1"; }

command -v clang > /dev/null || { echo "FAIL: clang is not installed (make deps)" >&2; exit 1; }
[ -x "$GCC_SIM" ] || { echo "FAIL: $GCC_SIM missing (make)" >&2; exit 1; }
readelf -p .comment "$GCC_SIM" | grep -q 'GCC:' || { echo "FAIL: $GCC_SIM is not a gcc build" >&2; exit 1; }

# A make of our own: not the jobserver of the `make test` that may have started us.
start=$(date +%s)
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
  make --no-print-directory -s -j2 BUILD="$tmp/build" CC=clang "$tmp/build/bin/der-sim" \
  > "$tmp/make.log" 2>&1 || { tail -n 30 "$tmp/make.log" >&2; echo "FAIL: make CC=clang" >&2; exit 1; }
CLANG_SIM=$tmp/build/bin/der-sim
readelf -p .comment "$CLANG_SIM" | grep -q 'clang version' \
  || { echo "FAIL: $CLANG_SIM is not a clang build" >&2; exit 1; }
echo "clang build of der-sim: $(( $(date +%s) - start )) s"

n=0 bad=0
for s in scenarios/*.json; do
  name=$(basename "$s" .json)
  opts=(run --transport inproc --quiet --no-plots --no-report)
  # both builds at once (2 cores); the exit status (an expectation) is the scenario test's
  # business: here only the digests count
  "$GCC_SIM" "${opts[@]}" --out "$tmp/gcc/$name" "$s" > "$tmp/gcc-$name.out" 2>&1 &
  g=$!
  "$CLANG_SIM" "${opts[@]}" --out "$tmp/clang/$name" "$s" > "$tmp/clang-$name.out" 2>&1 || true
  wait "$g" || true
  dg=$(digest "$tmp/gcc-$name.out") dc=$(digest "$tmp/clang-$name.out")
  n=$((n + 1))
  if [ -n "$dg" ] && [ "$dg" = "$dc" ]; then
    printf '%-28s %s same\n' "$name" "$dg"
  else
    bad=$((bad + 1))
    printf '%-28s gcc %s clang %s DIFFER\n' "$name" "${dg:-none}" "${dc:-none}"
    for f in timeseries.csv decisions.csv events.log kpis.json; do
      cmp "$tmp/gcc/$name/$f" "$tmp/clang/$name/$f" || true
    done
  fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no scenario" >&2; exit 1; }
[ "$bad" -eq 0 ] || { echo "FAIL: $bad of $n scenarios differ between gcc and clang" >&2; exit 1; }
echo "compilers: $n scenarios, gcc and clang digests identical"
