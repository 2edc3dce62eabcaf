#!/usr/bin/python3
"""Two der-headend processes on one throwaway PostgreSQL (docs/operations.md, "Several
headends"): four python3-grpcio gateways split across them (sites 1 and 3 on A, 2 and 4 on B).
/sites is the same from both (connected, gateway, node, group). A dispatch posted on A to a site
whose stream is on B reaches that gateway (NOTIFY derloop_dispatch), and the reverse; the acks
(RECEIVED, APPLIED) are visible from both headends. A group dispatch posted on A splits over the
four sites, all APPLIED. PostgreSQL restarted: both headends LISTEN again and a dispatch still
crosses over; a QUEUED row nobody announced is sent by the holder's sweep, and another by the
re-scan after PostgreSQL's restart; a stop posted on A while PostgreSQL is down is
shown on B once it is back. A real der-gateway (der-sim serve, self-consumption
scenario) with `--headend ipv4:B,A` registers on B; an emergency stop posted on A reaches it
(NOTIFY derloop_estop, the stop in the shared row site_estop), it applies it, and both headends
show it held and reported; the release on A the same. A command posted on A for that gateway
is sent by B (NOTIFY derloop_command) and APPLIED on both. B killed with SIGKILL: after the cluster
expiry A shows its sites offline and ends its sessions, a gateway of B that reconnects to A gets
its next dispatch from A, and the real der-gateway fails over to A by itself. B restarted: a
configuration PUT on B reaches the der-gateway on A (NOTIFY derloop_config), which applies it, and
its reported version shows on both. The PostgreSQL harness is test_headend_pg.py's; the cluster is
always stopped and its directory removed."""

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import DerSim  # noqa: E402
from test_headend_peer import BUILD, ROOT, Fail, Gateway, Headend, check, pb, wait_for  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402

DERSIM = os.path.join(BUILD, "bin", "der-sim")
GATEWAY = os.path.join(BUILD, "bin", "der-gateway")
HOME = "scenarios/self-consumption.json"  # one site "home", gateway gw-home, a real der-gateway

SITES = ["site-1", "site-2", "site-3", "site-4"]
INVENTORY = {"sites": [
    {"site_id": s, "group": "vpp", "gateways": ["gw-" + s[5:]], "assets": [
        {"asset_id": "s" + s[5:] + "-bat", "type": "battery", "capacity_wh": 1e6,
         "min_power_w": -1e6, "max_power_w": 1e6}]} for s in SITES]}
ARGS = ["--cluster-heartbeat", "200ms", "--cluster-expiry", "1s", "--telemetry-flush", "50ms",
        "--alert-offline-after", "1s", "--alert-eval", "200ms"]


def view(he):
    st, r = he.http("GET", "/sites")
    check(st == 200, "GET /sites: %d %r" % (st, r))
    return {s["site_id"]: (s["connected"], s["gateway_id"], s["node"], s["group"])
            for s in r["sites"]}


def setpoint(gw, timeout=5):
    """The next Setpoint the gateway receives (other messages skipped)."""
    end = time.time() + timeout
    while time.time() < end:
        m = gw.next(max(0.01, end - time.time()))
        if m is not None and m.HasField("setpoint"):
            return m.setpoint
    return None


def apply(gw, sp):
    gw.ack(sp.setpoint_id, pb.SetpointAck.RECEIVED)
    gw.ack(sp.setpoint_id, pb.SetpointAck.APPLIED)


def state_on(he, sp_id):
    st, d = he.http("GET", "/dispatch/" + sp_id)
    return d.get("state") if st == 200 else None


def estop_seen(he, active):
    """GET /sites/home/estop on he: the operators' stop and the gateway's report both active."""
    st, e = he.http("GET", "/sites/home/estop")
    return st == 200 and e["active"] == active and e["gateway"]["active"] == active


def config_seen(he, version):
    st, c = he.http("GET", "/sites/home/config")
    return (st == 200 and c["in_sync"] and c["reported"]["version"] == version and
            c["reported"]["status"] == "APPLIED")


