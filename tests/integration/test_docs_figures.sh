#!/usr/bin/env bash
# Figures in the docs come from runs: a number followed by a marker such as
#   13.78<!-- run reference-site kpis.energy_import_kwh -->
# is the KPI energy_import_kwh of `der-sim run scenarios/reference-site.json` (inproc, no plots,
# no report), written with as many decimals as the doc gives it. The marker names the scenario
# and a member of kpis.json: kpis.NAME, vs_baseline.NAME or baseline.NAME (the baseline's
# KPIs). The marker is an HTML comment: Markdown renders the number alone. Every scenario a
# doc names is run once; a figure that differs fails here, and
# `UPDATE=1 bash tests/integration/test_docs_figures.sh` rewrites the figures from the runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
docs=$(grep -l -- '<!-- run ' docs/*.md || true)
if [ -z "$docs" ]; then
  echo "FAIL: no figure marked <!-- run SCENARIO SECTION.KPI --> in docs/"
  exit 1
fi
for s in $(grep -oh -- '<!-- run [A-Za-z0-9_/-]* ' $docs | awk '{print $3}' | sort -u); do
  mkdir -p "$(dirname "$tmp/$s")" # scenarios/incidents/NAME.json is "incidents/NAME"
  "$BUILD/bin/der-sim" run --transport inproc --quiet --no-plots --no-report -o "$tmp/$s" \
    "scenarios/$s.json" > "$tmp/$s.out" 2>&1 || [ -f "$tmp/$s/kpis.json" ] || {
    echo "FAIL: der-sim run scenarios/$s.json wrote no kpis.json:"
    cat "$tmp/$s.out"
    exit 1
  }
done
/usr/bin/python3 - "$tmp" "${UPDATE:-0}" $docs <<'PY'
import json, re, sys

runs, update, docs = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
MARK = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(<!-- run ([A-Za-z0-9_/-]+) (kpis|vs_baseline|baseline)\.([a-z0-9_]+) -->)")
kpis = {}

def value(scenario, section, name):
    if scenario not in kpis:
        kpis[scenario] = json.load(open(f"{runs}/{scenario}/kpis.json"))
    k = kpis[scenario]
    group = k["baseline"]["kpis"] if section == "baseline" else k[section]
    if name not in group:
        sys.exit(f"FAIL: {scenario}: kpis.json has no {section}.{name}")
    return group[name]

bad, n = 0, 0
for doc in docs:
    text = open(doc, encoding="utf-8").read()
    def check(m):
        global bad, n
        n += 1
        shown, scenario, section, name = m.group(1), m.group(3), m.group(4), m.group(5)
        v = value(scenario, section, name)
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        want = "null" if v is None else f"{v:.{decimals}f}"
        if want != shown:
            line = text.count("\n", 0, m.start()) + 1
            if not update:
                print(f"FAIL: {doc}:{line}: {shown} but {scenario} gives {section}.{name} = {v} ({want})")
            bad += 1
        return want + m.group(2)
    new = MARK.sub(check, text)
    if update and new != text:
        open(doc, "w", encoding="utf-8").write(new)
        print(f"updated {doc}")
if bad and not update:
    print(f"FAIL: {bad} of {n} figures differ from their runs (UPDATE=1 rewrites them)")
    sys.exit(1)
print(f"ok: {n} figures in {len(docs)} docs match their runs")
PY
