#!/usr/bin/env bash
# Docs that match the code: the option table of docs/operations.md ("### Options" under the
# headend) is what `der-headend --config-doc` prints from the option table itself. A change to
# an option without the doc fails here; `UPDATE=1 bash tests/integration/test_docs_tables.sh`
# rewrites the doc's table from the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
doc=docs/operations.md
want=$(mktemp)
have=$(mktemp)
trap 'rm -f "$want" "$have" "$want.new"' EXIT
"$BUILD/bin/der-headend" --config-doc > "$want"
# the table: the '|' lines right after the "### Options" heading
awk '/^### Options$/{on=1; next} on && /^\|/{print; seen=1; next} on && seen{exit}' "$doc" > "$have"
if [ "${UPDATE:-0}" = 1 ]; then
  awk -v table="$want" '
    /^### Options$/ {print; while ((getline l < table) > 0) print l; skip=1; next}
    skip && /^\|/ {next}
    skip && !/^\|/ {skip=0}
    {print}' "$doc" > "$want.new"
  mv "$want.new" "$doc"
  echo "updated $doc"
  exit 0
fi
if ! diff -u "$have" "$want"; then
  echo "FAIL: $doc's option table differs from der-headend --config-doc (UPDATE=1 rewrites it)"
  exit 1
fi
echo "ok: $doc option table = der-headend --config-doc ($(wc -l < "$want") lines)"
