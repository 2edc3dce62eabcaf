#!/usr/bin/env bash
# `make install` into a DESTDIR (PREFIX=/usr) from an up-to-date build: it compiles nothing,
# every file is in place with its mode and no placeholder is left, the binaries answer --version
# and --help, the man pages render, the example configuration is valid (der-gateway --check,
# der-headend starts on it), the sysusers file makes the derloop user, the systemd units pass
# `systemd-analyze verify` without a single message (a deliberately broken unit must not) and
# carry their hardening; a second install keeps an edited configuration file, and
# `make uninstall` removes every installed file but that one (docs/operations.md, "Installing").
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d -t derloop-install.XXXXXX)
he_pid=
cleanup() {
  [ -z "$he_pid" ] || kill "$he_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
dest=$tmp/dest
mk() { make --no-print-directory V=0 BUILD="$BUILD" "$@"; }

command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd, make deps)"
command -v help2man >/dev/null || fail "help2man not found (make deps)"
[ -x /bin/kill ] || fail "/bin/kill not found (Debian package procps): the units' ExecReload= uses it"

# ---- install: from an up-to-date build nothing is compiled ----------------------------------
mk all > "$tmp/all.log" 2>&1 || { cat "$tmp/all.log"; fail "make all"; }
mk install PREFIX=/usr DESTDIR="$dest" > "$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; fail "make install DESTDIR=$dest PREFIX=/usr"; }
if grep -E '^  (CC|LD) ' "$tmp/install.log"; then
  fail "make install compiled or linked although make all had just run (see the lines above)"
fi

# ---- the files, their modes, nothing else ---------------------------------------------------
expected="
/etc/derloop/gateway/example.json 644
/etc/derloop/headend.env 600
/etc/derloop/inventory.json 644
/usr/bin/der-gateway 755
/usr/bin/der-headend 755
/usr/bin/der-sim 755
/usr/lib/systemd/system/der-gateway@.service 644
/usr/lib/systemd/system/der-headend.service 644
/usr/lib/sysusers.d/derloop.conf 644
/usr/share/man/man1/der-gateway.1 644
/usr/share/man/man1/der-headend.1 644
/usr/share/man/man1/der-sim.1 644"
got=$(cd "$dest" && find . \( -type f -o -type l \) -printf '/%P %m\n' | LC_ALL=C sort)
[ "$got" = "$(echo "$expected" | sed '/^$/d')" ] \
  || fail "installed files and modes differ from the expected ones:$(diff <(echo "$expected" | sed '/^$/d') <(echo "$got") | sed 's/^/\n  /')"
[ -d "$dest/var/lib/derloop" ] || fail "no state directory /var/lib/derloop"
left=$(grep -rlE '@[A-Z_]+@' "$dest/etc" "$dest/usr/lib" "$dest/usr/share" || true)
[ -z "$left" ] || fail "placeholders left in: $left"
cmp -s "$BUILD/bin/der-gateway" "$dest/usr/bin/der-gateway" || fail "installed der-gateway is not the build's"

# ---- the binaries: --version (one line, exit 0) and --help (stdout, exit 0) -------------------
for p in der-sim der-gateway der-headend; do
  v=$("$dest/usr/bin/$p" --version) || fail "$p --version exits non-zero"
  if [ "$(wc -l <<<"$v")" -ne 1 ] || ! grep -qE "^$p [0-9]+\.[0-9]+\.[0-9]+ \(commit [^)]+\)$" <<<"$v"; then
    fail "$p --version prints '$v', not '$p X.Y.Z (commit ...)'"
  fi
  h=$("$dest/usr/bin/$p" --help 2>/dev/null) || fail "$p --help exits non-zero"
  grep -q "^usage: $p" <<<"$h" || fail "$p --help prints no usage on stdout"
done

# ---- man pages: a .TH line, and groff renders them without a warning ----------------------------
for p in der-sim der-gateway der-headend; do
  page=$dest/usr/share/man/man1/$p.1
  grep -q "^\.TH ${p^^} \"1\"" "$page" || fail "$page has no .TH line"
  if command -v groff >/dev/null; then
    groff -man -Tutf8 -ww -P-cbou "$page" > "$tmp/$p.txt" 2> "$tmp/$p.warn" || fail "groff fails on $page"
    [ ! -s "$tmp/$p.warn" ] || fail "groff warns on $page: $(cat "$tmp/$p.warn")"
    for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
      grep -q "^$s\$" "$tmp/$p.txt" || fail "$page renders without a $s section"
    done
  fi
