#!/usr/bin/env bash
# Mutation check of the safety interlocks: every mutant of gateway/control/safety.c listed in
# tests/mutation/safety-mutants.txt must be killed by the safety unit tests
# (tests/unit/test_safety*.c), and the unmutated safety.c must pass them. For each mutant a
# scratch copy of safety.c is mutated and compiled alone, and linked with the safety tests
# (compiled once) and the already built $BUILD/lib/*.a (the mutated safety.o first on the link
# line, so the archive's copy is not used). Prints a table (mutant, result) and exits non-zero
# when a mutant survives, does not apply (its text no longer matches safety.c exactly once) or
# does not compile. JOBS (default 2) mutants run at a time.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
MUTANTS=${MUTANTS:-tests/mutation/safety-mutants.txt}
SRC=gateway/control/safety.c
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for a in libgateway libsim libcommon libproto; do
  [ -f "$BUILD/lib/$a.a" ] || fail "$BUILD/lib/$a.a missing: build first (make all $BUILD/bin/unit-tests)"
done
[ -f "$MUTANTS" ] || fail "no mutant list $MUTANTS"
CC=${CC:-gcc}
# The flags of the Makefile that matter here; sanitizers when $BUILD was built with them.
SAN=""
if nm "$BUILD/lib/libgateway.a" 2>/dev/null | grep -q '__asan_report'; then
  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
fi
CFLAGS="-std=gnu11 -O1 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -ffp-contract=off
        -fno-fast-math $SAN $(pkg-config --cflags libcjson 2>/dev/null) -I. -I$BUILD/gen -I$tmp"
# The safety tests run fewer random cases here than in the unit suite (each mutant runs them).
CASES=${SAFETY_PROPERTY_CASES:-100000}
LIBS="$BUILD/lib/libsim.a $BUILD/lib/libgateway.a $BUILD/lib/libcommon.a $BUILD/lib/libproto.a
      $(pkg-config --libs libmodbus libcjson libprotobuf-c grpc 2>/dev/null) -lglpk -lcunit -lm -lpthread"

# ---- the safety tests, compiled once ----
tests=(tests/unit/test_safety*.c)
[ -e "${tests[0]}" ] || fail "no tests/unit/test_safety*.c"
{
  sed -n 's/^void \(test_register_[a-z0-9_]*\)(void)$/\1/p' "${tests[@]}" | sort \
    | while read -r f; do echo "void $f(void);"; done
  echo "#define SAFETY_SUITES \\"
  sed -n 's/^void \(test_register_[a-z0-9_]*\)(void)$/\1/p' "${tests[@]}" | sort \
    | while read -r f; do echo "    X($f) \\"; done
  echo
} > "$tmp/safety_suites.h"
mkdir -p "$tmp/obj"
objs=()
for t in "${tests[@]}" tests/mutation/safety_runner.c; do
  o=$tmp/obj/$(basename "$t" .c).o
  # shellcheck disable=SC2086
  $CC $CFLAGS -DSAFETY_PROPERTY_CASES="$CASES" -c "$t" -o "$o" || fail "cannot compile $t"
  objs+=("$o")
done

# build_run DIR: compiles DIR/gateway/control/safety.c, links the safety tests with it, runs them.
# Writes DIR/result: killed, survived or "build failed".
build_run() {
  local dir=$1
  # shellcheck disable=SC2086
  if ! $CC $CFLAGS -c "$dir/gateway/control/safety.c" -o "$dir/safety.o" > "$dir/build.log" 2>&1 ||
     ! $CC $SAN "$dir/safety.o" "${objs[@]}" $LIBS -o "$dir/safety-tests" >> "$dir/build.log" 2>&1; then
    echo "build failed" > "$dir/result"
    return
  fi
  if timeout 120 "$dir/safety-tests" > "$dir/run.log" 2>&1; then
    echo survived > "$dir/result"
  else
    echo killed > "$dir/result"
  fi
}

