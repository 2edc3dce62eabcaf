#!/usr/bin/env bash
# The headend in the lockstep loop (docs/scenario-format.md): dispatch events go through the
# real der-headend (POST /dispatch, the gRPC stream, the gateway's uplink) and the digest is the
# same run after run, on both transports, and without the headend (events applied directly).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
DERSIM=$BUILD/bin/der-sim
S=tests/data/headend/dispatch-loop.json
tmp=$(mktemp -d)
# Every der-sim run gets a process group of its own (setsid; its id is der-sim's pid), so that
# whatever it starts (der-headend) can be found afterwards among the processes this test
# started, never by looking at the machine's. set +m: background jobs stay in this script's
# process group, so setsid(1) does not fork and $! is the new group's id.
set +m
groups=()
trap 'for g in "${groups[@]+"${groups[@]}"}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
      rm -rf "$tmp"' EXIT
run_own() {
  setsid "$@" &
  local pid=$!
  groups+=("$pid")
  wait "$pid"
}
left_behind() { # the groups that still have a process
  for g in "${groups[@]}"; do
    kill -0 -- "-$g" 2>/dev/null && ps -o pid=,args= --sid "$g"
  done
  return 0
}
digest() { sed -n 's/^digest sha256=//p' "$1"; }

# the check at the end must be able to see a process left in one of these groups
setsid sleep 30 &
ctl=$!
groups+=("$ctl")
for _ in $(seq 100); do kill -0 -- "-$ctl" 2>/dev/null && break; sleep 0.02; done
kill -0 -- "-$ctl" 2>/dev/null || { echo "FAIL: cannot see our own process group" >&2; exit 1; }
kill -- "-$ctl"
wait "$ctl" || true
unset 'groups[-1]'

run_own "$DERSIM" run "$S" --transport inproc --quiet --out "$tmp/a" > "$tmp/a.out"
run_own "$DERSIM" run "$S" --transport inproc --quiet --out "$tmp/b" > "$tmp/b.out"
run_own "$DERSIM" run "$S" --transport tcp --quiet --out "$tmp/c" > "$tmp/c.out"
grep -v '"headend"' "$S" > "$tmp/direct.json"
"$DERSIM" run "$tmp/direct.json" --transport inproc --quiet --out "$tmp/d" > "$tmp/d.out"

a=$(digest "$tmp/a.out") b=$(digest "$tmp/b.out") c=$(digest "$tmp/c.out") d=$(digest "$tmp/d.out")
printf 'headend inproc: %s\nheadend inproc: %s\nheadend tcp:    %s\ndirect inproc:  %s\n' "$a" "$b" "$c" "$d"
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "FAIL: digests differ" >&2; exit 1; }
# without the headend the scenario file differs (its hash is in events.log's first line and in
# kpis.json), so compare the outputs themselves
cmp "$tmp/a/timeseries.csv" "$tmp/d/timeseries.csv" && cmp "$tmp/a/decisions.csv" "$tmp/d/decisions.csv" \
  && cmp <(tail -n +2 "$tmp/a/events.log") <(tail -n +2 "$tmp/d/events.log") \
  || { echo "FAIL: the outputs differ with and without the headend" >&2; exit 1; }
# the dispatches reached the batteries at manual priority
grep -q 'event=dispatch target=asset asset=bat-2 power_w=-1500.000' "$tmp/a/events.log" || { echo "FAIL: no asset dispatch in events.log" >&2; exit 1; }
grep -q 'bat-2=-1500.000@manual' "$tmp/a/decisions.csv" || { echo "FAIL: bat-2 never at -1500 W (manual)" >&2; exit 1; }
grep -q 'bat-1=[0-9.]*@manual;bat-2=[0-9.]*@manual' "$tmp/a/decisions.csv" || { echo "FAIL: no site split at manual priority" >&2; exit 1; }
# no headend (nor anything else the runs started) left behind
sleep 0.2
left=$(left_behind)
[ -z "$left" ] || { printf 'FAIL: left running by der-sim:\n%s\n' "$left" >&2; exit 1; }
echo "headend in the loop: ok"
