#!/usr/bin/env bash
# Runs the libFuzzer harnesses one after another (2 cores are shared: never two at once).
#   tests/fuzz/run.sh FUZZ_DIR SECONDS [NAME...]     (NAME: scenario siteconf rest ...)
# Corpora: FUZZ_CORPUS (default FUZZ_DIR/corpus)/NAME gets what a run finds and is read again
# next time; FUZZ_DIR/seeds/NAME and tests/fuzz/regressions/NAME (inputs that once crashed,
# replayed first) are read only. A crash, leak, UB or timeout leaves its input in
# FUZZ_DIR/artifacts/NAME/ and fails the run. One line per harness:
#   fuzz rest: ok, 123456 runs in 60 s, corpus 321 inputs, 1234 coverage points
# Exit 0 when every harness ran its time without a finding, 1 otherwise.
set -u
cd "$(dirname "$0")/../.."
dir=${1:?usage: run.sh FUZZ_DIR SECONDS [NAME...]}
secs=${2:?usage: run.sh FUZZ_DIR SECONDS [NAME...]}
shift 2
names=${*:-scenario siteconf rest modbus inventory agentmsg}
corpus_root=${FUZZ_CORPUS:-$dir/corpus}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export FUZZ_PROFILES=$PWD/scenarios/profiles
rc=0
for n in $names; do
  bin=$dir/bin/fuzz_$n
  if [ ! -x "$bin" ]; then echo "fuzz $n: no harness $bin (make fuzz-build)"; rc=1; continue; fi
  mkdir -p "$corpus_root/$n" "$dir/artifacts/$n"
  log=$dir/artifacts/$n/last-run.log
  dirs=("$corpus_root/$n" "$dir/seeds/$n")
  [ -d "tests/fuzz/regressions/$n" ] && dirs+=("tests/fuzz/regressions/$n")
  start=$(date +%s)
  # -timeout: one input taking this long is a finding (a hang); -rss_limit_mb: so is memory.
  "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$n/" "${dirs[@]}" > "$log" 2>&1
  status=$?
  took=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
  count=$(find "$corpus_root/$n" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz $n: ok, ${runs:-?} runs in $took s, corpus $count inputs, ${cov:-?} coverage points"
  else
    rc=1
    art=$(grep -oE "(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+" "$log" | tail -n 1)
    echo "fuzz $n: FOUND (exit $status) after ${runs:-?} runs, input $dir/artifacts/$n/${art:-?}"
    grep -E 'ERROR: |SUMMARY: |runtime error' "$log" | head -n 5 | sed 's/^/    | /'
    echo "    | full log: $log"
  fi
done
exit $rc
