#!/usr/bin/env bash
# The multi-site gateway in real time: `der-sim serve` of scenarios/fleet-demo.json with N sites
# (1 s poll period) and one `der-gateway --config-dir` polling them over Modbus TCP on loopback
# for 15 s, for N = 100, 200, 400, 800 until the fleet no longer keeps up. Keeps up: every
# site made at least 90 % of its cycles and under 1 % of all cycles started late (the gateway's
# stop lines). Prints per N the cycles, late cycles, the CPU of serve and gateway (cores) and the
# gateway's memory per site (RSS / N); then the largest N in real time. Figures only, no target.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SECS=15
tmp=$(mktemp -d)
serve_pid= gw_pid=
cleanup() {
  for p in $gw_pid $serve_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
best=0
for n in 100 200 400 800; do  # a process stops near 1000 endpoints: sitehost.c
  rm -rf "$tmp/cfg"
  "$BUILD/bin/der-sim" serve --port-base any --config-dir "$tmp/cfg" --loop \
    --set "sites[0].replicas=$n" --set 'duration="1h"' scenarios/fleet-demo.json \
    > "$tmp/serve.out" 2> "$tmp/serve.log" &
  serve_pid=$!
  for _ in $(seq 600); do grep -q '^ready' "$tmp/serve.out" && break; sleep 0.1; done
  "$BUILD/bin/der-gateway" --config-dir "$tmp/cfg" --duration "${SECS}s" 2> "$tmp/gw.log" &
  gw_pid=$!
  s0=$(ticks "$serve_pid")
  sleep 2; g0=$(ticks "$gw_pid"); s1=$(ticks "$serve_pid")
  sleep $((SECS - 5))
  g1=$(ticks "$gw_pid"); s2=$(ticks "$serve_pid")
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$gw_pid/status" 2>/dev/null || echo 0)
  wait "$gw_pid"; gw_pid=
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null; serve_pid=
  read -r cyc late minc < <(sed -n 's/.*event=stop site=[^ ]* cycles=\([0-9]*\) late=\([0-9]*\).*/\1 \2/p' "$tmp/gw.log" |
    awk '{c+=$1; l+=$2; if (NR==1 || $1<m) m=$1} END {print c+0, l+0, m+0}')
  want=$((SECS * 9 / 10))
  cpu_gw=$(awk -v a="$g0" -v b="$g1" -v hz="$hz" -v s=$((SECS - 5)) 'BEGIN{printf "%.2f", (b-a)/hz/s}')
  cpu_sv=$(awk -v a="$s1" -v b="$s2" -v hz="$hz" -v s=$((SECS - 5)) 'BEGIN{printf "%.2f", (b-a)/hz/s}')
  ok=no
  if [ "$minc" -ge "$want" ] && [ $((late * 100)) -lt "$cyc" ]; then ok=yes; best=$n; fi
  printf 'fleet sites=%d cycles=%d late=%d min_site_cycles=%d gateway_cores=%s serve_cores=%s gateway_rss_mb=%.0f kb_per_site=%.0f realtime=%s\n' \
    "$n" "$cyc" "$late" "$minc" "$cpu_gw" "$cpu_sv" "$(echo "$rss / 1024" | bc -l)" "$(echo "$rss / $n" | bc -l)" "$ok"
  [ "$ok" = yes ] || break
done
echo "fleet largest_realtime_sites=$best (multi-site der-gateway + der-sim serve, no headend, ${SECS}s)"
