#!/usr/bin/env bash
# The command lines: --help on every binary and subcommand, `der-sim check` on good and broken
# scenarios (the error names the file, the JSON path and the value), including a bad gateway
# section (a strategy parameter, an unknown strategy, a constraint, safety, uplink), bad options
# exit 2, and `der-gateway --check` names the bad field of a site configuration.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
B=$BUILD/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# -h and --help on every binary and every subcommand: usage on stdout, nothing on stderr, exit 0
for cmd in "der-gateway" "der-headend" "der-headend token" "der-headend token add" \
           "der-headend token list" "der-headend token revoke" "der-sim" "der-sim help" \
           "der-sim version" "der-sim check" "der-sim run" "der-sim compare" "der-sim sweep" \
           "der-sim serve" "der-sim kpis" "der-sim registers" "der-sim import" \
           "der-headend export"; do
  for h in -h --help; do
    set -- $cmd
    bin=$1; shift
    out=$($B/$bin "$@" $h 2> "$tmp/help.err") || fail "$cmd $h exited non-zero"
    grep -q '^usage:' <<<"$out" || fail "$cmd $h prints no usage on stdout"
    [ ! -s "$tmp/help.err" ] || fail "$cmd $h wrote to stderr: $(cat "$tmp/help.err")"
  done
done
set --

# der-headend's durations: common/duration.h's syntax; the old -ms/-s spellings still work, with
# a deprecation warning in the log format of every binary
$B/der-headend --keepalive-time 2s --http-timeout 1m --config-doc > /dev/null 2> "$tmp/err" \
  || fail "--keepalive-time 2s refused: $(cat "$tmp/err")"
[ ! -s "$tmp/err" ] || fail "--keepalive-time 2s warned: $(cat "$tmp/err")"
$B/der-headend --keepalive-time-ms 2000 --http-timeout-s 60 --config-doc > /dev/null 2> "$tmp/err" \
  || fail "--keepalive-time-ms 2000 refused: $(cat "$tmp/err")"
grep -qE '^[0-9T:.-]+Z level=warn event=deprecated_option option=--keepalive-time-ms use=--keepalive-time ' \
  "$tmp/err" || fail "no deprecation warning for --keepalive-time-ms: $(cat "$tmp/err")"
set +e
$B/der-headend --keepalive-time 2000 --config-doc > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "keepalive-time: '2000' is not a duration" "$tmp/err" \
  || fail "--keepalive-time 2000 (no unit): exit $rc, $(cat "$tmp/err")"
$B/der-sim --version | grep -q '^der-sim ' || fail "der-sim --version"
$B/der-gateway --version | grep -q '^der-gateway ' || fail "der-gateway --version"

# good scenarios
for f in scenarios/*.json; do
  $B/der-sim check "$f" > "$tmp/out" || fail "der-sim check $f: $(cat "$tmp/out")"
  grep -q "^ok $f: " "$tmp/out" || fail "der-sim check $f printed no summary"
done

# a broken scenario: file, JSON path and value in one line, exit status 1
cat > "$tmp/broken.json" <<'JSON'
{"name": "broken", "seed": 1, "start": "2026-01-01T00:00:00Z", "duration": "1h", "step": "1s",
 "sites": [{"id": "s", "assets": [
   {"id": "grid", "type": "meter", "role": "grid"},
   {"id": "b", "type": "battery", "capacity_kwh": -5, "max_charge_kw": 5, "max_discharge_kw": 5}]}]}
JSON
set +e
$B/der-sim check "$tmp/broken.json" 2> "$tmp/err"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "check of a broken scenario exits $rc, not 1"
grep -q "$tmp/broken.json: sites\[0\].assets\[1\].capacity_kwh: .*-5" "$tmp/err" \
  || fail "the error does not name file, path and value: $(cat "$tmp/err")"

# --set reaches validation, typos in --set paths are errors
set +e
$B/der-sim check scenarios/reference-site.json --set 'sites[0].assets[1].capacity_kwh=0' 2> "$tmp/err"; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q 'capacity_kwh' "$tmp/err" || fail "--set value not validated: $(cat "$tmp/err")"

# the gateway section is checked as the run builds it (strategy, params, constraints, safety):
# check_gw NAME SCENARIO --set PATH=VALUE WORD...: exit 1, and stderr names the scenario file
# and holds every WORD (the JSON path and the value)
check_gw() {
  local name=$1 scen=scenarios/$2.json set=$3; shift 3
  local rc=0 w
  $B/der-sim check --set "$set" "$scen" > "$tmp/$name.out" 2> "$tmp/$name.err" || rc=$?
  [ "$rc" -eq 1 ] || fail "check $name: exit $rc, want 1: $(cat "$tmp/$name.out" "$tmp/$name.err")"
  ! grep -q '^ok ' "$tmp/$name.out" || fail "check $name: printed ok"
  for w in "$scen: gateway (site " "$@"; do
    grep -qF -- "$w" "$tmp/$name.err" || fail "check $name: no \"$w\" in: $(cat "$tmp/$name.err")"
  done
}
check_gw param-range peak-shaving gateway.params.import_limit_w=-1 \
  'params.import_limit_w: must be in [0, 100000000], got -1'
check_gw param-unknown peak-shaving gateway.params.import_limt_w=1 \
  'params.import_limt_w: unknown parameter'
check_gw strategy-unknown peak-shaving gateway.strategy=peak_shavng 'unknown strategy "peak_shavng"'
check_gw constraint stacked 'gateway.constraints[1].params.import_limit_w=-5' \
  'constraints[1].params.import_limit_w: must be in' 'got -5'
check_gw safety peak-shaving 'gateway.safety={"soc_floor": 1.5}' \
  'safety.soc_floor: must be in [0, 1], got 1.5'
check_gw uplink peak-shaving 'gateway.uplink={"keepalive_time": "soon"}' \
  'uplink.keepalive_time:' 'got "soon"'
check_gw gateway-key peak-shaving 'gateway.paramz={}' 'unknown key "paramz"'
# a good override of the same section still passes
$B/der-sim check --set gateway.params.import_limit_w=6000 scenarios/peak-shaving.json \
  | grep -q '^ok scenarios/peak-shaving.json: ' || fail "check with a valid gateway override"

# bad options
set +e
$B/der-sim run --transport carrier-pigeon scenarios/reference-site.json 2>/dev/null; rc1=$?
$B/der-sim frobnicate 2>/dev/null; rc2=$?
$B/der-gateway --config 2>/dev/null; rc3=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$rc3" -eq 2 ] || fail "bad options exit $rc1 $rc2 $rc3, not 2"

# a gateway configuration with a bad field
cat > "$tmp/site.json" <<'JSON'
{"site_id": "s", "strategy": "net_zero", "params": {"kp": -1},
 "devices": [{"asset_id": "b", "type": "battery", "host": "127.0.0.1", "port": 1502, "unit_id": 1}]}
JSON
set +e
$B/der-gateway --config "$tmp/site.json" --check 2> "$tmp/err"; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q 'params.kp: must be in \[0, 100\], got -1' "$tmp/err" \
  || fail "der-gateway --check: exit $rc, $(cat "$tmp/err")"
sed -i 's/"kp": -1/"kp": 0.5/' "$tmp/site.json"
$B/der-gateway --config "$tmp/site.json" --check | grep -q '^ok ' || fail "der-gateway --check on a good file"
echo "command lines: ok"