# ---- the original must pass ----
mkdir -p "$tmp/original/gateway/control"
cp "$SRC" "$tmp/original/gateway/control/safety.c"
build_run "$tmp/original"
if [ "$(cat "$tmp/original/result")" != survived ]; then
  cat "$tmp/original/build.log" "$tmp/original/run.log" 2>/dev/null | tail -n 40
  fail "the unmutated $SRC does not pass the safety tests ($(cat "$tmp/original/result"))"
fi

# ---- parse the mutants: NAME, description, pairs of - / + lines ----
names=() descs=()
declare -A olds news npairs
bad_format() { fail "$MUTANTS:$ln: $*"; }
ln=0 cur="" want=-
while IFS= read -r line || [ -n "$line" ]; do
  ln=$((ln + 1))
  case "$line" in
    '' | '#'*) continue ;;
    '@ '*)
      [ -z "$cur" ] || [ "$want" = - ] || bad_format "mutant $cur: a '-' line without its '+'"
      [ -z "$cur" ] || [ "${npairs[$cur]}" -gt 0 ] || bad_format "mutant $cur has no change"
      read -r cur desc <<< "${line#@ }"
      [[ "$cur" =~ ^[a-z0-9-]+$ ]] || bad_format "bad mutant name \"$cur\""
      [ -z "${npairs[$cur]+x}" ] || bad_format "mutant $cur listed twice"
      names+=("$cur"); descs+=("$desc"); npairs[$cur]=0; want=- ;;
    '- '*)
      [ -n "$cur" ] && [ "$want" = - ] || bad_format "unexpected '-' line"
      olds[$cur,${npairs[$cur]}]=${line#- }; want=+ ;;
    '+ '*)
      [ "$want" = + ] || bad_format "a '+' line without its '-'"
      news[$cur,${npairs[$cur]}]=${line#+ }; npairs[$cur]=$((npairs[$cur] + 1)); want=- ;;
    *) bad_format "cannot parse: $line" ;;
  esac
done < "$MUTANTS"
[ -z "$cur" ] || [ "$want" = - ] || bad_format "mutant $cur: a '-' line without its '+'"
[ "${#names[@]}" -gt 0 ] || fail "no mutants in $MUTANTS"

# apply NAME: writes the mutated copy to $tmp/m/NAME/gateway/control/safety.c, or returns 1 with a
# reason in $tmp/m/NAME/result when a TEXT does not occur exactly once.
apply() {
  local name=$1 dir=$tmp/m/$1 k old new rest
  mkdir -p "$dir/gateway/control"
  local text
  text=$(cat "$SRC"; echo .)
  text=${text%.}
  for ((k = 0; k < npairs[$name]; k++)); do
    old=${olds[$name,$k]} new=${news[$name,$k]}
    rest=${text#*"$old"}
    if [ "$rest" = "$text" ]; then
      echo "does not apply: \"$old\" not found" > "$dir/result"; return 1
    fi
    case "$rest" in
      *"$old"*) echo "does not apply: \"$old\" found more than once" > "$dir/result"; return 1 ;;
    esac
    text=${text/"$old"/"$new"}
  done
  printf '%s' "$text" > "$dir/gateway/control/safety.c"
  cmp -s "$SRC" "$dir/gateway/control/safety.c" && { echo "does not apply: no change" > "$dir/result"; return 1; }
  return 0
}

start=$(date +%s)
running=0
for name in "${names[@]}"; do
  if apply "$name"; then
    build_run "$tmp/m/$name" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  fi
done
wait

# ---- the table ----
bad=0 nkilled=0
printf '%-34s %s\n' mutant result
for i in "${!names[@]}"; do
  name=${names[$i]}
  r=$(cat "$tmp/m/$name/result" 2>/dev/null || echo "no result")
  printf '%-34s %s\n' "$name" "$r"
  if [ "$r" = killed ]; then
    nkilled=$((nkilled + 1))
  else
    bad=1
    echo "    ($name: ${descs[$i]})"
    [ "$r" = "build failed" ] && sed 's/^/    | /' "$tmp/m/$name/build.log" | head -n 10
  fi
done
echo "$nkilled of ${#names[@]} mutants killed ($(( $(date +%s) - start ))s; the original passes)"
[ "$bad" -eq 0 ] || fail "a mutant of $SRC survived the safety tests or could not be run"
