#!/usr/bin/env bash
# der-sim serve against mbpoll, a Modbus master we did not write: the 'SunS' marker at 40000
# of the battery and of the grid meter, the first model header after it, and an FC06 write to a
# read-only register, which mbpoll reports with exit status 1 (exception 2).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=${DERSIM:-$BUILD/bin/der-sim}

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- der-sim stderr"; tail -n 20 "$tmp/err"; exit 1; }

"$DERSIM" serve scenarios/reference-site.json --port-base 0 --config-dir "$tmp/cfg" \
  > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^ready ' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || fail "der-sim exited before ready"
  sleep 0.1
done
grep -q '^ready sites=1$' "$tmp/out" || fail "no 'ready sites=1' line"
line=$(grep '^site=ref ' "$tmp/out") || fail "no endpoint line for site ref"
port=$(sed -n 's/.* listen=127\.0\.0\.1:\([0-9]*\) .*/\1/p' <<<"$line")
[ -n "$port" ] || fail "no port in: $line"
unit_of() { tr ',' '\n' <<<"${line##*units=}" | awk -F: -v a="$1" '$2 == a { print $1 }'; }
bat=$(unit_of bat-1)
grid=$(unit_of grid)
[ -n "$bat" ] && [ -n "$grid" ] || fail "no unit for bat-1 or grid in: $line"
# The configuration file names the same endpoint.
grep -q "\"port\":[[:space:]]*$port" "$tmp/cfg/ref.json" || fail "ref.json does not name port $port"

mb() { timeout 10 mbpoll -m tcp -p "$port" -o 2 -1 "$@"; }

for unit in "$bat" "$grid"; do
  out=$(mb -a "$unit" -t 4:hex -0 -r 40000 -c 4 127.0.0.1) || fail "mbpoll read of unit $unit failed: $out"
  grep -q '^\[40000\]:[[:space:]]*0x5375' <<<"$out" || fail "unit $unit: 40000 is not 0x5375: $out"
  grep -q '^\[40001\]:[[:space:]]*0x6E53' <<<"$out" || fail "unit $unit: 40001 is not 0x6E53: $out"
  # Model 1 (common) comes first, with L = 65 or 66.
  grep -q '^\[40002\]:[[:space:]]*0x0001' <<<"$out" || fail "unit $unit: model 1 is not first: $out"
  grep -Eq '^\[40003\]:[[:space:]]*0x004[12]' <<<"$out" || fail "unit $unit: model 1 length: $out"
  echo "ok: unit $unit 'SunS' + model 1"
done

# FC06 to the read-only marker: exception 2, mbpoll exit status 1.
mb -a "$bat" -0 -r 40000 127.0.0.1 1234 > "$tmp/w" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "FC06 to a read-only register: mbpoll exit $rc, want 1: $(cat "$tmp/w")"
grep -qi 'illegal data address' "$tmp/w" || fail "no 'Illegal data address' from mbpoll: $(cat "$tmp/w")"
out=$(mb -a "$bat" -t 4:hex -0 -r 40000 -c 1 127.0.0.1) || fail "read after refused write failed"
grep -q '0x5375' <<<"$out" || fail "the refused write changed the marker: $out"
echo "ok: FC06 to a read-only register -> exception 2 (mbpoll exit 1)"

# An unknown unit id: exception 0x0B (gateway target failed to respond).
mb -a 200 -0 -r 40000 127.0.0.1 > "$tmp/u" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "unknown unit: mbpoll exit $rc, want 1: $(cat "$tmp/u")"
echo "ok: unknown unit -> exception"

kill -TERM "$pid"
for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "der-sim still running 2 s after SIGTERM"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "der-sim exit status $rc after SIGTERM"
echo "ok: SIGTERM -> exit 0"
echo "PASS test_serve_mbpoll"
