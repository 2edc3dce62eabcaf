#!/usr/bin/env bash
# der-sim import (docs/incidents.md, "From records to a scenario"): a synthetic field CSV in
# local time (Europe/Berlin, no offsets) with a gap becomes a scenario that checks, runs twice
# to the same digest, and gives the same digest over TCP; the import itself is reproducible
# (same records, same files) and the report names the gap.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1 h at 10 s: an oscillating battery (+-1.5 kW around 2 kW discharge), PV, a house load, the
# grid from the balance; a 70 s hole at 11:16:40 local.
/usr/bin/python3 - "$tmp/records.csv" <<'PY'
import math, sys
with open(sys.argv[1], "w") as f:
    f.write("time,grid_w,pv_w,battery_w,soc\n")
    soc = 0.8
    for i in range(360):
        bat = 1500 * math.sin(i / 3) + 2000
        now = soc
        soc -= bat * 10 / 3600 / 10000
        if 100 <= i < 106:
            continue
        t = 11 * 3600 + i * 10
        pv = 3000 + 1000 * math.sin(i / 50)
        load = 800 + 200 * math.sin(i / 7)
        f.write(f"2026-05-12 {t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d},"
                f"{load - pv - bat:.1f},{pv:.1f},{bat:.1f},{now:.4f}\n")
PY

if "$DERSIM" import --out "$tmp/x" "$tmp/records.csv" 2> "$tmp/err"; then
  echo "FAIL: stamps without an offset were taken without --tz" >&2; exit 1
fi
grep -q 'has no UTC offset: give the zone with --tz' "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }

"$DERSIM" import --tz Europe/Berlin --name field-replay --out "$tmp/imp" "$tmp/records.csv" \
  > "$tmp/import.out"
cat "$tmp/import.out"
grep -q 'from 2026-05-12T09:00:00.000Z' "$tmp/import.out"
grep -q 'import: load: 1 gaps, longest 1m10s at 2026-05-12T09:16:30.000Z' "$tmp/import.out"
grep -q 'capacity 10.[01] kWh estimated from 20 %' "$tmp/import.out"
"$DERSIM" import --tz Europe/Berlin --name field-replay --out "$tmp/imp2" "$tmp/records.csv" \
  > /dev/null
for f in scenario.json load.csv pv.csv field.csv; do
  cmp "$tmp/imp/$f" "$tmp/imp2/$f"
done

"$DERSIM" check "$tmp/imp/scenario.json"
digest() { sed -n 's/^digest sha256=//p' "$1"; }
"$DERSIM" run "$tmp/imp/scenario.json" --transport inproc --quiet --no-plots --out "$tmp/a" > "$tmp/a.out"
"$DERSIM" run "$tmp/imp/scenario.json" --transport inproc --quiet --no-plots --out "$tmp/b" > "$tmp/b.out"
"$DERSIM" run "$tmp/imp/scenario.json" --transport tcp --quiet --no-plots --out "$tmp/c" > "$tmp/c.out"
a=$(digest "$tmp/a.out"); b=$(digest "$tmp/b.out"); c=$(digest "$tmp/c.out")
echo "inproc: $a"; echo "inproc: $b"; echo "tcp:    $c"
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "FAIL: digests differ" >&2; exit 1; }
echo "PASS test_import"
