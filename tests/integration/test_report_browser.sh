#!/usr/bin/env bash
# report.html in a real browser (issue 4): runs a short scenario, opens the report in headless
# Chromium, takes a screenshot and checks in the DOM that every section is there and that the
# page needs nothing outside itself. Every Chromium runs under a timeout in its own process
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

"$DERSIM" run tests/data/expect/short-ok.json --transport inproc --quiet --out "$tmp/run" > "$tmp/run.out"
report=$tmp/run/report.html
[ -s "$report" ] || fail "no report.html"
# self-contained: no external resource, no script
! grep -Eiq '<script|<link|src="(https?:|//|file:)' "$report" || fail "report.html references something outside itself"

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
browse "$tmp/dom.html" --dump-dom "file://$report"
for id in summary kpis expectations baseline plots events digest; do
  grep -q "id=\"$id\"" "$tmp/dom.html" || fail "section #$id missing from the DOM"
done
grep -q '<img alt=' "$tmp/dom.html" || fail "no plot image in the DOM"
[ -n "${SCREENSHOT_OUT:-}" ] && cp "$tmp/shot.png" "$SCREENSHOT_OUT"
echo "report in the browser: ok"
