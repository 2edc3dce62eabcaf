#!/bin/sh
# docs/man/help2man.sh BINARY OUT.1 VERSION: the man page of a derloop binary, made by help2man
# from the binary's own --help and --version (so it cannot drift from the code), plus the help
# of its subcommands and a FILES section for the daemons (`make man`, `make install`).
#
# help2man reads the --help text through a wrapper that adapts it to help2man's conventions:
# the SYNOPSIS is a line starting "Usage:" (the binaries print "usage:"); an option is parted
# from its description by two spaces (a long option name may leave one); a heading (a line
# ending with ":") may not hold double quotes (it becomes a quoted .SS argument). Paths are written as @SYSCONFDIR@ and
# @LOCALSTATEDIR@, which `make install` replaces like it does in the systemd units.
# SOURCE_DATE_EPOCH (default: the last commit's date) dates the page, so a rebuild of the same
# commit gives the same page.
set -eu
bin=$1 out=$2 version=$3
prog=$(basename "$bin")
bin=$(cd "$(dirname "$bin")" && pwd)/$prog
work=$(dirname "$out")/.$prog.work
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

cat > "$work/$prog" <<EOF
#!/bin/sh
out=\$("$bin" "\$@") || exit
printf '%s\n' "\$out" | sed -e 's/^usage:/Usage:/' \
    -e 's/^\(  --[a-z0-9-]* [^ ]*\) \([^ ]\)/\1  \2/' -e '/^[^ ].*:\$/s/"//g'
EOF
chmod +x "$work/$prog"

# roff-safe preformatted text: backslashes escaped, no line starting with a control character
pre() {
    echo ".nf"
    sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"
    echo ".fi"
}

inc=$work/include.h2m
: > "$inc"
case $prog in
der-sim)
    name="deterministic simulator of distributed energy resources (DER) served over Modbus TCP"
    echo "[COMMANDS]" >> "$inc"
    for c in check run compare sweep fit serve kpis registers; do
        printf '.SS "%s %s"\n' "$prog" "$c" >> "$inc"
        "$bin" "$c" --help | pre >> "$inc"
    done
    ;;
der-gateway)
    name="derloop site controller: polls a site's devices, runs its strategy, talks to the headend"
    cat >> "$inc" <<'EOF'
[FILES]
.TP
.I @SYSCONFDIR@/derloop/gateway/SITE.json
the site configuration of the systemd unit
.BR der-gateway@SITE.service ;
.I @SYSCONFDIR@/derloop/gateway/example.json
is an example
.TP
.I @LOCALSTATEDIR@/lib/derloop/gateway/SITE/
the unit's state directory, for the telemetry spool
.RI ( uplink.spool_dir )
EOF
    ;;
der-headend)
    name="derloop headend: gRPC server for the site gateways, REST API, store"
    {
        echo "[TOKENS]"
        "$bin" token --help | pre
        cat <<'EOF'
[ENVIRONMENT]
.TP
.B DATABASE_URL
postgres://... or postgresql://...: the PostgreSQL store instead of SQLite (it wins over \-\-db)
.TP
.B STATE_DIRECTORY
where the SQLite store goes without \-\-db (set by systemd's StateDirectory=);
else $XDG_STATE_HOME/derloop, else ~/.local/state/derloop
[FILES]
.TP
.I @SYSCONFDIR@/derloop/headend.env
ARGS (more options) and DATABASE_URL of the systemd unit
.B der-headend.service
.TP
.I @SYSCONFDIR@/derloop/inventory.json
the inventory (sites, assets, gateways) the unit passes to \-\-inventory
.TP
.I @LOCALSTATEDIR@/lib/derloop/headend.db
the unit's SQLite store
EOF
    } >> "$inc"
    ;;
*)
    echo "help2man.sh: no man page for $prog" >&2
    exit 2
    ;;
esac
cat >> "$inc" <<'EOF'
[SEE ALSO]
.BR der-sim (1),
.BR der-gateway (1),
.BR der-headend (1);
the derloop documentation (docs/ in the source tree), docs/operations.md for running the
services.
EOF

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
help2man --no-info --section=1 --source="derloop $version" --name="$name" \
    --include="$inc" --output="$out.tmp" "$work/$prog"
mv "$out.tmp" "$out"
