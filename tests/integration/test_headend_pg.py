#!/usr/bin/python3
"""der-headend on PostgreSQL (DATABASE_URL), against a throwaway cluster of its own: initdb into
a temp dir (as the postgres user when run as root), listening only on 127.0.0.1 on a free port
and on a socket inside the temp dir. A python3-grpcio gateway registers, sends telemetry (a NaN
state of charge included) and acks a dispatch; psql shows the session, the telemetry, the
dispatch with its acks and allocations, and REST serves them back. A dispatch queued for an
offline site survives a headend restart and is delivered on reconnect. PostgreSQL stopped
mid-run: the headend keeps running, logs the outage once, answers 500 on what needs the store
and serves what it holds in memory, then recovers by itself when PostgreSQL is back. A bad
DATABASE_URL (refused port; a server that never answers) stops the start within the connect
timeout with a message naming DATABASE_URL and the reason, the password masked. REST tokens
and the audit trail on PostgreSQL: a version-2 database (no tokens, audit or
dispatch.requested_by) is migrated to version 3 at start; `der-headend token add` with
DATABASE_URL writes a salted hash there and turns tokens on in the running headend; an
operator's dispatch carries requested_by; the audit rows are in PostgreSQL and served by GET
/audit; a revoked token is refused. The cluster is always stopped and its directory removed."""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_headend_peer import (BUILD, Fail, Gateway, Headend, check, pb,  # noqa: E402
                               wait_for)

