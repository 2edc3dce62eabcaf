#!/usr/bin/env bash
# docs/registers.md is generated (reports/regdoc.c) from the simulator's maps (sim/wire/regmap_*.c), the
# SunSpec tables and the device maps (gateway/devices/maps/): it must match what
# `der-sim registers` prints, so that the documented maps are the served maps.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if ! "$BUILD/bin/der-sim" registers > "$tmp"; then
  echo "FAIL: der-sim registers exited with an error" >&2
  exit 1
fi
if ! diff -u docs/registers.md "$tmp"; then
  echo "FAIL: docs/registers.md is out of date; regenerate it with:" >&2
  echo "  $BUILD/bin/der-sim registers > docs/registers.md" >&2
  exit 1
fi
echo "docs/registers.md matches der-sim registers"
