#!/usr/bin/env bash
# Hostile wave 3, finding 22: `der-sim serve --shard K/N` and `der-sim inventory --shard K/N`
# with K larger than the fleet (shard 3/3 of 2 sites: an N picked for a bigger fleet, or a typo)
# served nothing and wrote an empty inventory, with exit 0 ("ready sites=0"). Now exit 1 naming
# the shard and the fleet size; the last shard that holds a site still works. Under 1 s.
set -u
cd "$(dirname "$0")/../../.."
SIM=${BUILD:-build}/bin/der-sim
fail() { echo "FAIL: $*"; exit 1; }
set_=(--set 'sites[0].replicas=2')
out=$("$SIM" inventory --shard 3/3 "${set_[@]}" scenarios/fleet-demo.json 2>&1); rc=$?
[ "$rc" -eq 1 ] && [[ "$out" == *"--shard 3/3"*"holds no site"*"has 2 sites"* ]] ||
  fail "inventory --shard 3/3 of 2 sites: exit $rc: $out"
out=$(timeout 10 "$SIM" serve --shard 3/3 "${set_[@]}" --port-base 0 scenarios/fleet-demo.json 2>&1); rc=$?
[ "$rc" -eq 1 ] && [[ "$out" == *"event=start_failed shard=3/3 fleet=2"* ]] ||
  fail "serve --shard 3/3 of 2 sites: exit $rc: $out"
[[ "$out" != *"ready sites=0"* ]] || fail "serve still said ready with no site"
n=$("$SIM" inventory --shard 2/3 "${set_[@]}" scenarios/fleet-demo.json | grep -c '"site_id"')
[ "$n" -eq 1 ] || fail "inventory --shard 2/3 of 2 sites: $n sites, want 1"
echo "ok: an empty shard is refused (inventory and serve), shard 2/3 of 2 sites still has 1"