HEADEND = os.path.join(BUILD, "bin", "der-headend")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    """A PostgreSQL cluster in a temp dir: superuser and database `derloop`, trust auth on
    127.0.0.1 only (nothing else can reach it), fsync off (the test is about the headend)."""

    def __init__(self):
        found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
        check(found, "no PostgreSQL server in /usr/lib/postgresql/*/bin (make deps installs "
              "the Debian package postgresql)")
        found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/")[4])])
        self.bin = os.path.dirname(found[-1])
        self.version = os.path.basename(os.path.dirname(self.bin))
        self.dir = tempfile.mkdtemp(prefix="derloop-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock)
        self.as_user = []
        if os.getuid() == 0:  # initdb and postgres refuse to run as root
            pw = pwd.getpwnam("postgres")
            for d in (self.dir, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = "postgresql://derloop@127.0.0.1:%d/derloop" % self.port
        self._run(["initdb", "-D", self.data, "-U", "derloop", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale=C"])

    def _run(self, cmd, timeout=60):
        p = subprocess.run(self.as_user + [os.path.join(self.bin, cmd[0])] + cmd[1:],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        check(p.returncode == 0, "%s failed (%d): %s" % (" ".join(cmd[:2]), p.returncode,
                                                         p.stdout.decode(errors="replace")[-2000:]))

    def start(self):
        opts = ("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s "
                "-c fsync=off -c full_page_writes=off -c max_connections=20"
                % (self.port, self.sock))
        self._run(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                   "-w", "-t", "30", "-o", opts, "start"])

    def stop(self, mode="fast"):
        self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"])

    def psql(self, sql, db="derloop"):
        p = subprocess.run([os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "derloop", "-d", db, "-AtX", "-F", "|",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        check(p.returncode == 0, "psql %r: %s" % (sql, p.stderr.decode(errors="replace")))
        return [r for r in p.stdout.decode().splitlines() if r]

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode(errors="replace")[-2000:]
        except OSError:
            return ""

    def cleanup(self):
        pidfile = os.path.join(self.data, "postmaster.pid")
        if os.path.exists(pidfile):
            try:
                self.stop("immediate")
            except Exception as e:  # the postmaster we started, by its pid
                print("pg_ctl stop failed (%s); killing the postmaster" % e)
                try:
                    with open(pidfile) as f:
                        os.kill(int(f.readline()), signal.SIGKILL)
                    time.sleep(0.5)
                except (OSError, ValueError):
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


def test_bad_url():
    """Unreachable DATABASE_URL: exit status 1 within the connect timeout, a reason."""
    port = free_port()  # nothing listens there: refused at once
    env = dict(os.environ, DATABASE_URL="postgresql://derloop:hunter2@127.0.0.1:%d/x" % port)
    tmp = tempfile.mkdtemp(prefix="headend-pg-bad-")
    silent = socket.socket()  # accepts connections (backlog) and never answers
    try:
        inv = os.path.join(tmp, "inv.json")
        with open(inv, "w") as f:
            f.write('{"sites": [{"site_id": "s", "gateways": ["g"], "assets": [{"asset_id": '
                    '"a", "type": "pv", "min_power_w": 0, "max_power_w": 1}]}]}')
        cmd = [HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
               "--inventory", inv, "--db", os.path.join(tmp, "unused.db")]
        t0 = time.time()
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        dt = time.time() - t0
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1 and b"ready" not in p.stdout, "refused port: status %d, %r"
              % (p.returncode, p.stdout))
        check("DATABASE_URL" in err and "Connection refused" in err and "hunter2" not in err
              and "***" in err, "refused port: message %r" % err)
        check(dt < 5, "refused port: exit after %.1f s" % dt)
        print("ok: refused DATABASE_URL -> exit 1 in %.0f ms: %s" % (dt * 1000, err.strip()))

        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        env["DATABASE_URL"] = ("postgresql://derloop@127.0.0.1:%d/x?connect_timeout=2"
                               % silent.getsockname()[1])
        t0 = time.time()
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        dt = time.time() - t0
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1 and "DATABASE_URL" in err and "timeout" in err,
              "silent server: status %d, %r" % (p.returncode, err))
        check(1.5 < dt < 4.5, "silent server: exit after %.1f s (connect_timeout=2)" % dt)
        print("ok: a server that never answers -> exit 1 after %.1f s (connect_timeout=2)" % dt)
    finally:
        silent.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_dispatch(he, sp_id, state, timeout=5):
    return wait_for(lambda: (lambda r: r[1] if r[0] == 200 and r[1]["state"] == state
                             else None)(he.http("GET", "/dispatch/" + sp_id)), timeout)


def test_store(pg, he):
    """Sessions, telemetry (NaN soc as NULL), dispatch, acks, allocations: in PostgreSQL and
    served back by REST."""
    st, h = he.http("GET", "/healthz")
    check(st == 200 and h.get("store") == "postgresql", "healthz: %r" % (h,))
    tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    check(tables == ["alerts", "audit", "cluster_nodes", "cluster_presence", "commands",
                     "decisions", "dispatch", "dispatch_ack", "dispatch_alloc", "meta", "sessions",
                     "site_config", "site_estop", "telemetry", "tokens"], "tables: %r" % tables)
    check(pg.psql("SELECT value FROM meta WHERE name = 'schema_version'") == ["10"],
          "schema version: %r" % pg.psql("SELECT * FROM meta"))
    gw = Gateway(he.grpc_port)
    rr = gw.register("gw-a", "site-a", ["a-bat", "a-pv"], primary="a-bat")
    check(sorted(rr.accepted) == ["a-bat", "a-pv"], "register: %r" % (rr,))
    for i in range(1, 21):
        gw.telemetry("a-bat", -100.0 * i, i, storage=pb.StorageDetails(soc=0.25 + i / 100))
    gw.telemetry("a-pv", 800.5, 1)  # no storage details: soc is NaN
    check(wait_for(lambda: pg.psql("SELECT count(*) FROM telemetry")[0] == "21", 5),
          "telemetry rows in PostgreSQL: %s" % pg.psql("SELECT count(*) FROM telemetry"))
    rows = pg.psql("SELECT asset_id, seq, power_w, soc IS NULL, online FROM telemetry "
                   "ORDER BY id")
    check(rows[0] == "a-bat|1|-100|f|1" and rows[19] == "a-bat|20|-2000|f|1"
          and rows[20] == "a-pv|1|800.5|t|1", "telemetry rows: %r" % rows)
    check(pg.psql("SELECT soc FROM telemetry WHERE seq = 5 AND asset_id = 'a-bat'") == ["0.3"],
          "soc stored")
    st, hist = he.http("GET", "/telemetry/a-bat?from=0&to=%d" % (time.time() * 1000 + 1000))
    check(st == 200 and hist["count"] == 20, "history: %r" % (hist,))
    print("ok: 21 telemetry rows in PostgreSQL (NaN soc stored as NULL), history via REST")

    sess = pg.psql("SELECT gateway_id, site_id, ended_ms FROM sessions")
    check(sess == ["gw-a|site-a|0"], "sessions: %r" % sess)

    st, d = he.http("POST", "/dispatch", {"site_id": "site-a", "mw": 1.5, "ttl_s": 60})
    check(st == 202 and d["state"] == "SENT", "POST /dispatch: %d %r" % (st, d))
    sp_id = d["setpoint_id"]
    m = gw.next(5)
    check(m is not None and m.setpoint.setpoint_id == sp_id, "no Setpoint: %r" % (m,))
    gw.ack(sp_id, pb.SetpointAck.RECEIVED)
    gw.ack(sp_id, pb.SetpointAck.APPLIED, [("a-bat", 1.0e6), ("a-pv", 0.5e6)])
    d = wait_dispatch(he, sp_id, "APPLIED")
    check(d and {a["asset_id"]: a["power_w"] for a in d["allocations"]}
          == {"a-bat": 1.0e6, "a-pv": 0.5e6}
          and [a["state"] for a in d["acks"]] == ["RECEIVED", "APPLIED"], "REST: %r" % (d,))
    row = pg.psql("SELECT site_id, power_w, state, session_id > 0 FROM dispatch WHERE id = '%s'"
                  % sp_id)
    acks = pg.psql("SELECT state FROM dispatch_ack WHERE setpoint_id = '%s' ORDER BY id" % sp_id)
    allocs = pg.psql("SELECT asset_id, power_w FROM dispatch_alloc WHERE setpoint_id = '%s' "
                     "ORDER BY id" % sp_id)
    check(row == ["site-a|1500000|102|t"] and acks == ["101", "102"]
          and allocs == ["a-bat|1000000", "a-pv|500000"],
          "dispatch in PostgreSQL: %r %r %r" % (row, acks, allocs))
    print("ok: dispatch %s APPLIED: row, acks and allocations in PostgreSQL and via REST" % sp_id)
    test_decision(pg, he)
    return gw, sp_id


def test_decision(pg, he):
    """A Decision (docs/protocol.md, "Decisions") from a gateway whose Register announced them:
    a row of the decisions table, served by GET /sites/:id/decisions."""
    g = Gateway(he.grpc_port)
    g.send(register=pb.Register(gateway_id="gw-b2", site_id="site-b", software="test-peer",
                                assets=[pb.AssetInfo(asset_id="b-bat")], decisions=True))
    check(g.next(5) is not None, "no RegisterResult")
    g.send(decision=pb.Decision(ts_ms=int(time.time() * 1000), strategy="net_zero",
                                clamps=[pb.DecisionClamp(asset_id="b-bat", reason="ramp",
                                                         from_w=-500, to_w=-200)]))
    check(wait_for(lambda: pg.psql("SELECT count(*) FROM decisions")[0] == "1", 5),
          "decision rows: %s" % pg.psql("SELECT count(*) FROM decisions"))
    st, r = he.http("GET", "/sites/site-b/decisions?from=0")
    check(st == 200 and r["count"] == 1 and r["decisions"][0]["strategy"] == "net_zero" and
          r["decisions"][0]["clamps"][0]["reason"] == "ramp", "REST decisions: %r" % (r,))
    g.close()
    # the next test dispatches to site-b as an offline site: wait until the headend has seen
    # this stream end (the close and a POST can otherwise cross)
    def offline():
        st, r = he.http("GET", "/sites/site-b")
        return st == 200 and not r.get("connected")
    check(wait_for(offline, 5), "site-b still connected after its gateway closed")
    print("ok: a decision in PostgreSQL and via REST")


def test_restart(pg, he, gw, sp_id):
    """A dispatch queued for an offline site survives a headend restart."""
    st, q = he.http("POST", "/dispatch", {"asset_id": "b-bat", "mw": 0.2, "ttl_s": 120})
    check(st == 202 and q["state"] == "QUEUED", "queued dispatch: %d %r" % (st, q))
    q_id = q["setpoint_id"]
    check(pg.psql("SELECT state FROM dispatch WHERE id = '%s'" % q_id) == ["0"], "QUEUED row")
    gw.close()
    check(he.stop(signal.SIGTERM) == 0, "SIGTERM exit status")
    he.start()
    ended = pg.psql("SELECT ended_ms > 0, reason <> '' FROM sessions WHERE gateway_id = 'gw-a'")
    check(ended == ["t|t"], "gw-a session not ended: %r" % ended)
    st, d = he.http("GET", "/dispatch/" + q_id)
    check(st == 200 and d["state"] == "QUEUED", "after restart: %r" % (d,))
    st, hist = he.http("GET", "/telemetry/a-bat?from=0")
    check(hist["count"] == 20, "history after restart: %r" % (hist,))
    st, t = he.http("GET", "/telemetry/a-bat")
    check(st == 200 and t["telemetry_seq"] == 20, "latest after restart: %r" % (t,))
    check(wait_dispatch(he, sp_id, "APPLIED", 1), "APPLIED dispatch lost")

    gb = Gateway(he.grpc_port)
    gb.register("gw-b", "site-b", ["b-bat"])
    m = gb.next(5)
    check(m is not None and m.setpoint.setpoint_id == q_id and round(m.setpoint.power_w) == 200000,
          "queued setpoint not replayed: %r" % (m,))
    gb.ack(q_id, pb.SetpointAck.APPLIED, [("b-bat", 2.0e5)])
    check(wait_dispatch(he, q_id, "APPLIED"), "replayed dispatch not APPLIED")
    check(pg.psql("SELECT state FROM dispatch WHERE id = '%s'" % q_id) == ["102"],
          "APPLIED not in PostgreSQL")
    gb.close()
    print("ok: dispatch %s queued before a restart delivered after it, APPLIED in PostgreSQL"
          % q_id)
    return q_id


def test_outage(pg, he, last_id):
    """PostgreSQL stopped under a running headend, then started again."""
    gw = Gateway(he.grpc_port)
    gw.register("gw-a", "site-a", ["a-bat", "a-pv"], primary="a-bat")
    before = int(pg.psql("SELECT count(*) FROM telemetry")[0])
    t0 = time.time()
    pg.stop("fast")
    print("   PostgreSQL stopped after %.1f s" % (time.time() - t0))
    gw.telemetry("a-bat", -4242.0, 100)
    check(wait_for(lambda: he.http("GET", "/telemetry/a-bat")[1].get("telemetry_seq") == 100, 3),
          "latest telemetry not served during the outage")
    t1 = time.time()
    st, e = he.http("POST", "/dispatch", {"asset_id": "a-bat", "mw": 0.1})
    check(st == 500 and e.get("error"), "POST /dispatch without PostgreSQL: %d %r" % (st, e))
    dt = time.time() - t1
    check(dt < 3, "POST /dispatch took %.1f s without PostgreSQL" % dt)
    check(he.http("GET", "/healthz")[0] == 200 and he.agents()["a-bat"]["connected"],
          "healthz/agents during the outage")
    check(he.p.poll() is None, "der-headend exited during the outage")
    log = he.logtext()
    down = [ln for ln in log.splitlines() if "event=store_down" in ln]
    check(len(down) == 1 and "op=" in down[0] and "reconnect_error=" in down[0],
          "outage log lines: %r" % down)
    print("ok: PostgreSQL down: REST 500 on dispatch, latest telemetry still served, one log "
          "line:\n   %s" % down[0][down[0].index("level="):])

    pg.start()
    t2 = time.time()
    got = wait_for(lambda: (lambda r: r[1] if r[0] == 202 else None)(
        he.http("POST", "/dispatch", {"asset_id": "a-bat", "mw": 0.1})), 10, 0.2)
    check(got and got["state"] == "SENT", "no recovery after PostgreSQL restarted: %r" % (got,))
    print("ok: recovered %.1f s after PostgreSQL was back: %s" % (time.time() - t2,
                                                                   got["setpoint_id"]))
    check(int(got["setpoint_id"][3:]) > int(last_id[3:]), "ids must keep growing: %r" % (got,))
    m = gw.next(5)
    check(m is not None and m.setpoint.setpoint_id == got["setpoint_id"], "setpoint %r" % (m,))
    gw.ack(got["setpoint_id"], pb.SetpointAck.APPLIED, [("a-bat", 1.0e5)])
    gw.telemetry("a-bat", -1.0, 101)
    check(wait_for(lambda: pg.psql("SELECT count(*) FROM telemetry WHERE seq = 101")[0] == "1",
                   5), "telemetry after recovery not stored")
    check(wait_for(lambda: pg.psql("SELECT state FROM dispatch WHERE id = '%s'"
                                   % got["setpoint_id"]) == ["102"], 5), "ack after recovery")
    check(int(pg.psql("SELECT count(*) FROM telemetry")[0]) >= before + 1, "telemetry count")
    up = [ln for ln in he.logtext().splitlines() if "event=store_up" in ln]
    check(len(up) == 1 and "failed_ops=" in up[0], "recovery log lines: %r" % up)
    print("   %s" % up[0][up[0].index("level="):])
    gw.close()


def http_as(he, token, method, path, body=None):
    """A REST request with a bearer token: (status, JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (he.http_port, path), data=data,
                                 method=method, headers={"Authorization": "Bearer " + token}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def token_add(name, role):
    p = subprocess.run([HEADEND, "token", "add", "--name", name, "--role", role],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    out = p.stdout.decode().strip()
    check(p.returncode == 0 and re.fullmatch(r"dlp_[0-9a-f]{12}_[0-9a-f]{64}", out),
          "token add (DATABASE_URL): %d %r %r" % (p.returncode, out, p.stderr))
    return out


def test_auth(pg, he, old_id):
    """Version 2 -> 5 in place; tokens, requested_by, the audit trail, the sites' desired
    configurations and the telemetry details in PostgreSQL."""
    check(he.stop(signal.SIGTERM) == 0, "SIGTERM before the downgrade")
    # What a version-2 database looked like: no tokens, no audit, no requested_by, no details.
    pg.psql("DROP TABLE tokens; DROP TABLE audit; ALTER TABLE dispatch DROP COLUMN requested_by;"
            " DROP TABLE site_config; ALTER TABLE telemetry DROP COLUMN details;"
            " UPDATE meta SET value = 2 WHERE name = 'schema_version'")
    he.start()
    check(pg.psql("SELECT value FROM meta WHERE name = 'schema_version'") == ["10"],
          "not migrated to version 5")
    check(pg.psql("SELECT column_name FROM information_schema.columns WHERE table_name = "
                  "'telemetry' AND column_name = 'details'") == ["details"],
          "telemetry.details not added by the migration")
    cols = pg.psql("SELECT column_name FROM information_schema.columns WHERE table_name = "
                   "'dispatch' AND column_name = 'requested_by'")
    check(cols == ["requested_by"] and len(pg.psql("SELECT 1 FROM tokens")) == 0,
          "version 3 tables: %r" % cols)
    st, d = he.http("GET", "/dispatch/" + old_id)
    check(st == 200 and d["requested_by"] is None, "old dispatch after migration: %r" % (d,))
    print("ok: a version-2 database migrated to version 4 at start (tokens, audit, "
          "dispatch.requested_by, site_config; old dispatches keep theirs empty)")

    admin = token_add("pg-root", "admin")
    oper = token_add("pg-ops", "operator")
    rows = pg.psql("SELECT name, role, length(salt), length(hash) FROM tokens ORDER BY name")
    check(rows == ["pg-ops|operator|32|64", "pg-root|admin|32|64"], "token rows: %r" % rows)
    dump = "\n".join(pg.psql("SELECT id || salt || hash FROM tokens"))
    check(admin.split("_")[2] not in dump and oper.split("_")[2] not in dump,
          "a secret is in PostgreSQL")
    check(wait_for(lambda: http_as(he, None, "GET", "/assets")[0] == 401, 3),
          "tokens in PostgreSQL did not turn tokens on")
    st, d = http_as(he, oper, "POST", "/dispatch", {"asset_id": "a-bat", "mw": 0.3, "ttl_s": 30})
    check(st == 202 and d["requested_by"] == "pg-ops", "operator POST: %d %r" % (st, d))
    check(pg.psql("SELECT requested_by FROM dispatch WHERE id = '%s'" % d["setpoint_id"])
          == ["pg-ops"], "requested_by not in PostgreSQL")
    st, _ = http_as(he, oper, "GET", "/audit")
    check(st == 403, "operator GET /audit: %d" % st)
    st, a = http_as(he, admin, "GET", "/audit")
    rows = pg.psql("SELECT who, method, path, status FROM audit ORDER BY id")
    check(rows == ["cli|CLI|token add pg-root|201", "cli|CLI|token add pg-ops|201",
                   "pg-ops|POST|/dispatch|202"], "audit rows in PostgreSQL: %r" % rows)
    check(st == 200 and [e["who"] for e in a["entries"]] == ["cli", "cli", "pg-ops"]
          and a["entries"][2]["detail"] == "setpoint_id=" + d["setpoint_id"],
          "GET /audit: %d %r" % (st, a))
    p = subprocess.run([HEADEND, "token", "revoke", "pg-ops"], stderr=subprocess.PIPE,
                       timeout=20)
    check(p.returncode == 0, "token revoke: %r" % p.stderr)
    check(http_as(he, oper, "GET", "/assets")[0] == 401, "revoked token accepted")
    check(pg.psql("SELECT revoked_ms > 0 FROM tokens WHERE name = 'pg-ops'") == ["t"],
          "revocation not in PostgreSQL")
    print("ok: tokens (salted hashes), requested_by and the audit trail in PostgreSQL; "
          "revoked token 401")
    # version 4: a site's desired configuration, one row per site with its version
    for v in (1, 2):
        st, r = http_as(he, admin, "PUT", "/sites/site-a/config", {"strategy": "charge"})
        check(st == 200 and r["version"] == v, "PUT config v%d: %r %r" % (v, st, r))
    check(pg.psql("SELECT version, updated_by FROM site_config WHERE site_id = 'site-a'")
          == ["2|pg-root"], "site_config row: %r" % pg.psql("SELECT * FROM site_config"))
    print("ok: desired configuration versions 1, 2 in PostgreSQL (site_config)")


def main():
    def on_term(sig, frame):
        raise SystemExit("terminated by signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)
    t_start = time.time()
    test_bad_url()
    pg = Cluster()
    tmp = tempfile.mkdtemp(prefix="headend-pg-")
    he = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        print("ok: PostgreSQL %s cluster on 127.0.0.1:%d (%.1f s)" % (pg.version, pg.port,
                                                                      time.time() - t_start))
        os.environ["DATABASE_URL"] = pg.url
        he = Headend(tmp, ["--telemetry-flush", "50ms"])
        gw, sp_id = test_store(pg, he)
        last = test_restart(pg, he, gw, sp_id)
        test_outage(pg, he, last)
        test_auth(pg, he, sp_id)
        check(he.stop(signal.SIGTERM) == 0, "SIGTERM exit status at the end")
    except BaseException:
        if he:
            print("--- der-headend log\n" + he.logtext()[-4000:])
        print("--- PostgreSQL log\n" + pg.log())
        raise
    finally:
        if he:
            he.stop(signal.SIGKILL)
        pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
        os.environ.pop("DATABASE_URL", None)
    check(not os.path.exists(pg.dir), "cluster directory left behind")
    print("PASS (%.1f s)" % (time.time() - t_start))


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
