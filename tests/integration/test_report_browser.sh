#!/usr/bin/env bash
# report.html in a real browser (issues 4, 13): runs a short scenario with a field record beside
# it, opens the report in headless Chromium, takes a screenshot and checks in the DOM that every
# section is there, plots before the KPI tables, the field overlay, the interactive plots (zoom
# and hover through the page's #zoom= and #hover= links), and that the page needs nothing
# outside itself. Every Chromium runs under a timeout in its own process
# group, which is killed on the way out, so nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$PWD/$BUILD/bin/der-sim
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
tmp=$(mktemp -d)
cleanup() { [ -n "${pgid:-}" ] && kill -- -"$pgid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "SKIP-FAIL: $CHROMIUM not installed (Debian: chromium)" >&2; exit 1; }

# a field record: the scenario's own run at 10 s, shifted by 100 W (so that the overlay differs)
"$DERSIM" run tests/data/expect/short-ok.json --transport inproc --quiet --no-plots --no-report \
  --no-baseline --out "$tmp/rec" > /dev/null || [ -s "$tmp/rec/timeseries.csv" ] # its vs_baseline bounds fail
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; print "time,grid_w,soc,battery_w"; next }
         ($1 % 10) == 0 { print $1 "," $c["grid_w"] + 100 "," $c["soc"] "," $c["battery_w"] }' \
  "$tmp/rec/timeseries.csv" > "$tmp/field.csv"
"$DERSIM" run tests/data/expect/short-ok.json --transport inproc --quiet --out "$tmp/run" \
  --set "field={\"csv\":\"$tmp/field.csv\",\"columns\":{\"grid_w\":\"grid_w\",\"soc\":\"soc\",\"battery_w\":\"battery_w\"}}" \
  > "$tmp/run.out"
report=$tmp/run/report.html
[ -s "$report" ] || fail "no report.html"
grep -q '"field_grid_bias_w": -100.0,' "$tmp/run/kpis.json" || fail "field bias: $(grep field_grid "$tmp/run/kpis.json")"
# self-contained: no external resource (the one script is inline, its data in the page)
! grep -Eiq '<link|<script[^>]* src=|src="(https?:|//|file:)' "$report" || fail "report.html references something outside itself"
[ "$(stat -c %s "$report")" -lt 3000000 ] || fail "report.html is $(stat -c %s "$report") bytes"

browse() { # browse OUTPUT_FILE ARGS...: one headless Chromium with a time limit
  local out=$1; shift
  setsid timeout -k 5 40 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$tmp/profile.XXXX")" "$@" > "$out" 2> "$out.err" &
  pgid=$!
  wait "$pgid" || true
  kill -- -"$pgid" 2>/dev/null || true
  pgid=
}
browse "$tmp/shot.log" --screenshot="$tmp/shot.png" --window-size=1280,2000 "file://$report"
[ -s "$tmp/shot.png" ] || fail "no screenshot: $(tail -5 "$tmp/shot.log.err")"
head -c 8 "$tmp/shot.png" | od -An -tx1 | grep -q '89 50 4e 47' || fail "screenshot is not a PNG"
browse "$tmp/dom.html" --dump-dom "file://$report#zoom=60,120&hover=90"
for id in summary kpis expectations baseline plots interactive events digest plot-field; do
  grep -q "id=\"$id\"" "$tmp/dom.html" || fail "section #$id missing from the DOM"
done
grep -q '<img alt=' "$tmp/dom.html" || fail "no plot image in the DOM"
# plots before the KPI tables
[ "$(grep -bo 'id="plots"' "$tmp/dom.html" | cut -d: -f1)" -lt "$(grep -bo 'id="kpis"' "$tmp/dom.html" | cut -d: -f1)" ] \
  || fail "the KPI tables come before the plots"
# the script ran: charts built, zoomed by the link, the hover line names the field record
grep -q '<div id="ichart-power" class="ichart" data-points="[0-9]*" data-x0="60.000" data-x1="120.000">' \
  "$tmp/dom.html" || fail "no zoomed power chart: $(grep -o '<div id="ichart[^>]*>' "$tmp/dom.html")"
grep -q 'class="tip note">[0-9:]* UTC  grid [-0-9.e]*  .*grid, field [-0-9.e]*' "$tmp/dom.html" \
  || fail "no hover values: $(grep -o 'class="tip note">[^<]*' "$tmp/dom.html")"
[ -n "${SCREENSHOT_OUT:-}" ] && cp "$tmp/shot.png" "$SCREENSHOT_OUT"
echo "report in the browser: ok"
