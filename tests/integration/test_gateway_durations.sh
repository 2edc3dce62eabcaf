#!/usr/bin/env bash
# der-gateway --check refuses a duration above its bound (docs/gateway-config.md), naming the
# file, the field and the value, instead of overflowing 3 x poll_period (issue 10's
# "3333333313333351s" passed --check); at the bound it says ok. --duration has the parser's
# bound too (exit 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
B=$BUILD/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# site FILE POLL_PERIOD: a one-battery site
site() {
  cat > "$1" <<JSON
{"site_id": "s", "poll_period": "$2",
 "devices": [{"asset_id": "b", "type": "battery", "host": "127.0.0.1", "port": 1502, "unit_id": 1}]}
JSON
}

# refused FIELD VALUE FILE: --check exits 1 and stderr names the file, the field and the value
refused() {
  local rc=0
  $B/der-gateway --config "$3" --check > "$tmp/out" 2> "$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "--check with $1=$2: exit $rc, want 1: $(cat "$tmp/out" "$tmp/err")"
  ! grep -q '^ok ' "$tmp/out" || fail "--check with $1=$2 printed ok"
  grep -qF -- "$3: $1: must be in [" "$tmp/err" || fail "--check with $1=$2: $(cat "$tmp/err")"
  grep -qF -- "\"$2\"" "$tmp/err" || fail "--check with $1=$2 does not show the value: $(cat "$tmp/err")"
}

site "$tmp/huge.json" 3333333313333351s
refused poll_period 3333333313333351s "$tmp/huge.json"
site "$tmp/over.json" 3600001ms
refused poll_period 3600001ms "$tmp/over.json"
site "$tmp/max.json" 1h
$B/der-gateway --config "$tmp/max.json" --check | grep -q '^ok ' || fail "--check with poll_period=1h"

rc=0
$B/der-gateway --config "$tmp/max.json" --duration 36500d1ms --check 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'at most 36500d' "$tmp/err" \
  || fail "--duration above the bound: exit $rc, $(cat "$tmp/err")"
echo "gateway durations: ok"
