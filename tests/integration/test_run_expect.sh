#!/usr/bin/env bash
# Expectations and the report (issue 4): a scenario with an impossible expectation makes
# `der-sim run` exit 1, prints which one failed and the report marks it; a misspelt KPI name is
# an error before the run starts; kpis.json is deterministic and digested; without gnuplot in
# PATH the run says so in one line and still writes everything else.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# an impossible expectation: exit 1, the failing line, the report says which
rc=0; "$DERSIM" run tests/data/expect/impossible.json --transport inproc --quiet --out "$tmp/imp" \
  > "$tmp/imp.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "impossible expectation: exit $rc, want 1"
grep -q '^expect energy_import_kwh = .*(max -1000): FAIL$' "$tmp/imp.out" || fail "no FAIL line: $(cat "$tmp/imp.out")"
grep -q '^expect check_failures = .*: PASS$' "$tmp/imp.out" || fail "no PASS line"
grep -q '^expectations: 2 passed, 1 failed$' "$tmp/imp.out" || fail "no expectation summary"
for f in timeseries.csv decisions.csv events.log kpis.json report.html baseline/kpis.json; do
  [ -s "$tmp/imp/$f" ] || [ -s "$tmp/imp/baseline/timeseries.csv" ] || fail "missing $f"
done
grep -q '"energy_import_kwh": {"bounds": "max -1000", "pass": false' "$tmp/imp/kpis.json" \
  || fail "kpis.json does not record the failed expectation"
python3 - "$tmp/imp/report.html" <<'PY' || fail "report.html does not mark the failed expectation"
import re, sys
html = open(sys.argv[1]).read()
sec = html[html.index('id="expectations"'):html.index('id="baseline"')]
row = re.search(r'<tr><td>energy_import_kwh</td>.*?</tr>', sec)
assert row and 'class="fail"' in row.group(0) and 'FAIL' in row.group(0), row
assert '1 of 3 expectations failed' in sec
PY

# a typo in a KPI name is an error at load time, before anything runs
rc=0; "$DERSIM" run tests/data/expect/typo.json --transport inproc --quiet --out "$tmp/typo" \
  > "$tmp/typo.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "typo: exit $rc"
grep -q 'tests/data/expect/typo.json: expect.energy_imprt_kwh: unknown KPI' "$tmp/typo.out" \
  || fail "typo message: $(cat "$tmp/typo.out")"
[ ! -e "$tmp/typo/timeseries.csv" ] || fail "the run started despite the typo"
rc=0; "$DERSIM" check tests/data/expect/typo.json 2> "$tmp/check.err" >/dev/null || rc=$?
[ "$rc" -eq 1 ] && grep -q 'unknown KPI' "$tmp/check.err" || fail "der-sim check accepts the typo"

# kpis.json: the same on both transports, sorted keys, and part of the digest
"$DERSIM" run tests/data/expect/short-ok.json --transport inproc --quiet --no-plots --out "$tmp/a" > "$tmp/a.out"
"$DERSIM" run tests/data/expect/short-ok.json --transport tcp --quiet --no-plots --out "$tmp/b" > "$tmp/b.out"
cmp "$tmp/a/kpis.json" "$tmp/b/kpis.json" || fail "kpis.json differs between transports"
da=$(sed -n 's/^digest sha256=//p' "$tmp/a.out"); db=$(sed -n 's/^digest sha256=//p' "$tmp/b.out")
[ -n "$da" ] && [ "$da" = "$db" ] || fail "digests differ: $da $db"
python3 - "$tmp/a/kpis.json" "$da" "$tmp/a" <<'PY' || fail "kpis.json keys or digest"
import hashlib, json, sys
path, digest, d = sys.argv[1:]
text = open(path).read()
def check(o):
    if isinstance(o, dict):
        assert list(o) == sorted(o), list(o)
        for v in o.values(): check(v)
check(json.loads(text))
h = hashlib.sha256()
for name in ["timeseries.csv", "decisions.csv", "events.log", "kpis.json"]:
    h.update(name.encode() + b"\0"); h.update(open(f"{d}/{name}", "rb").read())
assert h.hexdigest() == digest, "the printed digest is not over the four files"
assert json.loads(text)["digest_outputs"] != digest
PY

# no gnuplot: one clear line, everything else written, same digest
mkdir "$tmp/bin"
rc=0; env PATH="$tmp/bin" "$DERSIM" run tests/data/expect/short-ok.json --transport inproc --quiet \
  --out "$tmp/nognu" > "$tmp/nognu.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "without gnuplot: exit $rc: $(cat "$tmp/nognu.out")"
[ "$(grep -c 'gnuplot not found' "$tmp/nognu.out")" -eq 1 ] || fail "no (single) gnuplot message"
[ -s "$tmp/nognu/report.html" ] && [ -s "$tmp/nognu/kpis.json" ] || fail "outputs missing without gnuplot"
[ "$(sed -n 's/^digest sha256=//p' "$tmp/nognu.out")" = "$da" ] || fail "plots changed the digest"
ls "$tmp/nognu/plots/"*.png >/dev/null 2>&1 && fail "PNGs without gnuplot?"
grep -q 'gnuplot not found' "$tmp/nognu/report.html" || fail "the report does not say why there are no plots"
"$DERSIM" kpis | cmp - docs/kpis.md || fail "docs/kpis.md is stale: der-sim kpis > docs/kpis.md"
echo "run expectations: ok"
