#!/usr/bin/env python3
"""The emergency stop with real processes (issue 15; docs/operations.md, "Emergency stop"):
der-sim serve (scenarios/reference-site.json: battery, PV, EV charger, boiler), der-gateway
running `charge`, der-headend.

- POST /sites/ref/estop: every asset goes to its safe state in the simulator's registers
  (battery WSet 0, PV WMaxLimPct 0, EV charger CurrentLimit 0, boiler PowerLimit 0); GET shows
  it held and reported by the gateway; /agents, /metrics and the gateway's log show it;
- the headend is killed: the gateway holds the stop; the gateway is restarted with no headend:
  it starts stopped (the persisted stop); the headend comes back and learns the stop from the
  gateway's Register; DELETE releases it and the battery charges again;
- POST /groups/g1/estop stops every site of the group (the inventory's "group" key);
- roles: a viewer may read the stop but not engage it (403), an operator may."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, Raw, check, read_point, wait_until, walk  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402
import test_rest_auth as auth  # noqa: E402

SCENARIO = "scenarios/reference-site.json"


def delete(he, path):
    import urllib.request
    req = urllib.request.Request(he.http + path, method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Registers:
    """The simulator's control registers of each asset, read over Modbus."""

    def __init__(self, sim):
        self.site = sim.site()
        self.raw = Raw(self.site["port"])
        self.units = {a: u["unit"] for a, u in self.site["units"].items()}
        self.m704 = {}
        for a in ("bat-1", "pv-1"):
            models = walk(lambda addr, n, u=self.units[a]: self.raw.read(u, addr, n))
            self.m704[a] = [m for m in models if m[0] == 704][0][1]

    def point(self, asset, name):
        u = self.units[asset]
        return read_point(lambda addr, n: self.raw.read(u, addr, n), self.m704[asset], 704, name)

    def safe(self):
        """(all safe?, the values read)."""
        v = {"bat WSet": self.point("bat-1", "WSet"),
             "pv WMaxLimPct": self.point("pv-1", "WMaxLimPct"),
             "pv ena": self.point("pv-1", "WMaxLimPctEna"),
             "evse CurrentLimit": self.raw.read(self.units["evse-1"], 6, 1)[0],
             "boiler PowerLimit": self.raw.read(self.units["boiler-1"], 6, 1)[0]}
        ok = (v["bat WSet"] == 0 and v["pv WMaxLimPct"] == 0 and v["pv ena"] == 1 and
              v["evse CurrentLimit"] == 0 and v["boiler PowerLimit"] == 0)
        return ok, v

    def charging(self):
        return self.point("bat-1", "WSet") < -1


def write_inventory(sim, tmp):
    cfg = sim.config("ref")
    assets = [{"asset_id": d["asset_id"], "type": d["type"]} for d in cfg["devices"]]
    inv = {"sites": [{"site_id": "ref", "gateways": ["gw-ref"], "group": "g1",
                      "assets": assets},
                     {"site_id": "cabin", "gateways": ["gw-cabin"], "group": "g1",
                      "assets": [{"asset_id": "cabin-bat", "type": "battery"}]},
                     {"site_id": "barn", "gateways": ["gw-barn"], "assets": []}]}
    path = os.path.join(tmp, "inventory.json")
    with open(path, "w") as f:
        json.dump(inv, f)
    return path


