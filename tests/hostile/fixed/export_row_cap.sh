#!/usr/bin/env bash
# `der-headend export` read at most 5,000,000 telemetry rows per asset and cut the rest without a
# word (headend/export.c; FINDINGS.md finding 16): records.csv ended early, exit 0. Now a range
# with more rows than the cap (--max-rows, lowered here to 3 of 5 stored rows) is refused with
# exit 1 naming the asset, and the cap itself exports.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BUILD:-build}/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo '{"sites":[{"site_id":"s1","gateways":["gw-1"],"assets":[{"asset_id":"m1","type":"meter"}]}]}' \
  >"$tmp/inv.json"
# the store's schema from der-headend itself, then five rows of m1 at 1 s
"$BIN/der-headend" token add --name t --role viewer --db "$tmp/h.db" >/dev/null 2>&1 || exit 1
/usr/bin/python3 - "$tmp/h.db" <<'PY' || exit 1
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
t0 = 1767225600000  # 2026-01-01T00:00:00Z
for i in range(5):
    db.execute("INSERT INTO telemetry(asset_id, ts_ms, received_ms, seq, power_w, setpoint_w,"
               " soc, online, status, details) VALUES ('m1', ?, ?, ?, 100, NULL, NULL, 1, 'ok', '')",
               (t0 + 1000 * i, t0 + 1000 * i, i + 1))
db.commit()
PY
exp() {
  "$BIN/der-headend" export --site s1 --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z \
    --inventory "$tmp/inv.json" --db "$tmp/h.db" --out "$tmp/exp$1" --max-rows "$1" 2>&1
}
out=$(exp 3)
rc=$?
if [ $rc -ne 1 ] || ! grep -q "more than 3 telemetry rows of m1" <<<"$out"; then
  echo "FAIL: export over the row cap: exit $rc, said: $out"
  exit 1
fi
out5=$(exp 5)
rc5=$?
rows=$(($(wc -l <"$tmp/exp5/records.csv") - 1))
if [ $rc5 -ne 0 ] || [ "$rows" -ne 5 ]; then
  echo "FAIL: export at the cap: exit $rc5, $rows rows, said: $out5"
  exit 1
fi
echo "ok: export over the row cap refused ($out); at the cap: $rows rows"
