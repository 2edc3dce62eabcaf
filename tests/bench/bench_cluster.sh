#!/usr/bin/env bash
# Two der-headend processes on one throwaway PostgreSQL, 100 python3-grpcio gateways split across
# them, group dispatches posted alternately on each: the time from POST to each share at its
# gateway (local stream vs crossed over NOTIFY) and until all are APPLIED (tests/bench/
# bench_cluster.py). Figures only, no target.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
if [ ! -e "$BUILD/gen/py/.stamp" ]; then # the python gRPC stubs: make build/gen/py/.stamp
  echo "bench_cluster: skipped (no $BUILD/gen/py/.stamp; make $BUILD/gen/py/.stamp builds it)"
  exit 0
fi
BUILD=$BUILD exec /usr/bin/python3 tests/bench/bench_cluster.py
