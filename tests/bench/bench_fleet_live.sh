#!/usr/bin/env bash
# A fleet live with the headend in the loop: `make demo`'s 100 sites within 30 s, then 1,000
# sites (FLEET_SITES) with der-sim serve, multi-site der-gateway processes and der-headend in
# real time: CPU, RSS, the console's page load, a group dispatch to every site, late cycles
# (tests/bench/fleet_live.py says what and how). Exits 3 on a missed target.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build} exec /usr/bin/python3 tests/bench/fleet_live.py
