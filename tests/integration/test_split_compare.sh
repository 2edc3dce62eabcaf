#!/usr/bin/env bash
# der-sim run --split-compare (docs/split.md): scenarios/split-compare.json once per split
# policy; the policies differ where they must (soc_balance the smallest SoC spread, loss_min
# the least modelled loss), every run passes its expectations, the table is the same twice,
# and a policy the gateway does not know is an error naming the field.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$BUILD/bin/der-sim
S=scenarios/split-compare.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$DERSIM" run --split-compare --no-plots -o "$tmp/a" "$S" > "$tmp/a.out" 2>&1 || { cat "$tmp/a.out"; fail "run a"; }
"$DERSIM" run --split-compare --no-plots -o "$tmp/b" "$S" > "$tmp/b.out" 2>&1 || { cat "$tmp/b.out"; fail "run b"; }
for f in split-compare.csv split-compare.md split-compare.html; do
  [ -s "$tmp/a/$f" ] || fail "no $f"
done
cmp "$tmp/a/split-compare.csv" "$tmp/b/split-compare.csv" || fail "the table differs run to run"
/usr/bin/python3 - "$tmp/a/split-compare.csv" <<'PY'
import csv, sys
rows = {r["policy"]: r for r in csv.DictReader(open(sys.argv[1]))}
def fail(msg):
    sys.exit("FAIL: " + msg)
want = {"capacity", "equal", "soc_balance", "loss_min", "priority"}
if set(rows) != want:
    fail("policies %s" % sorted(rows))
col = lambda name: {p: float(r[name]) for p, r in rows.items()}
spread, model = col("soc_spread_mean"), col("model_loss_kwh")
if min(spread, key=spread.get) != "soc_balance":
    fail("soc_balance has not the smallest SoC spread: %s" % spread)
if min(model, key=model.get) != "loss_min":
    fail("loss_min has not the lowest modelled loss: %s" % model)
if len({r["digest"] for r in rows.values()}) != len(rows):
    fail("two policies gave the same run")
if any(r["expect_failed"] != "0" for r in rows.values()):
    fail("an expectation failed: %s" % {p: r["expect_failed"] for p, r in rows.items()})
print("ok: soc_balance spread %.4f (capacity %.4f), loss_min model loss %.3f kWh (capacity %.3f)"
      % (spread["soc_balance"], spread["capacity"], model["loss_min"], model["capacity"]))
PY
# the capacity run is the scenario as written
"$DERSIM" run --transport inproc --quiet --no-plots --no-report --no-baseline -o "$tmp/plain" "$S" > "$tmp/plain.out"
grep -q "^policy=capacity digest=$(sed -n 's/^digest sha256=//p' "$tmp/plain.out") " "$tmp/a.out" \
  || fail "the capacity run differs from the plain run"
# a policy the gateway does not know
if "$DERSIM" run --split-compare --no-plots -o "$tmp/c" --set gateway.split.priority='["nope"]' "$S" > "$tmp/c.out" 2>&1; then
  fail "an unknown asset in split.priority was accepted"
fi
grep -q 'split.priority\[0\]: unknown asset nope' "$tmp/c.out" || { cat "$tmp/c.out"; fail "no error naming split.priority[0]"; }
echo "split compare: ok"
