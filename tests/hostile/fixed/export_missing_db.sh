#!/usr/bin/env bash
# `der-headend export --db PATH` with a mistyped PATH (headend/export.c; FINDINGS.md finding
# 15): it created an empty SQLite file there and exported an empty history with exit 0. Now it
# exits 1 naming the path, and creates nothing.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BUILD:-build}/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo '{"sites":[{"site_id":"s1","gateways":["gw-1"],"assets":[{"asset_id":"m1","type":"meter"}]}]}' \
  >"$tmp/inv.json"
out=$("$BIN/der-headend" export --site s1 --from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z \
  --inventory "$tmp/inv.json" --db "$tmp/typo.sqlite" --out "$tmp/exp" 2>&1)
rc=$?
if [ $rc -eq 0 ] || [ -e "$tmp/typo.sqlite" ] || ! grep -q "typo.sqlite: No such file" <<<"$out"; then
  echo "FAIL: export with a missing --db: exit $rc, created: $(ls "$tmp"), said: $out"
  exit 1
fi
echo "ok: export with a missing --db refused: $out"