def gateway(sim, tmp, spool, target):
    cfg = sim.config("ref")
    cfg.update(strategy="charge", params={"power_w": 2000}, gateway_id="gw-ref")
    cfg["uplink"] = {"keepalive_time": "1s", "keepalive_timeout": "1s",
                     "backoff_initial": "200ms", "backoff_max": "500ms", "spool_dir": spool}
    path = os.path.join(tmp, "ref.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return e2e.Proc([e2e.GATEWAY, "-c", path, "--headend", target], "gateway", tmp)


def test_site(sim, tmp):
    regs = Registers(sim)
    inv = write_inventory(sim, tmp)
    he = e2e.Headend(tmp, inventory=inv, kind="real")
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool)
    gw = gateway(sim, tmp, spool, he.grpc)
    check(wait_until(lambda: he.connected("gw-ref"), 8), "no Register: %s" % gw.log())
    check(wait_until(regs.charging, 5), "the battery does not charge: %s" % (regs.safe(),))

    t0 = time.monotonic()
    code, r = he.post("/sites/ref/estop", {"reason": "fire drill"})
    check(code == 202 and r["active"] and r["sent"] and r["reason"] == "fire drill",
          "POST estop: %s %s" % (code, r))
    check(wait_until(lambda: regs.safe()[0], 5), "not safe: %s" % (regs.safe()[1],))
    dt = time.monotonic() - t0
    check(wait_until(lambda: he.get("/sites/ref/estop")[1]["gateway"]["active"], 3),
          "the gateway did not report the stop: %s" % (he.get("/sites/ref/estop"),))
    code, ag = he.get("/agents")
    check(all(a["estop"] for a in ag if a["site_id"] == "ref"), "/agents: %s" % ag[:1])
    with __import__("urllib.request").request.urlopen(he.http + "/metrics", timeout=3) as m:
        metrics = m.read().decode()
    check('der_headend_site_estop{site="ref"} 1' in metrics and
          'der_headend_site_estop{site="barn"} 0' in metrics, "metrics gauge missing")
    check("level=warn event=estop state=engaged" in gw.log() and "fire drill" in gw.log(),
          "gateway log: %s" % gw.log()[-1500:])
    check(os.path.exists(os.path.join(spool, "estop.json")), "not persisted")
    print("ok: estop: every asset safe in the registers in %.2f s (%s); reported, /agents, "
          "metrics, log" % (dt, regs.safe()[1]))

    # the stream drops: the gateway holds the stop
    grpc_port = int(he.grpc.rsplit(":", 1)[1])
    he.proc.stop(signal.SIGKILL)
    check(wait_until(lambda: "event=disconnected" in gw.log(), 5), "no disconnect")
    time.sleep(1.5)
    check(gw.alive() and regs.safe()[0], "not held without the headend: %s" % (regs.safe(),))
    # the gateway restarts with no headend: it starts stopped
    gw.stop()
    gw = gateway(sim, tmp, spool, he.grpc)
    time.sleep(2.0)
    check(gw.alive() and regs.safe()[0], "not held after a restart: %s; %s"
          % (regs.safe()[1], gw.log()[-1500:]))
    check("event=estop state=engaged" in gw.log() and "source=persisted" in gw.log(),
          "restart log: %s" % gw.log()[-1500:])
    print("ok: held with the headend killed, and after a gateway restart (persisted)")

    # the headend comes back: it learns the stop from Register; the release goes through
    he = e2e.Headend(tmp, grpc_port=grpc_port, inventory=inv, kind="real")
    check(wait_until(lambda: he.connected("gw-ref"), 8), "no reconnect: %s" % gw.log())
    code, r = he.get("/sites/ref/estop")
    check(code == 200 and r["active"] and r["by"] == "gateway" and r["gateway"]["active"],
          "adopted from Register: %s %s" % (code, r))
    code, r = delete(he, "/sites/ref/estop")
    check(code == 202 and not r["active"] and r["sent"], "DELETE: %s %s" % (code, r))
    check(wait_until(regs.charging, 5), "not released: %s" % (regs.safe()[1],))
    check(wait_until(lambda: not os.path.exists(os.path.join(spool, "estop.json")), 3),
          "the persisted stop was not removed")
    check("event=estop state=released" in gw.log(), "release log: %s" % gw.log()[-800:])
    print("ok: the headend learnt the stop from Register; DELETE released it, charging again")

    # a group: every site whose inventory entry has "group": "g1"
    code, r = he.post("/groups/g1/estop", {"reason": "storm"})
    check(code == 202 and [s["site_id"] for s in r["sites"]] == ["ref", "cabin"] and
          r["sites"][0]["sent"] and not r["sites"][1]["sent"], "group POST: %s %s" % (code, r))
    check(wait_until(lambda: regs.safe()[0], 5), "group stop not applied: %s" % (regs.safe(),))
    code, r = he.get("/sites/barn/estop")
    check(code == 200 and not r["active"], "barn is not in g1: %s" % r)
    code, r = delete(he, "/groups/g1/estop")
    check(code == 202 and not any(s["active"] for s in r["sites"]), "group DELETE: %s" % r)
    check(wait_until(regs.charging, 5), "group release: %s" % (regs.safe()[1],))
    code, r = he.post("/groups/none/estop", {})
    check(code == 404 and r["field"] == "group", "unknown group: %s %s" % (code, r))
    code, r = he.post("/sites/ref/estop", {"why": 1})
    check(code == 400 and r["field"] == "reason", "bad body: %s %s" % (code, r))
    print("ok: group g1 stopped and released (ref sent, cabin offline); unknown group 404")
    gw.stop()
    he.proc.stop()


def test_roles(tmp):
    db = os.path.join(tmp, "roles.db")
    with open(os.path.join(tmp, "inventory.json"), "w") as f:
        json.dump(auth.INVENTORY, f)
    viewer = auth.add_token(db, "look", "viewer")
    op = auth.add_token(db, "ops", "operator")
    he = auth.Headend(tmp, db, name="roles")
    try:
        code, r, _ = auth.req(he.port, "POST", "/sites/site-a/estop", viewer, {"reason": "x"})
        check(code == 403 and r["field"] == "role", "viewer POST: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "GET", "/sites/site-a/estop", viewer)
        check(code == 200 and not r["active"], "viewer GET: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "POST", "/sites/site-a/estop", op, {"reason": "x"})
        check(code == 202 and r["active"] and r["by"] == "ops", "operator POST: %s %s"
              % (code, r))
        code, r, _ = auth.req(he.port, "DELETE", "/sites/site-a/estop", viewer)
        check(code == 403, "viewer DELETE: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "DELETE", "/sites/site-a/estop", op)
        check(code == 202 and not r["active"], "operator DELETE: %s %s" % (code, r))
    finally:
        he.stop()
    print("ok: roles: viewer GET 200, POST/DELETE 403; operator POST/DELETE 202")


def main():
    def body(tmp):
        test_roles(tmp)
        with DerSim(SCENARIO) as sim:
            test_site(sim, tmp)
    return e2e.run_main("emergency stop", "derloop-estop-", body, fails=(auth.Fail,))


if __name__ == "__main__":
    sys.exit(main())
