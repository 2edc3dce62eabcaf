#!/usr/bin/python3
"""Remote configuration and ping, real processes on loopback (docs/operations.md, "Remote
configuration"; docs/gateway-config.md, "Remote configuration and reload"): `der-sim serve`
(scenarios/fleet-site.json), der-headend and der-gateway.
- SIGHUP reloads the local file: a new strategy runs (battery setpoints change sign); a bad
  file is refused with the field named in the log and the old policy keeps running;
- PUT /sites/fleet/config: a bad configuration is refused (400) naming the field; a good one
  gets version 1, reaches the gateway, runs (setpoints change), and GET shows desired and
  reported with the same version (APPLIED);
- the pushed configuration wins over the file on SIGHUP, and survives a restart of the
  gateway with no headend reachable (loaded from uplink.spool_dir/desired-config.json); back
  online, the gateway registers with that version and nothing is pushed again;
- Ping: /agents shows rtt_ms for the gateway, POST /agents/gw-fleet/ping answers 202,
  /metrics has der_headend_gateway_rtt_seconds;
- roles: a viewer reads the configuration but may not PUT it (403), nor may an operator
  (configuration is an admin's); an admin may; the audit trail has them all.
A gateway configuration the headend accepts but the gateway refuses has no path today (both
run confsync_check's code over the same sections); the REJECTED report is covered by the
unit tests of the hub (tests/unit/test_headend.c)."""

import json
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402
import test_rest_auth as auth  # noqa: E402

BATS = ("bat-1", "bat-2", "bat-3", "bat-4")


def put(he, path, obj, timeout=3.0):
    req = urllib.request.Request(he.http + path, data=json.dumps(obj).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def bat_setpoints(he):
    return [(he.telemetry(b) or {}).get("setpoint_w") for b in BATS]


def charging(he):
    s = bat_setpoints(he)
    return all(isinstance(x, (int, float)) and x < -1 for x in s)


def discharging(he):
    s = bat_setpoints(he)
    return all(isinstance(x, (int, float)) and x > 1 for x in s)


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def test_remote(sim, tmp):
    e2e.HEADEND_ARGS += ["--ping-interval", "1s"]
    he = e2e.Headend(tmp, inventory=e2e.write_inventory(sim, tmp), kind="real")
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool)
    cfgp = e2e.gateway_config(sim, tmp, "fleet", "null", uplink={"spool_dir": spool})
    gw = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway", tmp)
    check(wait_until(lambda: he.connected("gw-fleet"), 8), "gateway did not register: %s"
          % gw.log())

    # SIGHUP: the file's strategy changes; then a bad file is refused and the old one runs
    cfg = json.load(open(cfgp))
    cfg.update(strategy="discharge", params={"power_w": 2000})
    write_json(cfgp, cfg)
    gw.p.send_signal(signal.SIGHUP)
    check(wait_until(lambda: discharging(he), 8), "SIGHUP to discharge: setpoints %s; log %s"
          % (bat_setpoints(he), gw.log()))
    check("event=config_reload result=applied" in gw.log() and "strategy=discharge" in gw.log(),
          "reload log line: %s" % gw.log())
    bad = dict(cfg, params={"power_w": -5})
    write_json(cfgp, bad)
    gw.p.send_signal(signal.SIGHUP)
    check(wait_until(lambda: "result=kept" in gw.log(), 5), "bad file: %s" % gw.log())
    line = [x for x in gw.log().splitlines() if "result=kept" in x][-1]
    check("params.power_w" in line and "-5" in line, "the refusal names the field: %s" % line)
    time.sleep(0.5)
    check(gw.alive() and discharging(he), "after a bad file the old policy runs: %s"
          % bat_setpoints(he))
    write_json(cfgp, cfg)
    print("ok: SIGHUP applies the file's strategy; a bad file is refused (%s) and the old runs"
          % line.split("reason=", 1)[1][:80])

    # PUT: refused with the field, then accepted, pushed, applied, reported
    code, r = put(he, "/sites/fleet/config", {"strategy": "charge", "params": {"power_w": -5}})
    check(code == 400 and r["field"] == "params.power_w" and "-5" in r["error"],
          "bad params: %s %s" % (code, r))
    code, r = put(he, "/sites/fleet/config", {"strategy": "warp"})
    check(code == 400 and r["field"] == "strategy", "unknown strategy: %s %s" % (code, r))
    code, r = put(he, "/sites/fleet/config", {"strategy": "charge", "colour": 1})
    check(code == 400 and r["field"] == "colour", "unknown key: %s %s" % (code, r))
    code, r = put(he, "/sites/nowhere/config", {"strategy": "charge"})
    check(code == 404 and r["field"] == "site_id", "unknown site: %s %s" % (code, r))
    code, r = he.get("/sites/fleet/config")
    check(code == 200 and r["desired"] is None and r["reported"]["version"] == 0,
          "before any push: %s %s" % (code, r))
    t0 = time.monotonic()
    code, r = put(he, "/sites/fleet/config", {"strategy": "charge", "params": {"power_w": 3000}})
    check(code == 200 and r["version"] == 1 and r["pushed"], "PUT: %s %s" % (code, r))
    rep = wait_until(lambda: (he.get("/sites/fleet/config")[1] or {}).get("in_sync") and
                     he.get("/sites/fleet/config")[1], 5)
    check(rep and rep["reported"]["status"] == "APPLIED" and rep["reported"]["version"] == 1 and
          rep["desired"]["config"]["strategy"] == "charge", "GET after PUT: %s"
          % he.get("/sites/fleet/config")[1])
    applied_s = time.monotonic() - t0
    check(wait_until(lambda: charging(he), 8), "the pushed strategy runs: setpoints %s"
          % bat_setpoints(he))
    check(os.path.exists(os.path.join(spool, "desired-config.json")), "not persisted")
    print("ok: PUT refused with the field (params.power_w, strategy, colour); v1 pushed, "
          "APPLIED in %.2f s, batteries charge %s" % (applied_s, bat_setpoints(he)))

    # SIGHUP with a pushed configuration: its strategy wins over the file's
    gw.p.send_signal(signal.SIGHUP)
    check(wait_until(lambda: gw.log().count("result=applied") >= 2, 5), "second reload")
    time.sleep(1.0)
    check(charging(he), "after SIGHUP the pushed strategy still runs: %s" % bat_setpoints(he))

    # ping
    rows = wait_until(lambda: [x for x in he.get("/agents")[1]
                               if x.get("rtt_ms") is not None and x.get("rtt_ewma_ms") is not None], 5)
    check(rows, "no rtt_ms in /agents: %s" % he.get("/agents")[1][:1])
    code, r = he.post("/agents/gw-fleet/ping", {})
    check(code == 202 and r["nonce"] > 0, "POST ping: %s %s" % (code, r))
    code, r = he.post("/agents/gw-nobody/ping", {})
    check(code == 404, "ping of an absent gateway: %s %s" % (code, r))
    with urllib.request.urlopen(he.http + "/metrics", timeout=3) as m:
        metrics = m.read().decode()
    check('der_headend_gateway_rtt_seconds{site="fleet",gateway="gw-fleet"}' in metrics,
          "no rtt gauge in /metrics")
    print("ok: ping: rtt_ms %.0f ms (ewma %.1f) in /agents and /metrics"
          % (rows[0]["rtt_ms"], rows[0]["rtt_ewma_ms"]))

    # restart offline: the pushed configuration is loaded from the spool directory
    gw.stop()
    gw2 = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", "127.0.0.1:1"], "gateway-offline", tmp)
    check(wait_until(lambda: "event=start" in gw2.log(), 5), "offline start: %s" % gw2.log())
    log = gw2.log()
    check("event=config_loaded source=persisted" in log and "version=1 strategy=charge" in log,
          "offline restart keeps the pushed configuration: %s" % log)
    start = [x for x in log.splitlines() if "event=start" in x][0]
    check("strategy=charge" in start, "start line: %s" % start)
    gw2.stop()
    pushes = he.proc.log().count("event=config_push ")
    gw3 = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway-back", tmp)
    rep = wait_until(lambda: he.connected("gw-fleet") and
                     (he.get("/sites/fleet/config")[1] or {}).get("reported", {}).get("status")
                     == "RUNNING" and he.get("/sites/fleet/config")[1], 8)
    check(rep and rep["reported"]["version"] == 1 and rep["in_sync"], "back online: %s" % rep)
    check(he.proc.log().count("event=config_push ") == pushes,
          "a gateway running the desired version gets no push")
    print("ok: restarted offline, the gateway runs v1 (charge) from its spool directory; back "
          "online it registers v1, nothing pushed")
    gw3.stop()
    he.proc.stop()