done
grep -q '^\.SS "der-sim serve"' "$dest/usr/share/man/man1/der-sim.1" \
  || fail "der-sim.1 lacks the subcommands' help"
grep -q '^\.I /etc/derloop/gateway/SITE.json' "$dest/usr/share/man/man1/der-gateway.1" \
  || fail "der-gateway.1: FILES does not name /etc/derloop/gateway/SITE.json"

# ---- the example configuration -------------------------------------------------------------
out=$("$dest/usr/bin/der-gateway" --check --config "$dest/etc/derloop/gateway/example.json") \
  || fail "der-gateway --check rejects the example configuration"
grep -q "site=ref .*uplink=127.0.0.1:50051" <<<"$out" || fail "der-gateway --check: $out"
# its spool is the state directory of der-gateway@example
grep -q '^StateDirectory=derloop/gateway/%i$' "$dest/usr/lib/systemd/system/der-gateway@.service" \
  || fail "der-gateway@.service: StateDirectory is not derloop/gateway/%i"
grep -q '"spool_dir": "/var/lib/derloop/gateway/example"' "$dest/etc/derloop/gateway/example.json" \
  || fail "example.json: spool_dir is not der-gateway@example's state directory"
# the example inventory knows the example's site and gateway (gw-<site_id>)
grep -q '"site_id": "ref", "gateways": \["gw-ref"\]' "$dest/etc/derloop/inventory.json" \
  || fail "inventory.json does not list gateway gw-ref for site ref"
# der-headend starts as the unit starts it: the installed inventory, then ARGS of headend.env
# (listen ports and the store replaced after them: a later option wins)
args=$(sed -n 's/^ARGS="\(.*\)"$/\1/p' "$dest/etc/derloop/headend.env")
[ -n "$args" ] || fail "headend.env has no ARGS=\"...\" line"
exec_start=$(sed -n 's/^ExecStart=//p' "$dest/usr/lib/systemd/system/der-headend.service")
# shellcheck disable=SC2016 # $ARGS is systemd's, not the shell's
[ "$exec_start" = '/usr/bin/der-headend --inventory /etc/derloop/inventory.json $ARGS' ] \
  || fail "der-headend.service: unexpected ExecStart=$exec_start"
# shellcheck disable=SC2086 # ARGS is split on spaces, as systemd splits $ARGS
"$dest/usr/bin/der-headend" --inventory "$dest/etc/derloop/inventory.json" $args \
  --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --db :memory: \
  > "$tmp/he.out" 2> "$tmp/he.log" &
he_pid=$!
for _ in $(seq 100); do
  grep -q ' ready$' "$tmp/he.out" && break
  kill -0 "$he_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q ' ready$' "$tmp/he.out" \
  || fail "der-headend does not start on the installed configuration: $(tail -n 5 "$tmp/he.log")"
grep -q 'event=start .* sites=1 assets=6' "$tmp/he.log" || fail "der-headend: $(grep event=start "$tmp/he.log")"
kill -TERM "$he_pid"
rc=0; wait "$he_pid" || rc=$?
he_pid=
[ "$rc" -eq 0 ] || fail "der-headend exits $rc on SIGTERM"

# ---- systemd: sysusers and units, in a root of their own ------------------------------------
# `systemd-analyze verify --root` looks up everything under that root: the binaries of
# ExecStart=, /bin/kill of ExecReload=, sysinit.target and the other units a service pulls in.
# So: a copy of the installed tree, plus the host's units and kill; Documentation=man: is
# checked with MANPATH on the installed pages.
vroot=$tmp/verify
cp -a "$dest/." "$vroot/"
cp -a /usr/lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
mkdir -p "$vroot/bin" "$vroot/etc"
cp /bin/kill "$vroot/bin/kill"
systemd-sysusers --root="$vroot" > "$tmp/sysusers.log" 2>&1 \
  || fail "systemd-sysusers: $(cat "$tmp/sysusers.log")"
grep -q '^derloop:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$vroot/etc/passwd" \
  || fail "systemd-sysusers made no derloop user: $(cat "$vroot/etc/passwd")"