def log_ms(text, needle):
    """The timestamp (ms, the log's own clock) of the last log line containing needle."""
    line = [x for x in text.splitlines() if needle in x][-1]
    t = datetime.datetime.strptime(line.split(" ")[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def connect(he, n):
    gw = Gateway(he.grpc_port)
    rr = gw.register("gw-%d" % n, "site-%d" % n, ["s%d-bat" % n], primary="s%d-bat" % n)
    check(list(rr.accepted) == ["s%d-bat" % n], "register gw-%d: %r" % (n, rr))
    gw.telemetry("s%d-bat" % n, 1000.0 * n, 1)
    return gw


def crossing(src, dst_gw, site, mw, others=()):
    """POST on src for site; dst_gw (on the other headend) gets it, acks it; APPLIED on all."""
    t0 = time.time()
    st, r = src.http("POST", "/dispatch", {"site_id": site, "mw": mw, "ttl_s": 60})
    check(st == 202 and r["state"] == "QUEUED", "POST on the other headend: %d %r" % (st, r))
    sp = setpoint(dst_gw)
    check(sp is not None and sp.setpoint_id == r["setpoint_id"],
          "%s: setpoint not delivered across headends: %r" % (site, sp))
    dt = time.time() - t0
    apply(dst_gw, sp)
    for he in (src,) + tuple(others):
        check(wait_for(lambda: state_on(he, sp.setpoint_id) == "APPLIED", 5),
              "%s not APPLIED on a headend: %r" % (sp.setpoint_id, state_on(he, sp.setpoint_id)))
    return sp.setpoint_id, dt


def main():
    def lost_row(sp_id, site):
        now = int(time.time() * 1000)
        pg.psql("INSERT INTO dispatch(id, seq, site_id, asset_id, power_w, created_ms, "
                "expires_ms, updated_ms, state, detail, session_id, requested_by) VALUES "
                "('%s', 1000, '%s', '', 50000, %d, %d, %d, 0, '', 0, 'test')"
                % (sp_id, site, now, now + 60000, now))

    t_start = time.time()
    pg = Cluster()
    tmp_a, tmp_b = tempfile.mkdtemp(prefix="headend-ca-"), tempfile.mkdtemp(prefix="headend-cb-")
    a = b = sim = real = None
    gws = {}
    try:
        home = json.loads(subprocess.run([DERSIM, "inventory", HOME], stdout=subprocess.PIPE,
                                         check=True, cwd=ROOT).stdout)
        INVENTORY["sites"] += home["sites"]
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        a = Headend(tmp_a, ARGS + ["--node-id", "node-a"], inventory=INVENTORY)
        b = Headend(tmp_b, ARGS + ["--node-id", "node-b"], inventory=INVENTORY)
        for n in (1, 3):
            gws[n] = connect(a, n)
        for n in (2, 4):
            gws[n] = connect(b, n)
        want = {s: (True, "gw-" + s[5:], "node-a" if s in ("site-1", "site-3") else "node-b",
                    "vpp") for s in SITES}
        want["home"] = (False, None, None, None)  # its gateway comes later
        check(wait_for(lambda: view(a) == want and view(b) == want, 5),
              "/sites differ:\nA %r\nB %r\nwant %r" % (view(a), view(b), want))
        def agents(he):
            return {r["asset_id"]: (r["connected"], r["gateway_id"], r["node"])
                    for r in he.http("GET", "/agents")[1]}
        check(agents(a) == agents(b) and all(v[0] for k, v in agents(a).items()
                                             if k.endswith("-bat")),
              "/agents differ:\nA %r\nB %r" % (agents(a), agents(b)))
        for s in ("site-1", "site-2"):
            da, db = a.http("GET", "/sites/" + s)[1], b.http("GET", "/sites/" + s)[1]
            check(da["node"] == db["node"] and da["connected"] and db["connected"] and
                  [x["connected"] for x in da["assets"]] == [True] and
                  [x["connected"] for x in db["assets"]] == [True],
                  "/sites/%s differ: %r %r" % (s, da, db))
        print("ok: /sites, /sites/:id and /agents connectivity the same on both headends "
              "(connected, gateway, node, group)")

        # a second headend named like a live one is refused (they would delete each other's
        # presence rows)
        twin = subprocess.run([os.path.join(BUILD, "bin", "der-headend"), "--grpc-listen",
                               "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--inventory",
                               a.inv, "--node-id", "node-a"] + ARGS,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        check(twin.returncode == 1 and b"another headend with this id is alive" in twin.stderr,
              "twin node-a: %d %r" % (twin.returncode, twin.stderr[-300:]))
        check(view(a) == want, "the twin's start disturbed A: %r" % view(a))
        check(pg.psql("SELECT count(*) FROM sessions WHERE node_id = 'node-a' AND ended_ms = 0")
              == ["2"], "the twin ended node-a's sessions")
        print("ok: a second headend with --node-id node-a refused while node-a lives")

        sp1, dt1 = crossing(a, gws[2], "site-2", 0.1, [b])
        sp2, dt2 = crossing(b, gws[1], "site-1", -0.2, [a])
        print("ok: dispatch posted on A reached site-2 on B (%s, %.0f ms) and posted on B "
              "reached site-1 on A (%s, %.0f ms); APPLIED on both" % (sp1, dt1 * 1000, sp2,
                                                                      dt2 * 1000))

        st, g = a.http("POST", "/dispatch", {"group_id": "vpp", "mw": 0.4, "ttl_s": 60})
        check(st == 202 and len(g["setpoints"]) == 4 and not g["skipped"],
              "group dispatch on A: %d %r" % (st, g))
        by_site = {x["site_id"]: x["setpoint_id"] for x in g["setpoints"]}
        for n, gw in gws.items():
            sp = setpoint(gw)
            check(sp is not None and sp.setpoint_id == by_site["site-%d" % n],
                  "group share of site-%d: %r" % (n, sp))
            apply(gw, sp)
        for he in (a, b):
            check(wait_for(lambda: all(state_on(he, i) == "APPLIED" for i in by_site.values()),
                           5), "group dispatch not all APPLIED")
        print("ok: group dispatch on A split over 4 sites on both headends, all APPLIED")

        # alert ids: A and B each raise soc_low for their own battery; the ids come from the
        # database's counter, so neither row overwrites the other's (schema version 10)
        gws[1].telemetry("s1-bat", 1000.0, 2, storage=pb.StorageDetails(soc=0.02))
        gws[2].telemetry("s2-bat", 2000.0, 2, storage=pb.StorageDetails(soc=0.02))
        def soc_rows():
            return pg.psql("SELECT id FROM alerts WHERE json LIKE '%soc_low%' ORDER BY id")
        check(wait_for(lambda: len(soc_rows()) == 2, 5),
              "soc_low alerts of A and B not both stored: %r" % pg.psql("SELECT id, json FROM "
                                                                      "alerts"))
        ids = [int(x) for x in soc_rows()]
        print("ok: soc_low raised on A and on B stored as two alerts (ids %r)" % ids)
        # a site whose gateway is on the other headend is not offline for this one: neither
        # raises gateway_offline for the four connected sites (offline after 1 s; by now the
        # test has run several seconds past it)
        for he in (a, b):
            off = [x["subject"] for x in he.http("GET", "/alerts?state=all")[1]["alerts"]
                   if x["rule"] == "gateway_offline" and x["subject"] in SITES]
            check(not off, "gateway_offline raised for sites held by the other headend: %r" % off)
        print("ok: no gateway_offline on either headend for the sites the other one holds")

        # a group's emergency stop posted on B: every site's stop shared (site_estop), shown
        # held on A too; released from A, shown released on B (these test gateways do not take
        # the stop: routing to a gateway is the der-gateway's part below)
        st, g = b.http("POST", "/groups/vpp/estop", {"reason": "group drill"})
        check(st == 202 and sorted(x["site_id"] for x in g["sites"]) == SITES and
              {x["site_id"]: x.get("routed_to") for x in g["sites"]} ==
              {"site-1": "node-a", "site-2": None, "site-3": "node-a", "site-4": None},
              "group estop on B: %d %r" % (st, g))

        def stops(he):
            return [he.http("GET", "/sites/%s/estop" % s)[1]["active"] for s in SITES]
        check(wait_for(lambda: stops(a) == [True] * 4, 5), "group stop on A: %r" % stops(a))
        st, g = a.http("DELETE", "/groups/vpp/estop")
        check(st == 202, "group release on A: %d %r" % (st, g))
        check(wait_for(lambda: stops(b) == [False] * 4, 5), "group release on B: %r" % stops(b))
        print("ok: a group's emergency stop posted on B held on A; released from A, released on B")

        # a QUEUED row nobody announced (its headend died between the row and the NOTIFY):
        # the holder's periodic sweep (every 5 heartbeats) sends it
        lost_row("sp-swept", "site-4")
        sp = setpoint(gws[4], 5)
        check(sp is not None and sp.setpoint_id == "sp-swept", "sweep: %r" % sp)
        apply(gws[4], sp)
        check(wait_for(lambda: state_on(a, "sp-swept") == "APPLIED", 5), "swept row APPLIED")
        print("ok: an unannounced QUEUED row for site-4 sent by B's sweep, APPLIED")

        # PostgreSQL restarted: both LISTEN again (the store reconnects by itself too), and a
        # QUEUED row nobody announced (as if its NOTIFY was lost) is found by A's re-scan
        lost_row("sp-lost", "site-1")
        pg.stop()
        # a stop posted while the database is down holds on A, which writes its row once
        # PostgreSQL is back; B then shows it
        st, r = a.http("POST", "/sites/site-3/estop", {"reason": "during the outage"})
        check(st == 202 and r["active"] and "warning" in r, "estop during the outage: %d %r"
              % (st, r))
        pg.start()
        check(wait_for(lambda: "event=cluster_up node=node-b" in b.logtext(), 10),
              "B's cluster connection did not come back")
        check(wait_for(lambda: "event=cluster_up node=node-a" in a.logtext(), 10),
              "A's cluster connection did not come back")
        sp = setpoint(gws[1], 10)
        check(sp is not None and sp.setpoint_id == "sp-lost", "re-scan after reconnect: %r" % sp)

        apply(gws[1], sp)
        for he in (a, b):  # each store reconnects at its next operation (at most 1 s apart)
            check(wait_for(lambda: state_on(he, sp1) == "APPLIED", 10), "store not back")
        check(wait_for(lambda: b.http("GET", "/sites/site-3/estop")[1]["active"], 10),
              "the stop posted during the outage not shown on B: %r"
              % (b.http("GET", "/sites/site-3/estop")[1],))
        rel = a.http("DELETE", "/sites/site-3/estop")
        check(rel[0] == 202, "release site-3: %r" % (rel,))
        check(wait_for(lambda: not b.http("GET", "/sites/site-3/estop")[1]["active"], 5),
              "site-3 release not shown on B")
        sp3, _ = crossing(a, gws[4], "site-4", 0.05, [b])
        print("ok: after a PostgreSQL restart a dispatch still crosses over (%s), and A "
              "sent a QUEUED row whose announcement was lost (re-scan at reconnect or sweep); a stop "
              "posted on A during the outage shown on B once it was back, and released" % sp3)

        # a real der-gateway given both headends (gRPC's address list: pick_first, B first)
        sim = DerSim(HOME, "--loop")
        cfg = sim.config("home")
        cfg["uplink"] = {"keepalive_time": "1s", "keepalive_timeout": "1s",
                         "backoff_initial": "100ms", "backoff_max": "500ms"}
        cfg_path = os.path.join(tmp_a, "home.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        target = "ipv4:127.0.0.1:%d,127.0.0.1:%d" % (b.grpc_port, a.grpc_port)
        real_log = open(os.path.join(tmp_a, "gateway.log"), "wb")
        real = subprocess.Popen([GATEWAY, "-c", cfg_path, "--headend", target],
                                stdout=real_log, stderr=real_log)
        check(wait_for(lambda: view(a)["home"][:3] == (True, "gw-home", "node-b"), 10),
              "der-gateway not on B: %r" % (view(a).get("home"),))
        def gwlog():
            real_log.flush()
            with open(real_log.name, "rb") as f:
                return f.read().decode(errors="replace")

        # the emergency stop posted on A reaches the der-gateway on B (derloop_estop), which
        # applies it; held and reported on both headends; then the release, also on A
        t0 = time.time()
        st, r = a.http("POST", "/sites/home/estop", {"reason": "drill across headends"})
        check(st == 202 and r["active"] and not r["sent"] and r.get("routed_to") == "node-b",
              "estop on A: %d %r" % (st, r))
        check(wait_for(lambda: "event=estop state=engaged" in gwlog(), 5),
              "the der-gateway on B did not apply the stop posted on A:\n%s" % gwlog()[-1500:])
        dt_estop = time.time() - t0
        check(wait_for(lambda: estop_seen(a, True) and estop_seen(b, True), 5),
              "estop not shown held and reported on both: A %r B %r"
              % (a.http("GET", "/sites/home/estop")[1], b.http("GET", "/sites/home/estop")[1]))
        check(a.agents()["bat-1"]["estop"] and b.agents()["bat-1"]["estop"],
              "/agents estop on both")
        t0 = time.time()
        st, r = a.http("DELETE", "/sites/home/estop")
        check(st == 202 and not r["active"] and r.get("routed_to") == "node-b",
              "release on A: %d %r" % (st, r))
        check(wait_for(lambda: "event=estop state=released" in gwlog(), 5),
              "the der-gateway did not release:\n%s" % gwlog()[-1500:])
        dt_release = time.time() - t0
        check(wait_for(lambda: estop_seen(a, False) and estop_seen(b, False), 5),
              "release not shown on both")
        # from A's log line (the row stored) to B's send on the stream, both on this machine
        routed = [log_ms(b.logtext(), "event=estop_sent gateway=gw-home site=home active=" + x) -
                  log_ms(a.logtext(), "event=estop site=home state=" + y)
                  for x, y in (("yes", "engaged"), ("no", "released"))]
        print("ok: estop posted on A sent by B on the der-gateway's stream %.0f ms after A "
              "took it, applied by the gateway %.0f ms after the POST (its next cycle), held "
              "and reported on both; the release from A sent by B after %.0f ms, applied after "
              "%.0f ms" % (routed[0], dt_estop * 1000, routed[1], dt_release * 1000))

        # a command posted on A for the der-gateway on B: stored QUEUED and announced
        # (derloop_command), B sends it, the gateway's acks land in the shared row: GET
        # /commands/:id on both shows it APPLIED
        t0 = time.time()
        st, r = a.http("POST", "/assets/bat-1/commands", {"command": "start", "ttl_s": 30})
        check(st == 202 and r["state"] == "QUEUED" and r.get("routed_to") == "node-b",
              "command on A for B's gateway: %d %r" % (st, r))
        cid = r["command_id"]
        for he in (a, b):
            check(wait_for(lambda: he.http("GET", "/commands/" + cid)[1].get("state") ==
                           "APPLIED", 5),
                  "command %s not APPLIED on a headend: %r" % (cid, he.http("GET", "/commands/" +
                                                                          cid)))
        dt_cmd = time.time() - t0
        check("event=command_sent command=%s" % cid in b.logtext(), "B did not send it")
        print("ok: command %s posted on A sent by B to the der-gateway, APPLIED on both headends "
              "%.0f ms after the POST" % (cid, dt_cmd * 1000))

        # B killed: its sites go offline on A after the expiry; gw-2 moved to A
        b.stop(signal.SIGKILL)
        t_kill = time.time()
        gws[2].close()
        gws[4].close()
        check(wait_for(lambda: not view(a)["site-2"][0] and not view(a)["site-4"][0], 5),
              "B's sites still connected on A after its expiry: %r" % view(a))
        check(view(a)["site-2"][2] == "node-b", "the last holder named: %r" % view(a))
        gws[2] = connect(a, 2)
        check(wait_for(lambda: view(a)["site-2"] == (True, "gw-2", "node-a", "vpp"), 5),
              "gw-2 on A: %r" % view(a))
        st, r = a.http("POST", "/dispatch", {"site_id": "site-2", "mw": 0.1, "ttl_s": 60})
        check(st == 202 and r["state"] == "SENT", "dispatch after the move: %r" % r)
        sp = setpoint(gws[2])
        check(sp is not None and sp.setpoint_id == r["setpoint_id"], "after the move: %r" % sp)
        apply(gws[2], sp)
        check(wait_for(lambda: state_on(a, sp.setpoint_id) == "APPLIED", 5), "APPLIED after move")
        ended = pg.psql("SELECT count(*) FROM sessions WHERE node_id = 'node-b' AND ended_ms = 0")
        check(wait_for(lambda: pg.psql("SELECT count(*) FROM sessions WHERE node_id = 'node-b' "
                                       "AND ended_ms = 0") == ["0"], 5),
              "node-b's sessions not ended by A: %r" % ended)
        print("ok: B killed -> its sites offline on A within the expiry, its sessions ended; "
              "gw-2 moved to A and was dispatched there")
        check(wait_for(lambda: view(a)["home"][:3] == (True, "gw-home", "node-a"), 10),
              "der-gateway did not fail over to A: %r" % (view(a).get("home"),))
        dt_fail = time.time() - t_kill
        st, r = a.http("POST", "/dispatch", {"site_id": "home", "mw": -0.002, "ttl_s": 60})
        check(st == 202, "dispatch to home on A: %d %r" % (st, r))
        check(wait_for(lambda: state_on(a, r["setpoint_id"]) == "APPLIED", 5),
              "home dispatch after failover: %r" % state_on(a, r["setpoint_id"]))
        print("ok: a real der-gateway with target %s moved from B to A %.1f s after B's kill, "
              "its dispatch APPLIED" % (target, dt_fail))

        # B restarted under its old name right after its kill: its stale row is no twin
        b = Headend(tmp_b, ARGS + ["--node-id", "node-b"], inventory=INVENTORY)
        print("ok: B restarted as node-b after its kill (its dead row is not a live twin)")

        # a configuration PUT on B reaches the der-gateway on A (derloop_config), which applies
        # it; its reported version shows on both
        check(wait_for(lambda: view(b)["home"][:3] == (True, "gw-home", "node-a"), 5),
              "B does not see home on A: %r" % (view(b).get("home"),))
        push = {"strategy": cfg["strategy"]}
        if cfg.get("params"):
            push["params"] = cfg["params"]
        t0 = time.time()
        st, r = b.http("PUT", "/sites/home/config", push)
        check(st == 200 and not r["pushed"] and r.get("routed_to") == "node-a",
              "PUT on B: %d %r" % (st, r))
        version = r["version"]
        check(wait_for(lambda: "event=config_applied source=headend version=%d" % version
                       in gwlog(), 5),
              "the der-gateway on A did not apply the version PUT on B:\n%s" % gwlog()[-1500:])
        dt_cfg = time.time() - t0
        check(wait_for(lambda: config_seen(a, version) and config_seen(b, version), 5),
              "reported version not on both: A %r B %r"
              % (a.http("GET", "/sites/home/config")[1], b.http("GET", "/sites/home/config")[1]))
        check(b.http("GET", "/sites/home")[1]["config"]["in_sync"], "/sites/home on B in_sync")
        print("ok: configuration v%d PUT on B applied by the der-gateway on A %.0f ms after the "
              "PUT; reported APPLIED on both" % (version, dt_cfg * 1000))

        real.send_signal(signal.SIGTERM)
        check(real.wait(10) == 0, "der-gateway exit status %r" % real.returncode)
        check(b.stop(signal.SIGTERM) == 0, "restarted B's exit status")
        for gw in gws.values():
            gw.close()
        check(a.stop(signal.SIGTERM) == 0, "A's SIGTERM exit status")
        check(pg.psql("SELECT count(*) FROM cluster_nodes WHERE node_id = 'node-a'") == ["0"],
              "A left its row behind")
        print("ok: test_headend_cluster (%.1f s)" % (time.time() - t_start))
    except BaseException:
        for he, name in ((a, "A"), (b, "B")):
            if he:
                print("--- der-headend %s log\n%s" % (name, he.logtext()[-3000:]))
        print("--- PostgreSQL log\n" + pg.log())
        raise
    finally:
        if real and real.poll() is None:
            real.kill()
            real.wait()
        if sim:
            sim.stop()
        for he in (a, b):
            if he:
                he.stop(signal.SIGKILL)
        pg.cleanup()
        shutil.rmtree(tmp_a, ignore_errors=True)
        shutil.rmtree(tmp_b, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