def test_roles(tmp):
    """A viewer reads, may not PUT, nor may an operator; an admin may; the audit trail keeps
    them all."""
    db = os.path.join(tmp, "roles.db")
    with open(os.path.join(tmp, "inventory.json"), "w") as f:
        json.dump(auth.INVENTORY, f)
    viewer = auth.add_token(db, "look", "viewer")
    op = auth.add_token(db, "ops", "operator")
    admin = auth.add_token(db, "root", "admin")
    he = auth.Headend(tmp, db, name="roles")
    try:
        body = {"strategy": "charge", "params": {"power_w": 1000}}
        code, r, _ = auth.req(he.port, "PUT", "/sites/site-a/config", viewer, body)
        check(code == 403 and r["field"] == "role", "viewer PUT: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "PUT", "/sites/site-a/config", op, body)
        check(code == 403 and r["field"] == "role", "operator PUT: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "PUT", "/sites/site-a/config", admin, body)
        check(code == 200 and r["version"] == 1 and not r["pushed"], "admin PUT: %s %s"
              % (code, r))
        code, r, _ = auth.req(he.port, "PUT", "/sites/site-a/config", admin, body)
        check(code == 200 and r["version"] == 2, "second PUT: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "GET", "/sites/site-a/config", viewer)
        check(code == 200 and r["desired"]["version"] == 2 and
              r["desired"]["updated_by"] == "root" and r["reported"] is None,
              "viewer GET: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "GET", "/audit", admin)
        rows = [(e["who"], e["method"], e["status"]) for e in r["entries"]
                if e["path"] == "/sites/site-a/config"]
        check(rows == [("look", "PUT", 403), ("ops", "PUT", 403), ("root", "PUT", 200),
                       ("root", "PUT", 200)],
              "audit rows: %s" % rows)
    finally:
        he.stop()
    # the version survives a restart (SQLite store)
    he = auth.Headend(tmp, db, name="roles2")
    try:
        code, r, _ = auth.req(he.port, "GET", "/sites/site-a/config", viewer)
        check(code == 200 and r["desired"]["version"] == 2, "after restart: %s" % r)
    finally:
        he.stop()
    print("ok: viewer GET 200 and PUT 403, operator PUT 403, admin PUT 200 (v1, v2), audit rows, "
          "versions persist across a restart")


def main():
    def body(tmp):
        test_roles(tmp)
        with DerSim(e2e.SCENARIO) as sim:
            test_remote(sim, tmp)
    return e2e.run_main("remote configuration", "derloop-remote-", body, fails=(auth.Fail,))


if __name__ == "__main__":
    sys.exit(main())