units=$vroot/usr/lib/systemd/system
verify() { # UNIT_FILE...: prints every message; fails when there is one or a non-zero exit
  local out rc=0
  out=$(MANPATH=$vroot/usr/share/man systemd-analyze verify --root="$vroot" "$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "$out"
    return 1
  fi
}
verify "$units/der-headend.service" "$units/der-gateway@example.service" \
  || fail "systemd-analyze verify reports the units above"
# the check must be able to fail: a misspelt value (a warning, exit status 0) and a missing
# binary (an error) each make it fail
sed 's/^Restart=on-failure/Restart=sometimes/' "$units/der-headend.service" > "$units/broken1.service"
sed 's|^ExecStart=/usr/bin/der-gateway |ExecStart=/usr/bin/der-gatewax |' \
  "$units/der-gateway@.service" > "$units/broken2@.service"
for u in broken1.service broken2@x.service; do
  if verify "$units/$u" > "$tmp/broken.log"; then
    fail "systemd-analyze verify passes the broken unit $u"
  fi
  [ -s "$tmp/broken.log" ] || fail "no message for the broken unit $u"
done
# hardening: every option named in docs/operations.md, then systemd's own exposure score
for u in der-headend.service der-gateway@.service; do
  for opt in 'User=derloop' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
             'PrivateTmp=yes' 'PrivateDevices=yes' 'ProtectKernelTunables=yes' \
             'ProtectKernelModules=yes' 'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' \
             'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'RestrictNamespaces=yes' \
             'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' 'SystemCallArchitectures=native' \
             'SystemCallFilter=@system-service' 'CapabilityBoundingSet=' 'Restart=on-failure'; do
    grep -qxF "$opt" "$units/$u" || fail "$u lacks $opt"
  done
done
# shellcheck disable=SC2016 # $MAINPID is systemd's
grep -qxF 'ExecReload=/bin/kill -HUP $MAINPID' "$units/der-gateway@.service" \
  || fail "der-gateway@.service: no ExecReload sending SIGHUP"
grep -qxF 'ExecStart=/usr/bin/der-gateway --config /etc/derloop/gateway/%i.json' \
  "$units/der-gateway@.service" || fail "der-gateway@.service: unexpected ExecStart"
for u in der-headend.service der-gateway@example.service; do
  systemd-analyze security --offline=yes --root="$vroot" --threshold=15 "$units/$u" \
    > "$tmp/security.log" 2>&1 \
    || fail "$u: systemd-analyze security exposure above 1.5: $(grep -E '✗|Overall' "$tmp/security.log")"
done

# ---- install again: an edited configuration file is kept ------------------------------------
echo ' ' >> "$dest/etc/derloop/inventory.json"
cp "$dest/etc/derloop/inventory.json" "$tmp/edited.json"
mk install PREFIX=/usr DESTDIR="$dest" > "$tmp/install2.log" 2>&1 \
  || { cat "$tmp/install2.log"; fail "second make install"; }
cmp -s "$tmp/edited.json" "$dest/etc/derloop/inventory.json" \
  || fail "a second make install replaced the edited inventory.json"
grep -q "kept $dest/etc/derloop/inventory.json" "$tmp/install2.log" \
  || fail "a second make install does not say that it kept inventory.json"

# ---- uninstall: everything gone but the edited file, which is named --------------------------
mk uninstall PREFIX=/usr DESTDIR="$dest" > "$tmp/uninstall.log" 2>&1 \
  || { cat "$tmp/uninstall.log"; fail "make uninstall"; }
grep -q "kept $dest/etc/derloop/inventory.json (changed since install)" "$tmp/uninstall.log" \
  || fail "make uninstall does not name the kept inventory.json: $(cat "$tmp/uninstall.log")"
got=$(cd "$dest" && find . \( -type f -o -type l \) -printf '/%P\n')
[ "$got" = /etc/derloop/inventory.json ] || fail "make uninstall left: $got"
[ ! -e "$dest/var/lib/derloop" ] || fail "make uninstall left the empty /var/lib/derloop"
[ ! -e "$dest/etc/derloop/gateway" ] || fail "make uninstall left the empty /etc/derloop/gateway"
echo "install: ok ($(echo "$expected" | sed '/^$/d' | wc -l) files, units verified, uninstall clean)"
